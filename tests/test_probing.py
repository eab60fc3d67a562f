"""Probing on the fake backend (known outputs, float64): the exact split of every change, skips, ranks, and the
data-set figures against a direct numpy/scipy computation on a set whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from armorm_ui import probes
from armorm_ui.objectives import NUM_OBJECTIVES, VERBOSITY_INDEX
from armorm_ui.probing import outcomes_from_dict, probe_answer, probe_item, probe_report
from armorm_ui.scoring import Scorer, ScorerConfig

from . import fakes
from .fakes import FakeBackend, FakeTokenizer

USER = [{"role": "user", "content": "Why write unit tests?"}]
ANSWER = ("Unit tests catch regressions early, before users see them. They also document behaviour.\n\n"
          "Good tests are fast and independent. Run them on every change.")  # fmt: skip
OTHER = "Tests are good."


def test_answer_probes_keep_the_gate_and_split_exactly(fake_scorer):
    found = probe_answer(fake_scorer, USER, [ANSWER, OTHER], 0)
    base = fake_scorer.score(USER, [ANSWER, OTHER])
    answer_side = [o for o in found.applied if o.probe.side == "answer"]
    assert len(answer_side) == 12  # every answer-side probe applies to this answer
    assert [c.method for c in fake_scorer.backend.calls].count("score_variants") == 1  # all of them in one call
    for o in answer_side:
        direct = fake_scorer.score(USER, [o.answer])
        np.testing.assert_array_equal(direct.gating_output, base.gating_output)  # the gate reads the prompt only
        np.testing.assert_array_equal(direct.coefficients, base.coefficients)
        assert o.delta == pytest.approx(direct.scores[0] - base.scores[0], abs=1e-12)
        assert abs(o.parts.sum() - o.delta) < 1e-9 and not o.weight_part.any()
        np.testing.assert_allclose(o.reward_part, base.coefficients * (direct.rewards[0] - base.rewards[0]),
                                   atol=1e-12)  # fmt: skip
        assert o.scores_after[1] == base.scores[1]  # the other answer is not touched
        assert o.tokens_added == int(direct.candidate_tokens[0] - base.candidate_tokens[0])


def test_conversation_probes_split_into_reward_and_weight_parts(fake_scorer):
    found = probe_answer(fake_scorer, USER, [ANSWER, OTHER], 1)
    scored = [c for c in fake_scorer.backend.calls if c.method == "score"]
    assert len(scored) == 2 and len(scored[1].conversations) == 3  # the request, then all three edits in one call
    base = fake_scorer.score(USER, [ANSWER, OTHER])
    side = [o for o in found.outcomes if o.probe.side == "conversation"]
    assert [o.probe.name for o in side] == ["user_agrees", "user_disagrees", "brevity_system"]
    assert all(o.applied for o in side)
    for o in side:
        new = fake_scorer.score(o.messages, [ANSWER, OTHER])
        assert o.answer == OTHER and o.messages != USER
        assert not np.allclose(new.coefficients, base.coefficients)  # the gate moved
        reward = base.coefficients @ (new.rewards[1] - base.rewards[1])
        weight = (new.coefficients - base.coefficients) @ new.rewards[1]
        assert o.reward_part.sum() == pytest.approx(reward, abs=1e-12)
        assert o.weight_part.sum() == pytest.approx(weight, abs=1e-12)
        assert abs(o.reward_part.sum() + o.weight_part.sum() - o.delta) < 1e-9
        np.testing.assert_allclose(o.scores_after, new.scores, atol=1e-12)  # every candidate, rescored
        assert o.tokens_added == new.prompt_tokens - base.prompt_tokens


def test_ranks_and_sentences(fake_scorer):
    found = probe_answer(fake_scorer, USER, [ANSWER, OTHER, "Because they help."], 2)
    for o in found.applied:
        order = np.argsort(-o.scores_after, kind="stable")
        assert o.rank_after == int(np.where(order == 2)[0][0]) + 1
        text = o.sentence()
        assert text.startswith(o.probe.label) and f"{o.tokens_added:+d} tokens" in text
        assert ("the ranking stays" in text) == (o.rank_before == o.rank_after)
    for o in found.skipped:
        assert o.sentence() == f"{o.probe.label}: skipped ({o.skipped})."
    d = found.to_dict()
    assert d["candidate"] == "C" and [p["probe"] for p in d["probes"]] == [p.name for p in probes.PROBES]


def test_an_edit_past_the_token_limit_is_skipped_not_an_error():
    scorer = Scorer(FakeBackend(), FakeTokenizer(), ScorerConfig(max_tokens=len(ANSWER) + 60))
    found = {o.probe.name: o for o in probe_answer(scorer, USER, [ANSWER], 0).outcomes}
    assert "past the limit of" in found["repeat"].skipped and "tokens" in found["repeat"].skipped
    assert found["first_half"].applied and found["opener"].applied
    assert "the edited conversation" in found["user_agrees"].skipped  # the longer prompt passes the limit too


def test_a_bad_candidate_index_is_refused(fake_scorer):
    from armorm_ui.errors import InputError

    with pytest.raises(InputError, match="Candidate C does not exist; there are 2"):
        probe_answer(fake_scorer, USER, [ANSWER, OTHER], 2)


def test_a_record_round_trips_and_a_damaged_one_is_refused(fake_scorer):
    chosen = probes.by_names("padding,first_half,brevity_system")
    base, record = probe_item(fake_scorer, USER, [ANSWER, OTHER], chosen)
    back = outcomes_from_dict(record, base, USER, [ANSWER, OTHER], chosen)
    direct = [o for k in range(2) for o in probe_answer(fake_scorer, USER, [ANSWER, OTHER], k, chosen).outcomes]
    assert [(o.probe.name, o.index, o.skipped, o.delta, o.answer) for o in back] == [
        (o.probe.name, o.index, o.skipped, o.delta, o.answer) for o in direct
    ]
    record[0]["probes"][0]["reward_part"] = record[0]["probes"][0]["reward_part"][:18]
    with pytest.raises(ValueError, match="wrong shape"):
        outcomes_from_dict(record, base, USER, [ANSWER, OTHER], chosen)
    with pytest.raises(ValueError, match="every probe"):
        outcomes_from_dict(probe_item(fake_scorer, USER, [ANSWER, OTHER], chosen[:2])[1], base, USER,
                           [ANSWER, OTHER], chosen)  # fmt: skip


# ------------------------------------------------------------------------------------------------------ data sets


def length_rewards(candidate_ids) -> np.ndarray:
    """A checkpoint whose only signal is length: verbosity = tokens / 100, every other reward 0."""
    r = np.zeros(NUM_OBJECTIVES)
    r[VERBOSITY_INDEX] = len(candidate_ids) / 100.0
    return r


def sentences(n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    words = ["tests", "catch", "bugs", "early", "code", "stays", "clear", "and", "safe", "for", "users"]
    return " ".join(" ".join(rng.choice(words, size=6)).capitalize() + "." for _ in range(n))


def test_data_set_figures_equal_a_direct_computation(monkeypatch):
    monkeypatch.setattr(fakes, "fake_rewards", length_rewards)
    scorer = Scorer(FakeBackend(), FakeTokenizer(), ScorerConfig())
    chosen = probes.by_names("padding,first_half,opener,bold")
    pairs = []  # (chosen, rejected): the longer answer wins under this checkpoint
    for i in range(12):
        a, b = sentences(2 + i % 5, i), sentences(1 + (i * 7) % 6, 100 + i)
        pairs.append((a, b))
    outcomes = []
    for a, b in pairs:
        base, record = probe_item(scorer, USER, [a, b], chosen)
        outcomes += outcomes_from_dict(record, base, USER, [a, b], chosen)
    report = {p["probe"]: p for p in probe_report(outcomes, chosen, pairs=True)["probes"]}

    c_v = scorer.score(USER, ["x"]).coefficients[VERBOSITY_INDEX]
    assert c_v > 0
    for name in ("padding", "first_half", "opener"):
        edits = [(k, a, b, probes.apply(probes.BY_NAME[name], USER, [a, b][k])) for a, b in pairs for k in (0, 1)]
        applied = [(k, a, b, e) for k, a, b, e in edits if e.skipped is None]
        deltas, flips, rescues = [], [], []
        for k, a, b, e in applied:  # the direct way: score the edited text beside the other answer
            before = scorer.score(USER, [a, b]).scores
            texts = [a, b]
            texts[k] = e.answer
            after = scorer.score(USER, texts).scores
            deltas.append(after[k] - before[k])
            if k == 1 and before[0] > before[1]:
                flips.append(after[1] > after[0])
            if k == 0 and not before[0] > before[1]:
                rescues.append(after[0] > after[1])
        deltas = np.array(deltas)
        got = report[name]
        assert got["applied"] == len(applied) and got["skipped"] == len(edits) - len(applied)
        assert got["mean_delta"] == pytest.approx(deltas.mean(), abs=1e-12)
        low, high = stats.t.interval(0.95, len(deltas) - 1, loc=deltas.mean(), scale=stats.sem(deltas))
        assert (got["low"], got["high"]) == pytest.approx((low, high), abs=1e-12)
        assert got["raised"]["k"] == int((deltas > 0).sum())
        ci = stats.binomtest(got["raised"]["k"], len(deltas)).proportion_ci(method="wilson")
        assert (got["raised"]["low"], got["raised"]["high"]) == pytest.approx((ci.low, ci.high), abs=1e-12)
        parts = np.zeros(NUM_OBJECTIVES)
        parts[VERBOSITY_INDEX] = deltas.mean()  # length is the only signal: all of it goes through Verbosity
        np.testing.assert_allclose(got["mean_parts"], parts, atol=1e-12)
        for rate, flags in (("flip", flips), ("rescue", rescues)):
            assert got[rate]["n"] == len(flags) and got[rate]["k"] == int(sum(flags))
            if flags:
                ci = stats.binomtest(int(sum(flags)), len(flags)).proportion_ci(method="wilson")
                assert (got[rate]["low"], got[rate]["high"]) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert report["padding"]["raised"]["rate"] == 1.0 and report["padding"]["mean_delta"] > 0  # known by design
    assert report["first_half"]["raised"]["rate"] == 0.0 and report["first_half"]["mean_delta"] < 0
    assert report["padding"]["flip"]["k"] > 0  # padding the shorter, rejected answer makes it win
    assert report["padding"]["mean_tokens_added"] == pytest.approx(
        len(probes.PADDING) + 1
    )  # a char a token, "\n\n" one
    assert report["bold"]["applied"] == 24 and math.isfinite(report["bold"]["mean_delta"])


def test_on_the_demo_checkpoint_the_gate_does_not_move_and_the_parts_add_up(scorer):
    """The real backbone: the edited answer scored on its own has the original's gating (the gate reads the
    conversation only; equal to float32 rounding across layouts), and each probe's parts add up to its Δscore."""
    found = probe_answer(scorer, USER, [ANSWER, OTHER], 0)
    base = scorer.score(USER, [ANSWER, OTHER])
    assert len(found.applied) == 15
    for o in found.applied:
        assert abs(o.parts.sum() - o.delta) < 1e-9
        if o.probe.side == "answer":
            direct = scorer.score(USER, [o.answer])
            np.testing.assert_allclose(direct.gating_output, base.gating_output, atol=1e-6)
            assert o.scores_after[0] == pytest.approx(direct.scores[0], abs=1e-5)
        else:
            assert o.scores_after[0] == pytest.approx(scorer.score(o.messages, [ANSWER, OTHER]).scores[0], abs=1e-12)
