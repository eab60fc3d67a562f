"""Preference files opened for annotation: each prompt's answers become one item to label, in an order that does
not give away which answer the file chose.

The file is read by the Evaluate tab's reader (preferences.py: plain pairs, TRL's standard and conversational
layouts, several answers a side, hh-rlhf transcripts), so a file that evaluates also opens here. An item's answers
are shuffled with a random order seeded by the seed and the item's id (the same order every time the file is
opened); the file's sides are kept in the item's metadata, `{"chosen": [...], "rejected": [...], "subset": ...}`
(candidate indices), never shown, so the annotators' labels can be compared with the file's (`file_labels`, a gold
label per item for agreement.agreement_report). A file in the batch layouts (prompt, response_1 ... or item_id,
response) is read as before (batch.parse_items).
"""

from __future__ import annotations

import random
from pathlib import Path

from .batch import Item, parse_items, read_records
from .preferences import Comparison, parse_columns, parse_comparisons
from .validation import Limits


def preference_item(comparison: Comparison, seed: int = 0) -> Item:
    """The comparison's answers as candidates in a seeded random order, the sides in the metadata."""
    answers = [*comparison.chosen, *comparison.rejected]
    order = list(range(len(answers)))
    random.Random(f"{seed}/{comparison.comparison_id}").shuffle(order)  # a str seed: the same order in every process
    position = {k: at for at, k in enumerate(order)}  # original answer -> its candidate index
    n_chosen = len(comparison.chosen)
    metadata = {
        "chosen": sorted(position[k] for k in range(n_chosen)),
        "rejected": sorted(position[k] for k in range(n_chosen, len(answers))),
        "subset": comparison.subset,
    }
    return Item(comparison.comparison_id, comparison.messages, [answers[k] for k in order], comparison.line, metadata)


def is_preference_file(columns: list[str], mapping: dict[str, str] | None = None) -> bool:
    """A file with chosen and rejected columns (under their own names or mapped ones)."""
    mapping = mapping or {}
    return all(mapping.get(side, side) in columns for side in ("chosen", "rejected"))


def read_annotation_items(path: str | Path, limits: Limits, max_rows: int = 5000, seed: int = 0,
                          columns: str | None = None) -> list[Item]:  # fmt: skip
    """Every item of a file to annotate: a preference file's comparisons as preference_item makes them, or a batch
    file's items. Problems are reported as each reader reports them (BatchError lists every bad row). `columns`:
    the Evaluate tab's mapping, 'prompt=question,chosen=good' (optional)."""
    path, mapping = Path(path), parse_columns(columns)
    names, records = read_records(path, limits, max_rows)
    if not is_preference_file(names, mapping):
        return parse_items(path, limits, max_rows)  # reads the file again: parse_items takes a path
    found = parse_comparisons(path.name, names, records, limits, mapping)
    return [preference_item(c, seed) for c in found.comparisons]


def file_labels(items: list[Item]) -> dict[str, int]:
    """The file's own label of each item that came from a preference file with one chosen answer: item id -> the
    chosen candidate's index (a gold label for agreement.agreement_report and label_export)."""
    return {
        item.item_id: item.metadata["chosen"][0]
        for item in items
        if isinstance(item.metadata, dict) and len(item.metadata.get("chosen") or []) == 1
    }
