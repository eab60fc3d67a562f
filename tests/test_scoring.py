"""The one model slot: concurrent, cancelled and abandoned requests never run the model at once, and what belongs to
a request stays in that request."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pandas as pd
import pytest

from armorm_ui import ScoringError, load_scorer
from armorm_ui.scoring import ScorerConfig
from armorm_ui.ui.batch import score_file
from armorm_ui.ui.handlers import cancellable
from armorm_ui.validation import Limits

USER = [{"role": "user", "content": "Explain the answer."}]


@pytest.fixture
def fresh(demo_dir):
    """A scorer of its own (its peak concurrency starts at 0); small batches make many forward passes."""
    return load_scorer(str(demo_dir), device="cpu", config=ScorerConfig(strategy="prefix_cache", token_budget=64))


def wait_idle(scorer, seconds: float = 30) -> None:
    """Until no call holds the slot and none is left waiting for it."""
    deadline = time.monotonic() + seconds
    while scorer._slot.busy():
        assert time.monotonic() < deadline, "the model slot stayed busy"
        time.sleep(0.05)


def test_a_stopped_request_does_not_stop_another(fresh):
    """The stop flag is the request's own: a cancelled request running beside another leaves the other alone."""
    results, errors = {}, {}

    def run(name, should_stop):
        try:
            results[name] = fresh.score(USER, [f"{name} answer " * 40, "short", "other " * 20], should_stop=should_stop)
        except ScoringError as e:
            errors[name] = str(e)

    keep = threading.Thread(target=run, args=("kept", lambda: False))
    stop = threading.Thread(target=run, args=("stopped", lambda: True))
    keep.start()
    stop.start()
    keep.join(60)
    stop.join(60)
    assert "kept" in results and results["kept"].n == 3
    assert "cancelled" in errors["stopped"]
    assert fresh.peak_concurrency == 1


def test_six_cancelled_batches_never_run_at_once(fresh, tmp_path):
    paths = []  # one file per batch: no batch finds another's items in the result cache and races to its end
    for j in range(6):
        rows = [{"prompt": f"Question {j}.{i}: " + "why? " * 20, "response_1": "Because " * 30,
                 "response_2": f"No {j}.{i}."} for i in range(40)]  # fmt: skip
        paths.append(tmp_path / f"batch{j}.csv")
        pd.DataFrame(rows).to_csv(paths[-1], index=False)
    scored = []  # when each item's scoring returned
    cancelled_at = []
    real = fresh.backend.score

    def counting(*args, **kwargs):  # each model call of a batch (one item per call on the native backend)
        out = real(*args, **kwargs)
        scored.append(time.monotonic())
        return out

    fresh.backend.score = counting

    async def main():
        tasks = [asyncio.create_task(cancellable(score_file, fresh, str(path), "CSV", Limits(), 100))
                 for path in paths]  # fmt: skip
        deadline = time.monotonic() + 120
        while not scored:  # cancel once the model is at work (an event, not a guess at how long start-up takes)
            assert time.monotonic() < deadline, "no item was scored"
            await asyncio.sleep(0.01)
        cancelled_at.append(time.monotonic())
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)

    asyncio.run(main())
    wait_idle(fresh)
    assert fresh.peak_concurrency == 1
    after = sum(t > cancelled_at[0] for t in scored)
    assert after <= 6, f"{after} items were scored after the cancel"  # at most the one in flight in each batch


def test_a_request_cancelled_while_waiting_never_runs(fresh):
    started = threading.Event()
    release = threading.Event()
    ran = []
    real = fresh.backend.score

    def slow_score(conversations, request):
        ran.append(len(conversations[0].candidate_ids))
        started.set()
        release.wait(10)
        return real(conversations, request)

    fresh.backend.score = slow_score
    first = threading.Thread(target=fresh.score, args=(USER, ["first"]))
    first.start()
    assert started.wait(10)
    with pytest.raises(ScoringError, match="cancelled while waiting"):
        fresh.score(USER, ["second"], should_stop=lambda: True)
    release.set()
    first.join(30)
    assert ran == [1]  # only the first request reached the model


def test_scores_are_the_same_with_the_result_cache_off(demo_dir, scorer):
    from armorm_ui.scoring import ScorerConfig

    uncached = load_scorer(str(demo_dir), device="cpu", config=ScorerConfig(cache_size=0))
    messages = [{"role": "user", "content": "Which is better?"}]
    for _ in range(2):  # the second time nothing is cached either
        got = uncached.score(messages, ["One.", "Two.", "One."])
        np.testing.assert_allclose(got.scores, scorer.score(messages, ["One.", "Two.", "One."]).scores, atol=1e-9)


def test_a_job_stopped_while_its_items_are_checked_stops_checking(fake_scorer, monkeypatch):
    """A large file is checked and tokenised whole before its first chunk (seconds): a job stopped meanwhile gives
    its thread and the CPU back at its next check, not after the rest of its items."""
    from armorm_ui.scoring import CHECK_EVERY

    checked, prepare = [], fake_scorer.prepare
    monkeypatch.setattr(fake_scorer, "prepare", lambda m, c: checked.append(1) or prepare(m, c))
    requests = [([{"role": "user", "content": f"Question {i}?"}], ["Yes.", "No."]) for i in range(1000)]
    with pytest.raises(ScoringError, match="Stopped after 0 of 1000 items"):
        fake_scorer.score_many(requests, should_stop=lambda: len(checked) >= 10)
    assert len(checked) == CHECK_EVERY and fake_scorer.backend.calls == []
