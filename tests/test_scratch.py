"""Private scratch folders for downloads, removed when old."""

from __future__ import annotations


def test_scratch_folders_are_cleaned(tmp_path, monkeypatch):
    import os
    import tempfile
    import time

    from armorm_ui import scratch

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    old = scratch.scratch_folder("export-")
    (old / "scores.csv").write_text("x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    fresh = scratch.scratch_folder("export-")
    assert fresh.exists() and not old.exists()
