"""The evaluation report against direct computation on synthetic pairs whose answers are known, and RewardBench's
section scores against RewardBench's own code."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from armorm_ui import evaluation
from armorm_ui.objectives import NAMES
from armorm_ui.results import ScoreResult

from .rewardbench_code import rewardbench_code


@dataclass
class FakePair:
    pair_id: str
    subset: str


def synthetic(n=60, decider=3, seed=0):
    """Pairs where only objective `decider` has a coefficient, so it alone decides; the chosen answer is always
    the longer one; about a third of the decisions are wrong."""
    rng = np.random.default_rng(seed)
    coefficients = np.zeros(19)
    coefficients[decider] = 0.5
    pairs, results = [], []
    for k in range(n):
        rewards = rng.normal(size=(2, 19))
        scores = rewards @ coefficients
        tokens = np.array([50 + k, 20 + k % 7])
        results.append(ScoreResult(scores, rewards, np.full(19, 1 / 19), coefficients, np.eye(19), 10, tokens))
        pairs.append(FakePair(f"p{k}", ["alpacaeval-easy", "hep-go", "xstest-should-refuse"][k % 3]))
    return pairs, results


def wilson(k, n, z=1.959963984540054):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_report_equals_direct_computation():
    pairs, results = synthetic()
    frame = evaluation.pair_frame(pairs, results)
    report = evaluation.report(frame)
    right = np.array([r.scores[0] > r.scores[1] for r in results])
    assert 0 < right.sum() < len(right)
    o = report["overall"]
    assert (o["n"], o["right"]) == (60, right.sum()) and o["accuracy"] == pytest.approx(right.mean())
    np.testing.assert_allclose((o["low"], o["high"]), wilson(right.sum(), 60), atol=1e-9)
    for name, s in report["subsets"].items():
        mine = right[[p.subset == name for p in pairs]]
        assert s["accuracy"] == pytest.approx(mine.mean()) and s["n"] == mine.size
    # per objective: the decider alone agrees with every decision of the model; its contributions add up
    table = {o["objective"]: o for o in report["objectives"]}
    decider = table[NAMES[3]]
    assert decider["alone_right"] == pytest.approx(right.mean())
    alone = np.mean([[r.rewards[0, i] > r.rewards[1, i] for i in range(19)] for r in results], axis=0)
    np.testing.assert_allclose([table[n]["alone_right"] for n in NAMES], alone)
    margins = np.array([r.scores[0] - r.scores[1] for r in results])
    assert decider["contribution_when_right"] == pytest.approx(margins[right].mean())
    assert decider["contribution_when_wrong"] == pytest.approx(margins[~right].mean())
    assert all(table[n]["contribution_when_right"] == 0 for n in NAMES if n != NAMES[3])
    np.testing.assert_allclose(evaluation.objective_contributions(frame).sum(axis=1), margins, atol=1e-12)
    # length: the chosen answer is always longer
    length = report["length"]
    assert length["chosen_longer"]["n"] == 60 and length["chosen_longer"]["accuracy"] == pytest.approx(right.mean())
    assert length["chosen_shorter"]["n"] == 0 and length["chosen_shorter"]["accuracy"] is None
    from scipy.stats import spearmanr

    diff = [int(r.candidate_tokens[0] - r.candidate_tokens[1]) for r in results]
    assert length["margin_vs_length"]["spearman"] == pytest.approx(spearmanr(margins, diff).statistic)
    # the most confident wrong decisions, most wrong first
    worst = [w["margin"] for w in report["worst"]]
    assert worst == sorted(margins[~right])[: evaluation.WORST]


def test_length_bias_is_found_when_the_model_prefers_longer_answers():
    pairs, results = synthetic(n=40)
    for k, r in enumerate(results):  # the model now prefers whichever answer is longer; chosen is longer half the time
        tokens = np.array([30, 60]) if k % 2 else np.array([60, 30])
        r.candidate_tokens[:] = tokens
        r.scores[:] = tokens / 100
    report = evaluation.report(evaluation.pair_frame(pairs, results))
    assert report["length"]["chosen_longer"]["accuracy"] == 1.0
    assert report["length"]["chosen_shorter"]["accuracy"] == 0.0
    assert report["overall"]["accuracy"] == 0.5


def test_rewardbench_sections_equal_rewardbench_own_code():
    constants, utils = rewardbench_code()
    assert evaluation.EXAMPLE_COUNTS == constants.EXAMPLE_COUNTS
    assert evaluation.SUBSET_MAPPING == constants.SUBSET_MAPPING
    rng = np.random.default_rng(1)
    for keep in (1.0, 0.5):  # every subset, then a random half of them
        subsets = [s for s in constants.EXAMPLE_COUNTS if rng.random() < keep]
        accuracies = {s: float(rng.random()) for s in subsets}
        theirs = utils.calculate_scores_per_section(constants.EXAMPLE_COUNTS, constants.SUBSET_MAPPING, accuracies)
        mine = evaluation.rewardbench_sections(accuracies)
        assert mine.keys() == theirs.keys()
        for section in theirs:
            assert mine[section] == pytest.approx(theirs[section], abs=1e-12)
    assert evaluation.rewardbench_sections({"my-own-subset": 0.9}) is None


def test_report_of_rewardbench_subsets_uses_the_weighted_sections():
    pairs, results = synthetic(n=30)
    report = evaluation.report(evaluation.pair_frame(pairs, results))
    rb = report["rewardbench"]
    subsets = report["subsets"]
    assert rb["sections"]["Chat"] == pytest.approx(subsets["alpacaeval-easy"]["accuracy"])
    assert rb["sections"]["Chat Hard"] is None and not rb["complete"]  # no Chat Hard subset in this data
    assert rb["score"] == pytest.approx(np.mean([v for v in rb["sections"].values() if v is not None]))


def test_annotation_labels_share_the_analysis():
    """An annotator's choice among N candidates is N - 1 pairs (the choice against each other one)."""
    import json

    import pandas as pd

    rng = np.random.default_rng(2)
    rows, expected = [], []
    for i, choice in enumerate([0, 2, 1]):
        rewards = rng.normal(size=(3, 19))
        coefficients = rng.random(19)
        scores = rewards @ coefficients
        r = ScoreResult(scores, rewards, coefficients, coefficients, np.eye(19), 5, np.array([10, 20, 30]))
        rows.append({"file_id": "f", "item_id": f"q{i}", "annotator": "ana", "choice": choice,
                     "result": json.dumps(r.to_dict())})  # fmt: skip
        expected += [(scores[choice] > scores[k], rewards[choice] > rewards[k]) for k in range(3) if k != choice]
    tie = {**rows[0], "item_id": "q9", "choice": -1}  # a tie and an "all bad" prefer nothing: no pairs
    frame = evaluation.label_pairs(pd.DataFrame([*rows, tie, {**tie, "item_id": "q8", "choice": -2}]))
    assert len(frame) == 6 and set(frame["subset"]) == {"ana"}
    assert list(frame["group"]) == ["f/q0", "f/q0", "f/q1", "f/q1", "f/q2", "f/q2"]  # an item's pairs held out together
    report = evaluation.report(frame)
    assert report["overall"]["accuracy"] == pytest.approx(np.mean([right for right, _ in expected]))
    alone = np.mean([better for _, better in expected], axis=0)
    np.testing.assert_allclose([o["alone_right"] for o in report["objectives"]], alone)


def test_the_report_carries_probabilities_calibration_and_baselines():
    from sklearn.metrics import brier_score_loss, log_loss

    pairs, results = synthetic(n=90)
    frame = evaluation.pair_frame(pairs, results)
    report = evaluation.report(frame)
    margins = np.array([r.scores[0] - r.scores[1] for r in results])
    p = 1 / (1 + np.exp(-margins))
    np.testing.assert_allclose([row["probability"] for row in report["per_pair"]], p, rtol=1e-12)
    np.testing.assert_allclose(
        [w["probability"] for w in report["worst"]], np.sort(p[margins <= 0])[: evaluation.WORST]
    )
    # each pair counted in both orders: (p, chosen) and (1 - p, not chosen)
    y, q = np.r_[np.ones(90), np.zeros(90)], np.r_[p, 1 - p]
    assert report["brier"] == pytest.approx(brier_score_loss(y, q)) and report["log_loss"] == pytest.approx(
        log_loss(y, q)
    )
    assert 0 <= report["ece"] <= 1 and report["accuracy"] == report["overall"]["accuracy"]
    # the rule "pick the longer answer" is always right here (the chosen answer is the longer one), per subset too
    assert report["baselines"]["length_only"]["accuracy"] == 1.0
    for s in report["subsets"].values():
        assert s["length_only"] == evaluation.accuracy(np.ones(30, bool))
    tokens = np.array([r.candidate_tokens for r in results])
    matched = np.abs(tokens[:, 0] - tokens[:, 1]) <= 0.1 * tokens.max(axis=1)
    assert report["baselines"]["length_matched"]["n"] == matched.sum()
    assert report["prompts"] is None and json.dumps(report, allow_nan=False)


def test_the_report_fits_weights_and_compares_the_rules_on_the_same_pairs():
    """Labels made by a hidden rule that weighs objective 5 only: the fitted weights find it and beat the model,
    which weighs objective 3; the paired comparison says so."""
    rng = np.random.default_rng(4)
    coefficients = np.zeros(19)
    coefficients[3] = 0.5
    pairs, results = [], []
    for k in range(300):
        rewards = rng.normal(size=(2, 19))
        if rewards[0, 5] < rewards[1, 5]:  # the people's choice is the answer with more of objective 5
            rewards = rewards[::-1].copy()
        results.append(ScoreResult(rewards @ coefficients, rewards, np.full(19, 1 / 19), coefficients, np.eye(19),
                                   10, np.array([40, 40])))  # fmt: skip
        pairs.append(FakePair(f"p{k}", "s"))
    fit = evaluation.report(evaluation.pair_frame(pairs, results))["fit"]
    assert fit["fitted_accuracy"] > 0.9 and 0.35 < fit["model_accuracy"] < 0.65
    assert int(np.argmax(np.abs(fit["weights"]))) == 5 and fit["weights"][5] > 0
    paired = fit["paired"]
    assert paired["difference"] == pytest.approx(fit["fitted_accuracy"] - fit["model_accuracy"])
    assert 0 < paired["low"] <= paired["difference"] <= paired["high"] and paired["p_value"] < 1e-6
    assert fit["what_if"]["multipliers"][5] > fit["what_if"]["multipliers"][3]
    few = evaluation.report(evaluation.pair_frame(pairs[:5], results[:5]))["fit"]
    assert "error" in few and "20" in few["error"]


def test_weights_are_fitted_to_annotation_labels_too():
    import pandas as pd

    from armorm_ui.ui.evaluate import fit_text

    rng = np.random.default_rng(5)
    rows = []
    for i in range(30):
        rewards = rng.normal(size=(2, 19))
        coefficients = rng.random(19)
        r = ScoreResult(rewards @ coefficients, rewards, coefficients, coefficients, np.eye(19), 5, np.array([9, 9]))
        choice = int(rewards[1, 7] > rewards[0, 7])  # the annotator goes by objective 7
        rows.append({"file_id": "f", "item_id": f"q{i}", "annotator": "ana", "choice": choice,
                     "result": json.dumps(r.to_dict())})  # fmt: skip
    found = evaluation.report(evaluation.label_pairs(pd.DataFrame(rows)))
    assert found["fit"]["pairs"] == 30 and int(np.argmax(found["fit"]["weights"])) == 7
    assert "held-out accuracy" in fit_text(found)
