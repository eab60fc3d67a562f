"""Annotators' labels, written at once, kept apart by project, and agreement.

The store is a SQL database reached through SQLAlchemy: an embedded SQLite file by default (WAL journal), or any
server SQLAlchemy reaches by URL, PostgreSQL in particular (`ARMORM_LABELS_URL=postgresql+psycopg://...`), so that
labels outlive a machine without a persistent disk (a Hugging Face Space). One schema, one set of queries for both.

A project is opened with its key (a secret shared by a team, never stored: only its SHA-256 is); its files, items
and labels can be listed, opened and read only with that key. Inside a project, an annotator's name is claimed with
a passcode on first use (stored as an scrypt hash), so nobody else can write as them. Every label is committed when
it is recorded: a closed tab, a crash or a restart loses nothing, and an annotator resumes at their first
unlabelled item. Items are stored one row each, so showing or labelling one item reads one row. A project keeps at
most `max_files` files and `max_bytes` of items; a file nobody opened for `max_age_days` is removed (its labels are
kept, and uploading the file again brings it back).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .batch import Item
from .errors import InputError
from .explain import candidate_index, candidate_labels
from .objectives import NAMES
from .results import ScoreResult
from .validation import Limits, check_text

META = sa.MetaData()
FILES = sa.Table(
    "project_files", META,
    sa.Column("project", sa.String(64), primary_key=True), sa.Column("file_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False), sa.Column("n_items", sa.Integer, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False), sa.Column("created", sa.Float, nullable=False),
    sa.Column("used", sa.Float, nullable=False),
)  # fmt: skip
ITEMS = sa.Table(
    "project_items", META,
    sa.Column("project", sa.String(64), primary_key=True), sa.Column("file_id", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True), sa.Column("item_id", sa.Text, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
)  # fmt: skip
ANNOTATORS = sa.Table(
    "annotators", META,
    sa.Column("project", sa.String(64), primary_key=True), sa.Column("name", sa.Text, primary_key=True),
    sa.Column("passcode", sa.Text, nullable=False), sa.Column("created", sa.Float, nullable=False),
)  # fmt: skip
LABELS = sa.Table(
    "project_labels", META,
    sa.Column("project", sa.String(64), primary_key=True), sa.Column("file_id", sa.String(64), primary_key=True),
    sa.Column("item_id", sa.Text, primary_key=True), sa.Column("annotator", sa.Text, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False), sa.Column("choice", sa.Integer, nullable=False),
    sa.Column("ranking", sa.Text), sa.Column("note", sa.Text), sa.Column("result", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
)  # fmt: skip
UPSERT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
"""INSERT ... ON CONFLICT, which both dialects have with the same SQLAlchemy API."""
MIN_KEY_CHARS = 16
MIN_PASSCODE_CHARS = 8
MAX_NAME_CHARS = 64
MAX_NOTE_CHARS = 2000


def default_url() -> str:
    return os.environ.get("ARMORM_LABELS_URL") or database_url(Path(os.environ.get("ARMORM_DATA_DIR") or "data"))


def database_url(data_dir: str | os.PathLike) -> str:
    """The embedded default: data_dir/labels.sqlite."""
    return f"sqlite:///{Path(data_dir).resolve() / 'labels.sqlite'}"


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


def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _wal(connection, _record):  # every label reaches the disk at its commit; readers never block writers
            connection.execute("PRAGMA journal_mode=WAL")

        return engine
    return sa.create_engine(url, pool_pre_ping=True)  # a server restarted under us: reconnect, not fail


class LabelStore:
    def __init__(
        self,
        url: str | os.PathLike | None = None,
        max_files: int = 20,
        max_bytes: int = 50 * 2**20,
        max_age_days: float = 30,
    ):
        """`url`: a SQLAlchemy database URL (sqlite:///..., postgresql+psycopg://...), or a path to a SQLite file."""
        url = str(url) if url else default_url()
        self.url = url if "://" in url else f"sqlite:///{Path(url).resolve()}"
        self.max_files, self.max_bytes, self.max_age_s = max_files, max_bytes, max_age_days * 86400
        self.engine = _engine(self.url)
        self._insert = UPSERT.get(self.engine.dialect.name)
        if self._insert is None:
            raise InputError(f"Labels database {self.engine.dialect.name}: use SQLite or PostgreSQL.")
        META.create_all(self.engine)

    def _connect(self):
        """One transaction, committed when the block ends."""
        return self.engine.begin()

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
            claim = self._insert(ANNOTATORS).values(project=project, name=name, passcode=digest, created=time.time())
            db.execute(claim.on_conflict_do_nothing())
            stored = db.execute(
                sa.select(ANNOTATORS.c.passcode).where(ANNOTATORS.c.project == project, ANNOTATORS.c.name == name)
            ).scalar_one()
        if not hmac.compare_digest(stored, digest):
            raise InputError(
                "That name is taken in this project and the passcode does not match. Check the "
                "passcode, or choose another name."
            )
        return Annotator(project, name)

    # ---------------------------------------------------------------------------------------- files
    @staticmethod
    def _file(project: str, file_id: str):
        return (FILES.c.project == project) & (FILES.c.file_id == file_id)

    def add_file(self, project: str, file_id: str, name: str, items: list[Item]) -> None:
        """Keep a file's items for a project (again, if it had expired), within the project's quotas."""
        rows = [{"project": project, "file_id": file_id, "position": k, "item_id": item.item_id,
                 "data": json.dumps(asdict(item), ensure_ascii=False)} for k, item in enumerate(items)]  # fmt: skip
        size = sum(len(r["data"]) for r in rows)
        now = time.time()
        with self._connect() as db:
            self._expire(db, now)
            if db.execute(sa.select(FILES.c.file_id).where(self._file(project, file_id))).first():
                db.execute(FILES.update().where(self._file(project, file_id)).values(used=now))
                return
            files, stored = db.execute(
                sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(FILES.c.bytes), 0)).where(
                    FILES.c.project == project
                )
            ).one()
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
            db.execute(FILES.insert().values(project=project, file_id=file_id, name=name, n_items=len(items),
                                             bytes=size, created=now, used=now))  # fmt: skip
            if rows:
                db.execute(ITEMS.insert(), rows)

    def _expire(self, db, now: float) -> None:
        old = FILES.c.used < now - self.max_age_s
        expired = sa.select(FILES.c.project, FILES.c.file_id).where(old)
        db.execute(ITEMS.delete().where(sa.tuple_(ITEMS.c.project, ITEMS.c.file_id).in_(expired)))
        db.execute(FILES.delete().where(old))

    def files(self, project: str) -> list[tuple[str, str]]:
        """(file_id, name) of the project's files, newest first."""
        with self._connect() as db:
            query = sa.select(FILES.c.file_id, FILES.c.name).where(FILES.c.project == project)
            return [tuple(r) for r in db.execute(query.order_by(FILES.c.created.desc()))]

    def count(self, project: str, file_id: str) -> int:
        with self._connect() as db:
            n = db.execute(sa.select(FILES.c.n_items).where(self._file(project, file_id))).scalar()
            if n is None:
                raise InputError("That file is not in this project (or it expired): upload it again.")
            db.execute(FILES.update().where(self._file(project, file_id)).values(used=time.time()))
        return n

    def item(self, project: str, file_id: str, position: int) -> Item:
        with self._connect() as db:
            data = db.execute(
                sa.select(ITEMS.c.data).where(
                    ITEMS.c.project == project, ITEMS.c.file_id == file_id, ITEMS.c.position == position
                )  # fmt: skip
            ).scalar()
        if data is None:
            raise InputError("That item is not in this project (or its file expired): upload the file again.")
        return Item(**json.loads(data))

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
        row = {"project": who.project, "file_id": file_id, "item_id": item.item_id, "annotator": who.name,
               "position": position, "choice": choice, "ranking": json.dumps(ranking) if ranking else None,
               "note": note, "result": json.dumps(result.to_dict()), "created": time.time()}  # fmt: skip
        key = ["project", "file_id", "item_id", "annotator"]
        upsert = self._insert(LABELS).values(**row)
        upsert = upsert.on_conflict_do_update(index_elements=key, set_={k: v for k, v in row.items() if k not in key})
        with self._connect() as db:
            db.execute(upsert)

    def _labels(self, who: Annotator, file_id: str):
        return (LABELS.c.project == who.project) & (LABELS.c.file_id == file_id) & (LABELS.c.annotator == who.name)

    def labelled(self, who: Annotator, file_id: str) -> int:
        with self._connect() as db:
            return db.execute(sa.select(sa.func.count()).select_from(LABELS).where(self._labels(who, file_id))).scalar()

    def is_labelled(self, who: Annotator, file_id: str, item_id: str) -> bool:
        with self._connect() as db:
            query = sa.select(LABELS.c.item_id).where(self._labels(who, file_id), LABELS.c.item_id == item_id)
            return db.execute(query).first() is not None

    def next_position(self, who: Annotator, file_id: str) -> int:
        """Index of the first item this annotator has not labelled (the item count when all are done)."""
        total = self.count(who.project, file_id)
        done = sa.select(LABELS.c.item_id).where(
            LABELS.c.project == ITEMS.c.project, LABELS.c.file_id == ITEMS.c.file_id,
            LABELS.c.item_id == ITEMS.c.item_id, LABELS.c.annotator == who.name,
        )  # fmt: skip
        query = sa.select(sa.func.min(ITEMS.c.position)).where(
            ITEMS.c.project == who.project, ITEMS.c.file_id == file_id, ~done.exists()
        )
        with self._connect() as db:
            first = db.execute(query).scalar()
        return total if first is None else first

    def frame(self, project: str, file_id: str | None = None) -> pd.DataFrame:
        """The project's labels (of one file, or all), with the file's name."""
        l, f = LABELS.c, FILES.c  # noqa: E741
        query = (
            sa.select(
                l.file_id,
                f.name.label("file"),
                l.item_id,
                l.annotator,
                l.position,
                l.choice,
                l.ranking,
                l.note,
                l.result,
                l.created,
            )  # fmt: skip
            .select_from(LABELS.outerjoin(FILES, (f.project == l.project) & (f.file_id == l.file_id)))
            .where(l.project == project)
            .order_by(l.file_id, l.annotator, l.position)
        )
        if file_id:
            query = query.where(l.file_id == file_id)
        with self._connect() as db:
            return pd.DataFrame(db.execute(query).mappings().all(), columns=[c.name for c in query.selected_columns])


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
