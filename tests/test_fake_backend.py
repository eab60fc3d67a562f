"""The scorer's own work on the fake backend (tests/fakes.py: known outputs, no torch): the result cache, the one
model slot, validation, batch chunks, errors named by their place in the request, and the views of a result.

One test runs the whole path (scorer, explanation, figures, tables, the Compare tab's views) in a fresh interpreter
and checks that neither torch nor transformers was imported. Waits use events and deadlines, never fixed sleeps.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from armorm_ui.errors import InputError, ScoringError
from armorm_ui.scoring import Scorer, ScorerConfig
from armorm_ui.validation import Limits

from .fakes import TRANSFORM, FakeBackend, FakeTokenizer, fake_gating, fake_rewards

ROOT = Path(__file__).resolve().parent.parent
USER = [{"role": "user", "content": "Which answer is better?"}]
WAIT = 30.0  # seconds any wait may take on a busy machine before the test fails (events end it far sooner)


def scorer_with(backend: FakeBackend | None = None, **config) -> Scorer:
    return Scorer(backend or FakeBackend(), FakeTokenizer(), ScorerConfig(**config))


def expected(scorer: Scorer, messages, candidates):
    """Rewards (N, 19) and gating (19,) computed from the fake's formulas, not through the scorer's cache."""
    enc = scorer.encoder.encode(messages, candidates)
    return np.array([fake_rewards(c) for c in enc.candidate_ids]), fake_gating(enc.prefix_ids, enc.gate_position)


class Runner(threading.Thread):
    """scorer.score in a thread of its own; keeps its result or its error. `waiting` is set the first time the
    scorer polls its stop flag while waiting for the model slot (it polls only after failing to take it)."""

    def __init__(self, scorer: Scorer, candidates, stop: threading.Event | None = None, messages=USER):
        super().__init__(daemon=True)
        self.scorer, self.candidates, self.messages = scorer, candidates, messages
        self.stop = stop or threading.Event()
        self.waiting = threading.Event()
        self.result = self.error = None

    def should_stop(self) -> bool:
        self.waiting.set()
        return self.stop.is_set()

    def run(self):
        try:
            self.result = self.scorer.score(self.messages, self.candidates, should_stop=self.should_stop)
        except Exception as e:  # noqa: BLE001 - kept for the test to inspect
            self.error = e

    def finish(self):
        self.join(WAIT)
        assert not self.is_alive(), "a scoring thread did not finish"
        return self


# ------------------------------------------------------------------------------------------------- torch absent


def test_the_whole_path_runs_without_torch(tmp_path):
    """Scorer, explanation, figures, tables and the Compare tab's views on the fake: torch and transformers are never
    imported (gradio, which armorm_ui.ui imports, does not import torch either)."""
    script = textwrap.dedent(
        """
        import sys

        import numpy as np

        from armorm_ui import explain, figures, tables
        from armorm_ui.results import ScoreResult
        from armorm_ui.scoring import Scorer, ScorerConfig
        from armorm_ui.ui import views
        from tests.fakes import TRANSFORM, FakeBackend, FakeTokenizer, fake_gating, fake_rewards

        scorer = Scorer(FakeBackend(), FakeTokenizer(), ScorerConfig())
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
        responses = ["Blue.", "Red, or perhaps green.", "I cannot say."]
        state = views.analyse(scorer, messages, responses)
        result = ScoreResult.from_dict(state["result"])
        enc = scorer.encoder.encode(messages, responses)
        np.testing.assert_allclose(result.rewards, [fake_rewards(c) for c in enc.candidate_ids])
        np.testing.assert_allclose(result.gating_output, fake_gating(enc.prefix_ids, enc.gate_position))
        np.testing.assert_allclose(result.coefficients, result.gating_output @ TRANSFORM.T)
        # the model card's identity: score = sum over objectives of reward x coefficient
        np.testing.assert_allclose((result.rewards * result.coefficients).sum(axis=1), result.scores, atol=1e-12)
        np.testing.assert_allclose(explain.contributions(result).sum(axis=1), result.scores, atol=1e-12)
        shown = views.views(state)
        assert set(shown) >= {"summary", "ranking", "scores", "heatmap", "contributions", "what_if_table"}
        for name, view in shown.items():
            if hasattr(view, "to_json"):
                view.to_json()
        assert list(shown["ranking"]["candidate"]) == [state["labels"][k] for k in np.argsort(-result.scores)]
        csv_path, json_path = views.export_files(state)
        figures.scores(result, state["labels"]).to_json()
        tables.to_csv(tables.export_frame(result, state["labels"], responses))
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
        assert not bad, bad
        print("torch-free:", len(shown), "views")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "torch-free: 14 views" in done.stdout


# ----------------------------------------------------------------------------------------------- known outputs


def test_the_scorer_returns_the_fakes_outputs_with_the_cards_identities(fake_scorer):
    candidates = ["One.", "Two, longer.", "Three\n\nparagraphs."]
    got = fake_scorer.score(USER, candidates)
    rewards, gating = expected(fake_scorer, USER, candidates)
    np.testing.assert_allclose(got.rewards, rewards)
    np.testing.assert_allclose(got.gating_output, gating)
    np.testing.assert_allclose(got.reward_transform_matrix, TRANSFORM)
    np.testing.assert_allclose(got.coefficients, gating @ TRANSFORM.T)
    np.testing.assert_allclose(got.scores, (rewards @ TRANSFORM) @ gating)
    np.testing.assert_allclose((got.rewards * got.coefficients).sum(axis=1), got.scores, atol=1e-12)
    assert fake_scorer.backend.texts() == [candidates]
    enc = fake_scorer.encoder.encode(USER, candidates)
    assert got.prompt_tokens == len(enc.prefix_ids)
    assert got.candidate_tokens.tolist() == [len(c) for c in enc.candidate_ids]


def test_score_variants_is_one_backend_call(fake_scorer):
    got = fake_scorer.score_variants(USER, "Alpha beta gamma.", ["Alpha gamma.", "Alpha beta."])
    rewards, _ = expected(fake_scorer, USER, ["Alpha beta gamma.", "Alpha gamma.", "Alpha beta."])
    np.testing.assert_allclose(got.rewards, rewards)
    assert fake_scorer.backend.texts("score_variants") == [["Alpha beta gamma.", "Alpha gamma.", "Alpha beta."]]
    assert fake_scorer.backend.texts("score") == []


# ------------------------------------------------------------------------------------------------------- cache


def test_a_repeated_candidate_is_not_recomputed(fake_scorer):
    first = fake_scorer.score(USER, ["One.", "Two."])
    second = fake_scorer.score(USER, ["Two.", "Three."])
    assert fake_scorer.backend.texts() == [["One.", "Two."], ["Three."]]
    np.testing.assert_array_equal(second.rewards[0], first.rewards[1])
    assert second.candidate_tokens[0] == first.candidate_tokens[1]
    fake_scorer.score(USER, ["Three.", "One.", "Two."])  # all cached: the backend is not called at all
    assert len(fake_scorer.backend.calls) == 2
    other = [{"role": "user", "content": "Another question?"}]
    fake_scorer.score(other, ["One."])  # the same text in another conversation is another pair
    assert fake_scorer.backend.texts()[-1] == ["One."] and len(fake_scorer.backend.calls) == 3


def test_duplicates_within_a_request_are_computed_once(fake_scorer):
    got = fake_scorer.score(USER, ["One.", "Two.", "One.", "One."])
    assert fake_scorer.backend.texts() == [["One.", "Two."]]
    np.testing.assert_array_equal(got.rewards[0], got.rewards[2])
    np.testing.assert_array_equal(got.rewards[0], got.rewards[3])
    assert got.scores[0] == got.scores[2] == got.scores[3]


def test_results_are_the_same_with_the_cache_off(fake_scorer):
    uncached = scorer_with(cache_size=0)
    candidates = ["One.", "Two.", "One."]
    for _ in range(2):
        got = uncached.score(USER, candidates)
        want = fake_scorer.score(USER, candidates)
        np.testing.assert_array_equal(got.rewards, want.rewards)
        np.testing.assert_array_equal(got.scores, want.scores)
    assert uncached.backend.texts() == [["One.", "Two."]] * 2  # recomputed each time; duplicates still once
    assert fake_scorer.backend.texts() == [["One.", "Two."]]


def test_the_cache_keeps_the_most_recent_pairs():
    small = scorer_with(cache_size=2)
    small.score(USER, ["A."])
    small.score(USER, ["B."])
    small.score(USER, ["A."])  # cached; now the most recent
    small.score(USER, ["C."])  # B, the least recent, goes
    small.score(USER, ["A."])
    small.score(USER, ["B."])
    assert small.backend.texts() == [["A."], ["B."], ["C."], ["B."]]


def test_a_full_cache_still_returns_a_hit_scored_with_new_candidates():
    small = scorer_with(cache_size=2)
    small.score(USER, ["A.", "B."])  # the cache is full: A is the least recent
    got = small.score(USER, ["A.", "C."])  # A is a hit; remembering C pushes A out
    rewards, _ = expected(small, USER, ["A.", "C."])
    np.testing.assert_allclose(got.rewards, rewards)
    assert small.backend.texts() == [["A.", "B."], ["C."]]


# -------------------------------------------------------------------------------------------------------- slot


def first_inside_second_waiting(fake_scorer):
    """A first request held inside the backend, and a second one that asked for the slot and did not get it."""
    backend = fake_scorer.backend
    backend.pause()
    first = Runner(fake_scorer, ["First."])
    first.start()
    assert backend.entered.wait(WAIT)
    second = Runner(fake_scorer, ["Second."])
    second.start()
    assert second.waiting.wait(WAIT)
    return backend, first, second


def test_an_interactive_request_waits_for_one_chunk_of_a_job_at_most(fake_scorer):
    """A long job (score_many, one item per model call) holds the slot per chunk: a request that asks meanwhile
    goes next, before the job's remaining chunks, and a second job's chunks wait behind both."""
    backend = fake_scorer.backend
    backend.pause()
    items = [(USER, [f"Job item {i}."]) for i in range(6)]
    done = {}
    job = threading.Thread(target=lambda: done.update(job=fake_scorer.score_many(items)), daemon=True)
    job.start()
    assert backend.entered.wait(WAIT)  # the job's first chunk is inside the backend
    other_job = threading.Thread(target=lambda: done.update(other=fake_scorer.score_many(items[:2])), daemon=True)
    other_job.start()
    asked = Runner(fake_scorer, ["Interactive."])
    asked.start()
    assert asked.waiting.wait(WAIT)
    deadline = time.monotonic() + WAIT
    while fake_scorer._slot.waiting() < 2:  # the second job in line too
        assert time.monotonic() < deadline
        time.sleep(0.01)
    backend.resume()
    asked.finish()
    job.join(WAIT)
    other_job.join(WAIT)
    assert asked.error is None and len(done["job"]) == 6 and len(done["other"]) == 2
    order = [t[0] for t in backend.texts()]
    assert order[:2] == ["Job item 0.", "Interactive."], order  # next after the chunk in flight
    assert fake_scorer.peak_concurrency == 1 and backend.peak_inside == 1


def test_a_second_request_waits_while_the_first_is_inside_the_backend(fake_scorer):
    backend, first, second = first_inside_second_waiting(fake_scorer)
    assert second.is_alive() and backend.texts() == [["First."]]
    backend.resume()
    first.finish()
    second.finish()
    assert first.error is None and second.error is None
    assert backend.texts() == [["First."], ["Second."]]
    assert fake_scorer.peak_concurrency == 1 and backend.peak_inside == 1
    rewards, _ = expected(fake_scorer, USER, ["Second."])
    np.testing.assert_allclose(second.result.rewards, rewards)


def test_a_request_cancelled_while_waiting_never_reaches_the_backend(fake_scorer):
    backend, first, second = first_inside_second_waiting(fake_scorer)
    second.stop.set()
    second.finish()  # it gave up while the first was still inside the backend
    assert isinstance(second.error, ScoringError) and "cancelled while waiting" in str(second.error)
    assert first.is_alive()
    backend.resume()
    first.finish()
    assert first.error is None and first.result.n == 1  # the other request's stop flag did not touch it
    assert backend.texts() == [["First."]]


def test_a_stop_flag_inside_the_backend_stops_only_its_own_request(fake_scorer):
    backend = fake_scorer.backend
    backend.pause()
    first = Runner(fake_scorer, ["First."])
    first.start()
    assert backend.entered.wait(WAIT)
    second = Runner(fake_scorer, ["Second.", "Third."])
    second.start()
    assert second.waiting.wait(WAIT)
    first.stop.set()  # the first request is cancelled while it holds the model: it stops at its next check
    backend.resume()
    first.finish()
    second.finish()
    assert isinstance(first.error, ScoringError) and "cancelled" in str(first.error)
    assert second.error is None and second.result.n == 2
    assert backend.texts() == [["First."], ["Second.", "Third."]]
    assert fake_scorer.peak_concurrency == 1 and backend.peak_inside == 1


def test_many_requests_at_once_run_one_at_a_time_and_keep_their_own_results(fake_scorer):
    start = threading.Barrier(8)

    class Together(Runner):
        def run(self):
            start.wait(WAIT)
            super().run()

    runners = [Together(fake_scorer, [f"Answer {i}.", "Shared."], messages=[{"role": "user", "content": f"Q{i}?"}])
               for i in range(8)]  # fmt: skip
    for r in runners:
        r.start()
    for r in runners:
        r.finish()
    for r in runners:
        assert r.error is None
        rewards, gating = expected(fake_scorer, r.messages, r.candidates)
        np.testing.assert_allclose(r.result.rewards, rewards)
        np.testing.assert_allclose(r.result.gating_output, gating)
    assert len(fake_scorer.backend.calls) == 8
    assert fake_scorer.peak_concurrency == 1 and fake_scorer.backend.peak_inside == 1


def test_the_deadline_is_checked_inside_the_backend(fake_scorer):
    fake_scorer.config.deadline = -1.0  # already past when the slot is taken
    with pytest.raises(ScoringError, match="limit per request"):
        fake_scorer.score(USER, ["Late."])


# -------------------------------------------------------------------------------------------------- validation

REFUSED = {
    "empty candidate": (USER, ["Fine.", ""], {}),
    "blank candidate": (USER, ["Fine.", "   \n"], {}),
    "no candidates": (USER, [], {}),
    "candidates not a list": (USER, "Fine.", {}),
    "too many candidates": (USER, [f"C{i}." for i in range(17)], {}),
    "too many tokens in the request": (USER, ["x" * 30, "y" * 30], {"max_request_tokens": 60}),
    "conversation + candidate too long": (USER, ["x" * 100], {"max_tokens": 80}),
    "field too long": (USER, ["x" * 50], {"limits": Limits(max_chars=40)}),
    "ends with the assistant": ([*USER, {"role": "assistant", "content": "Hm."}], ["Fine."], {}),
    "control character": (USER, ["Fine\x00."], {}),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_refused_request_never_reaches_the_backend(case):
    messages, candidates, config = REFUSED[case]
    scorer = scorer_with(**config)
    with pytest.raises(InputError):
        scorer.score(messages, candidates)
    with pytest.raises(InputError, match="Item 2"):
        scorer.score_many([(USER, ["Fine."]), (messages, candidates)])  # all items are checked before any runs
    assert scorer.backend.calls == []


def test_the_request_token_limit_counts_the_conversation_once(fake_scorer):
    enc = fake_scorer.encoder.encode(USER, ["x" * 30, "y" * 30])
    total = len(enc.prefix_ids) + sum(len(c) for c in enc.candidate_ids)
    at_limit = scorer_with(max_request_tokens=total)
    at_limit.score(USER, ["x" * 30, "y" * 30])
    with pytest.raises(InputError, match=f"{total + 1:,} tokens"):
        scorer_with(max_request_tokens=total).score(USER, ["x" * 30, "y" * 31])
    assert len(at_limit.backend.calls) == 1


# ------------------------------------------------------------------------------------------------------ chunks


def batch(n: int):
    return [([{"role": "user", "content": f"Question {i}?"}], [f"Answer {i}.", f"Other {i}."]) for i in range(n)]


def test_score_many_sends_chunks_of_at_most_chunk_tokens(fake_scorer):
    items = batch(7)
    size = fake_scorer.prepare(*items[0]).enc
    per_item = len(size.prefix_ids) + sum(len(c) for c in size.candidate_ids)  # every item has the same size
    scorer = scorer_with(FakeBackend(chunk_tokens=3 * per_item))
    progress = []
    got = scorer.score_many(items, progress=lambda done, total: progress.append((done, total)))
    calls = scorer.backend.calls
    assert [len(c.conversations) for c in calls] == [3, 3, 1]
    assert all(c.tokens <= 3 * per_item for c in calls)
    assert progress == [(0, 7), (3, 7), (6, 7)]
    for (messages, candidates), result in zip(items, got):
        rewards, gating = expected(scorer, messages, candidates)
        np.testing.assert_allclose(result.rewards, rewards)
        np.testing.assert_allclose(result.gating_output, gating)


def test_score_many_without_chunk_tokens_is_one_call_per_item(fake_scorer):
    got = fake_scorer.score_many(batch(4))
    assert not hasattr(fake_scorer.backend, "chunk_tokens") and fake_scorer.chunk_tokens == 0
    assert [len(c.conversations) for c in fake_scorer.backend.calls] == [1, 1, 1, 1]
    assert [r.n for r in got] == [2, 2, 2, 2]


def test_score_many_chunks_skip_what_is_cached(fake_scorer):
    scorer = scorer_with(FakeBackend(chunk_tokens=10_000))
    items = batch(3)
    scorer.score(*items[1])
    scorer.score_many(items)
    assert scorer.backend.texts() == [["Answer 1.", "Other 1."], ["Answer 0.", "Other 0."], ["Answer 2.", "Other 2."]]
    assert len(scorer.backend.calls) == 2


def test_score_many_stops_between_chunks(fake_scorer):
    backend = FakeBackend(chunk_tokens=1)  # one item per call
    scorer = scorer_with(backend)
    with pytest.raises(ScoringError, match="Stopped after 2 of 5 items"):  # the flag turns once call 2 returned
        scorer.score_many(batch(5), should_stop=lambda: backend.finished >= 2)
    assert len(backend.calls) == 2


# ------------------------------------------------------------------------------------------ candidate too large


def test_a_candidate_too_large_is_named_by_its_place_in_the_request():
    long = "x" * 200
    scorer = scorer_with(FakeBackend(max_candidate_tokens=100))
    scorer.score(USER, ["One.", "Two."])
    with pytest.raises(ScoringError, match=r"candidate 3 \(\d+ tokens\) alone") as info:
        scorer.score(USER, ["One.", "Two.", long, "Four."])
    assert not str(info.value).startswith("Item")
    assert scorer.backend.texts()[-1] == [long, "Four."]  # the backend saw it as its candidate 1 of 2
    tokens = len(scorer.encoder.encode(USER, [long]).full_ids(0))
    assert f"({tokens} tokens)" in str(info.value)


def test_a_candidate_too_large_in_a_chunk_names_its_item():
    scorer = scorer_with(FakeBackend(max_candidate_tokens=100, chunk_tokens=10_000))
    items = batch(3)
    items[1] = (items[1][0], ["Fine.", "x" * 200])
    with pytest.raises(ScoringError, match=r"^Item 2: .*candidate 2 "):
        scorer.score_many(items)


def test_a_candidate_too_large_after_the_first_chunk_names_its_item():
    scorer = scorer_with(FakeBackend(max_candidate_tokens=100, chunk_tokens=1))  # one item per chunk
    items = batch(3)
    items[2] = (items[2][0], ["x" * 200])
    with pytest.raises(ScoringError, match=r"^Item 3: .*candidate 1 "):
        scorer.score_many(items)


# ------------------------------------------------------------------------------------------------------- views


def test_the_compare_views_of_a_fake_result(fake_scorer):
    from armorm_ui import explain
    from armorm_ui.ui import views

    responses = ["Short.", "A longer answer, with detail.", "Medium answer."]
    state = views.analyse(fake_scorer, USER, responses)
    scores = np.asarray(state["result"]["scores"])
    assert state["labels"] == explain.candidate_labels(3)
    shown = views.views(state)
    assert len(shown) == 14
    order = np.argsort(-scores, kind="stable")
    assert list(shown["ranking"]["candidate"]) == [state["labels"][k] for k in order]
    np.testing.assert_allclose(shown["ranking"]["score"], np.round(scores[order], 5))
    assert state["labels"][order[0]] in shown["summary"]
    a, b = views.pair(state, None, None)
    assert (a, b) == (order[0], order[1])
    weighted = views.views(state, weights=[1.0] * 19, only=("what_if_table",))
    assert set(weighted) == {"what_if_table"}
    csv_path, json_path = views.export_files(state)
    assert Path(csv_path).read_text(encoding="utf-8").count("\n") >= 4 and Path(json_path).exists()
    assert len(fake_scorer.backend.calls) == 1  # views never call the model


def test_token_attributions_go_through_the_slot_to_the_backend(fake_scorer):
    from armorm_ui.backend.base import TokenTarget

    enc = fake_scorer.prepare(USER, ["Some answer."]).enc
    positions = list(range(len(enc.prefix_ids) + 1, len(enc.full_ids(0)) - 1))  # the response's own tokens
    for target in (TokenTarget(), TokenTarget("reward", 3), TokenTarget("coefficient", 5)):
        found = fake_scorer.attribute_tokens(enc, target, positions, "integrated_gradients", 8)
        assert found.positions.tolist() == positions and found.completeness_gap < 1e-9
        assert found.token_ids.tolist() == [enc.full_ids(0)[p] for p in positions]
    assert fake_scorer.tokenizer.decode(found.token_ids) == "Some answer."
    found = fake_scorer.attribute_tokens(enc, TokenTarget(), positions, "gradient_x_input", 8)
    assert found.steps == 1 and fake_scorer.backend.calls[-1].extra["steps"] == 1
    for bad in ({"method": "saliency"}, {"steps": 0}, {"steps": 257}, {"steps": True}):
        with pytest.raises(InputError):
            fake_scorer.attribute_tokens(enc, TokenTarget(), positions, **bad)
    assert [c.method for c in fake_scorer.backend.calls] == ["attribute_tokens"] * 4
    assert fake_scorer.peak_concurrency == 1
