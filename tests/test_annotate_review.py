"""The Annotate tab's project roles, through its handlers: the review queue and gold labels, overlap, guidelines, the
project's scores setting, and a Hugging Face sign-in (Gradio's own injection of an OAuth profile)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pandas as pd
import pytest

from .test_annotate_labels import elem
from .test_ui_annotate import annotate_demo


def run(coroutine):
    return asyncio.run(coroutine)


def state_of(out: dict) -> dict:
    return next(v for v in out.values() if isinstance(v, dict) and "file_id" in v)


def items_file(tmp_path, n: int = 3):
    path = tmp_path / "items.csv"
    pd.DataFrame([{"item_id": f"a{i}", "prompt": f"Question {i}?", "response_1": f"Answer {i}.",
                   "response_2": "No idea."} for i in range(n)]).to_csv(path, index=False)  # fmt: skip
    return path


def gold_rows(view: dict) -> dict[str, float]:
    table = elem(view, "agreement-table")
    rows = table[table["measure"] == "accuracy vs gold"]
    return dict(zip(rows["raters"], rows["value"]))


@pytest.fixture
def project(tmp_path, scorer):
    """The tab's handlers, a project whose owner is ana (the first to sign in), and its items file."""
    fns = annotate_demo(scorer, tmp_path)
    key = run(fns["made"]())[0]["value"]
    ana = (key, "ana", "ana-passcode")
    path = items_file(tmp_path)
    opened = run(fns["annotate_open"](str(path), *ana, True))
    return fns, key, ana, path, state_of(opened)


def test_a_conflicting_item_reaches_the_review_queue_and_its_gold_label_changes_gold_agreement(project):
    import gradio as gr

    fns, key, ana, path, state = project
    ben = (key, "ben", "ben-passcode")
    shown = run(fns["settings_saved"](*ana, 2, "member", ""))  # two annotators per item
    assert "Settings saved" in elem(shown, "settings-status") and "Owner: **ana**" in elem(shown, "settings-status")
    run(fns["annotate_save"](state, *ana, True, "A", "", ""))
    opened = run(fns["annotate_open"](str(path), *ben, True))
    assert "Item **1 of 3**" in elem(opened, "annotate-status")  # a0 still needs a second annotator
    run(fns["annotate_save"](state_of(opened), *ben, True, "B", "", ""))

    with pytest.raises(gr.Error, match=r"Only the project's reviewers.*ask its owner \(ana\)"):
        run(fns["queued"](state, *ben))
    queue = run(fns["queued"](state, *ana))
    assert [c[0] for c in elem(queue, "review-queue")["choices"]] == ["1. a0 — ana: A, ben: B · no gold yet"]
    assert "1 item where annotators disagree, 1 without a gold label" in elem(queue, "review-labels")
    picked = run(fns["reviewed"](state, 0, *ana, True))
    assert "Item **1 of 3**" in elem(picked, "annotate-status")  # opened above for the reviewer
    assert elem(picked, "review-gold")["choices"] == ["A", "B", "Tie", "All bad"]
    assert "**ana**: A, **ben**: B" in elem(picked, "review-labels")
    assert gold_rows(run(fns["annotate_agreement"](state, key))) == {}  # no gold yet

    with pytest.raises(gr.Error, match="Pick the gold label"):
        run(fns["gold_set"](state, 0, *ana, None, ""))
    done = run(fns["gold_set"](state, 0, *ana, "B", "A misreads the question"))
    assert "Gold label set: B for item a0" in elem(done, "review-labels")
    assert elem(done, "review-queue")["choices"][0][0].endswith("gold: B")
    people = lambda view: {k: v for k, v in gold_rows(view).items() if k != "model"}  # noqa: E731
    first = run(fns["annotate_agreement"](state, key))
    assert people(first) == {"ana": 0.0, "ben": 1.0} and "model" in gold_rows(first)  # the model against gold too
    exported = Path(elem(first, "preference-data")["value"]).read_text(encoding="utf-8").splitlines()
    pair = json.loads(exported[0])  # the reviewer's decision, where the annotators had no majority
    assert len(exported) == 1 and (pair["chosen"], pair["rejected"], pair["subset"]) == (
        "No idea.",
        "Answer 0.",
        "gold",
    )
    run(fns["gold_set"](state, 0, *ana, "A", ""))
    assert people(run(fns["annotate_agreement"](state, key))) == {"ana": 1.0, "ben": 0.0}
    with pytest.raises(gr.Error, match="Only the project's reviewers"):
        run(fns["gold_set"](state, 0, *ben, "B", ""))
    added = run(fns["reviewer_added"](*ana, "ben"))
    assert "ben is now a reviewer" in elem(added, "settings-status")
    run(fns["gold_set"](state, 0, *ben, "Tie", ""))  # a reviewer the owner named
    assert elem(run(fns["queued"](state, *ben)), "review-queue")["choices"][0][0].endswith("gold: Tie")


def test_overlap_serves_items_that_need_annotators_and_a_resumed_session_opens_at_one(project):
    fns, key, ana, path, state = project
    for pick in ("A", "B"):
        state = state_of(run(fns["annotate_save"](state, *ana, True, pick, "", "")))
    ben = (key, "ben", "ben-passcode")
    opened = run(fns["annotate_open"](str(path), *ben, True))  # one annotator per item (the default)
    assert "Item **3 of 3**" in elem(opened, "annotate-status")
    after = run(fns["annotate_save"](state_of(opened), *ben, True, "A", "", ""))
    assert "Item **1 of 3**" in elem(after, "annotate-status")  # every item has its annotator: then the rest
    run(fns["settings_saved"](*ana, 3, "member", ""))
    resumed = run(fns["annotate_resume"](state["file_id"], key, "cleo", "cleo-passcode", True))
    assert "Item **1 of 3**" in elem(resumed, "annotate-status")
    state = state_of(resumed)
    state = state_of(run(fns["jumped"](state, 2, key, "cleo", "cleo-passcode", True)))
    out = run(fns["annotate_save"](state, key, "cleo", "cleo-passcode", True, "B", "", ""))
    assert "Item **1 of 3**" in elem(out, "annotate-status")  # after the last: the first still needing cleo


def test_guidelines_are_the_owners_and_render_without_markup(project):
    import gradio as gr

    from armorm_ui.ui.annotate_views import guidelines_markdown

    fns, key, ana, path, state = project
    ben = (key, "ben", "ben-passcode")
    opened = run(fns["annotate_open"](str(path), *ben, True))
    assert elem(opened, "annotate-guidelines-column")["visible"] is False  # none yet: no empty box
    shown = run(fns["settings_shown"](*ben))
    assert "only the owner changes these settings" in elem(shown, "settings-status")
    assert (
        elem(shown, "settings-guidelines")["interactive"] is False
        and elem(shown, "settings-save")["interactive"] is False
    )
    with pytest.raises(gr.Error, match=r"Only the project\S+s owner \(ana\) can change"):
        run(fns["settings_saved"](*ben, 1, "member", "# Mine now"))
    text = (
        'Prefer **correct** answers.\n\n<script>alert(1)</script><img src=x onerror="alert(2)"> '
        "[see](javascript:alert(3))"
    )
    saved = run(fns["settings_saved"](*ana, 1, "member", text))
    assert elem(saved, "settings-guidelines")["value"] == text  # the owner edits what was typed
    rendered = elem(saved, "annotate-guidelines")
    assert "**correct**" in rendered and "<" not in rendered and "javascript:" not in rendered
    assert "&lt;script>alert(1)&lt;/script>" in rendered and "[see](#)" in rendered
    assert elem(saved, "annotate-guidelines-column")["visible"] is True
    beside = run(fns["previous"](state_of(opened), *ben, True))  # every member sees them beside the item
    assert elem(beside, "annotate-guidelines") == rendered
    assert guidelines_markdown("![pixel](https://tracker.example/p.gif) & more") == (
        "[pixel](https://tracker.example/p.gif) &amp; more")  # fmt: skip
    assert guidelines_markdown("  \n") == ""


def test_a_blind_project_sends_no_scores_whatever_the_members_box_says(project):
    fns, key, ana, path, state = project
    ben = (key, "ben", "ben-passcode")
    saved = run(fns["settings_saved"](*ana, 1, "blind", ""))
    assert elem(saved, "annotate-blind")["visible"] is False  # no box to untick
    opened = run(fns["annotate_open"](str(path), *ben, False))  # the box (or an API caller) asks for scores
    model = elem(opened, "annotate-model")
    assert model["value"] is None and model["visible"] is False
    assert elem(opened, "annotate-blind")["visible"] is False
    run(fns["settings_saved"](*ana, 1, "shown", ""))
    opened = run(fns["annotate_open"](str(path), *ben, True))
    assert elem(opened, "annotate-model")["value"] is not None  # shown from the start, for everyone
    run(fns["settings_saved"](*ana, 1, "member", ""))
    opened = run(fns["annotate_open"](str(path), *ben, True))
    assert elem(opened, "annotate-model")["value"] is None and elem(opened, "annotate-blind")["visible"] is True


def oauth_request(username: str):
    """A request whose session holds what Gradio's OAuth callback stores after a sign-in (its mocked one locally)."""
    import gradio as gr
    from starlette.requests import Request

    info = {"access_token": "mock-oauth-token-for-local-dev", "token_type": "bearer", "scope": "openid profile",
            "expires_at": int(time.time()) + 3600,
            "userinfo": {"sub": "1", "name": username.title(), "preferred_username": username,
                         "profile": f"https://huggingface.co/{username}", "picture": ""}}  # fmt: skip
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b"",
             "client": ("127.0.0.1", 1), "session": {"oauth_info": info}}  # fmt: skip
    return gr.Request(request=Request(scope))


def test_a_hugging_face_sign_in_names_the_annotator_without_a_passcode(project, monkeypatch, scorer, tmp_path):
    import gradio as gr
    from gradio.helpers import special_args

    fns, key, ana, path, state = project
    opened = fns["annotate_open"]
    inputs, *_ = special_args(opened, [str(path), key, "", "", True], request=oauth_request("alice"))
    assert isinstance(inputs[-1], gr.OAuthProfile) and inputs[-1].username == "alice"  # Gradio injects the profile
    out = run(opened(*inputs))
    assert "labelled by hf:alice" in elem(out, "annotate-status")
    out = run(fns["annotate_save"](state_of(out), key, "", "", True, "A", "", "", None, inputs[-1]))
    assert "Saved: A for item" in elem(out, "annotate-status") and "1 labelled by hf:alice" in elem(
        out, "annotate-status"
    )
    none, *_ = special_args(opened, [str(path), key, "", "", True], request=None)
    assert none[-1] is None  # not signed in: name and passcode as before
    with pytest.raises(gr.Error, match="Enter your name"):
        run(opened(*none))
    with pytest.raises(gr.Error, match="belong to Hugging Face accounts"):
        run(opened(str(path), key, "hf:alice", "a-long-passcode", True))  # the account's name, by passcode

    from armorm_ui.ui.annotate_db import oauth_available

    assert not oauth_available()
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "team/armorm")
    monkeypatch.setenv("OAUTH_CLIENT_ID", "client-id")
    import importlib.util

    found = {m: importlib.util.find_spec(m) is not None for m in ("authlib", "itsdangerous")}
    assert oauth_available() == all(found.values())  # a Space without gradio[oauth]: no button, the page starts
    with monkeypatch.context() as installed:
        installed.setattr(importlib.util, "find_spec", lambda name, *a: object())
        assert oauth_available()
    assert all(found.values()), "requirements.txt installs gradio's OAuth extras (authlib, itsdangerous)"
    import gradio.oauth

    from armorm_ui.config import AppConfig
    from armorm_ui.ui import build_demo

    space = {"OAUTH_CLIENT_ID": "client-id", "OAUTH_CLIENT_SECRET": "client-secret", "OAUTH_SCOPES": "openid profile",
             "OPENID_PROVIDER_URL": "https://huggingface.co"}  # fmt: skip
    for name, value in space.items():  # what a Space with hf_oauth sets, read by Gradio when it is imported
        monkeypatch.setattr(gradio.oauth, name, value)
    demo = build_demo(scorer, AppConfig(data_dir=str(tmp_path / "space")))
    assert demo.expects_oauth  # the tab has Gradio's 'Sign in with Hugging Face' button, and Gradio its routes
