"""App configuration in one place: every field from an environment variable, overridable by a command-line flag.

Every way in (the page, the API, batch files, annotation, the CLI) builds its scorer and its limits from one
AppConfig through `load_scorer()` and `limits()`, so an option cannot be honoured by one and ignored by another.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields

REAL_MODEL = "RLHFlow/ArmoRM-Llama3-8B-v0.1"


def _boolean(text: str) -> bool:
    if text.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if text.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"error: {text!r} is not a yes/no value: write true or false")


@dataclass
class AppConfig:
    model: str = field(default="", metadata={"env": "ARMORM_MODEL", "help": "hub id or local folder; empty = demo"})
    """Hub id or local folder of an ArmoRM checkpoint; empty means the built-in demo checkpoint (random weights)."""
    revision: str = field(default="", metadata={"env": "ARMORM_REVISION", "help": "hub revision (commit) to pin"})
    """Hub revision to pin (a commit hash is safest)."""
    device: str = field(default="", metadata={"env": "ARMORM_DEVICE", "help": "cpu, cuda, cuda:N or auto"})
    """cpu, cuda, cuda:N, or auto (split across all GPUs); empty = cuda when available."""
    dtype: str = field(default="", metadata={"env": "ARMORM_DTYPE", "help": "bfloat16, float16 or float32"})
    """Backbone precision; empty = bfloat16 on CUDA, float32 on CPU. The head always runs in float32."""
    max_tokens: int = field(default=4096, metadata={"env": "ARMORM_MAX_TOKENS", "help": "tokens per conversation"})
    """Longest conversation + response accepted, in tokens (at most 8192, the model's context)."""
    ui_candidates: int = field(default=8, metadata={"env": "ARMORM_UI_CANDIDATES", "help": "candidate boxes"})
    """Most candidate boxes in the page."""
    api_candidates: int = field(default=16, metadata={"env": "ARMORM_API_CANDIDATES", "help": "candidates per call"})
    """Most candidates in one /score API call."""
    max_chars: int = field(default=32_000, metadata={"env": "ARMORM_MAX_CHARS", "help": "characters per field"})
    """Characters per message or candidate, checked on the server before tokenising."""
    max_request_tokens: int = field(
        default=65_536, metadata={"env": "ARMORM_MAX_REQUEST_TOKENS", "help": "tokens per request"}
    )
    """Tokens in one request: the conversation once plus every candidate."""
    deadline: int = field(default=120, metadata={"env": "ARMORM_DEADLINE", "help": "seconds a request may take"})
    """A request still scoring after this many seconds is stopped at the next batch and refused."""
    max_upload_mb: int = field(default=20, metadata={"env": "ARMORM_MAX_UPLOAD_MB", "help": "upload size cap, MB"})
    """Largest file accepted by the server (batch and annotation files)."""
    max_request_mb: int = field(default=8, metadata={"env": "ARMORM_MAX_REQUEST_MB", "help": "request size cap, MB"})
    """Largest body of any other request (an API or MCP call), refused before it is read (body_limit)."""
    uploads_mb: int = field(default=1024, metadata={"env": "ARMORM_UPLOADS_MB", "help": "uploads kept at once, MB"})
    """Most megabytes of uploaded files the server keeps at once (an upload is deleted once its request has read it;
    one never used is kept an hour): an upload that would pass it is refused until some are gone."""
    max_rows: int = field(default=5000, metadata={"env": "ARMORM_MAX_ROWS", "help": "rows per uploaded file"})
    """Most rows (items) in one uploaded file."""
    probe_rows: int = field(default=200, metadata={"env": "ARMORM_PROBE_ROWS", "help": "rows per file in Probe"})
    """Most rows (items or pairs) the Probe tab takes from one file: each answer costs about 15 scorings, so the page
    takes a smaller file than the other tabs; the `probe` command line takes up to max_rows."""
    data_dir: str = field(default="data", metadata={"env": "ARMORM_DATA_DIR", "help": "folder of the label database"})
    """Where annotators' labels are kept (data_dir/labels.sqlite) unless labels_url names a database."""
    labels_url: str = field(default="", metadata={"env": "ARMORM_LABELS_URL", "help": "labels database URL, "
                                                  "postgresql+psycopg://user:pw@host/db; empty: SQLite"})  # fmt: skip
    """A SQLAlchemy URL for the labels: PostgreSQL keeps them beyond one machine's disk (a Space's restarts)."""
    project_files: int = field(default=20, metadata={"env": "ARMORM_PROJECT_FILES", "help": "files per project"})
    """Most annotation files one project keeps at a time."""
    project_mb: int = field(default=50, metadata={"env": "ARMORM_PROJECT_MB", "help": "stored items per project, MB"})
    """Most megabytes of stored items one project keeps at a time."""
    labels_mb: int = field(default=2048, metadata={"env": "ARMORM_LABELS_MB", "help": "stored items, all projects, MB"})
    """Most megabytes of stored items over every project: the label database's disk, whatever the number of projects."""
    projects_per_hour: int = field(
        default=10, metadata={"env": "ARMORM_PROJECTS_PER_HOUR", "help": "new projects per address an hour"}
    )
    """Most projects one client address may make in an hour."""
    file_days: int = field(default=30, metadata={"env": "ARMORM_FILE_DAYS", "help": "days an unused file is kept"})
    """An annotation file nobody has opened for this many days is removed (its labels are kept)."""
    sessions: int = field(default=1000, metadata={"env": "ARMORM_SESSIONS", "help": "browser sessions kept"})
    """Most sessions whose per-user state (last result, annotation position) the server keeps; oldest go first."""
    queue_size: int = field(default=32, metadata={"env": "ARMORM_QUEUE_SIZE", "help": "waiting requests"})
    """Requests allowed to wait for the model; more are refused with 'busy, try again'."""
    host: str = field(default="127.0.0.1", metadata={"env": "GRADIO_SERVER_NAME", "help": "address to listen on"})
    """Address to listen on (0.0.0.0 in containers)."""
    port: int = field(default=7860, metadata={"env": "GRADIO_SERVER_PORT", "help": "port to listen on"})
    """Port to listen on."""
    mcp: bool = field(default=False, metadata={
        "env": "GRADIO_MCP_SERVER", "help": "serve /score, /attribute, /attribute_tokens and /probe as MCP tools at "
        "/gradio_api/mcp/"})  # fmt: skip
    """Also an MCP server (Gradio's), whose tools are the public API endpoints."""

    @classmethod
    def from_env(cls, env=None) -> AppConfig:
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"])
            if raw not in (None, ""):
                values[f.name] = {"int": int, "bool": _boolean}.get(f.type, str)(raw)
        if "model" not in values and env.get("SPACE_ID"):  # on a Hugging Face Space, the real model by default
            values["model"] = REAL_MODEL
        return cls(**values)

    @classmethod
    def parse(cls, argv: list[str] | None = None, env=None) -> AppConfig:
        base = cls.from_env(env)
        ap = argparse.ArgumentParser(
            prog="app.py", description="ArmoRM Explorer: compare candidate responses objective by objective."
        )
        for f in fields(cls):
            kind = {"type": int} if f.type == "int" else {"type": str}
            if f.type == "bool":
                kind = {"action": argparse.BooleanOptionalAction}
            ap.add_argument(
                "--" + f.name.replace("_", "-"),
                **kind,
                default=getattr(base, f.name),
                help=f"{f.metadata['help']} (env {f.metadata['env']}; default: "
                + ("(hidden: it may hold a password))" if f.name == "labels_url" else "%(default)s)"),
            )
        config = cls(**vars(ap.parse_args(argv)))
        config.check()
        return config

    def limits(self):
        """What every request is checked against before tokenising (validation.py)."""
        from .validation import Limits

        return Limits(max_candidates=self.api_candidates, max_chars=self.max_chars)

    def label_store(self):
        """The annotators' label database, with this configuration's quotas."""
        from .label_store import LabelStore, database_url

        url = self.labels_url or database_url(self.data_dir)
        return LabelStore(url, self.project_files, self.project_mb * 2**20, self.file_days,
                          max_total_bytes=self.labels_mb * 2**20, projects_per_hour=self.projects_per_hour)  # fmt: skip

    def load_scorer(self):
        """The scorer for this configuration: the model (the demo checkpoint when none is set), loaded once; on
        ZeroGPU loaded on the CPU, moved to cuda, and run in @spaces.GPU calls (backend/zerogpu.py)."""
        from .backend import demo_checkpoint, native, zerogpu
        from .scoring import Scorer, ScorerConfig

        model = self.model or str(demo_checkpoint.ensure())
        settings = ScorerConfig(max_tokens=self.max_tokens, max_request_tokens=self.max_request_tokens,
                                deadline=self.deadline, limits=self.limits())  # fmt: skip
        where = {"device": "cpu", "move_to": "cuda"} if zerogpu.ACTIVE else {"device": self.device or None}
        backend, tokenizer = native.load(model, dtype=self.dtype or None, revision=self.revision or None,
                                         **where, **settings.backend_settings())  # fmt: skip
        if zerogpu.ACTIVE:
            backend = zerogpu.ZeroGPUBackend(backend)
        return Scorer(backend, tokenizer, settings)

    def check(self) -> None:
        if not 1 <= self.max_tokens <= 8192:
            raise SystemExit(f"max_tokens must be between 1 and 8192 (the model's context), got {self.max_tokens}.")
        if not 2 <= self.ui_candidates <= 16 or not 1 <= self.api_candidates <= 64:
            raise SystemExit("ui_candidates must be 2-16 and api_candidates 1-64.")
        if min(self.max_chars, self.max_request_tokens, self.deadline, self.queue_size, self.max_rows,
               self.probe_rows) < 1:  # fmt: skip
            raise SystemExit("max_chars, max_request_tokens, deadline, queue_size, max_rows and probe_rows must be "
                             "positive.")  # fmt: skip
        if self.uploads_mb < self.max_upload_mb:
            raise SystemExit(f"uploads_mb ({self.uploads_mb}) must be at least max_upload_mb ({self.max_upload_mb}): "
                             "else no upload of the largest size could be taken.")  # fmt: skip
        if min(self.project_files, self.project_mb, self.file_days, self.labels_mb, self.projects_per_hour) < 1:
            raise SystemExit("project_files, project_mb, labels_mb, projects_per_hour and file_days must be positive.")
