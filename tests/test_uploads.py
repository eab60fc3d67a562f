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


def put_upload(root: Path, name: str, text: str, folder: str = "a") -> Path:
    """A file as Gradio keeps an upload: in a folder of its own (named by the content's hash) in its upload folder."""
    path = root / (folder * 64) / name
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_an_upload_read_by_two_requests_at_once_is_deleted_when_the_second_ends(tmp_path, monkeypatch):
    """Gradio names an upload by its content: two visitors who upload the same file share one path, and one request
    ending must not pull it from under the other."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    path = put_upload(tmp_path / "gradio", "same.csv", "prompt,response_1\nq,a\n")
    with upload(str(path)):
        with upload(str(path)) as second:
            assert second.read_text().startswith("prompt")
        assert path.is_file()  # the first reader is still at it
    assert not path.exists() and not path.parent.exists()


def tab_handlers(scorer, tmp_path) -> dict:
    """The queued handlers of the tabs that take a file (Batch's is /score_file), found by their upload input."""
    from armorm_ui.config import AppConfig
    from armorm_ui.ui import build_demo

    demo = build_demo(scorer, AppConfig(data_dir=str(tmp_path / "data")))
    tabs = {"batch-upload": "score_file", "eval-upload": "evaluated", "probe-upload": "probed"}
    return {tabs[c.elem_id]: f for f in demo.fns.values() if getattr(f.fn, "__name__", "") in ("scored", "evaluated",
            "probed") for c in f.inputs if c.elem_id in tabs}  # fmt: skip


BATCH = "prompt,response_1,response_2\nWhy is the sky blue?,Rayleigh scattering.,No idea.\n"
PAIRS = "prompt,chosen,rejected\nWhy is the sky blue?,Rayleigh scattering.,No idea.\n"


def run_tab(handler, path: Path | str):
    """Call one tab's handler as the page does after its file was uploaded (no progress bar)."""
    name = handler.fn.__name__
    if name == "scored":
        return asyncio.run(handler.fn(str(path), "CSV", progress=None))
    if name == "evaluated":
        return asyncio.run(handler.fn(str(path), "", "train", "", "", progress=None))
    given = {c: None for c in handler.inputs}
    given.update({c: str(path) for c in handler.inputs if c.elem_id == "probe-upload"})
    given.update({c: "" for c in handler.inputs if c.elem_id == "probe-columns"})
    given.update({c: ["opener"] for c in handler.inputs if c.elem_id == "probe-tone"})
    return asyncio.run(handler.fn(given, progress=None))


@pytest.mark.parametrize("tab", ["score_file", "evaluated", "probed"])
def test_each_file_tab_deletes_its_upload_and_a_second_run_says_upload_it_again(tab, tmp_path, monkeypatch, scorer):
    """Batch (/score_file), Evaluate and Probe: the upload is gone once its handler has read it, whether it was
    scored or refused; the page still holds its path, and a second run of it says to upload it again."""
    import gradio as gr

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    handler = tab_handlers(scorer, tmp_path)[tab]
    good = put_upload(tmp_path / "gradio", "mine.csv", BATCH if tab == "score_file" else PAIRS)
    assert run_tab(handler, good)  # scored: a result for the page
    assert not good.exists() and not good.parent.exists()
    with pytest.raises(gr.Error, match=r"mine\.csv is no longer on the server.*Upload it again"):
        run_tab(handler, good)
    bad = put_upload(tmp_path / "gradio", "bad.csv", "prompt,response_1\nq,\n", folder="b")
    with pytest.raises(gr.Error):
        run_tab(handler, bad)  # refused: deleted all the same
    assert not bad.exists() and not bad.parent.exists()
    assert list((tmp_path / "gradio").rglob("*.csv")) == []


def test_a_stopped_or_superseded_job_deletes_its_upload(tmp_path, monkeypatch):
    """Stop (Gradio's cancel) while the job runs, or a request whose file was replaced while it waited: the upload
    goes when the request ends, though it was never read to its end."""
    import threading

    from armorm_ui.ui.batch import Runs, Stopped

    from .test_ui_batch import LOST, NoSlot, gated_job, until

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    first = put_upload(tmp_path / "gradio", "first.csv", BATCH)
    runs, reached = Runs("item", LOST), threading.Event()

    async def stopped():
        task = asyncio.create_task(runs.run(str(first), "first.csv", NoSlot(), gated_job(reached, at=3), "x",
                                            uploaded=str(first)))  # fmt: skip
        await until(reached)
        assert first.is_file()  # in use
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(stopped())
    assert not first.exists() and not first.parent.exists()
    stale, newer = (put_upload(tmp_path / "gradio", f"{n}.csv", BATCH, folder=n) for n in "cd")
    assert runs.announce(str(stale), "c.csv") and runs.chose(str(newer))[0] and runs.announce(str(newer), "d.csv")
    with pytest.raises(Stopped) as e:
        asyncio.run(runs.run(str(stale), "c.csv", NoSlot(), gated_job(reached, at=3), "x", uploaded=str(stale)))
    assert e.value.said is None and not stale.exists() and newer.is_file()


def test_the_launched_app_deletes_a_score_file_upload_once_scored(tmp_path, demo_dir, monkeypatch):
    """/score_file on the launched app (Gradio's own handling of a file input included): the uploaded file is gone
    once scored, and the same upload sent again is refused with the message to upload it again."""
    import httpx
    import load_test

    from .test_ui_annotate import call

    uploads = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))
    proc, url = load_test.start_app(queue_size=8, model=str(demo_dir))
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            path = http.post("gradio_api/upload", files={"files": ("mine.csv", BATCH.encode())}).json()[0]
            assert Path(path).is_file() and Path(path).is_relative_to(uploads)
            sent = {"path": path, "meta": {"_type": "gradio.FileData"}}
            kind, found = call(http, "score_file", sent, "CSV")
            assert kind == "complete" and "Scored **1 items**" in found[0], found
            assert not Path(path).exists() and not Path(path).parent.exists()
            kind, found = call(http, "score_file", sent, "CSV")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert kind == "error" and "mine.csv is no longer on the server" in found and "Upload it again" in found
