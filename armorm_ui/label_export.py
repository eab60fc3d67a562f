"""Annotators' labels as preference data: TRL's layout, as JSONL, CSV and a Hugging Face data set folder.

One row per (chosen, rejected) pair that an item's label implies, in TRL's preference layout
(https://huggingface.co/docs/trl/dataset_formats#preference): `prompt`, `chosen`, `rejected`, with `id` (item id,
then the pair as 'B>A') and `subset` (where the label came from). The standard form holds texts; the
conversational form (used for the whole export when an item has a system message or earlier turns) holds message
lists: `prompt` the conversation up to the last user turn, `chosen` / `rejected` one assistant message each, as TRL
recommends (an explicit prompt). Every file reads back, unchanged, through the Evaluate tab's reader
(preferences.py), which gives the same pairs.

Pairs of an item: the chosen candidate against each other one; a full ranking (the same from everyone whose label
is used) gives every ordered pair, better first; a tie or 'all bad' gives none (counted). The label used for an
item: its gold label where one is given, else the label more than half of its annotators gave (the majority),
else none: the item is skipped and counted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .agreement import ALL_BAD, TIE, category
from .batch import MAX_ID_CHARS, Item, write_results
from .errors import InputError
from .explain import candidate_label
from .preferences import ENCODED
from .tables import FORMULA_PREFIXES

FILES = {"jsonl": "preferences.jsonl", "csv": "preferences.csv", "dataset": "preferences_dataset",
         "dataset_zip": "preferences_dataset.zip"}  # fmt: skip


def decide(votes: list[tuple[object, list[int] | None]], gold=None) -> tuple[object, list[int] | None, str]:
    """(label, full ranking or None, where it came from) of one item from its annotators' (label, ranking): the
    gold label ('gold'), else the label more than half of them gave ('unanimous' or 'majority', with the ranking
    when every one of them gave the same), else (None, None, 'no label' or 'no majority')."""
    if category(gold) is not None:
        return category(gold), None, "gold"
    if not votes:
        return None, None, "no label"
    counts = Counter(category(label) for label, _ in votes)
    label, k = counts.most_common(1)[0]
    if 2 * k <= len(votes):
        return None, None, "no majority"
    rankings = {tuple(r) if r else None for c, r in votes if category(c) == label}
    ranking = list(rankings.pop()) if len(rankings) == 1 and None not in rankings else None
    return label, ranking, "unanimous" if k == len(votes) else "majority"


def pairs(label, ranking: list[int] | None, n: int) -> list[tuple[int, int]]:
    """(better, worse) candidate indices that a label implies: every ordered pair of a full ranking, else the
    chosen candidate against each other one; none for a tie or 'all bad'. ValueError for a label that names no
    candidate of the n."""
    if label in (TIE, ALL_BAD):
        return []
    if not isinstance(label, int) or not 0 <= label < n:
        raise ValueError(f"label {label!r} for {n} candidates")
    if ranking and sorted(ranking) == list(range(n)) and ranking[0] == label:
        return [(ranking[i], ranking[j]) for i in range(n) for j in range(i + 1, n)]
    return [(label, k) for k in range(n) if k != label]


def _pair_id(item_id: str, better: int, worse: int) -> str:
    suffix = f":{candidate_label(better)}>{candidate_label(worse)}"
    if len(item_id) + len(suffix) > MAX_ID_CHARS:  # the reader's limit on an id: a long item id by its digest
        item_id = hashlib.sha256(item_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return item_id + suffix


def _reads_as_text(text: str) -> bool:
    """A text the reader takes as itself (not as a JSON list it would decode)."""
    return not ENCODED.match(text)


def preference_rows(items: list[Item], labels: pd.DataFrame, gold: Mapping | None = None) -> tuple[list[dict], dict]:
    """The TRL rows of a file's labels and a summary of what was used, skipped and why. `items`: the file's items
    (LabelStore.items); `labels`: its labels (LabelStore.frame, columns item_id, annotator, choice, ranking);
    `gold`: item id -> label (a candidate index or letter, 'tie', 'all bad'), e.g. preference_items.file_labels."""
    gold = dict(gold or {})
    votes: dict[str, list] = {}
    for row in labels.itertuples():
        ranking = json.loads(row.ranking) if isinstance(row.ranking, str) else None
        votes.setdefault(str(row.item_id), []).append((row.choice, ranking))
    known = {item.item_id for item in items}
    summary = {"items": len(items), "pairs": 0, "items_with_pairs": 0, "from_rankings": 0,
               "label_from": Counter(), "no_pairs": Counter(), "skipped": Counter(),
               "labels_of_unknown_items": sum(len(v) for k, v in votes.items() if k not in known)}  # fmt: skip
    decided = []
    for item in items:
        label, ranking, source = decide(votes.get(item.item_id, []), gold.get(item.item_id))
        if label is None:
            summary["skipped"][source] += 1
            continue
        try:
            found = pairs(label, ranking, len(item.candidates))
        except ValueError:
            summary["skipped"]["label names no candidate"] += 1
            continue
        summary["label_from"][source] += 1
        if not found:
            summary["no_pairs"][label] += 1
            continue
        summary["items_with_pairs"] += 1
        summary["from_rankings"] += bool(ranking) and len(item.candidates) > 2
        decided.append((item, found, source))
    texts = [t for item, _, _ in decided for t in (item.messages[-1]["content"], *item.candidates)]
    conversational = any(len(item.messages) > 1 for item, _, _ in decided) or not all(map(_reads_as_text, texts))
    rows = []
    for item, found, source in decided:
        for better, worse in found:
            chosen, rejected = item.candidates[better], item.candidates[worse]
            if conversational:
                prompt, chosen, rejected = item.messages, _answer(chosen), _answer(rejected)
            else:
                prompt = item.messages[-1]["content"]
            rows.append({"id": _pair_id(item.item_id, better, worse), "prompt": prompt, "chosen": chosen,
                         "rejected": rejected, "subset": source})  # fmt: skip
    summary.update(pairs=len(rows), format="conversational" if conversational else "standard")
    for key in ("label_from", "no_pairs", "skipped"):
        summary[key] = dict(summary[key])
    return rows, summary


def _answer(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def _csv_row(row: dict) -> dict:
    """A row as CSV cells: message lists as JSON text. A text a spreadsheet would take for a formula is written as a
    one-message list instead, which starts with '[' and needs no escaping, so it reads back as itself (an escaped
    cell would read back with its quote); chosen and rejected change together, as the reader wants both alike."""
    row = dict(row)
    if isinstance(row["prompt"], str) and row["prompt"].startswith(FORMULA_PREFIXES):
        row["prompt"] = [{"role": "user", "content": row["prompt"]}]
    if isinstance(row["chosen"], str) and any(row[k].startswith(FORMULA_PREFIXES) for k in ("chosen", "rejected")):
        row["chosen"], row["rejected"] = _answer(row["chosen"]), _answer(row["rejected"])
    return {k: json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v for k, v in row.items()}


LINE_BREAKS = str.maketrans({c: f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"})
"""Line breaks to str.splitlines (which the JSONL reader splits on) that json.dumps leaves as they are: escaped."""


def write_jsonl(rows: list[dict], path: str | Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    lines = (json.dumps(r, ensure_ascii=False).translate(LINE_BREAKS) + "\n" for r in rows)
    tmp.write_text("".join(lines), encoding="utf-8")
    tmp.replace(path)


def write_csv(rows: list[dict], path: str | Path) -> None:
    """Through the app's CSV writer (tables.to_csv: formula-like cells escaped, line breaks quoted)."""
    write_results(pd.DataFrame([_csv_row(r) for r in rows], columns=["id", "prompt", "chosen", "rejected", "subset"]),
                  Path(path))  # fmt: skip


def write_dataset(rows: list[dict], folder: str | Path) -> None:
    """A Hugging Face data set folder (datasets.Dataset.save_to_disk): datasets.load_from_disk(folder) opens it."""
    import datasets

    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    datasets.Dataset.from_list(rows).save_to_disk(os.fspath(folder))


def export_labels(store, project: str, file_id: str, folder: str | Path, gold: Mapping | None = None) -> dict:
    """A file's labels as preference data in `folder`: preferences.jsonl, preferences.csv, the data set folder
    preferences_dataset and it zipped (one file to download). Returns preference_rows' summary with `files` (the
    paths). InputError when no label gives a pair."""
    items = store.items(project, file_id)
    rows, summary = preference_rows(items, store.frame(project, file_id), gold)
    if not rows:
        skipped = summary["skipped"]
        raise InputError(f"No preference pairs to export: of {summary['items']} items, "
                         f"{sum(summary['no_pairs'].values())} are labelled a tie or all bad, "
                         f"{skipped.get('no label', 0)} have no label and {skipped.get('no majority', 0)} no label "
                         "that more than half of their annotators gave.")  # fmt: skip
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {kind: folder / name for kind, name in FILES.items()}
    write_jsonl(rows, paths["jsonl"])
    write_csv(rows, paths["csv"])
    write_dataset(rows, paths["dataset"])
    shutil.make_archive(os.fspath(paths["dataset_zip"].with_suffix("")), "zip", folder, FILES["dataset"])
    return {**summary, "files": {kind: os.fspath(p) for kind, p in paths.items()}}
