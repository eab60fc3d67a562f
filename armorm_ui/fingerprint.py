"""What identifies a checkpoint's weights without loading them: the `weights` of the CLI's run header, so that a run
resumed after the checkpoint at the same path was replaced is refused instead of mixing two models' scores.

- A local folder: a SHA-256 over each of its files (sorted, recursive, by relative name): the name, size and
  mtime_ns, plus the JSON header of each `*.safetensors` file (tensor names, dtypes, shapes and offsets; the file's
  first 8 bytes give its length, https://github.com/huggingface/safetensors#format) and the whole bytes of files
  under SMALL (config.json, the tokenizer's files). The weights themselves are never read, however large.
- A hub id: the commit its revision (main by default) resolves to in the local Hugging Face cache, read from the
  cache's `refs/` as huggingface_hub lays it out (no network); the id and revision while nothing is cached.
- No model (the demo checkpoint): its folder, as above, once it is built.

Before a hub model is downloaded or the demo built, the fingerprint is provisional; the CLI takes it again once the
model has loaded and writes that one into a new partial file's header (cli.score_items).

Torch-free and huggingface_hub-free: it runs before the model loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

SMALL = 2**20
"""Files smaller than this (bytes) are hashed whole."""
MAX_HEADER = 100 * 2**20
"""The largest safetensors header read (the format's own limit is 100 MB)."""


def weights_fingerprint(model: str, revision: str = "") -> str:
    """A string that changes when the weights `model` (a folder, a hub id, or "" for the demo) names change."""
    from .backend.demo_checkpoint import default_dir

    folder = Path(model) if model else default_dir()
    if folder.is_dir():
        return "sha256:" + folder_digest(folder)
    if not model:
        return "demo checkpoint (not built yet)"
    return f"{model}@{hub_commit(model, revision) or (revision or 'main') + ' (not in the local cache)'}"


def folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    files = sorted((p.relative_to(folder).as_posix(), p) for p in folder.rglob("*") if p.is_file())
    for name, path in files:
        stat = path.stat()
        h.update(json.dumps([name, stat.st_size, stat.st_mtime_ns]).encode())
        if stat.st_size < SMALL:
            data = path.read_bytes()
        elif path.suffix == ".safetensors":
            data = safetensors_header(path)
        else:
            data = b""
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def safetensors_header(path: Path) -> bytes:
    """The file's JSON header (what is there of it, in a damaged file: loading will say what is wrong)."""
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        return f.read(min(size, MAX_HEADER))


def hub_cache() -> Path:
    """huggingface_hub's cache folder, by its own rules (constants.py): HF_HUB_CACHE, else HF_HOME/hub, else
    $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub."""
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    found = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return Path(os.path.expandvars(os.path.expanduser(found)))


def hub_commit(model: str, revision: str = "") -> str | None:
    """The commit `revision` of hub repo `model` resolves to in the local cache, or None if it is not cached."""
    if re.fullmatch(r"[0-9a-f]{40}", revision or ""):
        return revision
    ref = hub_cache() / ("models--" + model.replace("/", "--")) / "refs" / (revision or "main")
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None
