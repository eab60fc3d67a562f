"""Annotation sessions survive the app being killed: labels recorded before the kill are kept, and the annotator
resumes at the next unlabelled item."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pandas as pd
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


KEY = "team-key-0123456789"
ANA = (KEY, "ana", "ana-passcode")


def status_of(outputs) -> str:
    return next(o for o in outputs if isinstance(o, str) and ("Item **" in o or "All " in o))


def test_kill_and_restart_mid_session(tmp_path, demo_dir, monkeypatch, labels_url):
    """On both databases (the embedded SQLite file, a PostgreSQL server by ARMORM_LABELS_URL)."""
    import load_test
    import sqlalchemy as sa

    rows = [{"item_id": f"q{i}", "prompt": f"Question {i}?", "response_1": f"Answer {i}.", "response_2": "No idea."}
            for i in range(6)]  # fmt: skip
    items = tmp_path / "items.csv"
    pd.DataFrame(rows).to_csv(items, index=False)
    data = tmp_path / "data"
    monkeypatch.setattr(load_test.tempfile, "mkdtemp", lambda prefix="": str(data))
    if labels_url.startswith("postgresql"):
        monkeypatch.setenv("ARMORM_LABELS_URL", labels_url)
    else:
        labels_url = f"sqlite:///{data / 'labels.sqlite'}"  # the default: data_dir/labels.sqlite

    proc, url = load_test.start_app(queue_size=8, model=str(demo_dir))
    try:
        client = Client(url, verbose=False)
        out = client.predict(handle_file(str(items)), *ANA, True, api_name="/annotate_open")
        assert "Item **1 of 6**" in status_of(out)
        for i, pick in enumerate(["A", "B", "A"]):
            out = client.predict(*ANA, True, pick, "", f"note {i}", api_name="/annotate_save")
            assert f"Item **{i + 2} of 6**" in status_of(out)
    finally:
        proc.send_signal(signal.SIGKILL)  # no clean shutdown
        proc.wait(timeout=30)

    engine = sa.create_engine(labels_url)
    with engine.connect() as db:
        query = "SELECT item_id, annotator, choice, note FROM project_labels ORDER BY position"
        labels = [tuple(r) for r in db.execute(sa.text(query))]
        file_id = db.execute(sa.text("SELECT file_id FROM project_files")).scalar_one()
    engine.dispose()
    assert labels == [("q0", "ana", 0, "note 0"), ("q1", "ana", 1, "note 1"), ("q2", "ana", 0, "note 2")]

    proc, url = load_test.start_app(queue_size=8, model=str(demo_dir))
    try:
        client = Client(url, verbose=False)
        out = client.predict(file_id, *ANA, True, api_name="/annotate_resume")
        assert "Item **4 of 6**" in status_of(out) and "3 labelled by ana" in status_of(out)
        out = client.predict(file_id, KEY, "ben", "ben-passcode", True, api_name="/annotate_resume")
        assert "Item **1 of 6**" in status_of(out)  # another annotator starts at the beginning
        with pytest.raises(AppError, match="name is taken"):  # nobody else can write as ana
            client.predict(file_id, KEY, "ana", "guessed-passcode", True, api_name="/annotate_resume")
        with pytest.raises(AppError, match="not in this project"):  # nor open her project's file with another key
            client.predict(file_id, "someone-elses-key-123", "ana", "ana-passcode", True, api_name="/annotate_resume")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_an_item_with_more_candidates_than_boxes_is_refused_when_opened(tmp_path, scorer):
    import gradio as gr

    from armorm_ui.config import AppConfig
    from armorm_ui.ui import build_demo

    demo = build_demo(scorer, AppConfig(api_candidates=30, data_dir=str(tmp_path / "data")))
    opened = next(f.fn for f in demo.fns.values() if f.api_name == "annotate_open")
    wide = tmp_path / "wide.csv"
    pd.DataFrame([{"prompt": "q", **{f"response_{k + 1}": f"a{k}" for k in range(20)}}]).to_csv(wide, index=False)
    import asyncio

    with pytest.raises(gr.Error, match="20 candidates; the limit is 16"):
        asyncio.run(opened(str(wide), *ANA, True))
