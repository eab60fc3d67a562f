"""Scratch folders for files users download (exports, scored files, labels). Gradio serves a copy from its own cache,
which it cleans (Blocks(delete_cache=...)); our originals live under one root and are removed after an hour.

The root sits in the shared temporary folder, so it is used only if it is a real folder of ours that nobody else can
write: a link or folder planted there by another user (which would point the hourly clean-up at their choice of
files) is left alone and this process works in a private folder of its own instead."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

MAX_AGE_S = 3600
_private: Path | None = None  # this process's own root, when the shared one cannot be trusted


def _is_ours(path: Path) -> bool:
    """A real folder (not a link) owned by this user, with no access for others."""
    info = os.lstat(path)
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def shared_root() -> Path:
    return Path(tempfile.gettempdir()) / f"armorm-ui-scratch-{os.getuid()}"


def scratch_root() -> Path:
    """The shared root when it is ours, else this process's private one."""
    global _private
    root = shared_root()
    try:
        root.mkdir(mode=0o700)
    except FileExistsError:
        pass
    if _is_ours(root):
        return root
    if _private is None or not _private.is_dir():
        _private = Path(tempfile.mkdtemp(prefix="armorm-ui-scratch-"))
        print(f"{root} is not a private folder of this user; scratch files go to {_private}", file=sys.stderr)
    return _private


def scratch_folder(prefix: str) -> Path:
    """A new private folder; folders of earlier requests older than MAX_AGE_S are removed first."""
    root = scratch_root()
    cutoff = time.time() - MAX_AGE_S
    for old in root.iterdir():
        try:
            info = os.lstat(old)
            if info.st_mtime >= cutoff:
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(old, ignore_errors=True)  # removes links inside, never what they point to
            else:
                old.unlink()  # a link or a file: only the entry itself
        except FileNotFoundError:  # removed by a concurrent request
            pass
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))
