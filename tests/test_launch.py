"""Safe launch defaults, and the app under concurrent load on loopback."""

from __future__ import annotations

import sys
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_launch_defaults(monkeypatch, demo_dir):
    import app

    captured = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: captured.update(kw, analytics=self.analytics_enabled))
    app.main(["--model", str(demo_dir), "--device", "cpu"])
    assert captured["share"] is False
    assert captured["allowed_paths"] == []
    assert captured["max_file_size"] == "20mb"
    assert captured["server_name"] == "127.0.0.1"
    assert captured["analytics"] is False


def test_concurrent_users_get_a_result_or_a_clear_refusal(demo_dir):
    import load_test

    proc, url = load_test.start_app(queue_size=2, model=str(demo_dir))
    try:
        outcomes = load_test.run(url, users=6, requests=2, timeout=60)["outcomes"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    summary = load_test.summarise(outcomes)
    assert summary["requests"] == 12, load_test.report(summary)
    assert summary["failed"] == summary["hung"] == summary["wrong"] == 0, load_test.report(summary)
    assert summary["result"] >= 1
    for message in summary["refusal_messages"]:
        assert "Queue is full" in message or "empty" in message


def test_cancels_never_put_two_calls_in_the_model(demo_dir, tmp_path):
    """Calls and whole batch files cancelled by their clients at random moments: the scorer never sees two model
    calls at once (its own count, from the server log), and everything else still ends in a result or a refusal."""
    import load_test

    log = tmp_path / "server.log"
    proc, url = load_test.start_app(queue_size=8, model=str(demo_dir), log=log)
    try:
        outcomes = load_test.run(url, users=6, requests=4, timeout=60, seed=7, cancel_rate=0.5, batch_share=0.5)
        outcomes = outcomes["outcomes"]
        after = load_test.run(url, users=1, requests=1, timeout=60, seed=1)["outcomes"]  # still serving
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    summary = load_test.summarise(outcomes)
    assert summary["requests"] == 24, load_test.report(summary)
    assert summary["cancelled"] >= 4, load_test.report(summary)
    assert summary["failed"] == summary["hung"] == summary["wrong"] == 0, load_test.report(summary)
    assert [o["kind"] for o in after] in (["result"], ["refused"]), load_test.report(load_test.summarise(after))
    assert "Traceback" not in log.read_text() and load_test.overlaps(log) == []


def test_every_request_body_is_capped(app_url):
    """A body over the cap is refused with 413 and a message, whether it declares its length or streams without one,
    before it is read whole; an upload keeps Gradio's own (larger) limit; a normal call still works after."""
    import httpx

    cap = 8 * 2**20  # the default, ARMORM_MAX_REQUEST_MB
    body = b'{"data": ["' + b"x" * (cap + 1) + b'"]}'

    def chunks():  # no Content-Length: sent chunked, counted by the server as it arrives
        for start in range(0, len(body), 2**16):
            yield body[start : start + 2**16]

    with httpx.Client(base_url=app_url, timeout=120) as http:
        for content in (body, chunks()):
            try:
                r = http.post("gradio_api/call/score", content=content, headers={"content-type": "application/json"})
            except httpx.WriteError:  # the server may answer and close before the stream's end is written
                continue
            assert r.status_code == 413, r.text[:300]
            assert "larger than 8 MB" in r.json()["detail"]
        upload = http.post("gradio_api/upload", files={"files": ("big.csv", b"a,b\n" * (2 * cap // 4))})
        assert upload.status_code == 200, upload.text[:300]  # 16 MB: under the 20 MB upload limit
    from gradio_client import Client

    result = Client(app_url, verbose=False).predict([{"role": "user", "content": "hi"}], ["a", "b"], api_name="/score")
    assert len(result["scores"]) == 2


def test_the_body_limit_reads_no_more_than_the_cap():
    """The middleware alone: a streamed body stops being read at the first chunk past the cap."""
    import asyncio

    from armorm_ui.body_limit import BodyLimit

    read, sent = [], []

    async def app(scope, receive, send):
        while (message := await receive())["more_body"]:
            read.append(len(message["body"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def receive():
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": "/gradio_api/call/score", "headers": []}
    asyncio.run(BodyLimit(app, max_bytes=10_500)(scope, receive, send))
    assert sum(read) == 10_000 and sent[0]["status"] == 413
    sent.clear()
    scope["headers"] = [(b"content-length", b"10501")]
    asyncio.run(BodyLimit(app, max_bytes=10_500)(scope, receive, send))
    assert sent[0]["status"] == 413 and sum(read) == 10_000  # refused before reading


def test_a_long_batch_never_holds_the_model_from_another_visitor(demo_dir, tmp_path):
    """A 3,000-item batch file at work: another visitor's /score calls are answered while it runs (they go before
    its next chunk), its own second job is refused with a message while a second visitor's job is accepted, and Stop
    ends both."""
    import time

    import load_test
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    rows = [{"prompt": f"Question {i}: why?", "response_1": "Because " * 20, "response_2": f"No {i}."}
            for i in range(3000)]  # fmt: skip
    batch = tmp_path / "batch.csv"
    pd.DataFrame(rows).to_csv(batch, index=False)
    proc, url = load_test.start_app(queue_size=8, model=str(demo_dir))
    try:
        owner = Client(url, verbose=False)
        job = owner.submit(handle_file(str(batch)), "CSV", api_name="/score_file")
        deadline = time.monotonic() + 300
        while not (job.status().progress_data or job.done()):  # until its items are being scored
            assert time.monotonic() < deadline, "the batch never started"
            time.sleep(0.05)
        with pytest.raises(AppError, match="You have a job running already"):
            owner.predict(handle_file(str(batch)), "CSV", api_name="/score_file")
        second = Client(url, verbose=False).submit(handle_file(str(batch)), "CSV", api_name="/score_file")
        other = Client(url, verbose=False)
        waits = []
        for i in range(3):
            start = time.monotonic()
            scores = other.predict([{"role": "user", "content": f"hi {i}"}], ["a", "b"], api_name="/score")
            waits.append(time.monotonic() - start)
            assert len(scores["scores"]) == 2
        assert not job.done(), "the batch ended before the other visitor's calls: make it longer"
        print(f"another visitor's /score beside a 3,000-item batch: worst {max(waits):.2f} s")
        job.cancel()
        second.cancel()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_no_route_runs_a_handler_past_the_queue(app_url):
    """Gradio's /gradio_api/run/NAME and /api/NAME would run /score directly, past the queue's size and the model's
    concurrency group: they are closed (the queue's routes answer)."""
    import httpx

    body = {"data": ["hi", ["a", "b"], False]}
    with httpx.Client(base_url=app_url, timeout=120) as http:
        for route in ("run", "api"):
            r = http.post(f"gradio_api/{route}/score", json=body)
            assert r.status_code == 404 and "join the queue" in r.text, r.text[:300]
        assert http.post("gradio_api/call/score", json=body).status_code == 200
