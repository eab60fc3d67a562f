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
        figures = re.sub(r" \(\w+ is preferred with probability [^)]*\)", "", text.split("by ", 1)[1])
        numbers = [float(x) for x in re.findall(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", figures)]
        margin, parts = numbers[0], numbers[1:-2] + numbers[-1:]  # drop the count of other objectives
        assert margin == pytest.approx(v.margin, rel=1e-3)
        assert sum(parts) == pytest.approx(v.margin, rel=1e-2, abs=1e-3), text
    single = ScoreResult(np.array([0.5]), np.zeros((1, 19)), np.ones(19), np.ones(19), np.eye(19))
    assert explain.verdict_text(explain.verdict(single), ["A"]) == "**A** is the only candidate scored."


def reference_probability(m: float) -> float:
    """1 / (1 + exp(-m)) in 50-digit decimal arithmetic: no float overflow, independent of the code under test."""
    from decimal import Decimal, localcontext

    with localcontext() as ctx:
        ctx.prec = 50
        return float(1 / (1 + (-Decimal(float(m))).exp()))


MARGINS = [0.0, 1e-3, -1e-3, 1.0, -1.0, 2.5, -7.0, 50.0, -50.0, 800.0, -800.0]


def test_preference_probability_is_the_sigmoid_of_the_margin_without_overflow():
    import warnings

    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        for m in MARGINS:
            p = explain.preference_probability(m)
            assert isinstance(p, float) and 0 <= p <= 1
            assert p == pytest.approx(reference_probability(m), rel=1e-12, abs=1e-300), m
            assert p + explain.preference_probability(-m) == pytest.approx(1.0, abs=1e-15)
        many = explain.preference_probability(np.array(MARGINS))  # an array in, an array of the same shape out
        assert isinstance(many, np.ndarray) and many.shape == (len(MARGINS),)
        np.testing.assert_allclose(many, [reference_probability(m) for m in MARGINS], rtol=1e-12, atol=1e-300)
        grid = explain.preference_probability(np.array(MARGINS).reshape(-1, 1) * [1, 0.5])
        assert grid.shape == (len(MARGINS), 2)
    assert explain.preference_probability(0.0) == 0.5
    assert explain.preference_probability(-50.0) == pytest.approx(1.9287498479639178e-22, rel=1e-12)  # no 1 - p loss
    assert explain.preference_probability(2.0, temperature=2.0) == pytest.approx(reference_probability(1.0))
    with pytest.raises(ValueError, match="temperature"):
        explain.preference_probability(1.0, temperature=0)


def test_preference_matrix_is_antisymmetric_and_matches_the_scores():
    scores = np.array([-3.2, 0.4, 0.4, 60.0, -800.0])
    P = explain.preference_matrix(scores)
    assert P.shape == (5, 5)
    np.testing.assert_allclose(P + P.T, 1.0, atol=1e-15)
    np.testing.assert_array_equal(np.diag(P), 0.5)
    for i, j in np.ndindex(5, 5):
        assert P[i, j] == pytest.approx(reference_probability(scores[i] - scores[j]), rel=1e-12, abs=1e-300)


def test_probability_words_and_text():
    words = ["close to a tie", "close to a tie", "a slight preference", "a clear preference", "a strong preference"]
    assert [explain.probability_words(p) for p in (0.5, 0.544, 0.56, 0.72, 0.93)] == words
    assert explain.probability_words(0.2) == explain.probability_words(0.8)  # symmetric: how sure, not which side
    assert explain.probability_words(0.5496) == "a slight preference"  # judged as shown: 0.55
    assert [explain.probability_text(p) for p in (0.5, 0.514, 0.996, 0.004, 1.0)] == [
        "0.50", "0.51", "above 0.99", "below 0.01", "above 0.99"]  # fmt: skip


def test_the_verdict_says_the_winner_s_preference_probability():
    import re

    r = make_result(n=3, seed=5)
    v = explain.verdict(r)
    labels = explain.candidate_labels(3)
    w, ru = labels[v.winner], labels[v.runner_up]
    p = reference_probability(float(r.scores[v.winner] - r.scores[v.runner_up]))
    assert v.probability == pytest.approx(p, rel=1e-12) and p > 0.5
    text = explain.verdict_text(v, labels)
    shown = f"{p:.2f}" if p < 0.995 else "above 0.99"
    assert text.startswith(f"**{w} beats {ru}** by {v.margin:.4g} ({w} is preferred with probability {shown}: ")
    assert re.search(rf"with probability {re.escape(shown)}: {explain.probability_words(p)}\)", text), text
    for margin, words in ((0.01, "close to a tie"), (0.5, "a slight preference"), (1.2, "a clear preference"),
                          (5.0, "a strong preference")):  # fmt: skip
        close = explain.Verdict(1, 0, margin, v.deltas, v.reasons, v.against)
        said = explain.verdict_text(close, ["A", "B"])
        shown = explain.probability_text(explain.preference_probability(margin))
        assert f"(B is preferred with probability {shown}: {words})" in said, said
    tie = explain.Verdict(0, 1, 0.0, np.zeros(19), [], [])
    assert explain.verdict_text(tie, ["A", "B"]) == "**A** and **B** tie (each is preferred with probability 0.50)."
