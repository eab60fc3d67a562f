"""Safe launch defaults, and the app under concurrent load on loopback."""

from __future__ import annotations

import sys
from pathlib import Path

import gradio as gr

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
