"""The Probe tab's pure parts: the summary table and the charts show the report's numbers (each objective's mean
part, the intervals as error bars), a file name is shown as typed, and the tab's run refuses what it cannot take."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from armorm_ui import report_figures
from armorm_ui.objectives import NUM_OBJECTIVES
from armorm_ui.probes import BY_NAME, PROBES
from armorm_ui.probing import ProbeOutcome, probe_report
from armorm_ui.ui.probe import probe_file, summary_table, summary_text

NAME = "<b>x</b>.csv"


def synthetic(pairs: bool, n: int = 12, seed: int = 0) -> dict:
    """probe_report on made-up outcomes: every probe on n pairs (both answers), `header` never applies."""
    rng = np.random.default_rng(seed)
    outcomes = []
    for _ in range(n):
        before = rng.normal(size=2)
        for k in range(2):
            for p in PROBES:
                if p.name == "header" or rng.random() < 0.15:
                    outcomes.append(ProbeOutcome(p, k, [], "a", "does not apply"))
                    continue
                rp = rng.normal(scale=0.3, size=NUM_OBJECTIVES)
                wp = rng.normal(scale=0.1, size=NUM_OBJECTIVES) if p.side == "conversation" else np.zeros(19)
                after = before.copy()
                after[k] += rp.sum() + wp.sum()
                if p.side == "conversation":
                    after[1 - k] += rng.normal()
                outcomes.append(ProbeOutcome(p, k, [], "a", None, before, after, rp, wp, int(rng.integers(-5, 30))))
    report = probe_report(outcomes, PROBES, pairs)
    return {"input": NAME, "input_kind": "pairs" if pairs else "candidates", "items": n, "answers": 2 * n,
            "probe_names": [p.name for p in PROBES], **report}  # fmt: skip


def test_the_summary_table_is_the_report():
    found = synthetic(pairs=True)
    table = summary_table(found)
    assert table["Probe"].tolist() == [p.label for p in PROBES]
    for (_, row), e in zip(table.iterrows(), found["probes"]):
        assert row["Applied"] == f"{e['applied']} of {e['applied'] + e['skipped']}"
        if not e["applied"]:
            assert row["Mean Δscore"] == "–" and row["Flips"] == "–"
            continue
        assert row["Mean Δscore"] == f"{e['mean_delta']:+.4f}"
        assert row["95% interval"] == f"{e['low']:+.4f} to {e['high']:+.4f}"
        assert row["Tokens added"] == f"{e['mean_tokens_added']:+.1f}"
        f = e["flip"]
        assert row["Flips"].startswith(f"{f['k']}/{f['n']} · {f['rate']:.0%}")
    assert "Flips" not in summary_table(synthetic(pairs=False)).columns


def test_the_heatmap_holds_each_probes_mean_parts():
    found = synthetic(pairs=False)
    heat = report_figures.probe_parts(found, NAME).data[0]
    z = np.array(heat.z, dtype=float)  # None (never applied) -> NaN
    assert z.shape == (len(PROBES), NUM_OBJECTIVES)
    for row, e in zip(z, found["probes"]):
        if e["applied"]:
            np.testing.assert_allclose(row, e["mean_parts"])
            assert row.sum() == pytest.approx(e["mean_delta"])  # the parts add up to the mean Δscore
        else:
            assert np.isnan(row).all()
    assert list(heat.y).index(next(y for y in heat.y if "not applied" in y)) == PROBES.index(BY_NAME["header"])


def test_the_charts_error_bars_are_the_intervals():
    found = synthetic(pairs=True)
    flips, rescues = report_figures.probe_flips(found, NAME).data
    for trace, key in ((flips, "flip"), (rescues, "rescue")):
        for x, up, down, e in zip(trace.x, trace.error_x.array, trace.error_x.arrayminus, found["probes"]):
            s = e[key]
            if not s["n"]:
                assert x is None and up is None and down is None
                continue
            assert x == s["rate"]
            np.testing.assert_allclose([x + up, x - down], [s["high"], s["low"]])
    deltas = report_figures.probe_deltas(found, NAME).data[0]
    applied = [e for e in found["probes"] if e["applied"]]
    assert len(deltas.x) == len(applied) == len(PROBES) - 1
    for x, up, down, e in zip(deltas.x, deltas.error_x.array, deltas.error_x.arrayminus, applied):
        np.testing.assert_allclose([x, x + up, x - down], [e["mean_delta"], e["high"], e["low"]])


def test_a_file_name_is_shown_as_typed():
    found = synthetic(pairs=True)
    for make in (report_figures.probe_deltas, report_figures.probe_parts, report_figures.probe_flips):
        title = make(found, NAME).layout.title.text
        assert "&lt;b&gt;x&lt;/b&gt;.csv" in title and "<b>x</b>" not in title
    text = summary_text(found)
    assert "<b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text


def test_the_tab_probes_a_file_and_refuses_what_it_cannot_take(tmp_path, scorer):
    from armorm_ui.errors import InputError
    from armorm_ui.validation import Limits

    path = tmp_path / "pairs.csv"
    rows = [{"prompt": f"Question {i}?", "chosen": f"Answer {i}. It is so.", "rejected": "=HYPERLINK(1)"}
            for i in range(3)]  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)
    seen = []
    out = probe_file(scorer, str(path), "", ["opener", "user_agrees"], Limits(), 100, 3,
                     progress=lambda p, desc: seen.append(p))  # fmt: skip
    assert seen == [(0, 3), (1, 3), (2, 3)]
    found = out["report"]
    assert found["pairs"] and found["probe_names"] == ["opener", "user_agrees"]
    table = pd.read_csv(out["table"])
    assert len(table) == 3 * 2 * 2 and set(table["candidate"]) == {"chosen", "rejected"}
    assert table["original"].str.startswith("'=").sum() == 3  # written by write_results: formulas escaped
    with pytest.raises(InputError, match="takes at most 2, since each answer is scored about 3 times"):
        probe_file(scorer, str(path), "", ["opener", "user_agrees"], Limits(), 100, 2)
    with pytest.raises(InputError, match="Choose at least one probe"):
        probe_file(scorer, str(path), "", [], Limits(), 100, 3)
    with pytest.raises(InputError, match="unknown probe"):
        probe_file(scorer, str(path), "", ["sparkles"], Limits(), 100, 3)
    bad = tmp_path / "bad.csv"
    pd.DataFrame([{"prompt": "q", "chosen": "a", "rejected": ""}]).to_csv(bad, index=False)
    with pytest.raises(InputError, match="line 2: rejected is empty"):
        probe_file(scorer, str(bad), "", ["opener"], Limits(), 100, 3)


def test_a_single_answer_has_no_interval():
    """Fewer than two answers: no interval (NaN in the report, null in its JSON) is shown as a dash."""
    found = synthetic(pairs=False, n=1)
    one = next(e for e in found["probes"] if e["applied"] == 1)
    row = summary_table(found).set_index("Probe").loc[one["label"]]
    assert row["95% interval"] == "–" and row["Mean Δscore"] == f"{one['mean_delta']:+.4f}"
    assert list(summary_table(found).columns[:3]) == ["Probe", "Mean Δscore", "95% interval"]
