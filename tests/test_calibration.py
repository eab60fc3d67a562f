"""Calibration of the preference probability against scikit-learn's own metrics, and temperature scaling against
simulated pairs whose true temperature is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss

from armorm_ui import calibration
from armorm_ui.explain import preference_probability

EDGES = np.linspace(0, 1, 11)


def logit(p):
    return np.log(p / (1 - p))


def margin_sets():
    rng = np.random.default_rng(3)
    inner = EDGES[1:-1]
    return {
        "normal": rng.normal(0, 2, 1001),
        "bin_edges": np.concatenate([logit(inner), -logit(inner), [0.0, 0.0, 1e-12, -1e-12]]),
        "extreme": np.concatenate([[50.0, -50.0, 40.0, -40.0, 36.0, -36.0], rng.normal(0, 30, 200)]),
        "mixed": np.concatenate([rng.normal(0.5, 1, 300), logit(inner), [50.0, -50.0, 0.0]]),
        "one_pair": np.array([0.3]),
    }


def reference_ece(y, p):
    """Expected calibration error by a loop over points: bin b holds edges[b] < p <= edges[b + 1] (0 in bin 0)."""
    sums = np.zeros((10, 2))
    for yi, pi in zip(y, p):
        b = next(k for k in range(10) if pi <= EDGES[k + 1] or k == 9)
        sums[b] += (yi, pi)
    return np.abs(sums[:, 0] - sums[:, 1]).sum() / len(y)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
@pytest.mark.parametrize("name", list(margin_sets()))
def test_metrics_equal_sklearn(name, temperature):
    margins = margin_sets()[name]
    p = preference_probability(margins, temperature)
    y_ref = np.concatenate([np.ones(len(margins)), np.zeros(len(margins))])
    p_ref = np.concatenate([p, 1 - p])
    prob_true, prob_pred = calibration_curve(y_ref, p_ref, n_bins=10, strategy="uniform")

    found = calibration.reliability(margins, temperature=temperature)
    full = [b for b in found["bins"] if b["count"]]
    assert len(found["bins"]) == 10 and found["points"] == 2 * len(margins)
    assert sum(b["count"] for b in found["bins"]) == 2 * len(margins)
    assert all(b["mean_probability"] is None and b["frequency"] is None for b in found["bins"] if not b["count"])
    np.testing.assert_allclose([b["frequency"] for b in full], prob_true, rtol=1e-12, atol=0)
    np.testing.assert_allclose([b["mean_probability"] for b in full], prob_pred, rtol=1e-12, atol=0)
    np.testing.assert_allclose([b["low"] for b in found["bins"]], EDGES[:-1])

    assert calibration.brier(margins, temperature) == pytest.approx(brier_score_loss(y_ref, p_ref), rel=1e-12)
    assert calibration.log_loss(margins, temperature) == pytest.approx(log_loss(y_ref, p_ref), rel=1e-12)
    assert calibration.ece(margins, temperature) == pytest.approx(reference_ece(y_ref, p_ref), rel=1e-9, abs=1e-15)


def test_both_orders_make_the_diagram_symmetric():
    bins = calibration.reliability(margin_sets()["normal"])["bins"]
    for low, high in zip(bins, bins[::-1]):
        assert low["count"] == high["count"]
        assert low["frequency"] == pytest.approx(1 - high["frequency"])


def test_a_calibrated_model_scores_well_and_an_overconfident_one_badly():
    rng = np.random.default_rng(0)
    true = rng.normal(0, 2, 20000)
    margins = np.where(rng.random(true.size) < preference_probability(true), true, -true)
    assert calibration.ece(margins) < 0.02
    assert calibration.ece(margins * 4) > 0.1


def simulate(t0: float, n: int = 20000, seed: int = 0) -> np.ndarray:
    """Margins of pairs whose true P(chosen) = sigmoid(m / t0); listed chosen first, so the margin flips sign when
    the response that scored lower was the preferred one."""
    rng = np.random.default_rng(seed)
    m = rng.normal(0, 3 * t0, n)
    return np.where(rng.random(n) < preference_probability(m, t0), m, -m)


@pytest.mark.parametrize("t0", [0.5, 2.0])
def test_temperature_is_recovered(t0):
    found = calibration.fit_temperature(simulate(t0))
    assert found["reason"] is None
    assert found["temperature"] == pytest.approx(t0, rel=0.05)
    assert found["fit_pairs"] == found["held_out_pairs"] == 10000
    assert found["after"]["log_loss"] <= found["before"]["log_loss"]
    assert found["after"]["ece"] < found["before"]["ece"]
    assert found["after"]["ece"] < 0.02


def test_temperature_minimises_the_fitting_halfs_log_loss():
    margins = simulate(0.7, n=2001, seed=5)
    found = calibration.fit_temperature(margins, seed=9)
    half = margins[np.random.default_rng(9).permutation(margins.size)[: margins.size // 2]]
    t = found["temperature"]
    best = calibration.log_loss(half, t)
    assert best < calibration.log_loss(half, t * 1.01) and best < calibration.log_loss(half, t / 1.01)
    assert found["before"] == calibration.scores(
        margins[np.random.default_rng(9).permutation(margins.size)[margins.size // 2 :]]
    )


def test_the_split_is_seeded():
    margins = simulate(1.0, n=500)
    assert calibration.fit_temperature(margins, seed=1) == calibration.fit_temperature(margins, seed=1)
    assert calibration.fit_temperature(margins, seed=1) != calibration.fit_temperature(margins, seed=2)


@pytest.mark.parametrize(
    ("margins", "reason"),
    [
        (np.ones(19), "at least 20"),
        (np.zeros(40), "every margin in the fitting half is 0"),
        (np.linspace(0, 1, 40), "no pair in the fitting half is ordered wrong"),
        (-np.linspace(0.1, 1, 40), "favour the rejected"),
    ],
)
def test_degenerate_inputs_fit_no_temperature(margins, reason):
    found = calibration.fit_temperature(margins)
    assert found["temperature"] is None and found["before"] is None and reason in found["reason"]
    report = calibration.calibration_report(margins)
    assert report["temperature"] is None and reason in report["temperature_reason"]
    json.dumps(report, allow_nan=False)


def test_report_is_strict_json():
    report = calibration.calibration_report(margin_sets()["mixed"])
    assert set(report) == {"pairs", "ece", "brier", "log_loss", "bins", "temperature", "temperature_reason"}
    assert report["temperature_reason"] is None
    assert set(report["temperature"]) == {"temperature", "reason", "fit_pairs", "held_out_pairs", "before", "after"}
    assert set(report["temperature"]["after"]) == {"ece", "brier", "log_loss"}
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    assert all(type(v) is float for v in (report["ece"], report["brier"], report["log_loss"]))


@pytest.mark.parametrize("margins", [[], [0.1, float("nan")], [np.inf]])
def test_bad_margins_are_refused(margins):
    with pytest.raises(ValueError):
        calibration.calibration_report(margins)
