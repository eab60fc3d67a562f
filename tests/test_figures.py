"""Compare-tab figures built from hand-made results, no model: what each chart draws adds up to what it shows."""

from __future__ import annotations

import numpy as np

from armorm_ui import figures
from armorm_ui.objectives import NUM_OBJECTIVES, OBJECTIVES
from armorm_ui.probes import by_names
from armorm_ui.probing import ProbeOutcome
from armorm_ui.results import ScoreResult


def outcome(name: str, parts, before=(0.1, 0.2, 0.3), index: int = 0, weights=None, skipped=None) -> ProbeOutcome:
    """Probe `name` on candidate `index`: its 19 reward parts (and weight parts), the others' scores unchanged."""
    probe = by_names([name])[0]
    if skipped:
        return ProbeOutcome(probe, index, [], "", skipped)
    parts = np.asarray(parts, dtype=float)
    weights = np.zeros(NUM_OBJECTIVES) if weights is None else np.asarray(weights, dtype=float)
    before = np.asarray(before, dtype=float)
    after = before.copy()
    after[index] += parts.sum() + weights.sum()
    return ProbeOutcome(probe, index, [], "", None, before, after, parts, weights, 3)


def spread(total: float, seed: int) -> np.ndarray:
    """19 parts of mixed signs that add up to `total`."""
    x = np.random.default_rng(seed).normal(0, 0.05, NUM_OBJECTIVES)
    return x - x.mean() + total / NUM_OBJECTIVES


OUTCOMES = [
    outcome("bold", spread(-0.02, 1)),
    outcome("emojis", spread(0.35, 2)),  # 0.1 -> 0.45: from rank 3 to 1
    outcome("header", spread(0.0, 3), skipped="the answer already starts with a header"),
    outcome("user_agrees", spread(0.05, 4), weights=spread(-0.01, 5)),  # a conversation probe moves weights too
    outcome("first_half", spread(-0.25, 6), before=(0.5, 0.2, 0.3)),  # 0.5 -> 0.25: from rank 1 to 2
]


def test_one_bar_per_applied_probe_whose_parts_add_up_to_its_delta():
    fig = figures.probe_effects(OUTCOMES, "A")
    applied = sorted((o for o in OUTCOMES if o.applied), key=lambda o: -o.delta)
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == NUM_OBJECTIVES  # one trace per objective, stacked
    labels = [o.probe.label for o in applied]
    assert all(list(b.y) == labels for b in bars)  # one bar per applied probe, largest rise first
    assert "Markdown header" not in json_text(fig)  # the skipped probe draws nothing
    stacked = np.array([b.x for b in bars])  # (19, probes)
    np.testing.assert_allclose(stacked.sum(axis=0), [o.delta for o in applied], atol=1e-12)
    np.testing.assert_allclose(stacked[:, labels.index("User agrees")], OUTCOMES[3].parts)  # reward + weight parts
    (net,) = [t for t in fig.data if t.type == "scatter"]
    np.testing.assert_allclose(net.x, [o.delta for o in applied])
    assert fig.layout.barmode == "relative"


def test_rank_changes_are_marked_beside_the_probe_name():
    fig = figures.probe_effects(OUTCOMES, "A")
    notes = {a.y: a.text for a in fig.layout.annotations}
    assert "▲ 2" in notes["Emojis"] and "▼ 1" in notes["First half only"]
    assert "▲" not in notes["Bold key phrases"] and "▼" not in notes["Bold key phrases"]
    assert "Δ +0.35" in notes["Emojis"]


def test_objective_groups_keep_the_contributions_chart_colours():
    fig = figures.probe_effects(OUTCOMES, "A")
    bars = [t for t in fig.data if t.type == "bar"]
    for o, bar in zip(OBJECTIVES, bars):
        assert bar.legendgroup == o.group and bar.name == o.group
    first = {}
    for o, bar in zip(OBJECTIVES, bars):
        first.setdefault(o.group, bar.marker.color)
    assert first == figures.GROUP_COLOURS  # each group's first objective in the group's own colour
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == [*figures.GROUP_COLOURS, "net Δ"]  # one entry per group, not nineteen


def test_no_applied_probe_says_so():
    fig = figures.probe_effects([OUTCOMES[2]], "B")
    assert all(len(t.y) == 0 for t in fig.data)
    assert "No probe applies" in fig.layout.annotations[0].text


def json_text(fig) -> str:
    import json

    return json.dumps(fig.to_plotly_json(), default=str)


EVIL = ['<a href="http://evil.example/login">alice</a>', '<b style="font-size:40px">bob</b>', "&lt;i&gt;carol"]
"""Names a user might type: a live link, a restyled legend, and text that already holds entities."""


def strings(node):
    """Every string in a figure's dict (data and layout), however deep."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, (list, tuple, np.ndarray)):
        for value in node.tolist() if isinstance(node, np.ndarray) else node:
            yield from strings(value)


def assert_literal(fig, names=EVIL):
    """No user string reaches the chart as markup, and each is there escaped (shown as typed)."""
    texts = list(strings(fig.to_dict()))
    for text in texts:
        assert "<a " not in text and "<b " not in text and "</a>" not in text and "bob</b>" not in text, text
        assert "&lt;i&gt;carol" not in text, text  # & escaped too: plotly.js would show <i>carol
    for name in names:
        assert any(figures.literal(name) in text for text in texts), name


def made_up_result(n: int = 3) -> ScoreResult:
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(n, NUM_OBJECTIVES))
    gating = np.full(NUM_OBJECTIVES, 1 / NUM_OBJECTIVES)
    return ScoreResult(rewards @ gating, rewards, gating, gating, np.eye(NUM_OBJECTIVES), 10, np.arange(n) + 5)


def test_literal_escapes_what_plotly_reads_as_markup():
    assert figures.literal('<b>"a" & b</b>') == '&lt;b&gt;"a" &amp; b&lt;/b&gt;'  # plotly.js shows &quot; as typed
    assert figures.literals([1, "<a>"]) == ["1", "&lt;a&gt;"]


def test_candidate_labels_are_shown_as_typed():
    result = made_up_result()
    for fig in (figures.scores(result, EVIL), figures.rewards_heatmap(result, EVIL),
                figures.rewards_bars(result, EVIL), figures.contributions(result, EVIL),
                figures.helpsteer(result, EVIL), figures.what_if(result, result.scores[::-1], EVIL)):  # fmt: skip
        assert_literal(fig)
    assert_literal(figures.pairwise(result, 0, 1, EVIL), EVIL[:2])
    what_if = figures.what_if(result, result.scores[::-1], EVIL)
    assert list(what_if.data[0].x) == list(what_if.data[1].x) == figures.literals(EVIL)  # one name per category


def test_annotator_names_are_shown_as_typed():
    rates = dict.fromkeys((o.label for o in OBJECTIVES), 0.5)
    summary = {name: {"objective_agreement": rates, "model_top_agreement": 0.5} for name in EVIL}
    assert_literal(figures.agreement(summary))


def test_response_text_and_probe_labels_are_shown_as_typed():
    effects = np.array([0.1, -0.2, 0.05])
    assert_literal(figures.segment_effects(EVIL, effects, "score"))
    segments = [{"text": t, "leave_one_out": v, "attribution": v / 2} for t, v in zip(EVIL, effects)]
    assert_literal(figures.token_agreement(segments, "score"))
    for name in EVIL:
        assert_literal(figures.probe_effects(OUTCOMES, name), [name])
