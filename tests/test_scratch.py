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


def _age(path, seconds=7200):
    import os
    import time

    os.utime(path, (time.time() - seconds, time.time() - seconds), follow_symlinks=False)


def test_a_planted_link_is_never_followed(tmp_path, monkeypatch):
    """Another user's link at the shared root, or inside it: the clean-up removes no file of the link's target, and
    no scratch file is written there."""
    import os
    import tempfile

    from armorm_ui import scratch

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    monkeypatch.setattr(scratch, "_private", None)
    (tmp_path / "tmp").mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").mkdir()
    (victim / "precious" / "data.txt").write_text("keep me")
    _age(victim / "precious")
    os.symlink(victim, scratch.shared_root())
    made = scratch.scratch_folder("export-")
    assert (victim / "precious" / "data.txt").read_text() == "keep me"
    assert victim not in made.resolve().parents and not list(victim.glob("export-*"))
    assert scratch.scratch_folder("export-").parent == made.parent  # the private root is kept for the process

    # a link planted inside a trusted root: only the link goes
    monkeypatch.setattr(scratch, "_private", None)
    scratch.shared_root().unlink()
    scratch.scratch_folder("export-")
    inner = scratch.shared_root() / "old-link"
    os.symlink(victim / "precious", inner)
    _age(inner)
    scratch.scratch_folder("export-")
    assert not inner.is_symlink() and (victim / "precious" / "data.txt").read_text() == "keep me"


def test_a_root_others_can_write_is_not_used(tmp_path, monkeypatch):
    import tempfile

    from armorm_ui import scratch

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(scratch, "_private", None)
    scratch.shared_root().mkdir(mode=0o777)
    scratch.shared_root().chmod(0o777)  # the umask may have narrowed it
    (scratch.shared_root() / "theirs").mkdir()
    _age(scratch.shared_root() / "theirs")
    made = scratch.scratch_folder("export-")
    assert made.parent != scratch.shared_root() and (scratch.shared_root() / "theirs").exists()
