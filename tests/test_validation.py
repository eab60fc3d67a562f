"""Bad input, one case at a time, and arbitrary input thrown at the scoring API: always a result or our own error."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from armorm_ui import ArmoRMError, InputError, ScoringError, load_scorer
from armorm_ui.scoring import ScorerConfig
from armorm_ui.validation import Limits, check_request, duplicates

USER = [{"role": "user", "content": "Which is better?"}]
LIMITS = Limits()


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty or holds only spaces"),
        ("   \n\t ", "empty or holds only spaces"),
        ("\u200b\u200c\u2060\ufeff", "invisible characters"),  # zero-width space/joiners, word joiner, BOM
        ("\u00a0\u3000", "empty or holds only spaces"),  # no-break and ideographic spaces
        ("abc\x00def", "a NUL character at character 4"),
        ("bell\x07", "control character U\\+0007 at character 5"),
        ("ok \ud800 ok", "unpaired surrogate \\(U\\+D800\\) at character 4"),
        ("price: \u202e0021$", "bidirectional control U\\+202E at character 8"),
        ("x" * 32_001, "32,001 characters long; the limit is 32,000"),
    ],
)
def test_bad_candidate_text(text, match):
    with pytest.raises(InputError, match=match):
        check_request(USER, ["fine", text], LIMITS)
    with pytest.raises(InputError, match="Candidate B"):
        check_request(USER, ["fine", text], LIMITS)


def test_bad_prompt_is_named():
    with pytest.raises(InputError, match="The prompt contains a NUL"):
        check_request([{"role": "user", "content": "a\x00"}], ["x"], LIMITS)
    with pytest.raises(InputError, match=r"Message 1 \(system\) is empty"):
        check_request([{"role": "system", "content": " "}, {"role": "user", "content": "q"}], ["x"], LIMITS)


def test_allowed_text_passes():
    check_request(USER, ["tabs\tand\nnewlines\r\n", "مرحبا بالعالم", "東京 🙂", "<script>alert(1)</script>"], LIMITS)


@pytest.mark.parametrize(
    "candidates, match",
    [
        ([], "at least one candidate"),
        ("just a string", "must be a list"),
        (["x"] * 17, "17 candidates; the limit is 16"),
        ([3], "Candidate A must be text, got int"),
    ],
)
def test_bad_candidate_lists(candidates, match):
    with pytest.raises(InputError, match=match):
        check_request(USER, candidates, LIMITS)


def test_one_candidate_and_duplicates_are_scored(scorer):
    one = scorer.score(USER, ["only one"])
    assert one.scores.shape == (1,)
    dup = scorer.score(USER, ["same", "other", "same"])
    assert dup.scores[0] == pytest.approx(dup.scores[2], abs=1e-12)
    np.testing.assert_array_equal(dup.rewards[0], dup.rewards[2])  # computed once
    assert duplicates(["same", "other", "same"]) == [(0, 2)]


def test_a_megabyte_field_is_refused_before_tokenising(scorer, monkeypatch):
    monkeypatch.setattr(scorer.encoder, "encode", lambda *a: pytest.fail("tokenised a 1 MB field"))
    with pytest.raises(InputError, match="1,048,576 characters long"):
        scorer.score(USER, ["x" * 2**20])


def test_request_token_limit(demo_dir):
    s = load_scorer(str(demo_dir), device="cpu", config=ScorerConfig(max_request_tokens=50))
    with pytest.raises(InputError, match=r"The request is \d+ tokens .* the limit is 50"):
        s.score(USER, ["word " * 20, "word " * 20])


def test_deadline_stops_a_long_request(demo_dir):
    s = load_scorer(str(demo_dir), device="cpu", config=ScorerConfig(deadline=0.0, strategy="prefix_cache"))
    with pytest.raises(ScoringError, match="over the 0 s limit"):
        s.score(USER, ["a b c " * 50, "d e f"])


def test_out_of_memory_splits_then_names_the_candidate(demo_dir):
    s = load_scorer(str(demo_dir), device="cpu")
    reference = s.score(USER, ["a", "bb", "ccc", "dddd"]).scores
    s._cache.clear()
    real = s.backend._forward

    def tight(enc, ks, strategy, request):  # pretend only two candidates fit on the GPU at once
        if len(ks) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(enc, ks, strategy, request)

    s.backend._forward = tight
    np.testing.assert_allclose(s.score(USER, ["a", "bb", "ccc", "dddd"]).scores, reference, atol=1e-6)
    s.backend._forward = lambda enc, ks, strategy, request: (_ for _ in ()).throw(
        torch.cuda.OutOfMemoryError("CUDA out of memory")
    )
    with pytest.raises(ScoringError, match="Out of GPU memory scoring candidate 1 .* alone"):
        s.score(USER, ["zzz"])
    with pytest.raises(ScoringError, match="Out of GPU memory scoring candidate 3 .* alone"):
        s.score(USER, ["a", "bb", "yyy"])  # the first two are cached: the third is named as it was sent
    s.backend._forward = real
    assert s.score(USER, ["still serving"]).scores.shape == (1,)


def test_non_finite_outputs_are_refused(demo_dir, tmp_path):
    dst = tmp_path / "nan"
    shutil.copytree(demo_dir, dst)
    shard = dst / "model-00002-of-00002.safetensors"
    tensors = load_file(shard)
    tensors["regression_layer.weight"][0, 0] = float("nan")
    save_file(tensors, shard)
    s = load_scorer(str(dst), device="cpu")
    with pytest.raises(ScoringError, match="non-finite"):
        s.self_check()


def test_self_check_passes_on_a_good_checkpoint(scorer):
    assert "self-check passed" in scorer.self_check()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
messages_strategy = st.one_of(
    json_values,
    st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant", "system", "bot", ""]), "content": st.text(max_size=200)}
        ),
        max_size=4,
    ),
)
candidates_strategy = st.one_of(json_values, st.lists(st.text(max_size=200), max_size=5))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=messages_strategy, candidates=candidates_strategy)
def test_any_input_gives_a_result_or_our_error(scorer, messages, candidates):
    try:
        result = scorer.score(messages, candidates)
    except ArmoRMError as e:
        assert str(e)  # a message for the user
        return
    assert np.isfinite(result.scores).all() and result.scores.shape == (len(candidates),)
    json.dumps(result.to_dict())


def test_a_cancelled_request_stops_between_passes(demo_dir):
    s = load_scorer(str(demo_dir), device="cpu", config=ScorerConfig(strategy="prefix_cache", token_budget=64))
    calls = []
    with pytest.raises(ScoringError, match="cancelled"):
        s.score(USER, ["word " * 40, "other " * 30, "third " * 20], should_stop=lambda: calls.append(1) or True)
    assert len(calls) == 1  # stopped at the first check, before any candidate batch ran


def test_cancelling_the_event_raises_the_stop_flag():
    import asyncio
    import threading
    import time

    from armorm_ui.ui.handlers import cancellable

    stopped = threading.Event()

    def slow(should_stop):
        while not should_stop():
            time.sleep(0.01)
        stopped.set()

    async def main():
        task = asyncio.create_task(cancellable(slow))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert stopped.wait(30), "the worker kept running after the event was cancelled"
