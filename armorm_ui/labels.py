"""Annotators' labels in an embedded SQLite database, written at once, and agreement with the model.

Every label is committed when it is recorded (WAL journal), so a closed tab, a crash or a restart loses nothing; an
annotator (told apart by the name they enter) resumes at their first unlabelled item of a file. Files are stored with
their items, keyed by the SHA-256 of their bytes, so a file can be continued after a restart without uploading it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from .batch import Item
from .errors import InputError
from .objectives import NAMES
from .results import ScoreResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    file_id TEXT PRIMARY KEY, name TEXT NOT NULL, items TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS labels (
    file_id TEXT NOT NULL, item_id TEXT NOT NULL, annotator TEXT NOT NULL,
    position INTEGER NOT NULL, choice INTEGER NOT NULL, ranking TEXT, note TEXT,
    result TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (file_id, item_id, annotator));
"""


def default_path() -> Path:
    return Path(os.environ.get("ARMORM_DATA_DIR") or "data") / "labels.sqlite"


class LabelStore:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def add_file(self, file_id: str, name: str, items: list[Item]) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR IGNORE INTO files VALUES (?, ?, ?, ?)",
                (file_id, name, json.dumps([asdict(i) for i in items], ensure_ascii=False), time.time()),
            )

    def files(self) -> list[tuple[str, str]]:
        with self._connect() as db:
            return db.execute("SELECT file_id, name FROM files ORDER BY created DESC").fetchall()

    def items(self, file_id: str) -> list[Item]:
        with self._connect() as db:
            row = db.execute("SELECT items FROM files WHERE file_id = ?", (file_id,)).fetchone()
        if row is None:
            raise InputError("That file is not in the label database: upload it again.")
        return [Item(**d) for d in json.loads(row[0])]

    def record(self, file_id: str, item: Item, position: int, annotator: str, choice: int,
               ranking: list[int] | None, note: str, result: ScoreResult) -> None:  # fmt: skip
        """Write one label now (replacing the annotator's earlier label of the same item)."""
        if not annotator.strip():
            raise InputError("Enter your name first: labels are kept per annotator.")
        if not 0 <= choice < len(item.candidates):
            raise InputError(f"Choose one of the {len(item.candidates)} candidates.")
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO labels VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (file_id, item.item_id, annotator.strip(), position, choice,
                 json.dumps(ranking) if ranking else None, note or "", json.dumps(result.to_dict()), time.time()),
            )  # fmt: skip

    def labelled(self, file_id: str, annotator: str) -> set[str]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT item_id FROM labels WHERE file_id = ? AND annotator = ?", (file_id, annotator.strip())
            ).fetchall()
        return {r[0] for r in rows}

    def next_position(self, file_id: str, annotator: str) -> int:
        """Index of the first item this annotator has not labelled (len(items) when all are done)."""
        done = self.labelled(file_id, annotator)
        items = self.items(file_id)
        return next((i for i, item in enumerate(items) if item.item_id not in done), len(items))

    def frame(self, file_id: str | None = None) -> pd.DataFrame:
        query = ("SELECT l.file_id, f.name AS file, l.item_id, l.annotator, l.position, l.choice, l.ranking, l.note, "
                 "l.result, l.created FROM labels l JOIN files f USING (file_id)")  # fmt: skip
        args: tuple = ()
        if file_id:
            query += " WHERE l.file_id = ?"
            args = (file_id,)
        with self._connect() as db:
            return pd.read_sql_query(query + " ORDER BY l.file_id, l.annotator, l.position", db, params=args)


def parse_ranking(text: str, n: int) -> list[int] | None:
    """'B > A > C' (or 'B, A, C') -> [1, 0, 2]; empty -> None. A full ranking names every candidate once."""
    if not text or not text.strip():
        return None
    letters = [t.strip().upper() for t in text.replace(">", ",").split(",") if t.strip()]
    order = [ord(t) - 65 for t in letters if len(t) == 1 and t.isalpha()]
    if len(order) != len(letters) or sorted(order) != list(range(n)):
        names = ", ".join(chr(65 + k) for k in range(n))
        raise InputError(f"A ranking must name each of {names} once, best first, e.g. 'B > A > C'; got {text!r}.")
    return order


def _ranks(order: np.ndarray) -> np.ndarray:
    r = np.empty(len(order))
    r[np.asarray(order)] = np.arange(len(order))
    return r


def agreement(labels: pd.DataFrame) -> dict:
    """Per annotator: how often the model's top choice is theirs, Spearman rank correlation on full rankings,
    and for each objective how often its highest-reward candidate is the one they chose."""
    out = {}
    for annotator, group in labels.groupby("annotator"):
        top, rho, per_objective = [], [], np.zeros(len(NAMES))
        for row in group.itertuples():
            result = ScoreResult.from_dict(json.loads(row.result))
            top.append(int(np.argmax(result.scores)) == row.choice)
            per_objective += np.argmax(result.rewards, axis=0) == row.choice
            if isinstance(row.ranking, str) and result.n > 1:
                human = _ranks(json.loads(row.ranking))
                model = _ranks(np.argsort(-result.scores, kind="stable"))
                rho.append(float(np.corrcoef(human, model)[0, 1]))
        n = len(group)
        out[annotator] = {
            "labels": n,
            "model_top_agreement": float(np.mean(top)),
            "spearman_mean": float(np.mean(rho)) if rho else None,
            "full_rankings": len(rho),
            "objective_agreement": dict(zip(NAMES, (per_objective / n).round(4).tolist())),
        }
    return out
