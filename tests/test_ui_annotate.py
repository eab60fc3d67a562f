"""Annotation sessions survive the app being killed: labels recorded before the kill are kept, and the annotator
resumes at the next unlabelled item. The tab's wiring of projects and sign-in limits."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


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

    from armorm_ui.label_store import LabelStore

    made = LabelStore(labels_url)
    key = made.new_project()  # as 'New project' makes it
    made.engine.dispose()
    ana = (key, "ana", "ana-passcode")
    proc, url = load_test.start_app(queue_size=8, model=str(demo_dir))
    try:
        client = Client(url, verbose=False)
        out = client.predict(handle_file(str(items)), *ana, True, api_name="/annotate_open")
        assert "Item **1 of 6**" in status_of(out)
        for i, pick in enumerate(["A", "B", "A"]):
            out = client.predict(*ana, True, pick, "", f"note {i}", api_name="/annotate_save")
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
        out = client.predict(file_id, *ana, True, api_name="/annotate_resume")
        assert "Item **4 of 6**" in status_of(out) and "3 labelled by ana" in status_of(out)
        out = client.predict(file_id, key, "ben", "ben-passcode", True, api_name="/annotate_resume")
        assert "Item **4 of 6**" in status_of(out)  # another annotator gets the items nobody labelled first
        with pytest.raises(AppError, match="name is taken"):  # nobody else can write as ana
            client.predict(file_id, key, "ana", "guessed-passcode", True, api_name="/annotate_resume")
        with pytest.raises(AppError, match="looks like"):  # nor as a name that looks like hers
            client.predict(file_id, key, "\u0430na", "ana-passcode", True, api_name="/annotate_resume")
        with pytest.raises(AppError, match="Keys are made by this server"):  # nor with a key a person chose
            client.predict(file_id, "someone-elses-key-123", "ana", "ana-passcode", True, api_name="/annotate_resume")
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    engine = sa.create_engine(labels_url)
    with engine.connect() as db:  # the guess was counted against ana's name and against the caller's address
        query = "SELECT name, client, failures FROM sign_in_failures WHERE failures > 0 ORDER BY client"
        counted = [tuple(r) for r in db.execute(sa.text(query))]
    engine.dispose()
    assert counted == [("ana", "", 1), ("", "127.0.0.1", 1)]


def annotate_demo(scorer, tmp_path, **config):
    """The app's Blocks on a labels database in tmp_path, and its events by name (the page's own, unnamed ones by
    their function's name)."""
    from armorm_ui.config import AppConfig
    from armorm_ui.ui import build_demo

    demo = build_demo(scorer, AppConfig(data_dir=str(tmp_path / "data"), **config))
    return {f.api_name or f.fn.__name__: f.fn for f in demo.fns.values()}


def test_an_item_with_more_candidates_than_boxes_is_refused_when_opened(tmp_path, scorer):
    import gradio as gr

    fns = annotate_demo(scorer, tmp_path, api_candidates=30)
    key = asyncio.run(fns["made"]())[0]["value"]
    wide = tmp_path / "wide.csv"
    pd.DataFrame([{"prompt": "q", **{f"response_{k + 1}": f"a{k}" for k in range(20)}}]).to_csv(wide, index=False)
    with pytest.raises(gr.Error, match="20 candidates; the limit is 16"):
        asyncio.run(fns["annotate_open"](str(wide), key, "ana", "ana-passcode", True))


def test_new_project_makes_the_only_keys_that_open_one(tmp_path, scorer):
    import gradio as gr

    fns = annotate_demo(scorer, tmp_path)
    key = asyncio.run(fns["made"]())[0]["value"]
    assert asyncio.run(fns["listed"](key))["choices"] == []  # a project, with no files yet
    out = asyncio.run(fns["annotate_resume"]("", key, "ana", "ana-passcode", True))
    assert any("Choose a file" in str(v) for v in out.values())  # signed in
    with pytest.raises(gr.Error, match="Keys are made by this server"):
        asyncio.run(fns["annotate_resume"]("", "team-project-2025", "ana", "ana-passcode", True))
    with pytest.raises(gr.Error, match="Keys are made by this server"):
        asyncio.run(fns["annotate_agreement"]({}, "team-project-2025-chosen"))


def test_the_tab_counts_wrong_passcodes_per_client_address(tmp_path, scorer, monkeypatch):
    import gradio as gr

    from armorm_ui.config import AppConfig
    from armorm_ui.label_store import LabelStore, database_url

    def still(config):  # the tab's store on a clock that stands still: the wait is exact however slow the machine
        return LabelStore(database_url(config.data_dir), clock=lambda: 1.7e9)

    monkeypatch.setattr(AppConfig, "label_store", still)
    fns = annotate_demo(scorer, tmp_path)
    key, resume = asyncio.run(fns["made"]())[0]["value"], fns["annotate_resume"]
    for i in range(7):
        asyncio.run(resume("", key, f"user{i}", "right-passcode", True))
    guesser, someone = (SimpleNamespace(client=SimpleNamespace(host=h)) for h in ("203.0.113.7", "198.51.100.1"))
    for i in range(6):  # one wrong passcode for each of six names, from one address
        with pytest.raises(gr.Error, match="passcode does not match"):
            asyncio.run(resume("", key, f"user{i}", "wrong-passcode", True, request=guesser))
    with pytest.raises(gr.Error, match="wait 2 seconds"):  # a seventh name from that address waits
        asyncio.run(resume("", key, "user6", "right-passcode", True, request=guesser))
    asyncio.run(resume("", key, "user6", "right-passcode", True, request=someone))  # from another: no wait


def _server_processes(url: str) -> list[int]:
    """The PostgreSQL server behind `url` (the `postgres` fixture's): its postmaster and every backend."""
    from urllib.parse import parse_qs, urlsplit

    folder = Path(parse_qs(urlsplit(url).query)["host"][0])
    main = int((folder / "data" / "postmaster.pid").read_text().split()[0])
    kids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == main:
                kids.append(int(proc.name))
        except OSError:  # gone meanwhile
            pass
    return [main, *kids]


def test_a_database_that_stops_answering_stalls_nobody(tmp_path, demo_dir, monkeypatch, postgres):
    """PostgreSQL frozen (SIGSTOP, as a hung server) mid-session: the page's config and another visitor's /score are
    answered while the annotator's call still waits; that call ends in one plain sentence; once the server is back
    the same session goes on."""
    import os

    import httpx
    import load_test

    from armorm_ui.label_store import LabelStore

    url = postgres()
    monkeypatch.setenv("ARMORM_LABELS_URL", url)
    made = LabelStore(url)
    key = made.new_project()
    made.engine.dispose()
    items = tmp_path / "items.csv"
    pd.DataFrame([{"prompt": "Question?", "response_1": "Yes.", "response_2": "No."}]).to_csv(items, index=False)
    monkeypatch.setattr(load_test.tempfile, "mkdtemp", lambda prefix="": str(tmp_path / "data"))
    ana = (key, "ana", "ana-passcode")
    proc, app = load_test.start_app(queue_size=8, model=str(demo_dir))
    frozen = []
    try:
        client = Client(app, verbose=False)
        out = client.predict(handle_file(str(items)), *ana, True, api_name="/annotate_open")
        assert "Item **1 of 1**" in status_of(out)
        file_id = out[-1]["value"] if isinstance(out[-1], dict) else out[-1]
        frozen = _server_processes(url)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        job = Client(app, verbose=False).submit(file_id, *ana, True, api_name="/annotate_resume")
        scores = Client(app, verbose=False).predict([{"role": "user", "content": "hi"}], ["a", "b"], api_name="/score")
        page = httpx.get(app + "config", timeout=60)
        assert len(scores["scores"]) == 2 and page.status_code == 200
        assert not job.done()  # both answered while the label call waits on the database
        with pytest.raises(AppError) as stalled:
            job.result(timeout=120)
        assert "label database is not answering" in str(stalled.value) and "armorm-pg" not in str(stalled.value)
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        out = Client(app, verbose=False).predict(file_id, *ana, True, api_name="/annotate_resume")
        assert "Item **1 of 1**" in status_of(out)  # the same session goes on
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)  # (again: harmless)
        proc.terminate()
        proc.wait(timeout=30)


def call(http, name: str, *data):
    """One call on Gradio's HTTP API (/gradio_api/call/NAME, as curl makes it: a new session each time): the event's
    last message, ("complete", data) or ("error", message)."""
    import json

    posted = http.post(f"gradio_api/call/{name}", json={"data": list(data)})
    assert posted.status_code == 200, posted.text[:300]
    text = http.get(f"gradio_api/call/{name}/{posted.json()['event_id']}").text
    kind, payload = text.strip().split("\n")[-2:]
    found = json.loads(payload.removeprefix("data: "))
    return kind.removeprefix("event: "), found["error"] if isinstance(found, dict) and "error" in found else found


def test_cheap_calls_never_evict_an_annotator_and_an_evicted_one_is_told_what_to_do(tmp_path, demo_dir, monkeypatch):
    """The launched app keeping 4 sessions: 40 /score calls on the HTTP API (each its own session, keeping nothing)
    leave the annotator's session in place and her Save works; sessions that keep something (other annotators) do
    push it out, and her next Save says in words what to do (not Gradio's "Value: 'A' is not in the list of
    choices"), after which choosing the file again continues where she stopped."""
    import httpx
    import load_test

    from armorm_ui.label_store import LabelStore

    data = tmp_path / "data"
    store = LabelStore(f"sqlite:///{data / 'labels.sqlite'}")
    key = store.new_project()
    store.engine.dispose()
    items = tmp_path / "items.csv"
    pd.DataFrame([{"item_id": f"q{i}", "prompt": f"Question {i}?", "response_1": f"Answer {i}.", "response_2": "No."}
                  for i in range(4)]).to_csv(items, index=False)  # fmt: skip
    monkeypatch.setattr(load_test.tempfile, "mkdtemp", lambda prefix="": str(data))
    ana = (key, "ana", "ana-passcode")
    proc, url = load_test.start_app(queue_size=8, model=str(demo_dir), sessions=4)
    try:
        client = Client(url, verbose=False)
        out = client.predict(handle_file(str(items)), *ana, True, api_name="/annotate_open")
        assert "Item **1 of 4**" in status_of(out)
        file_id = out[-1]["value"] if isinstance(out[-1], dict) else out[-1]
        with httpx.Client(base_url=url, timeout=120) as http:
            for i in range(40):
                kind, found = call(http, "score", f"Question {i}?", ["Yes.", "No."], False)
                assert kind == "complete" and len(found[0]["scores"]) == 2, found
            out = client.predict(*ana, True, "A", "", "", api_name="/annotate_save")
            assert "Item **2 of 4**" in status_of(out)
            for i in range(5):  # five other annotators, each a session that keeps its open item
                kind, found = call(http, "annotate_resume", file_id, key, f"other{i}", "other-passcode", True)
                assert kind == "complete", found
        with pytest.raises(AppError, match="Open a file first") as told:
            client.predict(*ana, True, "B", "", "", api_name="/annotate_save")
        assert "saved labels are kept" in str(told.value) and "not in the list of choices" not in str(told.value)
        out = client.predict(file_id, *ana, True, api_name="/annotate_resume")
        assert "Item **2 of 4**" in status_of(out) and "1 labelled by ana" in status_of(out)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_an_upload_is_deleted_once_opened_and_a_second_open_says_upload_it_again(tmp_path, demo_dir, monkeypatch):
    """The launched app: the file uploaded to Annotate is gone from the server as soon as it has been opened (Gradio
    would keep it an hour), and opening the same upload again says to upload it again."""
    import httpx
    import load_test

    from armorm_ui.label_store import LabelStore

    data, uploads = tmp_path / "data", tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))  # Gradio's folder of uploads, in the app started below
    store = LabelStore(f"sqlite:///{data / 'labels.sqlite'}")
    key = store.new_project()
    store.engine.dispose()
    items = tmp_path / "mine.csv"
    pd.DataFrame([{"prompt": "Question?", "response_1": "Yes.", "response_2": "No."}]).to_csv(items, index=False)
    monkeypatch.setattr(load_test.tempfile, "mkdtemp", lambda prefix="": str(data))
    proc, url = load_test.start_app(queue_size=8, model=str(demo_dir))
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            sent = http.post("gradio_api/upload", files={"files": ("mine.csv", items.read_bytes())})
            path = sent.json()[0]
            assert Path(path).is_file() and Path(path).is_relative_to(uploads)
            upload = {"path": path, "meta": {"_type": "gradio.FileData"}}
            kind, found = call(http, "annotate_open", upload, key, "ana", "ana-passcode", True)
            assert kind == "complete", found
            assert not Path(path).exists() and not Path(path).parent.exists()
            assert list(uploads.rglob("mine.csv")) == []
            kind, found = call(http, "annotate_open", upload, key, "ana", "ana-passcode", True)
        assert kind == "error" and "mine.csv is no longer on the server" in found and "Upload it again" in found
    finally:
        proc.terminate()
        proc.wait(timeout=30)
