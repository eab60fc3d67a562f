"""Preference data: a prompt (or conversation), the answers people chose and the ones they rejected.

Read from the files people already have, every bad row reported with its line as for batch files:
- CSV / JSONL / Parquet with `prompt`, `chosen`, `rejected` as text, and optionally `subset` and `id` (the
  allenai/reward-bench data set card's layout);
- several answers a side: `chosen` / `rejected` as lists of texts, as in the allenai/reward-bench-2 card (one chosen,
  or several in its Ties subset, and usually 3 rejected) and in THU-KEG/RM-Bench (3 of each: concise, detailed plain
  text, detailed markdown; its `domain` is the subset); in a CSV cell, the list as JSON text;
- TRL's conversational layout: `chosen` / `rejected` are message lists ending in the assistant's turn, with the
  earlier turns either in a `prompt` message list or shared by both lists (the implicit prompt), as in
  HuggingFaceH4/ultrafeedback_binarized;
- Anthropic/hh-rlhf's whole transcripts ("\\n\\nHuman: ...\\n\\nAssistant: ...") when there is no prompt column;
- a Hugging Face data set, by hub name or by the folder `Dataset.save_to_disk` wrote, with an optional sample.
Columns with other names are mapped with `columns` ({"prompt": "question", ...}); other columns are ignored, with a
note.

A prompt's answers become one batch Item (the chosen ones first), scored in one request, resumably, by the same code
as a batch file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .batch import MAX_ID_CHARS, BatchError, Item, _empty, _item_id, _json, read_records
from .chat import validate_messages
from .errors import InputError
from .validation import Limits, check_request, check_text

FIELDS = ("prompt", "chosen", "rejected", "subset", "domain", "id")
LAYOUTS = ("pairs", "best_of_n", "rm_bench")
SHAPES = {"pairs": (1, 1), "rm_bench": (3, 3)}
"""(chosen, rejected) answers every row of a layout has; best_of_n takes any."""
RM_BENCH_STYLES = ("concise", "detailed plain text", "detailed markdown")
"""The order of RM-Bench's three answers a side."""
TURN = re.compile(r"\n\n(Human|Assistant): ?")
SPEAKERS = {"Human": "user", "Assistant": "assistant"}
ENCODED = re.compile(r'\s*\[\s*([{"\]])')
"""A JSON list in a text cell: of messages (in any file, as before), or of texts (in a CSV, where cells are text)."""


@dataclass(frozen=True)
class Pair:
    pair_id: str
    subset: str
    messages: list[dict]
    """The conversation up to the last user turn, shared by both responses."""
    chosen: str
    rejected: str
    line: int

    def item(self) -> Item:
        return Item(self.pair_id, self.messages, [self.chosen, self.rejected], self.line)


@dataclass(frozen=True)
class Comparison:
    """One prompt and its answers: one or more chosen, one or more rejected."""

    comparison_id: str
    subset: str
    messages: list[dict]
    """The conversation up to the last user turn, shared by every answer."""
    chosen: tuple[str, ...]
    rejected: tuple[str, ...]
    line: int

    def item(self) -> Item:
        return Item(self.comparison_id, self.messages, [*self.chosen, *self.rejected], self.line)


@dataclass
class Comparisons:
    comparisons: list[Comparison]
    layout: str
    """'pairs' (one answer a side), 'best_of_n' (several on a side) or 'rm_bench' (3 x 3, by style)."""
    notes: list[str] = field(default_factory=list)


class _Bad(ValueError):
    """A row's problem; the caller adds its line."""


def parse_columns(spec: str | None) -> dict[str, str]:
    """`prompt=question,chosen=good` -> {"prompt": "question", "chosen": "good"} (our name = the data's name)."""
    mapping = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        ours, _, theirs = part.partition("=")
        if ours.strip() not in FIELDS or not theirs.strip():
            raise InputError(
                f"Column mapping {part.strip()!r}: write NAME=COLUMN with NAME one of {', '.join(FIELDS)}."
            )
        mapping[ours.strip()] = theirs.strip()
    return mapping


def _blank(value) -> bool:
    return _empty(value) or (isinstance(value, (list, tuple)) and not value)


def _side(value, name: str, text_lists: bool) -> tuple[list[dict] | None, tuple]:
    """(the message list, or None, and the answers) of a text, a list of texts or a list of messages."""
    encoded = ENCODED.match(value) if isinstance(value, str) else None
    if encoded and (encoded.group(1) == "{" or text_lists):
        try:
            value = _json(value)
        except ValueError:
            pass  # text that happens to start like JSON
    if isinstance(value, (list, tuple)) and not value:
        raise _Bad(f"{name} is empty")
    if isinstance(value, str):
        return None, (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(a, str) for a in value):
        return None, tuple(value)
    if isinstance(value, (list, tuple)) and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in value):
        return [{"role": m["role"], "content": m["content"]} for m in value], ()
    if isinstance(value, (list, tuple)) and not any(isinstance(a, dict) for a in value):
        k, bad = next((k, a) for k, a in enumerate(value) if not isinstance(a, str))
        raise _Bad(f"{name} answer {k + 1} is {type(bad).__name__}; a list of answers holds texts")
    raise _Bad(f'{name} must be text, a list of texts or a list of {{"role", "content"}} messages')


def _prompt(value) -> list[dict] | str | None:
    if _blank(value):
        return None
    turns, texts = _side(value, "prompt", False)
    if turns is None and len(texts) != 1:
        raise _Bad('prompt must be text or a list of {"role", "content"} messages')
    return turns if turns is not None else texts[0]


def _from_columns(record: dict, text_lists: bool) -> tuple[list[dict], tuple, tuple]:
    """(conversation, chosen, rejected) from prompt / chosen / rejected columns."""
    prompt = _prompt(record["prompt"])
    chosen_turns, chosen = _side(record["chosen"], "chosen", text_lists)
    rejected_turns, rejected = _side(record["rejected"], "rejected", text_lists)
    if (chosen_turns is None) != (rejected_turns is None):
        raise _Bad("chosen and rejected must both be text or both be message lists")
    if chosen_turns is None:
        if prompt is None:
            raise _Bad("prompt is empty")
        return (prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]), chosen, rejected
    if chosen_turns[-1]["role"] != "assistant" or rejected_turns[-1]["role"] != "assistant":
        raise _Bad("chosen and rejected must end with an assistant message")
    earlier = chosen_turns[:-1]
    if earlier != rejected_turns[:-1]:
        raise _Bad("chosen and rejected have different earlier turns; a pair answers the same conversation")
    if isinstance(prompt, str) and not earlier:
        earlier = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list):
        earlier = prompt + earlier
    return earlier, (chosen_turns[-1]["content"],), (rejected_turns[-1]["content"],)


def _is_transcript(value) -> bool:
    return isinstance(value, str) and value.startswith(("\n\nHuman:", "Human:"))


def _turns(text: str, name: str) -> list[dict]:
    """Anthropic/hh-rlhf's transcript as messages: "\\n\\nHuman: ..." -> user, "\\n\\nAssistant: ..." -> assistant."""
    parts = TURN.split(text if text.startswith("\n\n") else "\n\n" + text)
    turns = [{"role": SPEAKERS[parts[k]], "content": parts[k + 1].strip()} for k in range(1, len(parts), 2)]
    if turns[-1]["role"] != "assistant":
        raise _Bad(f"the {name} transcript does not end with an Assistant turn")
    return turns


def _from_transcripts(record: dict) -> tuple[list[dict], tuple, tuple]:
    chosen, rejected = _turns(record["chosen"], "chosen"), _turns(record["rejected"], "rejected")
    if chosen[:-1] != rejected[:-1]:
        raise _Bad("chosen and rejected have different earlier turns; a pair answers the same conversation")
    return chosen[:-1], (chosen[-1]["content"],), (rejected[-1]["content"],)


def _subset(record: dict) -> str:
    """`subset` (allenai/reward-bench, reward-bench-2), else `domain` (THU-KEG/RM-Bench), else 'all'."""
    name = "subset" if not _empty(record["subset"]) else "domain"
    value = record[name]
    if isinstance(value, (dict, list)):
        raise _Bad(f"{name} is {type(value).__name__}; a name is expected")
    subset = "all" if _empty(value) else str(value).strip() or "all"
    check_text(subset, "The subset", Limits(max_chars=MAX_ID_CHARS))  # shown in charts, written to files
    return subset


def _comparison(record: dict, comparison_id: str, line: int, transcripts: bool, text_lists: bool) -> Comparison:
    for name in ("chosen", "rejected"):
        if _blank(record[name]):
            raise _Bad(f"{name} is empty")
    if transcripts and _is_transcript(record["chosen"]) and _is_transcript(record["rejected"]):
        messages, chosen, rejected = _from_transcripts(record)
    else:
        messages, chosen, rejected = _from_columns(record, text_lists)
    messages = validate_messages(messages)
    return Comparison(comparison_id, _subset(record), messages, chosen, rejected, line)


def _check_answers(comparison: Comparison, limits: Limits) -> None:
    """The text checks of every answer, named by side and place, then the request's sizes."""
    for name, answers in (("chosen", comparison.chosen), ("rejected", comparison.rejected)):
        for k, text in enumerate(answers):
            label = f"the {name} answer" + (f" {k + 1}" if len(answers) > 1 else "")
            if not isinstance(text, str):
                raise _Bad(f"{label} is {type(text).__name__}; text is expected")
            if not text.strip():
                raise _Bad(f"{label} is empty")
            check_text(text, label[0].upper() + label[1:], limits)
    item = comparison.item()
    check_request(item.messages, item.candidates, limits)


def _shape_problem(comparison: Comparison, layout: str | None) -> str | None:
    shape, want = (len(comparison.chosen), len(comparison.rejected)), SHAPES.get(layout)
    if want is None or shape == want:
        return None
    found = f"{shape[0]} chosen and {shape[1]} rejected answers"
    if layout == "pairs":
        return f"{found}; a pair has one of each (score several answers with evaluate)"
    return f"{found}; an RM-Bench row has 3 of each ({', '.join(RM_BENCH_STYLES)})"


def _layout(comparisons: list[Comparison], forced: str | None, domain: bool) -> str:
    shapes = {(len(c.chosen), len(c.rejected)) for c in comparisons}
    if forced:
        return forced
    if domain and shapes == {SHAPES["rm_bench"]}:
        return "rm_bench"
    return "pairs" if shapes <= {SHAPES["pairs"]} else "best_of_n"


def _column(name) -> str:
    text = str(name)
    return text if text.isprintable() and len(text) <= 60 else repr(text[:60])


def parse_comparisons(name: str, columns: list[str], records: list[tuple[int, dict]], limits: Limits,
                      mapping: dict[str, str] | None = None, layout: str | None = None) -> Comparisons:  # fmt: skip
    """Validate every record; BatchError lists every bad row with its line. A CSV (by `name`) may hold lists of
    texts as JSON text."""
    if layout is not None and layout not in LAYOUTS:
        raise InputError(f"Unknown layout {layout!r}: use one of {', '.join(LAYOUTS)}.")
    mapping = mapping or {}
    names = {f: mapping.get(f, f) for f in FIELDS}
    missing = [names[f] for f in ("chosen", "rejected") if names[f] not in columns]
    if missing:
        raise BatchError(name, [f"no {' or '.join(map(repr, missing))} column; found: {', '.join(map(str, columns))}"
                                " (map other names with --columns chosen=COLUMN,...)"])  # fmt: skip
    unused = [_column(c) for c in columns if c not in names.values()]
    notes = [f"Ignored {len(unused)} column{'s' * (len(unused) > 1)} the evaluation does not use: "
             f"{', '.join(unused)}."] if unused else []  # fmt: skip
    transcripts, text_lists = names["prompt"] not in columns, name.lower().endswith(".csv")
    comparisons, seen, problems = [], {}, []
    for row, (line, raw) in enumerate(records, start=1):
        record = {f: raw.get(theirs) for f, theirs in names.items()}
        before = len(problems)
        comparison_id = _item_id(record["id"], line, problems) or str(row)
        if len(problems) > before:
            continue
        try:
            comparison = _comparison(record, comparison_id, line, transcripts, text_lists)
            shape = _shape_problem(comparison, layout)
            if shape:
                raise _Bad(shape)
            if comparison_id in seen:
                raise _Bad(f"id {comparison_id!r} already used on line {seen[comparison_id]}")
            seen[comparison_id] = line
            _check_answers(comparison, limits)
        except (_Bad, InputError) as e:
            problems.append(f"line {line}: {e}")
            continue
        comparisons.append(comparison)
    if problems:
        raise BatchError(name, problems)
    return Comparisons(comparisons, _layout(comparisons, layout, names["domain"] in columns), notes)


def parse_pairs(name: str, columns: list[str], records: list[tuple[int, dict]], limits: Limits,
                mapping: dict[str, str] | None = None) -> list[Pair]:  # fmt: skip
    """One chosen and one rejected answer a row; a row with several is refused with its line."""
    found = parse_comparisons(name, columns, records, limits, mapping, layout="pairs")
    return [Pair(c.comparison_id, c.subset, c.messages, c.chosen[0], c.rejected[0], c.line) for c in found.comparisons]


def read_comparisons(path: Path, limits: Limits, max_rows: int = 5000, mapping: dict[str, str] | None = None,
                     layout: str | None = None) -> Comparisons:  # fmt: skip
    """Comparisons from a CSV, JSONL or Parquet file; `layout` forces one of LAYOUTS (else it is found)."""
    path = Path(path)
    columns, records = read_records(path, limits, max_rows)
    return parse_comparisons(path.name, columns, records, limits, mapping, layout)


def read_pairs(path: Path, limits: Limits, max_rows: int = 5000, mapping: dict[str, str] | None = None) -> list[Pair]:
    """Preference pairs from a CSV, JSONL or Parquet file."""
    path = Path(path)
    columns, records = read_records(path, limits, max_rows)
    return parse_pairs(path.name, columns, records, limits, mapping)


def _offline() -> bool:
    flags = (os.environ.get(v, "").upper() for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(f in ("1", "ON", "YES", "TRUE") for f in flags)


def _dataset(name: str, split: str):
    """A split by hub name (datasets.load_dataset) or from a `save_to_disk` folder (no hub needed)."""
    import datasets

    folder = Path(name).is_dir()
    try:
        if folder:
            data = datasets.load_from_disk(name)
            return data[split] if isinstance(data, datasets.DatasetDict) else data
        return datasets.load_dataset(name, split=split)
    except KeyError as e:
        raise InputError(f"The data set {name} has no split {split!r}.") from e
    except Exception as e:  # the hub unreachable, a name that does not exist, a damaged folder
        if not folder and isinstance(e, (ConnectionError, TimeoutError)):
            why = "offline mode is on (HF_HUB_OFFLINE)" if _offline() else "no network connection"
            raise InputError(f"Could not reach the Hugging Face Hub to load {name}: {why}. Download it where the hub "
                             "is reachable (datasets' save_to_disk) and give the folder.") from e  # fmt: skip
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise InputError(f"The data set {name} (split {split}) could not be loaded: {reason}") from e


def _dataset_records(name: str, split: str, max_rows: int, sample: int | None, seed: int):
    """(columns, records, fingerprint of the split's rows, for resuming; --sample and --seed are in the CLI's run
    header, which names them when they differ)."""
    data = _dataset(name, split)
    fingerprint = f"{name}:{split}:{data._fingerprint}"
    if sample is not None and sample < len(data):
        data = data.shuffle(seed=seed).select(range(sample))
    if len(data) > max_rows:
        raise InputError(f"{name} has {len(data):,} rows; the limit is {max_rows:,}: take a --sample.")
    return list(data.column_names), [(i + 1, row) for i, row in enumerate(data)], fingerprint


def load_dataset_comparisons(name: str, split: str, limits: Limits, max_rows: int = 5000,
                             mapping: dict[str, str] | None = None, sample: int | None = None, seed: int = 0,
                             layout: str | None = None) -> tuple[Comparisons, str]:  # fmt: skip
    """Comparisons from a Hugging Face data set (a hub name, or a `save_to_disk` folder), and its fingerprint."""
    columns, records, fingerprint = _dataset_records(name, split, max_rows, sample, seed)
    return parse_comparisons(f"{name} ({split})", columns, records, limits, mapping, layout), fingerprint


def load_dataset_pairs(name: str, split: str, limits: Limits, max_rows: int = 5000,
                       mapping: dict[str, str] | None = None, sample: int | None = None,
                       seed: int = 0) -> tuple[list[Pair], str]:  # fmt: skip
    """Pairs from a Hugging Face data set (a hub name, or a `save_to_disk` folder), and its fingerprint."""
    columns, records, fingerprint = _dataset_records(name, split, max_rows, sample, seed)
    return parse_pairs(f"{name} ({split})", columns, records, limits, mapping), fingerprint
