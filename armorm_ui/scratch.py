"""Scratch folders for files users download (exports, scored files, labels). Gradio serves a copy from its own cache,
which it cleans (Blocks(delete_cache=...)); our originals live under one root and are removed after an hour."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

MAX_AGE_S = 3600


def scratch_folder(prefix: str) -> Path:
    """A new private folder; folders of earlier requests older than MAX_AGE_S are removed first."""
    root = Path(tempfile.gettempdir()) / "armorm-ui-scratch"
    root.mkdir(mode=0o700, exist_ok=True)
    cutoff = time.time() - MAX_AGE_S
    for old in root.iterdir():
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:  # removed by a concurrent request
            pass
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))
