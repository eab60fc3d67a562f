"""The benchmark scripts still run and still compare like with like (no timing is asserted here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_bench_scoring_runs_and_agrees(tmp_path):
    import bench_scoring

    out = tmp_path / "results.json"
    bench_scoring.main(["--shape", "tiny", "--device", "cpu", "--repeats", "1", "--json", str(out)])
    figures = json.loads(out.read_text())
    assert [r["workload"] for r in figures["rows"]] == [w[0] for w in bench_scoring.WORKLOADS]
    assert all(r["max_score_diff"] < 1e-4 and r["ratio"] > 0 for r in figures["rows"])
    assert figures["app_overhead"]["total_ms"] > 0


def test_bench_attribution_runs_and_agrees():
    import bench_attribution

    figures = bench_attribution.main(["--shape", "tiny", "--device", "cpu", "--repeats", "1"])
    assert figures["max_score_diff"] < 1e-4 and figures["ours_tokens"] < figures["card_tokens"]


def test_bench_evaluate_runs_and_agrees(tmp_path):
    import bench_evaluate

    figures = bench_evaluate.main(["--pairs", "3", "--repeats", "1", "--json", str(tmp_path / "e.json")])
    assert figures["max_score_difference"] < 1e-4 and figures["pairs_per_s"] > 0 and figures["ratio"] > 0


def test_bench_token_attribution_runs_and_integrates():
    import bench_token_attribution

    figures = bench_token_attribution.main(["--repeats", "1", "--threads", "1"])
    assert set(figures["ratios"]) == {"scoring pass", "gradient x input", "IG, 16 steps", "IG, 64 steps"}
    assert figures["completeness_gaps"]["IG, 64 steps"] < 0.01  # on the card's long answer, the demo checkpoint


def test_bench_probes_runs_and_agrees(tmp_path):
    import bench_probes

    from armorm_ui.probes import PROBES

    out = tmp_path / "probes.json"
    figures = bench_probes.main(
        ["--answers", "3", "--repeats", "1", "--card-repeats", "1", "--threads", "1", "--json", str(out)]
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(figures))
    assert figures["probes"] == [p.name for p in PROBES]
    for label, answers in (("card", 3), ("generated", 3)):
        w = figures["workloads"][label]
        assert w["answers"] == answers and w["same_probes"] and w["scored_ours"] == w["scored_naive"] > 0
        assert w["max_score_diff"] < 1e-6 and w["ratio"] > 0


def test_bench_fair_slot_runs(tmp_path, demo_dir):
    import bench_fair_slot

    figures = bench_fair_slot.main(["--rows", "300", "--seconds", "3", "--model", str(demo_dir),
                                    "--json", str(tmp_path / "f.json")])  # fmt: skip
    assert figures["idle"]["calls"] >= 2 and figures["beside_jobs"]["calls"] >= 2 and figures["worst_ratio"] > 0


def test_bench_evaluate_file_runs_resumes_and_recomputes_the_report(tmp_path):
    import bench_evaluate_file

    figures = bench_evaluate_file.main(["--pairs", "200", "--json", str(tmp_path / "f.json")])
    assert figures["report_same_as_the_run"] and figures["fit_error"] is None and figures["report_s"] > 0
    assert figures["saved_before_ctrl_c"] is None or 0 < figures["saved_before_ctrl_c"] < 200


@pytest.mark.browser
def test_bench_annotate_keys_runs(tmp_path):
    import bench_annotate_keys

    out = tmp_path / "keys.json"
    figures = bench_annotate_keys.main(["--items", "4", "--out", str(out)])
    assert json.loads(out.read_text()) == figures
    assert figures["timed"] == 3 and 0 < figures["median_ms"] <= figures["p95_ms"] <= figures["worst_ms"]
