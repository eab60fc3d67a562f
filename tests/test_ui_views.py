"""The Compare tab's views on CPU, without a browser: values in the charts and tables equal the math."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from armorm_ui import explain, tables
from armorm_ui.errors import InputError
from armorm_ui.results import ScoreResult
from armorm_ui.ui import views

from .conftest import CARD_PROMPT, CARD_RESPONSES


@pytest.fixture(scope="module")
def state(scorer):
    return views.analyse(scorer, [{"role": "user", "content": CARD_PROMPT}], CARD_RESPONSES)


def test_views_values_match_the_math(state):
    result = ScoreResult.from_dict(state["result"])
    v = views.views(state)
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
    table = v["helpsteer_table"].set_index("objective")
    shown = table[state["labels"]].map(lambda c: float(c.split()[0])).to_numpy().T  # "-2.76 ↓" -> -2.76
    np.testing.assert_allclose(shown, result.rewards[:, :5] * 5 - 0.5, atol=5e-3)
    marks = table[state["labels"]].map(lambda c: c.split()[1] if " " in c else "").to_numpy().T
    np.testing.assert_array_equal(marks == "↓", shown < 0)
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
    v = views.views(state)
    for fig in (v[k] for k in ("scores", "heatmap", "bars", "contributions", "helpsteer", "pairwise", "what_if")):
        text = json.dumps(fig.to_plotly_json(), default=str)
        for response in state["responses"]:
            assert response[:20] not in text


def test_what_if_reranking_equals_direct_computation(state):
    result = ScoreResult.from_dict(state["result"])
    w = np.ones(19)
    w[1], w[3] = 3.0, 0.0
    v = views.views(state, w)
    direct = np.array([sum(result.rewards[k, i] * result.coefficients[i] * w[i] for i in range(19)) for k in range(3)])
    np.testing.assert_allclose(v["what_if"].data[1].y, direct)
    t = v["what_if_table"]
    shown = [int(r.split()[0]) for r in t["your rank"]]  # "2 ▼ 1" -> 2
    assert shown == sorted(shown)
    assert dict(zip(t["candidate"], shown)) == dict(zip(state["labels"], explain.ranks(direct)))
    # the model's own ranking stays beside it
    np.testing.assert_allclose(v["what_if"].data[0].y, result.scores)


def test_what_if_marks_every_rank_change(state):
    result = ScoreResult.from_dict(state["result"])
    order = np.argsort(-result.scores, kind="stable")
    winner, last = order[0], order[-1]
    gain = (result.rewards[last] - result.rewards[winner]) * result.coefficients
    assert gain.max() > 0, "the last candidate does better on no objective: pick another fixture"
    w = np.where(np.arange(19) == np.argmax(gain), 3.0, 0.0)  # only the last candidate's best objective counts
    v = views.views(state, w)
    before, after = explain.ranks(result.scores), explain.ranks(explain.what_if(result, w))
    table = v["what_if_table"].set_index("candidate")
    for k, label in enumerate(state["labels"]):
        moved = before[k] - after[k]
        expected = "=" if moved == 0 else f"▲ {moved}" if moved > 0 else f"▼ {-moved}"
        assert table.loc[label, "your rank"] == f"{after[k]} {expected}"
        assert v["what_if"].data[1].customdata[k] == expected
    assert any(m != "=" for m in v["what_if"].data[1].customdata) and "change" in v["what_if"].layout.title.text
    unchanged = views.views(state)["what_if_table"]["your rank"]  # the model's own weights move nothing
    assert all(r.endswith(" =") for r in unchanged)


def test_pairwise_pick(state):
    result = ScoreResult.from_dict(state["result"])
    fig = views.views(state, None, 2, 0)["pairwise"]
    np.testing.assert_allclose(np.sum(fig.data[0].x), result.scores[2] - result.scores[0], atol=1e-12)
    assert fig.layout.title.text.startswith("C − A")


def test_export_csv_and_json(state):
    csv_path, json_path = views.export_files(state)
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


def test_form_helpers():
    msgs = views.conversation_from_form("  Be brief.  ", [["User", "hi"], ["assistant", "hello"], ["", ""]], "and?")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    with pytest.raises(InputError, match="Write a prompt"):
        views.conversation_from_form("", [], "   ")
    with pytest.raises(InputError, match="Earlier turn 1 has role 'bot'"):
        views.conversation_from_form("", [["bot", "x"]], "q")
    with pytest.raises(InputError, match="Candidate B is empty"):
        views.candidates_from_form(3, ["a", " ", "c", "hidden box"])
    assert views.candidates_from_form(2, ["a", "b", "c"]) == ["a", "b"]
    assert views.candidates_from_form(3, ["a", "b", "  ", "hidden box"]) == ["a", "b"]  # an empty last box is ignored
    with pytest.raises(InputError, match="at least two candidates"):
        views.candidates_from_form(3, ["a", "", None])


def test_the_pair_defaults_to_winner_and_runner_up_and_never_itself(state):
    labels = state["labels"]
    order = np.argsort(-np.asarray(state["result"]["scores"]), kind="stable")
    assert views.pair(state, None, None) == (order[0], order[1])
    assert views.pair(state, "A", "A") == (0, next(k for k in order if k != 0))
    assert views.pair(state, "C", "B") == (2, 1)
    assert views.pair_heading(labels, 2, 1) == "### Why C over B?"


def test_the_pair_view_says_the_preference_probability(state):
    result = ScoreResult.from_dict(state["result"])
    labels = state["labels"]
    for a, b in ((2, 0), (0, 2), (1, 2)):
        p = 1 / (1 + np.exp(-(result.scores[a] - result.scores[b])))
        words = explain.probability_words(p)
        text = views.pair_probability(result.scores, labels, a, b)
        assert text.startswith(f"P({labels[a]} preferred to {labels[b]}) = {explain.probability_text(p)}: {words}")
        if words != "close to a tie":
            assert text.endswith(f" for {labels[a] if p >= 0.5 else labels[b]}")
        title = views.views(state, None, a, b)["pairwise"].layout.title.text
        assert title.startswith(f"{labels[a]} − {labels[b]}") and title.endswith(f"<br><sup>{text}</sup>")
    scores, abc = np.array([1.2, 0.0]), ["A", "B"]  # a margin of 1.2: 0.77 one way, 0.23 the other
    assert views.pair_probability(scores, abc, 0, 1) == "P(A preferred to B) = 0.77: a clear preference for A"
    assert views.pair_probability(scores, abc, 1, 0) == "P(B preferred to A) = 0.23: a clear preference for A"
    assert views.pair_probability(np.array([0.01, 0.0]), abc, 1, 0) == "P(B preferred to A) = 0.50: close to a tie"
    assert views.pair_probability(np.array([-900.0, 0.0]), abc, 0, 1) == (
        "P(A preferred to B) = below 0.01: a strong preference for B"
    )


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
    out = views.views(state, None, 0, 1, only=("pairwise", "what_if", "what_if_table"))
    assert set(out) == {"pairwise", "what_if", "what_if_table"} and calls == []
    assert "transform" in views.views(state) and calls == ["transform"]


def test_top_objectives_name_objectives_by_their_labels(state):
    from armorm_ui.objectives import LABELS, NAMES

    result = ScoreResult.from_dict(state["result"])
    table = tables.top_objectives(result, state["labels"])
    assert set(table["objective"]) <= set(LABELS) and not set(table["objective"]) & set(NAMES)
    # per candidate, its three largest contributions in size order
    contributions = explain.contributions(result)
    for k, label in enumerate(state["labels"]):
        rows = table[table["candidate"] == label]
        biggest = np.argsort(-np.abs(contributions[k]), kind="stable")[:3]
        assert rows["objective"].tolist() == [LABELS[i] for i in biggest]
        np.testing.assert_allclose(rows["value"], contributions[k, biggest], atol=1e-4)


# ------------------------------------------------------------------------------------------------------- probes


def unmarked(fragment: str) -> str:
    """The text a diff pane shows: its <ins>/<del> marks dropped, entities read back."""
    import html
    import re

    return html.unescape(re.sub(r"</?(ins|del|i)>", "", fragment))


def test_the_word_diff_escapes_and_marks_insertions_and_deletions():
    before = 'Use <b>bold</b> here. Keep "this".'
    after = 'Use <b>bold</b> here! Keep "this".\n\n<script>alert(1)</script> ✨'
    left, right = views.word_diff(before, after)
    assert "<b>" not in left + right and "<script>" not in right and "&lt;b&gt;" in left
    assert unmarked(left) == before and unmarked(right) == after  # every character shown, once
    assert "<del>.</del>" in left and "<ins>!</ins>" in right  # one mark for the one character changed
    assert "&lt;script&gt;alert(1)&lt;/script&gt; ✨</ins>" in right and right.count("<ins>") == 2
    assert "<del>" not in right and "<ins>" not in left
    assert views.word_diff("same text", "same text") == ("same text", "same text")


def test_changed_messages_pairs_each_changed_message_with_its_original():
    user = [{"role": "user", "content": "Hi?"}]
    asked = [{"role": "system", "content": "Be brief."}, *user]
    assert views.changed_messages(user, asked) == [("system", "", "Be brief.")]
    doubted = [{"role": "user", "content": "Hi?\n\nI don't think so."}]
    assert views.changed_messages(asked, [asked[0], *doubted]) == [("user", "Hi?", "Hi?\n\nI don't think so.")]


@pytest.fixture(scope="module")
def probed(scorer, state):
    from armorm_ui.probing import probe_answer

    found = probe_answer(scorer, state["messages"], state["responses"], 0)
    return found, views.probe_record(found, state["messages"], state["responses"][0])


def test_the_probe_summary_says_every_sentence_and_every_skip(probed):
    found, _ = probed
    text = views.probe_summary(found.outcomes, "A")
    applied = sorted(found.applied, key=lambda o: -o.delta)
    assert f"{len(applied)} of {len(found.outcomes)} edits apply to candidate A" in text
    places = [text.index(o.sentence()[len(o.probe.label) :].replace("'", "&#x27;")) for o in applied]
    assert places == sorted(places)  # in the chart's order
    assert found.skipped and all(f"<b>{o.probe.label}</b>: {o.skipped}." in text for o in found.skipped)


def test_the_edit_viewer_shows_both_texts_of_the_chosen_edit(probed, state):
    found, record = probed
    choices = views.edit_choices(record)
    assert [name for _, name in choices] == [o.probe.name for o in sorted(found.applied, key=lambda o: -o.delta)]
    emojis = next(o for o in found.applied if o.probe.name == "emojis")
    page = views.edit_html(record, "emojis")
    panes = page.split('class="probe-text')[1:]
    assert len(panes) == 2 and "<ins>" in panes[1]
    assert unmarked(panes[0].split(">", 1)[1].rsplit("</div></div>", 1)[0]) == state["responses"][0]
    assert unmarked(panes[1].split(">", 1)[1].split("</div></div></div>")[0]) == emojis.answer
    agrees = views.edit_html(record, "user_agrees")  # a conversation probe: the prompt it changed
    assert "User message" in agrees and "<ins>" in agrees
    assert views.edit_html(record, "no such probe") == "" and views.edit_html(None, "emojis") == ""


def test_the_edit_viewer_never_renders_user_text_as_markup():
    record = {"answer": "Hi <b>there</b> <img src=x onerror=alert(1)>", "messages": [],
              "probes": [{"probe": "emojis", "skipped": None, "delta": 0.1,
                          "edited": "Hi <b>there</b> <img src=x onerror=alert(1)> ✨"}]}  # fmt: skip
    page = views.edit_html(record, "emojis")
    assert "<b>there" not in page and "<img" not in page and page.count("&lt;img src=x onerror=alert(1)&gt;") == 2
    assert "<ins> ✨</ins>" in page
