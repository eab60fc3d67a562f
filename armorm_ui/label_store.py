"""Annotators' labels in an embedded SQLite database, written at once, kept apart by project, and agreement.

A project is opened with its key (a secret shared by a team, never stored: only its SHA-256 is); its files, items
and labels can be listed, opened and read only with that key. Inside a project, an annotator's name is claimed with
a passcode on first use (stored as an scrypt hash), so nobody else can write as them. Every label is committed when
it is recorded (WAL journal): a closed tab, a crash or a restart loses nothing, and an annotator resumes at their
first unlabelled item. Items are stored one row each, so showing or labelling one item reads one row. A project
keeps at most `max_files` files and `max_bytes` of items; a file nobody opened for `max_age_days` is removed (its
labels are kept, and uploading the file again brings it back).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .batch import Item
from .errors import InputError
from .explain import candidate_index, candidate_labels
from .objectives import NAMES
from .results import ScoreResult
from .validation import Limits, check_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS project_files (
    project TEXT NOT NULL, file_id TEXT NOT NULL, name TEXT NOT NULL, n_items INTEGER NOT NULL,
    bytes INTEGER NOT NULL, created REAL NOT NULL, used REAL NOT NULL, PRIMARY KEY (project, file_id));
CREATE TABLE IF NOT EXISTS project_items (
    project TEXT NOT NULL, file_id TEXT NOT NULL, position INTEGER NOT NULL, item_id TEXT NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (project, file_id, position));
CREATE TABLE IF NOT EXISTS annotators (
    project TEXT NOT NULL, name TEXT NOT NULL, passcode TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (project, name));
CREATE TABLE IF NOT EXISTS project_labels (
    project TEXT NOT NULL, file_id TEXT NOT NULL, item_id TEXT NOT NULL, annotator TEXT NOT NULL,
    position INTEGER NOT NULL, choice INTEGER NOT NULL, ranking TEXT, note TEXT,
    result TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (project, file_id, item_id, annotator));
"""
MIN_KEY_CHARS = 16
MIN_PASSCODE_CHARS = 8
MAX_NAME_CHARS = 64
MAX_NOTE_CHARS = 2000


def default_path() -> Path:
    return Path(os.environ.get("ARMORM_DATA_DIR") or "data") / "labels.sqlite"


def new_project_key() -> str:
    return secrets.token_urlsafe(18)


def project_id(key: str) -> str:
    """The project a key opens (the key itself is never stored)."""
    key = key.strip() if isinstance(key, str) else ""
    if len(key) < MIN_KEY_CHARS:
        raise InputError(
            f"Enter your project key ({MIN_KEY_CHARS} characters or more), or press 'New project' "
            "to make one. Everyone who shares a key sees that project's files and labels."
        )
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(name) -> str:
    name = name.strip() if isinstance(name, str) else name
    if not name:
        raise InputError("Enter your name first: labels are kept per annotator, and you resume where you stopped.")
    check_text(name, "Your name", Limits(max_chars=MAX_NAME_CHARS))
    return name


@dataclass(frozen=True)
class Annotator:
    """Who is labelling: a project and a name proven by its passcode (see LabelStore.sign_in)."""

    project: str
    name: str


class LabelStore:
    def __init__(
        self,
        path: str | os.PathLike | None = None,
        max_files: int = 20,
        max_bytes: int = 50 * 2**20,
        max_age_days: float = 30,
    ):
        self.path = Path(path) if path else default_path()
        self.max_files, self.max_bytes, self.max_age_s = max_files, max_bytes, max_age_days * 86400
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    # ---------------------------------------------------------------------------------------- who
    def sign_in(self, key: str, name: str, passcode: str) -> Annotator:
        """The annotator `name` of the project opened by `key`; the first use of a name claims it with `passcode`."""
        project, name = project_id(key), check_name(name)
        if not isinstance(passcode, str) or len(passcode) < MIN_PASSCODE_CHARS:
            raise InputError(
                f"Enter your passcode ({MIN_PASSCODE_CHARS} characters or more). The first time a name "
                "is used in a project, the passcode given claims it."
            )
        if len(passcode) > 256:
            raise InputError("The passcode is longer than 256 characters; use a shorter one.")
        digest = hashlib.scrypt(
            passcode.encode("utf-8", "surrogatepass"), salt=f"{project}/{name}".encode(), n=2**14, r=8, p=1
        ).hex()
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO annotators VALUES (?, ?, ?, ?)", (project, name, digest, time.time()))
            stored = db.execute(
                "SELECT passcode FROM annotators WHERE project = ? AND name = ?", (project, name)
            ).fetchone()[0]
        if not hmac.compare_digest(stored, digest):
            raise InputError(
                "That name is taken in this project and the passcode does not match. Check the "
                "passcode, or choose another name."
            )
        return Annotator(project, name)

    # ---------------------------------------------------------------------------------------- files
    def add_file(self, project: str, file_id: str, name: str, items: list[Item]) -> None:
        """Keep a file's items for a project (again, if it had expired), within the project's quotas."""
        rows = [
            (project, file_id, k, item.item_id, json.dumps(asdict(item), ensure_ascii=False))
            for k, item in enumerate(items)
        ]
        size = sum(len(r[4]) for r in rows)
        now = time.time()
        with self._connect() as db:
            self._expire(db, now)
            if db.execute(
                "SELECT 1 FROM project_files WHERE project = ? AND file_id = ?", (project, file_id)
            ).fetchone():
                db.execute(
                    "UPDATE project_files SET used = ? WHERE project = ? AND file_id = ?", (now, project, file_id)
                )
                return
            files, stored = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM project_files WHERE project = ?", (project,)
            ).fetchone()
            if files >= self.max_files:
                raise InputError(
                    f"This project keeps {files} files, the limit; files unused for "
                    f"{self.max_age_s / 86400:.0f} days are removed. Start a new project for more."
                )
            if stored + size > self.max_bytes:
                raise InputError(
                    f"This file's items take {size / 2**20:.1f} MB and the project already keeps "
                    f"{stored / 2**20:.1f} MB; the limit is {self.max_bytes / 2**20:.0f} MB per project. "
                    "Split the file or start a new project."
                )
            db.execute(
                "INSERT INTO project_files VALUES (?, ?, ?, ?, ?, ?, ?)",
                (project, file_id, name, len(items), size, now, now),
            )
            db.executemany("INSERT INTO project_items VALUES (?, ?, ?, ?, ?)", rows)

    def _expire(self, db: sqlite3.Connection, now: float) -> None:
        old = (now - self.max_age_s,)
        db.execute(
            "DELETE FROM project_items WHERE (project, file_id) IN "
            "(SELECT project, file_id FROM project_files WHERE used < ?)",
            old,
        )
        db.execute("DELETE FROM project_files WHERE used < ?", old)

    def files(self, project: str) -> list[tuple[str, str]]:
        """(file_id, name) of the project's files, newest first."""
        with self._connect() as db:
            return db.execute(
                "SELECT file_id, name FROM project_files WHERE project = ? ORDER BY created DESC", (project,)
            ).fetchall()

    def count(self, project: str, file_id: str) -> int:
        with self._connect() as db:
            row = db.execute(
                "SELECT n_items FROM project_files WHERE project = ? AND file_id = ?", (project, file_id)
            ).fetchone()
            if row is None:
                raise InputError("That file is not in this project (or it expired): upload it again.")
            db.execute(
                "UPDATE project_files SET used = ? WHERE project = ? AND file_id = ?", (time.time(), project, file_id)
            )
        return row[0]

    def item(self, project: str, file_id: str, position: int) -> Item:
        with self._connect() as db:
            row = db.execute(
                "SELECT data FROM project_items WHERE project = ? AND file_id = ? AND position = ?",
                (project, file_id, position),
            ).fetchone()
        if row is None:
            raise InputError("That item is not in this project (or its file expired): upload the file again.")
        return Item(**json.loads(row[0]))

    # ---------------------------------------------------------------------------------------- labels
    def record(
        self,
        who: Annotator,
        file_id: str,
        item: Item,
        position: int,
        choice: int,
        ranking: list[int] | None,
        note: str,
        result: ScoreResult,
    ) -> None:
        """Write one label now (replacing the annotator's earlier label of the same item)."""
        if not 0 <= choice < len(item.candidates):
            raise InputError(f"Choose one of the {len(item.candidates)} candidates.")
        note = note or ""
        if note:
            check_text(note, "The note", Limits(max_chars=MAX_NOTE_CHARS))
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO project_labels VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    who.project,
                    file_id,
                    item.item_id,
                    who.name,
                    position,
                    choice,
                    json.dumps(ranking) if ranking else None,
                    note,
                    json.dumps(result.to_dict()),
                    time.time(),
                ),
            )

    def labelled(self, who: Annotator, file_id: str) -> int:
        with self._connect() as db:
            return db.execute(
                "SELECT COUNT(*) FROM project_labels WHERE project = ? AND file_id = ? AND annotator = ?",
                (who.project, file_id, who.name),
            ).fetchone()[0]

    def is_labelled(self, who: Annotator, file_id: str, item_id: str) -> bool:
        with self._connect() as db:
            return (
                db.execute(
                    "SELECT 1 FROM project_labels WHERE project = ? AND file_id = ? AND annotator = ? AND item_id = ?",
                    (who.project, file_id, who.name, item_id),
                ).fetchone()
                is not None
            )

    def next_position(self, who: Annotator, file_id: str) -> int:
        """Index of the first item this annotator has not labelled (the item count when all are done)."""
        total = self.count(who.project, file_id)
        with self._connect() as db:
            row = db.execute(
                "SELECT MIN(i.position) FROM project_items i WHERE i.project = ? AND i.file_id = ? AND NOT EXISTS "
                "(SELECT 1 FROM project_labels l WHERE l.project = i.project AND l.file_id = i.file_id "
                "AND l.item_id = i.item_id AND l.annotator = ?)",
                (who.project, file_id, who.name),
            ).fetchone()
        return total if row[0] is None else row[0]

    def frame(self, project: str, file_id: str | None = None) -> pd.DataFrame:
        """The project's labels (of one file, or all), with the file's name."""
        query = (
            "SELECT l.file_id, f.name AS file, l.item_id, l.annotator, l.position, l.choice, l.ranking, l.note, "
            "l.result, l.created FROM project_labels l LEFT JOIN project_files f "
            "ON f.project = l.project AND f.file_id = l.file_id WHERE l.project = ?"
        )
        args: tuple = (project,)
        if file_id:
            query += " AND l.file_id = ?"
            args += (file_id,)
        with self._connect() as db:
            return pd.read_sql_query(query + " ORDER BY l.file_id, l.annotator, l.position", db, params=args)


def parse_ranking(text: str, n: int) -> list[int] | None:
    """'B > A > C' (or 'B, A, C') -> [1, 0, 2]; empty -> None. A full ranking names every candidate once."""
    if not text or not text.strip():
        return None
    order = []
    for t in text.replace(">", ",").split(","):
        if t.strip():
            try:
                order.append(candidate_index(t))
            except ValueError:
                order.append(-1)
    if sorted(order) != list(range(n)):
        names = ", ".join(candidate_labels(n))
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
