"""Evaluation charts show the report's numbers: accuracies with their intervals, objectives in order."""

from __future__ import annotations

import numpy as np

from armorm_ui import evaluation, report_figures

from .test_evaluation import synthetic


def test_charts_show_the_report():
    pairs, results = synthetic(n=30)
    frame = evaluation.pair_frame(pairs, results)
    report = evaluation.report(frame)
    bar = report_figures.subset_accuracy(report).data[0]
    rows = {name: s for name, s in [("all pairs", report["overall"]), *report["subsets"].items()]}
    for name, x, up, down in zip(bar.y, bar.x, bar.error_x.array, bar.error_x.arrayminus):
        s = rows[name]
        np.testing.assert_allclose([x, x + up, x - down], [s["accuracy"], s["high"], s["low"]])
    alone = report_figures.objective_agreement(report).data[0]
    assert list(alone.x) == sorted(alone.x, reverse=True) and len(alone.y) == 19
    right, wrong = report_figures.margins(frame).data
    assert len(right.x) + len(wrong.x) == 30 and all(np.asarray(right.x) > 0)
    scatter = report_figures.length_effect(report, frame).data
    assert sum(len(t.x) for t in scatter) == 30
