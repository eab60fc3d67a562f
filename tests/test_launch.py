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
    assert summary["requests"] == 12
    assert summary["failed"] == summary["hung"] == summary["wrong"] == 0, summary
    assert summary["result"] >= 1
    for message in summary["refusal_messages"]:
        assert "Queue is full" in message or "empty" in message
