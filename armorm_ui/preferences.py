"""Preference pairs: a prompt (or conversation), the response people chose and the one they rejected.

Read from the files people already have, every bad row reported with its line as for batch files:
- CSV / JSONL / Parquet with `prompt`, `chosen`, `rejected` as text, and optionally `subset` and `id` (RewardBench's
  layout; its `chosen_model` / `rejected_model` columns are ignored);
- TRL's conversational layout: `chosen` / `rejected` are message lists ending in the assistant's turn, with the
  earlier turns either in a `prompt` message list or shared by both lists (the implicit prompt);
- a Hugging Face data set, by hub name or by the folder `Dataset.save_to_disk` wrote, with an optional sample.
Columns with other names are mapped with `columns` ({"prompt": "question", ...}).

A pair becomes a batch Item with two candidates (chosen first), so it is scored in one request, resumably, by the
same code as a batch file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .batch import MAX_ID_CHARS, BatchError, Item, _empty, _item_id, _json, read_records
from .chat import validate_messages
from .errors import InputError
from .validation import Limits, check_request, check_text

FIELDS = ("prompt", "chosen", "rejected", "subset", "id")
IGNORED = ("chosen_model", "rejected_model", "source", "chosen_rating", "rejected_rating", "score_chosen",
           "score_rejected")  # fmt: skip
"""Columns that preference sets often carry beside the pair; they are not needed and are left alone."""


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


def _conversation(value, field: str, line: int, problems: list[str]) -> list[dict] | str | None:
    """Text, or a list of {"role", "content"} messages (also as a JSON string)."""
    if isinstance(value, str) and value.lstrip().startswith("[{"):
        try:
            value = _json(value)
        except ValueError:
            return value  # text that happens to start like JSON
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(m, dict) and {"role", "content"} <= set(m)
                                                          for m in value):  # fmt: skip
        return [{"role": m["role"], "content": m["content"]} for m in value]
    problems.append(f'line {line}: {field} must be text or a list of {{"role", "content"}} messages')
    return None


def _pair(record: dict, line: int, row: int, problems: list[str]) -> Pair | None:
    fields = {}
    for name in ("prompt", "chosen", "rejected"):
        value = record.get(name)
        if _empty(value) or (hasattr(value, "__len__") and len(value) == 0):
            if name != "prompt":
                problems.append(f"line {line}: {name} is empty")
                return None
            fields[name] = None
            continue
        fields[name] = _conversation(value, name, line, problems)
        if fields[name] is None:
            return None
    prompt, chosen, rejected = fields["prompt"], fields["chosen"], fields["rejected"]
    if isinstance(chosen, list) != isinstance(rejected, list):
        problems.append(f"line {line}: chosen and rejected must both be text or both be message lists")
        return None
    if isinstance(chosen, list):  # conversational: each list ends with the assistant's answer
        if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
            problems.append(f"line {line}: chosen and rejected must end with an assistant message")
            return None
        if chosen[:-1] != rejected[:-1]:
            problems.append(f"line {line}: chosen and rejected have different earlier turns; a pair answers the "
                            "same conversation")  # fmt: skip
            return None
        earlier, chosen, rejected = chosen[:-1], chosen[-1]["content"], rejected[-1]["content"]
        if isinstance(prompt, str):
            earlier = [*earlier, {"role": "user", "content": prompt}] if not earlier else earlier
        elif prompt:
            earlier = prompt + earlier
    else:
        if prompt is None:
            problems.append(f"line {line}: prompt is empty")
            return None
        earlier = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(text, str):
            problems.append(f"line {line}: the {name} answer is {type(text).__name__}; text is expected")
            return None
    try:
        messages = validate_messages(earlier)
    except InputError as e:
        problems.append(f"line {line}: {e}")
        return None
    pair_id = _item_id(record.get("id"), line, problems)
    if pair_id is None and not _empty(record.get("id")):
        return None
    subset = record.get("subset")
    subset = "all" if _empty(subset) else str(subset).strip() or "all"
    if isinstance(record.get("subset"), (dict, list)):
        problems.append(f"line {line}: subset is {type(record['subset']).__name__}; a name is expected")
        return None
    try:  # shown in the report and its charts, and written to files: the text checks of every other field
        check_text(subset, "The subset", Limits(max_chars=MAX_ID_CHARS))
    except InputError as e:
        problems.append(f"line {line}: {e}")
        return None
    return Pair(pair_id or str(row), subset, messages, chosen, rejected, line)


def parse_pairs(name: str, columns: list[str], records: list[tuple[int, dict]], limits: Limits,
                mapping: dict[str, str] | None = None) -> list[Pair]:  # fmt: skip
    """Validate every record; BatchError lists every bad row."""
    mapping = mapping or {}
    missing = [mapping.get(f, f) for f in ("chosen", "rejected") if mapping.get(f, f) not in columns]
    if missing:
        raise BatchError(name, [f"no {' or '.join(map(repr, missing))} column; found: {', '.join(map(str, columns))}"
                                " (map other names with --columns chosen=COLUMN,...)"])  # fmt: skip
    known = {mapping.get(f, f) for f in FIELDS} | set(IGNORED)
    problems = [f"unknown column(s) {', '.join(repr(c) for c in columns if c not in known)}: remove or map them"
                if any(c not in known for c in columns) else None]  # fmt: skip
    problems = [p for p in problems if p]
    pairs, seen = [], {}
    for row, (line, raw) in enumerate(records, start=1):
        record = {ours: raw.get(theirs) for ours, theirs in ((f, mapping.get(f, f)) for f in FIELDS)}
        pair = _pair(record, line, row, problems)
        if pair is None:
            continue
        if pair.pair_id in seen:
            problems.append(f"line {line}: id {pair.pair_id!r} already used on line {seen[pair.pair_id]}")
            continue
        seen[pair.pair_id] = line
        try:
            check_request(pair.messages, [pair.chosen, pair.rejected], limits)
        except InputError as e:
            problems.append(f"line {line}: {e}")
            continue
        pairs.append(pair)
    if problems:
        raise BatchError(name, problems)
    return pairs


def read_pairs(path: Path, limits: Limits, max_rows: int = 5000, mapping: dict[str, str] | None = None) -> list[Pair]:
    """Preference pairs from a CSV, JSONL or Parquet file."""
    path = Path(path)
    columns, records = read_records(path, limits, max_rows)
    return parse_pairs(path.name, columns, records, limits, mapping)


def load_dataset_pairs(name: str, split: str, limits: Limits, max_rows: int = 5000,
                       mapping: dict[str, str] | None = None, sample: int | None = None,
                       seed: int = 0) -> tuple[list[Pair], str]:  # fmt: skip
    """Pairs from a Hugging Face data set: a hub name, or a folder written by `save_to_disk` (no hub needed).
    Returns the pairs and a fingerprint of the split's rows, for resuming (--sample and --seed are in the CLI's run
    header, which names them when they differ)."""
    import datasets

    try:
        if Path(name).is_dir():
            data = datasets.load_from_disk(name)
            data = data[split] if isinstance(data, datasets.DatasetDict) else data
        else:
            data = datasets.load_dataset(name, split=split)
    except KeyError as e:
        raise InputError(f"The data set {name} has no split {split!r}.") from e
    except Exception as e:  # the hub unreachable, a name that does not exist, a damaged folder
        raise InputError(f"The data set {name} (split {split}) could not be loaded: {e}") from e
    fingerprint = f"{name}:{split}:{data._fingerprint}"
    if sample is not None and sample < len(data):
        data = data.shuffle(seed=seed).select(range(sample))
    if len(data) > max_rows:
        raise InputError(f"{name} has {len(data):,} rows; the limit is {max_rows:,}: take a --sample.")
    records = [(i + 1, row) for i, row in enumerate(data)]
    pairs = parse_pairs(f"{name} ({split})", list(data.column_names), records, limits, mapping)
    return pairs, fingerprint
