"""Uploads: deleted once the request that reads them ends (ui/handlers.py, `upload`), and a cap on the bytes of
uploads kept at once (body_limit.py, UploadBudget). Annotate's use of them on the launched app is in
tests/test_ui_annotate.py."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from armorm_ui.body_limit import UploadBudget
from armorm_ui.errors import InputError
from armorm_ui.ui.handlers import upload

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_an_upload_is_deleted_when_its_block_ends_however_it_ends(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    made = []
    for k in range(2):
        folder = tmp_path / "gradio" / (str(k) * 64)  # Gradio's folder per upload, named by its content's hash
        folder.mkdir(parents=True)
        (folder / "items.csv").write_text("prompt,response_1\nq,a\n")
        made.append(folder / "items.csv")
    with upload(str(made[0])) as path:
        assert path.read_text().startswith("prompt")
    with pytest.raises(ValueError), upload(str(made[1])):  # refused or stopped while reading: deleted all the same
        raise ValueError("a bad row")
    assert not any(p.exists() or p.parent.exists() for p in made)
    with pytest.raises(InputError, match="items.csv is no longer on the server.*Upload it again"), upload(str(made[0])):
        pass
    elsewhere = tmp_path / "mine.csv"  # not an upload (a path a test or the command line gives): never deleted
    elsewhere.write_text("x")
    with upload(str(elsewhere)):
        pass
    assert elsewhere.exists()


def run_upload(budget: UploadBudget, length: int, hold: asyncio.Event | None = None):
    """One POST to /gradio_api/upload declaring `length` bytes through the middleware: (status, body, app reached)."""
    sent, reached = [], []

    async def app(scope, receive, send):
        reached.append(True)
        if hold is not None:
            await hold.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[]"})

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    budget.app = app
    scope = {"type": "http", "path": "/gradio_api/upload", "headers": [(b"content-length", str(length).encode())]}
    return scope, receive, send, sent, reached


def test_uploads_past_the_budget_are_refused_before_they_are_read(tmp_path):
    """600 bytes kept of a 1,000-byte budget: a 300-byte upload is taken; while it arrives, a second one is refused
    (the bytes still arriving count), with a message the page shows; another path is not counted."""
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "kept.csv").write_bytes(b"x" * 600)
    budget = UploadBudget(None, max_bytes=1000, max_file_bytes=1000, folder=tmp_path)

    async def run():
        hold = asyncio.Event()
        first = run_upload(budget, 300, hold)
        task = asyncio.create_task(budget(*first[:3]))
        while not first[4]:
            await asyncio.sleep(0.01)
        second = run_upload(budget, 300)
        await budget(*second[:3])
        hold.set()
        await task
        return first, second

    first, second = asyncio.run(run())
    assert first[3][0]["status"] == 200 and second[3][0]["status"] == 503 and not second[4]
    text = second[3][1]["body"].decode()
    assert "holds 0 MB of uploaded files right now" in text and "Try again in a few minutes" in text
    third = run_upload(budget, 300)
    asyncio.run(budget(*third[:3]))
    assert third[3][0]["status"] == 200  # the first one done: 600 + 300 fit
    other = run_upload(budget, 10**9)
    other[0]["path"] = "/gradio_api/queue/join"
    asyncio.run(budget(*other[:3]))
    assert other[3][0]["status"] == 200


def test_the_launched_app_caps_the_uploads_it_keeps(tmp_path, demo_dir, monkeypatch):
    """ARMORM_UPLOADS_MB=1: a 700 KB upload is kept, a second of 400 KB is refused with 503 and the message."""
    import httpx
    import load_test

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setenv("ARMORM_UPLOADS_MB", "1")
    monkeypatch.setenv("ARMORM_MAX_UPLOAD_MB", "1")
    proc, url = load_test.start_app(queue_size=8, model=str(demo_dir))
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            kept = http.post("gradio_api/upload", files={"files": ("a.csv", b"a" * 700_000)})
            refused = http.post("gradio_api/upload", files={"files": ("b.csv", b"b" * 400_000)})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert kept.status_code == 200, kept.text[:300]
    assert refused.status_code == 503 and "takes at most 1 MB at once" in refused.text
