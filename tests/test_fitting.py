"""Weights fitted to labels, on simulated pairs whose true weights are known: the direction is recovered, held-out
accuracy reaches the simulation's Bayes accuracy, and the what-if multipliers reproduce the fitted weights."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from armorm_ui import fitting
from armorm_ui.objectives import NAMES
from armorm_ui.paired import compare_rules

W_STAR = np.random.default_rng(42).normal(size=19)


def simulate(n=3000, w=W_STAR, coefficients=None, seed=0, spread=1.0):
    """Pairs of random rewards (objective k's standard deviation spread[k]); the first response is preferred with
    probability sigmoid((r1 - r2) . w) and is then the chosen one. The model scores with `coefficients` (w itself
    when None)."""
    rng = np.random.default_rng(seed)
    first, second = rng.normal(size=(n, 19)) * spread, rng.normal(size=(n, 19)) * spread
    wins = rng.random(n) < 1 / (1 + np.exp(-(first - second) @ w))
    chosen = np.where(wins[:, None], first, second)
    rejected = np.where(wins[:, None], second, first)
    coef = w if coefficients is None else coefficients
    return chosen, rejected, (chosen - rejected) @ coef, coef


def bayes_accuracy(chosen, rejected, w=W_STAR):
    """Expected accuracy of the best rule, sign(x . w): the mean of max(p, 1 - p)."""
    p = 1 / (1 + np.exp(-(chosen - rejected) @ w))
    return float(np.maximum(p, 1 - p).mean())


def cosine(a, b):
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def model_coefficients():
    return W_STAR * np.random.default_rng(7).uniform(0.2, 1.8, 19)


@pytest.fixture(scope="module")
def fitted(model_coefficients):
    chosen, rejected, margins, coef = simulate(coefficients=model_coefficients)
    return fitting.fit_weights(chosen, rejected, margins, coef), (chosen, rejected, margins)


def test_weights_point_the_true_way(fitted):
    found, _ = fitted
    assert len(found["weights"]) == 19 and found["objectives"] == list(NAMES)
    assert cosine(found["weights"], W_STAR) > 0.95


def test_weights_are_on_the_raw_rewards():
    spread = np.geomspace(0.05, 3, 19)
    w = W_STAR / spread
    found = fitting.fit_weights(*simulate(w=w, spread=spread, seed=4))
    assert cosine(found["weights"], w) > 0.95


def test_held_out_accuracy_reaches_bayes(fitted):
    found, (chosen, rejected, margins) = fitted
    bayes = bayes_accuracy(chosen, rejected)
    assert abs(found["accuracy"]["fitted"]["accuracy"] - bayes) < 0.03
    assert found["accuracy"]["model"]["accuracy"] == pytest.approx(np.mean(margins > 0))
    assert found["accuracy"]["fitted"]["accuracy"] > found["accuracy"]["model"]["accuracy"]


def test_held_out_decisions_come_from_folds_that_never_saw_the_pair():
    from sklearn.linear_model import LogisticRegression

    chosen, rejected, margins, coef = simulate(n=60, seed=6)
    found = fitting.fit_weights(chosen, rejected, margins, coef, seed=3)
    losses = [g["log_loss"] for g in found["grid"]]
    assert found["C"] == found["grid"][int(np.argmin(losses))]["C"] and max(losses) - min(losses) > 0.01
    x = chosen - rejected
    x = x / np.sqrt(np.mean(x**2, axis=0))
    fold = fitting._folds(60, 3)
    assert sorted(np.bincount(fold)) == [12] * 5
    right = np.empty(60, dtype=bool)
    for f in range(5):
        train = fold != f
        both = np.vstack([x[train], -x[train]])
        y = np.repeat([1, 0], train.sum())
        model = LogisticRegression(C=found["C"], fit_intercept=False, tol=1e-10, max_iter=10000).fit(both, y)
        right[~train] = x[~train] @ model.coef_[0] > 0
    assert found["right"]["fitted"] == right.tolist()


def test_paired_comparison_applies_to_the_outputs(fitted):
    found, _ = fitted
    right = found["right"]
    assert len(right["fitted"]) == len(right["model"]) == found["pairs"] == 3000
    assert np.mean(right["fitted"]) == found["accuracy"]["fitted"]["accuracy"]
    compared = compare_rules(right["model"], right["fitted"])
    assert compared == found["paired"]
    assert compared["b"]["name"] == "fitted" and compared["difference"] < 0
    assert compared["mcnemar"]["p_value"] < 0.01


def test_comparison_ranks_what_people_weigh_more(fitted, model_coefficients):
    found, _ = fitted
    rows = found["comparison"]["objectives"]
    assert [r["difference"] for r in rows] == sorted((r["difference"] for r in rows), reverse=True)
    scaled = np.array([{r["objective"]: r["fitted"] for r in rows}[n] for n in NAMES])
    assert np.linalg.norm(scaled) == pytest.approx(np.linalg.norm(model_coefficients))
    assert found["comparison"]["cosine"] == pytest.approx(cosine(found["weights"], model_coefficients))


def test_comparison_names_the_objectives_the_model_under_and_overweighs():
    truth = np.full(19, 0.5)
    model = truth.copy()
    model[2], model[7] = 0.05, 1.5  # people weigh objective 2 more than the model does, objective 7 less
    found = fitting.fit_weights(*simulate(n=1500, w=truth, coefficients=model))
    rows = found["comparison"]["objectives"]
    assert rows[0]["objective"] == NAMES[2] and rows[0]["ratio"] > 5
    assert rows[-1]["objective"] == NAMES[7] and rows[-1]["ratio"] < 0.7
    assert np.argmax(found["what_if"]["multipliers"]) == 2 and np.argmin(found["what_if"]["multipliers"]) == 7


def test_multipliers_reproduce_the_fitted_weights(fitted, model_coefficients):
    found, _ = fitted
    what_if = found["what_if"]
    m = np.array(what_if["multipliers"])
    assert m.shape == (19,) and m.min() >= 0 and m.max() <= 3
    np.testing.assert_allclose(m * 10, np.round(m * 10), atol=1e-9)  # on the sliders' 0.1 steps
    assert what_if["cosine"] == pytest.approx(cosine(m * model_coefficients, found["weights"]))
    assert what_if["cosine"] > 0.99 > what_if["cosine_at_ones"]


def test_multipliers_note_sign_flips_and_clipping():
    model = np.ones(19)
    model[3], model[5] = -1.0, 0.0
    wanted = np.ones(19)
    wanted[0] = 10.0
    found = fitting.what_if_multipliers(wanted, model)
    notes = {n["objective"]: n["note"] for n in found["notes"]}
    assert found["multipliers"][3] == 0.0 and "opposite signs" in notes[NAMES[3]]
    assert found["multipliers"][5] == 1.0 and "no weight" in notes[NAMES[5]]
    assert found["multipliers"][0] == 3.0
    assert set(notes) <= {NAMES[0], NAMES[3], NAMES[5]}


def test_multipliers_are_ones_when_the_model_already_agrees():
    model = np.linspace(0.1, 1.0, 19)
    found = fitting.what_if_multipliers(5 * model, model)
    assert found["multipliers"] == [1.0] * 19 and found["notes"] == []
    assert found["cosine"] == pytest.approx(1.0)


def test_per_pair_coefficients_are_averaged():
    chosen, rejected, margins, coef = simulate(n=200, seed=3)
    per_pair = np.tile(coef, (200, 1)) + np.random.default_rng(1).normal(0, 0.1, (200, 19))
    found = fitting.fit_weights(chosen, rejected, margins, per_pair)
    again = fitting.fit_weights(chosen, rejected, margins, per_pair.mean(axis=0))
    assert found == again


def test_result_is_strict_json(fitted):
    found, _ = fitted
    assert set(found) == {"pairs", "folds", "seed", "C", "grid", "objectives", "weights", "accuracy", "right",
                          "comparison", "what_if", "paired"}  # fmt: skip
    assert json.loads(json.dumps(found, allow_nan=False)) == found


def test_3000_pairs_fit_quickly():
    chosen, rejected, margins, coef = simulate(seed=1)
    fitting.fit_weights(chosen[:100], rejected[:100], margins[:100], coef)  # imports scikit-learn
    start = time.perf_counter()
    fitting.fit_weights(chosen, rejected, margins, coef)
    assert time.perf_counter() - start < 1.0


def test_the_folds_are_seeded():
    data = simulate(n=300, seed=2)
    assert fitting.fit_weights(*data, seed=1) == fitting.fit_weights(*data, seed=1)
    assert fitting.fit_weights(*data, seed=1)["right"] != fitting.fit_weights(*data, seed=2)["right"]


def test_too_few_pairs_are_refused():
    with pytest.raises(ValueError, match="at least 20; label more pairs"):
        fitting.fit_weights(*simulate(n=19))


def test_pairs_that_never_differ_are_refused():
    chosen = np.random.default_rng(0).normal(size=(30, 19))
    with pytest.raises(ValueError, match="same 19 rewards in every pair"):
        fitting.fit_weights(chosen, chosen.copy(), np.zeros(30), np.ones(19))


@pytest.mark.parametrize("broken", ["columns", "rows", "margins", "coefficients", "nan"])
def test_malformed_inputs_are_refused(broken):
    chosen, rejected, margins, coef = simulate(n=50)
    if broken == "columns":
        chosen = chosen[:, :18]
    elif broken == "rows":
        rejected = rejected[:-1]
    elif broken == "margins":
        margins = margins[:-1]
    elif broken == "coefficients":
        coef = coef[:18]
    else:
        chosen[3, 4] = np.nan
    with pytest.raises(ValueError):
        fitting.fit_weights(chosen, rejected, margins, coef)


def test_the_pairs_of_one_prompt_are_held_out_together():
    """Best-of-N and RM-Bench files give several pairs per prompt, sharing answers: a fold holds whole prompts."""
    groups = np.repeat([f"q{k}" for k in range(23)], np.arange(23) % 4 + 1)
    fold = fitting._folds(len(groups), 0, groups)
    for g in set(groups):
        assert len(set(fold[groups == g])) == 1
    assert set(fold) == set(range(fitting.FOLDS))
    with pytest.raises(ValueError, match="at least 5 prompts"):
        fitting._folds(8, 0, ["a", "b", "c", "d"] * 2)
