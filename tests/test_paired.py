"""Paired comparison of two decision rules: McNemar's exact test against statsmodels and scipy, and the bootstrap
interval against resampling pair indices directly."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from scipy.stats import binomtest
from statsmodels.stats.contingency_tables import mcnemar

from armorm_ui import paired


def rules(n=3000, flip=0.1, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random(n) < 0.8
    return a, np.where(rng.random(n) < flip, ~a, a)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (0, 1), (0, 7), (3, 3), (5, 12), (12, 5), (40, 61), (600, 700)])
def test_mcnemar_equals_statsmodels_and_scipy(b, c):
    p = paired.mcnemar_exact(b, c)
    assert p == pytest.approx(mcnemar(np.array([[9, b], [c, 4]]), exact=True).pvalue, rel=1e-9)
    if b + c:
        assert p == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-9)
    else:
        assert p == 1.0


def test_table_and_discordant_counts():
    a = np.array([1, 1, 1, 0, 0, 1, 0], bool)
    b = np.array([1, 0, 0, 1, 0, 1, 0], bool)
    assert paired.table(a, b) == [[2, 2], [1, 2]]
    found = paired.compare_rules(a, b, names=("run 1", "run 2"))
    assert found["a"]["name"] == "run 1" and found["a"]["right"] == 4 and found["b"]["right"] == 3
    assert found["mcnemar"] == {"only_a": 2, "only_b": 1, "p_value": 1.0}
    assert found["difference"] == pytest.approx(1 / 7)


def test_identical_rules_differ_by_nothing():
    a, _ = rules(200)
    found = paired.compare_rules(a, a)
    assert found["mcnemar"]["p_value"] == 1.0 and found["difference"] == 0.0
    assert (found["interval"]["low"], found["interval"]["high"]) == (0.0, 0.0)


def test_bootstrap_matches_resampling_pair_indices():
    a, b = rules()
    low, high = paired.bootstrap_difference(a, b, resamples=20000, seed=1)
    idx = np.random.default_rng(2).integers(0, a.size, (4000, a.size))
    ref_low, ref_high = np.quantile(a[idx].mean(axis=1) - b[idx].mean(axis=1), [0.025, 0.975])
    assert low == pytest.approx(ref_low, abs=0.003) and high == pytest.approx(ref_high, abs=0.003)
    assert low < a.mean() - b.mean() < high


def test_bootstrap_is_seeded_and_fast():
    a, b = rules()
    paired.compare_rules(a, b)  # imports
    start = time.perf_counter()
    found = paired.compare_rules(a, b, seed=4)
    assert time.perf_counter() - start < 0.1
    assert found == paired.compare_rules(a, b, seed=4)
    assert found["interval"] != paired.compare_rules(a, b, seed=5)["interval"]


def test_result_is_strict_json():
    found = paired.compare_rules(*rules(500))
    assert set(found) == {"pairs", "a", "b", "difference", "interval", "table", "mcnemar"}
    assert set(found["interval"]) == {"low", "high", "confidence", "resamples", "seed"}
    assert json.loads(json.dumps(found, allow_nan=False)) == found


@pytest.mark.parametrize(("a", "b"), [([], []), ([True, False], [True])])
def test_bad_inputs_are_refused(a, b):
    with pytest.raises(ValueError):
        paired.compare_rules(a, b)
