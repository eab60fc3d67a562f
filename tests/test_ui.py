"""Handlers, views and figures on CPU, without a browser: values in the charts equal the math."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from armorm_ui import explain, tables, ui
from armorm_ui.config import AppConfig
from armorm_ui.errors import InputError
from armorm_ui.results import ScoreResult

from .conftest import CARD_PROMPT, CARD_RESPONSES


@pytest.fixture(scope="module")
def state(scorer):
    return ui.analyse(scorer, [{"role": "user", "content": CARD_PROMPT}], CARD_RESPONSES)


def test_views_values_match_the_math(state):
    result = ScoreResult.from_dict(state["result"])
    v = ui.views(state)
    # scores chart: ranked, values equal the scores
    bar = v["scores"].data[0]
    np.testing.assert_allclose(sorted(np.asarray(bar.x) + bar.base, reverse=True), np.sort(result.scores)[::-1])
    assert list(bar.y) == [state["labels"][k] for k in np.argsort(-result.scores)]
    assert "winner" in bar.text[0]
    # heatmap: candidates x 19
    assert np.asarray(v["heatmap"].data[0].z).shape == (19, 3)
    # contributions: one trace per candidate, best first, whose bars add up to its score; objectives sorted by
    # what they give the winner, the same order for every candidate
    contrib = v["contributions"].data
    ranked = np.argsort(-result.scores, kind="stable")
    assert [t.name.split(" ")[0] for t in contrib] == [state["labels"][k] for k in ranked]
    np.testing.assert_allclose([np.sum(t.x) for t in contrib], result.scores[ranked], atol=1e-9)
    assert all(list(t.y) == list(contrib[0].y) for t in contrib)
    assert list(contrib[0].x) == sorted(contrib[0].x, reverse=True)
    # HelpSteer: rewards * 5 - 0.5
    for k, trace in enumerate(v["helpsteer"].data):
        np.testing.assert_allclose(trace.y, result.rewards[k, :5] * 5 - 0.5)
    np.testing.assert_allclose(v["helpsteer_table"].iloc[:, 1:6].to_numpy(float), result.rewards[:, :5] * 5 - 0.5,
                               atol=1e-3)  # fmt: skip
    # gating next to coefficients
    g, c = v["gating"].data
    np.testing.assert_allclose(g.y, result.gating_output)
    np.testing.assert_allclose(c.y, result.gating_output @ result.reward_transform_matrix.T)
    # pairwise sums to the score difference
    np.testing.assert_allclose(np.sum(v["pairwise"].data[0].x), result.scores[0] - result.scores[1], atol=1e-12)
    # ranking table
    assert v["ranking"]["candidate"].tolist() == [state["labels"][k] for k in np.argsort(-result.scores)]
    assert np.asarray(v["transform"].data[0].z).shape == (19, 19)


def test_no_label_carries_response_text(state):
    v = ui.views(state)
    for fig in (v[k] for k in ("scores", "heatmap", "bars", "contributions", "helpsteer", "pairwise", "what_if")):
        text = json.dumps(fig.to_plotly_json(), default=str)
        for response in state["responses"]:
            assert response[:20] not in text


def test_what_if_reranking_equals_direct_computation(state):
    result = ScoreResult.from_dict(state["result"])
    w = np.ones(19)
    w[1], w[3] = 3.0, 0.0
    v = ui.views(state, w)
    direct = np.array([sum(result.rewards[k, i] * result.coefficients[i] * w[i] for i in range(19)) for k in range(3)])
    np.testing.assert_allclose(v["what_if"].data[1].y, direct)
    t = v["what_if_table"]
    assert t["your rank"].tolist() == sorted(t["your rank"].tolist())
    assert t.set_index("candidate")["your rank"].to_dict() == dict(zip(state["labels"], explain.ranks(direct)))
    # the model's own ranking stays beside it
    np.testing.assert_allclose(v["what_if"].data[0].y, result.scores)


def test_pairwise_pick(state):
    result = ScoreResult.from_dict(state["result"])
    fig = ui.views(state, None, 2, 0)["pairwise"]
    np.testing.assert_allclose(np.sum(fig.data[0].x), result.scores[2] - result.scores[0], atol=1e-12)
    assert fig.layout.title.text.startswith("C − A")


def test_export_csv_and_json(state):
    csv_path, json_path = ui.export_files(state)
    frame = pd.read_csv(csv_path)
    result = ScoreResult.from_dict(state["result"])
    assert len(frame) == 3
    np.testing.assert_allclose(frame["score"], result.scores)
    np.testing.assert_allclose(frame["helpsteer-correctness.reward"], result.rewards[:, 1])
    np.testing.assert_allclose(frame["code-style.coefficient"], result.coefficients[15])
    contrib_cols = [c for c in frame.columns if c.endswith(".contribution")]
    assert len(contrib_cols) == 19
    np.testing.assert_allclose(frame[contrib_cols].sum(axis=1), frame["score"], atol=1e-9)
    assert frame["rank"].tolist() == explain.ranks(result.scores).tolist()
    data = json.loads(open(json_path, encoding="utf-8").read())
    assert data["scores"] == pytest.approx(result.scores.tolist())
    assert [c["response"] for c in data["candidates"]] == CARD_RESPONSES


def test_csv_escapes_formulas():
    frame = pd.DataFrame({"response": ["=HYPERLINK(1)", "+1", "plain", "@x"], "score": [-1.0, 0.5, 1, 2]})
    text = tables.to_csv(frame)
    assert "'=HYPERLINK(1)" in text and "'+1" in text and "'@x" in text and "\nplain," in text
    assert "-1.0" in text  # numbers stay numbers


def test_form_helpers():
    msgs = ui.conversation_from_form("  Be brief.  ", [["User", "hi"], ["assistant", "hello"], ["", ""]], "and?")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    with pytest.raises(InputError, match="Write a prompt"):
        ui.conversation_from_form("", [], "   ")
    with pytest.raises(InputError, match="Earlier turn 1 has role 'bot'"):
        ui.conversation_from_form("", [["bot", "x"]], "q")
    with pytest.raises(InputError, match="Candidate B is empty"):
        ui.candidates_from_form(3, ["a", " ", "c", "hidden box"])
    assert ui.candidates_from_form(2, ["a", "b", "c"]) == ["a", "b"]
    assert ui.candidates_from_form(3, ["a", "b", "  ", "hidden box"]) == ["a", "b"]  # an empty last box is ignored
    with pytest.raises(InputError, match="at least two candidates"):
        ui.candidates_from_form(3, ["a", "", None])


def test_config_env_and_flags():
    c = AppConfig.parse(["--max-tokens", "2048"], env={"ARMORM_MODEL": "/models/x", "GRADIO_SERVER_PORT": "9000"})
    assert (c.model, c.port, c.max_tokens) == ("/models/x", 9000, 2048)
    with pytest.raises(SystemExit):
        AppConfig.parse(["--max-tokens", "9000"], env={})


def test_demo_builds_with_every_public_event_named(scorer):
    demo = ui.build_demo(scorer, AppConfig.from_env())
    config = demo.get_config_file()
    named = [d.get("api_name") for d in config["dependencies"] if d.get("api_visibility", "public") == "public"]
    assert "score" in named and all(named)


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


def public_endpoints(demo) -> dict:
    """api_name -> (handler, number of inputs) for every event a program can call."""
    return {f.api_name: (f.fn, len(f.inputs)) for f in demo.fns.values()
            if f.fn is not None and f.api_name and f.api_visibility != "private"}  # fmt: skip


def test_the_page_form_is_not_an_api(scorer):
    demo = ui.build_demo(scorer, AppConfig.from_env())
    assert set(public_endpoints(demo)) == {"score", "attribute", "score_file", "annotate_open", "annotate_resume",
                                           "annotate_save", "annotate_agreement"}  # fmt: skip


def any_json(max_leaves=6):
    from hypothesis import strategies as st

    leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    return st.recursive(leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                        max_leaves=max_leaves)  # fmt: skip


ROLES = ["user", "assistant", "system", "robot", None, 3]


def test_every_endpoint_takes_any_arguments(scorer, tmp_path):
    """Whatever a caller sends, of any type, each public endpoint answers with a result or a gr.Error."""
    import asyncio
    import inspect

    import gradio as gr
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    demo = ui.build_demo(scorer, AppConfig(data_dir=str(tmp_path / "data")))
    endpoints = public_endpoints(demo)
    good_file = tmp_path / "items.csv"
    good_file.write_text("prompt,response_1,response_2\nq,a,b\n", encoding="utf-8")
    message = st.fixed_dictionaries({"role": st.sampled_from(ROLES), "content": st.text(max_size=20) | any_json(2)})
    value = (any_json() | st.lists(message, max_size=3) | st.just(str(good_file)) | st.sampled_from(["A", "CSV", "ana"])
             | st.text(min_size=16, max_size=20))  # fmt: skip

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(name=st.sampled_from(sorted(endpoints)), data=st.data())
    def check(name, data):
        fn, n = endpoints[name]
        args = [data.draw(value) for _ in range(n)]
        try:
            out = fn(*args)
            if inspect.isawaitable(out):
                asyncio.run(out)
        except gr.Error as e:
            assert e.message
        # anything else (TypeError, KeyError, a Gradio internal) fails the test

    check()


def test_the_pair_defaults_to_winner_and_runner_up_and_never_itself(state):
    labels = state["labels"]
    order = np.argsort(-np.asarray(state["result"]["scores"]), kind="stable")
    assert ui.pair(state, None, None) == (order[0], order[1])
    assert ui.pair(state, "A", "A") == (0, next(k for k in order if k != 0))
    assert ui.pair(state, "C", "B") == (2, 1)
    assert ui.pair_heading(labels, 2, 1) == "### Why C over B?"


def test_top_objectives_name_objectives_by_their_labels(state):
    from armorm_ui.objectives import LABELS, NAMES

    result = ScoreResult.from_dict(state["result"])
    table = tables.top_objectives(result, state["labels"])
    cells = [c for col in table.columns if col.startswith("#") for c in table[col]]
    assert cells and all(c.rsplit(": ", 1)[0] in LABELS for c in cells)
    assert not any(name in c for name in NAMES for c in cells)


def test_the_winner_has_the_longest_score_bar(state):
    from armorm_ui import figures

    result = ScoreResult.from_dict(state["result"])
    bar = figures.scores(result, state["labels"]).data[0]
    ends = np.asarray(bar.x) + bar.base
    order = np.argsort(-result.scores, kind="stable")
    np.testing.assert_allclose(ends, result.scores[order])  # each bar ends at its score
    assert np.argmax(bar.x) == 0 and np.all(np.asarray(bar.x) > 0)  # the winner's bar is the longest
    np.testing.assert_allclose(bar.customdata, result.scores[order])  # hover shows the score itself


def test_views_builds_only_what_is_asked(state, monkeypatch):
    from armorm_ui import figures

    calls = []
    monkeypatch.setattr(figures, "transform", lambda *a: calls.append("transform"))
    out = ui.views(state, None, 0, 1, only=("pairwise", "what_if", "what_if_table"))
    assert set(out) == {"pairwise", "what_if", "what_if_table"} and calls == []
    assert "transform" in ui.views(state) and calls == ["transform"]
