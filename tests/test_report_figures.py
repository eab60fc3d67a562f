"""Evaluation charts show the report's numbers: accuracies with their intervals, objectives in order; text from
the user's file is shown as typed."""

from __future__ import annotations

import html

import numpy as np

from armorm_ui import evaluation, probing, report_figures
from armorm_ui.probes import PROBES

from .test_evaluation import FakePair, synthetic
from .test_figures import EVIL, OUTCOMES, assert_literal


def test_charts_show_the_report():
    pairs, results = synthetic(n=30)
    frame = evaluation.pair_frame(pairs, results)
    report = evaluation.report(frame)
    bar = report_figures.subset_accuracy(report).data[0]
    rows = {name: s for name, s in [("all pairs", report["overall"]), *report["subsets"].items()]}
    for label, data, x, up, down in zip(bar.y, bar.customdata, bar.x, bar.error_x.array, bar.error_x.arrayminus):
        s = rows[data[2]]
        assert label.endswith(f"(n={s['n']})")
        np.testing.assert_allclose([x, x + up, x - down], [s["accuracy"], s["high"], s["low"]])
    diamonds = report_figures.subset_accuracy(report).data[1]  # the pick-the-longer rule beside each bar
    lengths = [report["baselines"]["length_only"]] + [
        report["subsets"][d[2]]["length_only"] for d in bar.customdata[1:]
    ]
    np.testing.assert_allclose(diamonds.x, [s["accuracy"] for s in lengths])
    alone = report_figures.objective_agreement(report).data[0]
    assert list(alone.x) == sorted(alone.x, reverse=True) and len(alone.y) == 19
    histograms = report_figures.margins(frame).data  # right and wrong, per subset
    assert sum(len(h.x) for h in histograms) == 30
    assert all(np.all(np.asarray(h.x) > 0) for h in histograms if h.name == "right")
    assert all(np.all(np.asarray(h.x) <= 0) for h in histograms if h.name == "wrong")
    scatter = report_figures.length_effect(report, frame).data
    assert sum(len(t.x) for t in scatter) == 30


def test_subsets_pair_ids_and_file_names_are_shown_as_typed():
    pairs, results = synthetic(n=30)
    pairs = [FakePair(EVIL[k % 3], EVIL[(k + 1) % 3]) for k in range(len(pairs))]  # ids and subsets alike
    frame = evaluation.pair_frame(pairs, results)
    report = evaluation.report(frame)
    assert_literal(report_figures.subset_accuracy(report))
    assert_literal(report_figures.length_effect(report, frame))  # the ids on hover
    margins = report_figures.margins(frame)
    assert_literal(margins, names=[])  # subplot titles: names cut to 28 characters, no markup
    titles = sorted(html.unescape(a.text).rsplit(" (n=", 1)[0] for a in margins.layout.annotations)
    assert titles == sorted(name[:27] + "…" if len(name) > 28 else name for name in EVIL)  # escaped once, not twice
    found = probing.probe_report(OUTCOMES, PROBES, pairs=True)
    for make in (report_figures.probe_deltas, report_figures.probe_parts, report_figures.probe_flips):
        for name in EVIL:
            assert_literal(make(found, name), [name])
