"""Batch files: read CSV, JSONL or Parquet in a wide or long layout, validate every row, score, write results.

Layouts (column names are case-sensitive):
- wide: one row per item: `prompt`, `response_1` ... `response_n` (empty trailing responses are allowed), and
  optionally `item_id`, `system`, `conversation` (earlier turns: a JSON list of {"role", "content"}).
- long: one row per candidate: `item_id`, `prompt`, `response`, optionally `system`, `conversation`; rows of one
  item share its prompt, system and conversation.
The whole file is validated before anything is scored: every bad row is reported with its line (CSV, JSONL) or row
(Parquet) number and what to fix, and nothing is written. Every check is linear in the file's size, and the header
is capped (`max_columns`) before any row is read, so no file can hold the model slot with work before scoring.

Reading and validating need only the standard library (and pyarrow for Parquet): pandas and the tables are imported
when results are written, so the command line refuses a bad file before importing them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .chat import validate_messages
from .errors import InputError
from .results import ScoreResult
from .validation import Limits, check_request, check_text

if TYPE_CHECKING:
    import pandas as pd

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
OPTIONAL = ("item_id", "system", "conversation")
MAX_PROBLEMS = 25
MAX_ID_CHARS = 200


def max_columns(limits: Limits) -> int:
    """prompt, response_1 ... response_N (N = the candidate cap), and the optional columns."""
    return 1 + limits.max_candidates + len(OPTIONAL) + 1


class BatchError(InputError):
    """A file that cannot be scored as it is; `problems` lists each bad row."""

    def __init__(self, name: str, problems: list[str]):
        self.problems = problems
        shown = "\n".join(f"- {p}" for p in problems[:MAX_PROBLEMS])
        more = f"\n- ... and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
        super().__init__(f"{name}: {len(problems)} problem(s), nothing was scored:\n{shown}{more}")


@dataclass(frozen=True)
class Item:
    item_id: str
    messages: list[dict]
    candidates: list[str]
    line: int
    """Line (CSV, JSONL) or row (Parquet) where the item starts, for messages."""
    metadata: dict | None = None
    """What the file said about the item besides its texts, kept with it and never shown while it is labelled: for
    an item from a preference file, its answers' original sides (preference_items.py)."""


def file_format(path: Path, head: bytes) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path.name}: unknown file type {path.suffix or '(none)'}; use .csv, .jsonl or .parquet.")
    if (fmt == "parquet") != head.startswith(b"PAR1"):
        actual = "a Parquet file" if head.startswith(b"PAR1") else "text, not Parquet"
        raise InputError(f"{path.name} is named {path.suffix} but holds {actual}. Rename it or export it again.")
    return fmt


def _decode(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"{name}: line {line} is not valid UTF-8 (byte {e.start + 1}). Save the file as UTF-8.") from e


def _check_columns(name: str, columns: list, limits: Limits, where: str = "the header") -> None:
    """At most max_columns, each named once (counted in one pass: a wide header costs no more than its length)."""
    cap = max_columns(limits)
    if len(columns) > cap:
        raise InputError(f"{name}: {where} has {len(columns):,} columns; at most {cap} are read (prompt, "
                         f"response_1 ... response_{limits.max_candidates}, {', '.join(OPTIONAL)}). "
                         "Remove the other columns.")  # fmt: skip
    counts = Counter(columns)
    dup = sorted(str(c) for c, n in counts.items() if n > 1)
    if dup:
        raise BatchError(name, [f"column {c!r} appears {counts[c]} times in the header" for c in dup])


def _json(text: str):
    """json.loads, with nesting too deep for Python reported as a ValueError like any other bad JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{e.msg} at column {e.colno}") from None


PARQUET_BATCH = 32
"""Rows decoded at a time from a Parquet file: a few kilobytes of file can decode to gigabytes (a long text stored
once in a column's dictionary and repeated in every row), so the file is decoded a little at a time and refused at
the first rows that are over a limit."""
MAX_DECODED_BYTES = 256 * 2**20
"""All the text a Parquet file may decode to."""


def _parquet_records(raw: bytes, name: str, limits: Limits, max_rows: int) -> tuple[list[str], list[tuple[int, dict]]]:
    """Rows of a Parquet file; its row count (from the footer) and header are checked before any row is decoded,
    then each batch's size before it becomes Python objects."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(io.BytesIO(raw))
    except Exception as e:
        raise InputError(f"{name}: not a readable Parquet file ({e}).") from e
    _check_columns(name, parquet.schema_arrow.names, limits)
    if parquet.metadata.num_rows > max_rows:
        raise InputError(f"{name} has {parquet.metadata.num_rows:,} rows; the limit is {max_rows:,} per file. "
                         "Split it.")  # fmt: skip
    row_bytes = 4 * limits.max_request_chars + 1024  # UTF-8 takes at most 4 bytes a character
    records, decoded = [], 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH):
            size = sum(_decoded(column).nbytes for column in batch.columns)  # a dictionary counts in every row
            decoded += size
            if size > batch.num_rows * row_bytes:
                first = len(records) + 1
                raise InputError(f"{name}: rows {first}-{first + batch.num_rows - 1} hold more text than "
                                 f"{limits.max_request_chars:,} characters a row, the limit for one item. "
                                 "Shorten them.")  # fmt: skip
            if decoded > MAX_DECODED_BYTES:
                raise InputError(f"{name} holds more than {MAX_DECODED_BYTES // 2**20} MB of text once decoded, "
                                 "more than one file may. Split it.")  # fmt: skip
            records.extend(batch.to_pylist())
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"{name}: not a readable Parquet file ({e}).") from e
    return parquet.schema_arrow.names, [(i + 1, r) for i, r in enumerate(records)]


def _decoded(column):
    return column.dictionary_decode() if hasattr(column, "dictionary_decode") else column


def read_records(path: Path, limits: Limits, max_rows: int) -> tuple[list[str], list[tuple[int, dict]]]:
    """(columns, [(line, record)]) from any supported file; structural problems raise BatchError."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path.name} could not be read ({e.strerror}); upload it again.") from e
    fmt = file_format(path, raw[:4])
    name = path.name
    if fmt == "parquet":
        columns, records = _parquet_records(raw, name, limits, max_rows)
    elif fmt == "csv":
        text = _decode(raw, name)
        csv.field_size_limit(max(limits.max_chars, 2**17) + 1)  # a huge cell is refused as it is read
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        problems, records = [], []
        try:
            columns = next(reader, None) or []
            _check_columns(name, columns, limits)
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(columns):
                    problems.append(f"line {reader.line_num}: {len(row)} fields, the header has {len(columns)}")
                    continue
                records.append((reader.line_num, dict(zip(columns, row))))
        except csv.Error as e:
            if "field larger than field limit" in str(e):
                problems.append(f"line {reader.line_num}: a cell is longer than {limits.max_chars:,} characters, "
                                "the limit per message or response; shorten it")  # fmt: skip
            else:
                problems.append(f"line {reader.line_num}: {e} (an unterminated quote?)")
        if problems:
            raise BatchError(name, problems)
    else:
        text = _decode(raw, name)
        problems, records, seen = [], [], {}  # seen: the columns in order of first use (a dict: linear)
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = _json(line)
            except ValueError as e:
                problems.append(f"line {n}: not valid JSON ({e})")
                continue
            if not isinstance(record, dict):
                problems.append(f"line {n}: a JSON object is expected, got {type(record).__name__}")
                continue
            seen.update(dict.fromkeys(record))
            if len(seen) > max_columns(limits):
                _check_columns(name, list(seen), limits, where=f"line {n} brings the file to")
            records.append((n, record))
            if len(records) > max_rows:
                break
        if problems:
            raise BatchError(name, problems)
        columns = list(seen)
    if not records:
        raise InputError(f"{name} has no rows to score.")
    if len(records) > max_rows:
        raise InputError(f"{name} has more than {max_rows:,} rows; the limit is {max_rows:,} per file. Split it.")
    return list(columns), records


def _empty(value) -> bool:
    """No value: missing, null, an empty cell, or the NaN that readers give for an empty numeric cell."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _text(record: dict, key: str, line: int, problems: list[str], required: bool) -> str | None:
    value = record.get(key)
    if _empty(value):
        if required:
            problems.append(f"line {line}: {key} is empty")
        return None
    if not isinstance(value, str):
        problems.append(f"line {line}: {key} is {type(value).__name__} {value!r:.40}; text is expected")
        return None
    return value


def _earlier_turns(record: dict, line: int, problems: list[str]) -> list[dict]:
    value = record.get("conversation")
    if _empty(value):
        return []
    if isinstance(value, str):
        try:
            value = _json(value)
        except ValueError as e:
            problems.append(f"line {line}: conversation is not valid JSON ({e})")
            return []
    if not isinstance(value, list) or not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in value):
        problems.append(f'line {line}: conversation must be a list of {{"role", "content"}} objects')
        return []
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _item_id(value, line: int, problems: list[str]) -> str | None:
    """An id as text: a string or a whole number, short, with nothing that cannot be written back out."""
    if _empty(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # CSV/Parquet readers give 3.0 for a column of numbers with a gap
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        problems.append(f"line {line}: item_id is {type(value).__name__}; use text or a whole number")
        return None
    text = str(value).strip()
    try:
        check_text(text, "item_id", Limits(max_chars=MAX_ID_CHARS))  # length, then every character
    except InputError as e:
        problems.append(f"line {line}: {e}")
        return None
    return text


def _messages(record: dict, line: int, problems: list[str]) -> list[dict] | None:
    prompt = _text(record, "prompt", line, problems, required=True)
    system = _text(record, "system", line, problems, required=False)
    turns = _earlier_turns(record, line, problems)
    if prompt is None:
        return None
    messages = (
        ([{"role": "system", "content": system}] if system else []) + turns + [{"role": "user", "content": prompt}]
    )
    try:
        return validate_messages(messages)  # roles and order, as the scorer will check them
    except InputError as e:
        problems.append(f"line {line}: {e}")
        return None


def parse_items(path: Path, limits: Limits, max_rows: int = 5000) -> list[Item]:
    """Validate the whole file and return its items; BatchError lists every problem."""
    path = Path(path)
    columns, records = read_records(path, limits, max_rows)
    response_cols = sorted((c for c in columns if re.fullmatch(r"response_\d+", c)), key=lambda c: int(c[9:]))
    problems: list[str] = []
    if "prompt" not in columns:
        raise BatchError(path.name, [f"no 'prompt' column; found: {', '.join(map(str, columns)) or 'none'}"])
    if response_cols and "response" in columns:
        raise BatchError(path.name, ["both 'response' and 'response_N' columns: use one layout (long or wide)"])
    if not response_cols and "response" not in columns:
        raise BatchError(path.name, ["no response columns: add response_1, response_2, ... or item_id + response"])
    unknown = [c for c in columns if c not in ("prompt", "response", *response_cols, *OPTIONAL)]
    if unknown:
        problems.append(f"unknown column(s) {', '.join(map(repr, unknown))}; they would be ignored, remove them")
    items: list[Item] = []
    if response_cols:  # wide
        seen = {}
        for row_number, (line, rec) in enumerate(records, start=1):
            messages = _messages(rec, line, problems)
            cands = [_text(rec, c, line, problems, required=False) for c in response_cols]
            while cands and cands[-1] is None:
                cands.pop()
            if None in cands:
                problems.append(f"line {line}: {response_cols[cands.index(None)]} is empty between other responses")
            elif not cands:
                problems.append(f"line {line}: no responses")
            item_id = _item_id(rec.get("item_id"), line, problems)
            if item_id is None and not _empty(rec.get("item_id")):
                continue  # a bad id, reported above
            item_id = item_id or str(row_number)
            if item_id in seen:
                problems.append(f"line {line}: item_id {item_id!r} already used on line {seen[item_id]}")
            seen[item_id] = line
            if messages is not None and cands and None not in cands:
                items.append(Item(item_id, messages, cands, line))
    else:  # long
        if "item_id" not in columns:
            raise BatchError(path.name, ["long layout (a 'response' column) needs an 'item_id' column"])
        groups: dict[str, list[tuple[int, dict]]] = {}
        for line, rec in records:
            item_id = _item_id(rec.get("item_id"), line, problems)
            if item_id is None:
                if _empty(rec.get("item_id")):
                    problems.append(f"line {line}: item_id is empty")
                continue
            groups.setdefault(item_id, []).append((line, rec))
        for item_id, rows in groups.items():
            line = rows[0][0]
            messages = _messages(rows[0][1], line, problems)
            for other_line, rec in rows[1:]:
                if any(rec.get(k) != rows[0][1].get(k) for k in ("prompt", "system", "conversation")):
                    problems.append(f"line {other_line}: item {item_id!r} has a different prompt, system or "
                                    f"conversation than on line {line}")  # fmt: skip
            cands = [_text(rec, "response", ln, problems, required=True) for ln, rec in rows]
            if messages is not None and None not in cands:
                items.append(Item(item_id, messages, cands, line))
    for item in items:  # the same checks as the UI and the API
        try:
            check_request(item.messages, item.candidates, limits)
        except InputError as e:
            problems.append(f"line {item.line}: {e}")
    if problems:
        raise BatchError(path.name, problems)
    return items


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def results_frame(items: list[Item], results: list[ScoreResult], attributions: list | None = None) -> pd.DataFrame:
    """One row per (item, candidate): item_id, then tables.export_frame's columns; with attributions (one list of
    Attribution.to_dict() per item), also `segments`, `segment_effects` and `length_probe` as JSON text.

    Built column by column over all items at once (the same values as concatenating export_frame per item, which
    costs a DataFrame per item: seconds for a file of thousands)."""
    import numpy as np
    import pandas as pd

    from . import explain
    from .objectives import OBJECTIVES

    counts = [result.n for result in results]
    rewards = np.concatenate([result.rewards for result in results])
    gating = np.repeat(np.stack([result.gating_output for result in results]), counts, axis=0)
    coefficients = np.repeat(np.stack([result.coefficients for result in results]), counts, axis=0)
    nat = explain.native(rewards).values
    contrib = rewards * coefficients  # explain.contributions, row by row
    data: dict[str, object] = {
        "item_id": [item.item_id for item, n in zip(items, counts) for _ in range(n)],
        "candidate": [label for n in counts for label in explain.candidate_labels(n)],
        "rank": np.concatenate([explain.ranks(result.scores) for result in results]),
        "score": np.concatenate([result.scores for result in results]),
        "response": [c for item in items[: len(results)] for c in item.candidates],
    }
    for o in OBJECTIVES:
        i, n = o.index, o.name
        data[f"{n}.reward"] = rewards[:, i]
        data[f"{n}.native"] = nat[:, i]
        data[f"{n}.gating"] = gating[:, i]
        data[f"{n}.coefficient"] = coefficients[:, i]
        data[f"{n}.contribution"] = contrib[:, i]
    frame = pd.DataFrame(data)
    if attributions is not None:
        found = [a for per_item in attributions[: len(results)] for a in per_item]
        frame["segments"] = [json.dumps(a["segments"], ensure_ascii=False) for a in found]
        frame["segment_effects"] = [json.dumps(a["effects"]) for a in found]
        frame["length_probe"] = [json.dumps(list(zip(a["trimmed_tokens"], a["trimmed_scores"]))) for a in found]
    return frame


def write_results(frame: pd.DataFrame, out: Path) -> None:
    """CSV (formula-escaped), JSONL or Parquet by extension; written to a temporary name, then renamed."""
    out = Path(out)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise InputError(f"Output {out.name}: use .csv, .jsonl or .parquet.")
    tmp = out.with_name(out.name + ".tmp")
    if fmt == "csv":
        from . import tables

        tmp.write_text(tables.to_csv(frame), encoding="utf-8")
    elif fmt == "jsonl":
        frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(tmp, index=False)
    tmp.replace(out)
