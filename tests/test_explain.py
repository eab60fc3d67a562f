"""Pure math on results: checked against direct computations and the card's identities."""

import numpy as np
import pytest

from armorm_ui import explain
from armorm_ui.results import ScoreResult


def make_result(n=4, seed=0) -> ScoreResult:
    rng = np.random.default_rng(seed)
    rewards = rng.normal(0.5, 0.3, size=(n, 19))
    gating = rng.dirichlet(np.ones(19)) * 1.3
    T = np.eye(19)
    T[4] = -rng.uniform(0, 0.3, 19)
    T[4, 4] = 0
    coeffs = gating @ T.T
    return ScoreResult((rewards @ T) @ gating, rewards, gating, coeffs, T, 10, np.full(n, 5))


def test_contributions_sum_to_scores():
    r = make_result()
    np.testing.assert_allclose(explain.contributions(r).sum(1), r.scores, atol=1e-12)
    np.testing.assert_allclose(explain.coefficients(r.gating_output, r.reward_transform_matrix), r.coefficients)


def test_verbosity_coefficient_is_a_penalty():
    r = make_result()
    assert r.coefficients[4] < 0  # what the transform does: verbosity is debiased, not rewarded


def test_top_k_is_by_magnitude():
    c = np.zeros(19)
    c[[14, 4, 6]] = [0.19922, -0.10864, 0.07861]
    assert explain.top_k(c, 3) == [
        ("code-complexity", 0.19922),
        ("helpsteer-verbosity", -0.10864),
        ("ultrafeedback-instruction_following", 0.07861),
    ]


def test_top_k_contributions():
    r = make_result()
    top = explain.top_k_contributions(r, 5)
    contrib = explain.contributions(r)
    for row, items in zip(contrib, top):
        assert len(items) == 5
        assert abs(items[0][1]) == pytest.approx(np.abs(row).max())


def test_native_clamps_and_flags():
    rewards = np.full((1, 19), 0.5)
    rewards[0, 0] = 1.2  # helpfulness 5.5: above 0-4
    rewards[0, 5] = -0.1  # UF overall -0.5: below 1-10
    nat = explain.native(rewards)
    assert nat.values[0, 0] == pytest.approx(5.5) and nat.shown[0, 0] == 4
    assert nat.values[0, 5] == pytest.approx(-0.5) and nat.shown[0, 5] == 1
    assert nat.outside[0].sum() == 2
    assert nat.shown[0, 1] == pytest.approx(2.0)


def test_helpsteer_view():
    r = make_result()
    np.testing.assert_allclose(explain.helpsteer(r.rewards), r.rewards[:, :5] * 5 - 0.5)


def test_ranks_and_margin():
    s = np.array([0.1, 0.3, -0.2, 0.3])
    assert explain.ranks(s).tolist() == [3, 1, 4, 2]
    assert explain.margin(s) == 0.0
    assert explain.margin(np.array([0.5, 0.2])) == pytest.approx(0.3)
    assert explain.margin(np.array([0.5])) == 0.0


def test_pairwise_splits_the_difference():
    r = make_result()
    d = explain.pairwise(r, 2, 0)
    assert d.sum() == pytest.approx(r.scores[2] - r.scores[0])


def test_what_if_equals_direct_computation():
    r = make_result()
    w = np.ones(19)
    np.testing.assert_allclose(explain.what_if(r, w), r.scores)
    w[1] = 3.0  # care more about correctness
    w[3] = 0.0  # ignore complexity
    direct = np.array([sum(r.rewards[k, i] * r.coefficients[i] * w[i] for i in range(19)) for k in range(r.n)])
    np.testing.assert_allclose(explain.what_if(r, w), direct)
    with pytest.raises(ValueError, match="expected 19 weights"):
        explain.what_if(r, np.ones(3))


def test_labels():
    assert explain.candidate_labels(3) == ["A", "B", "C"]


def test_result_round_trips_json():
    r = make_result()
    back = ScoreResult.from_dict(r.to_dict())
    np.testing.assert_allclose(back.rewards, r.rewards)
    np.testing.assert_allclose(back.scores, r.scores)


def test_the_verdict_adds_up_to_the_score_difference():
    import re

    from armorm_ui.results import ScoreResult

    rng = np.random.default_rng(3)
    for n in (2, 3, 8):
        rewards = rng.normal(size=(n, 19))
        gating = rng.random(19)
        T = np.eye(19) + 0.05 * rng.normal(size=(19, 19))
        result = ScoreResult((rewards @ T) @ gating, rewards, gating, gating @ T.T, T)
        v = explain.verdict(result)
        order = np.argsort(-result.scores)
        assert (v.winner, v.runner_up) == (order[0], order[1])
        assert v.margin == pytest.approx(result.scores[order[0]] - result.scores[order[1]], abs=1e-12)
        assert v.deltas.sum() == pytest.approx(v.margin, abs=1e-12)
        assert all(v.deltas[i] > 0 for i in v.reasons) and all(v.deltas[i] < 0 for i in v.against)
        text = explain.verdict_text(v, explain.candidate_labels(n))
        numbers = [float(x) for x in re.findall(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text.split("by ", 1)[1])]
        margin, parts = numbers[0], numbers[1:-2] + numbers[-1:]  # drop the count of other objectives
        assert margin == pytest.approx(v.margin, rel=1e-3)
        assert sum(parts) == pytest.approx(v.margin, rel=1e-2, abs=1e-3), text
    single = ScoreResult(np.array([0.5]), np.zeros((1, 19)), np.ones(19), np.ones(19), np.eye(19))
    assert explain.verdict_text(explain.verdict(single), ["A"]) == "**A** is the only candidate scored."
