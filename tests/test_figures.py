"""Compare-tab figures built from hand-made results, no model: what each chart draws adds up to what it shows."""

from __future__ import annotations

import numpy as np

from armorm_ui import figures
from armorm_ui.objectives import NUM_OBJECTIVES, OBJECTIVES
from armorm_ui.probes import by_names
from armorm_ui.probing import ProbeOutcome


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
