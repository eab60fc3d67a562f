"""ZeroGPU as the `spaces` package runs it: `spaces` imported before torch, the model work of every way in (Compare,
/score, attribution, batch files, annotation, evaluation) sent through one GPU function whose arguments and result
cross a process boundary the way `spaces` sends them (its own queue, multiprocessing's ForkingPickler), refusals
before any GPU call, and batch work in chunks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from armorm_ui import InputError, ScoringError, load_scorer, zerogpu
from armorm_ui.attribution import attribute
from armorm_ui.validation import Limits

from .conftest import CARD_PROMPT, CARD_RESPONSES

ROOT = Path(__file__).resolve().parent.parent
CARD = [{"role": "user", "content": CARD_PROMPT}]


def through_spaces_queue(value):
    """Send a value the way `spaces` sends a GPU call's arguments to its worker process and the result back."""
    from spaces.utils import SimpleQueue  # the real package's queue (fork context, ForkingPickler)

    queue = SimpleQueue()
    queue.put(value)
    return queue.get()


class FakeGPU:
    """@spaces.GPU(duration=...) as it behaves on ZeroGPU, minus the GPU: asks for the duration, then runs the
    function on copies of its arguments that crossed the queue, and returns a copy of the result."""

    def __init__(self):
        self.calls = []

    def __call__(self, fn):
        def run(*args, **kwargs):
            seconds = zerogpu.duration(*args, **kwargs)
            assert 1 <= seconds <= zerogpu.MAX_SECONDS
            args, kwargs = through_spaces_queue((args, kwargs))
            self.calls.append((args[0], seconds))
            return through_spaces_queue(fn(*args, **kwargs))

        return run


@pytest.fixture
def gpu_scorer(demo_dir):
    scorer = load_scorer(str(demo_dir), device="cpu")
    gpu = FakeGPU()
    assert zerogpu.install(scorer, gpu)
    yield scorer, gpu
    zerogpu._scorer = None


def test_every_way_in_goes_through_the_gpu_function(gpu_scorer, scorer, tmp_path):
    zero, gpu = gpu_scorer
    got = zero.score(CARD, CARD_RESPONSES)
    np.testing.assert_allclose(got.scores, scorer.score(CARD, CARD_RESPONSES).scores, atol=1e-9)
    assert [kind for kind, _ in gpu.calls] == ["score"]
    # attribution: its variants in one GPU call
    found = attribute(zero, CARD, CARD_RESPONSES[0])
    assert gpu.calls[-1][0] == "variants" and len(gpu.calls) == 2
    np.testing.assert_allclose(found.score, scorer.score(CARD, CARD_RESPONSES[:1]).scores[0], atol=1e-6)
    # a batch file: checked whole, then scored in chunks (here one GPU call for six items)
    from armorm_ui.ui.batch import score_file

    path = tmp_path / "items.csv"
    path.write_text("prompt,response_1,response_2\n" + "".join(f"q{i},a{i},b{i}\n" for i in range(6)))
    before = len(gpu.calls)
    score_file(zero, str(path), "CSV", Limits(), 100)
    assert len(gpu.calls) == before + 1
    # evaluation pairs too
    from armorm_ui.ui.evaluate import evaluate_file

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(f'{{"prompt": "q{i}", "chosen": "yes {i}", "rejected": "no"}}\n' for i in range(4)))
    evaluate_file(zero, str(pairs), "", Limits(), 100)
    assert len(gpu.calls) == before + 2


def test_big_batches_are_split_into_calls_that_fit_their_time(gpu_scorer, monkeypatch):
    zero, gpu = gpu_scorer
    zero.chunk_tokens = 100  # two or three items (about 40 tokens each) per call
    requests = [([{"role": "user", "content": f"question {i} " * 4}], [f"answer {i} " * 4, "no"]) for i in range(8)]
    results = zero.score_many(requests)
    assert len(results) == 8 and 2 <= len(gpu.calls) < 8
    for (messages, candidates), r in zip(requests, results):
        np.testing.assert_allclose(r.scores, zero.score(messages, candidates).scores, atol=1e-9)  # cached: same


def test_refusals_cost_no_gpu_time_and_keep_their_message(gpu_scorer):
    zero, gpu = gpu_scorer
    with pytest.raises(InputError, match="Candidate B is empty"):
        zero.score(CARD, ["fine", "   "])
    with pytest.raises(InputError, match="Item 2: Candidate B is empty"):
        zero.score_many([(CARD, ["a", "b"]), (CARD, ["a", "\u200b"])])  # the whole batch is checked first
    with pytest.raises(ScoringError, match="cancelled"):
        zero.score(CARD, ["one", "two"], should_stop=lambda: True)
    assert gpu.calls == []


def test_the_deadline_goes_along_as_seconds_left(gpu_scorer):
    zero, gpu = gpu_scorer
    zero.config.deadline = 3.0
    zero.score(CARD, ["x", "y"])
    assert gpu.calls[-1][1] <= 3


def test_spaces_comes_before_torch_and_the_model_goes_to_cuda(tmp_path, demo_dir):
    """A fresh interpreter with ZeroGPU switched on: `spaces` (a stand-in that fails if torch is already imported,
    as the real one does) is imported first; the scorer is asked for cuda; the self-check is skipped."""
    stub = tmp_path / "stub" / "spaces"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(
        textwrap.dedent("""
        import sys
        if "torch" in sys.modules:
            raise RuntimeError("CUDA has been initialized before importing the `spaces` package.")
        def GPU(duration=None):
            return lambda fn: fn
    """)
    )
    script = textwrap.dedent("""
        import sys
        import app
        from armorm_ui import scoring
        from armorm_ui.config import AppConfig
        asked = []
        real = scoring.load_scorer
        scoring.load_scorer = lambda model, device=None, **kw: asked.append(device) or real(model, "cpu", **kw)
        scorer, demo = app.create(AppConfig.from_env())
        assert list(sys.modules).index("spaces") < list(sys.modules).index("torch")
        assert asked == ["cuda"], asked
        assert scorer.gpu is not None and scorer.chunk_tokens > 0
        print(scorer.score([{"role": "user", "content": "hi"}], ["a", "b"]).scores)
    """)
    env = {**os.environ, "SPACES_ZERO_GPU": "true", "ARMORM_MODEL": str(demo_dir), "ARMORM_DEVICE": "",
           "PYTHONPATH": f"{stub.parent}{os.pathsep}{ROOT}"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "self-check is skipped" in out.stdout and "self-check passed" not in out.stdout


def test_the_visitors_request_reaches_the_model_call():
    """`spaces` finds the visitor (and so their quota) in Gradio's request context variable: model calls run in a
    worker thread that carries the handler's context."""
    import asyncio

    from gradio.context import LocalContext

    from armorm_ui.ui.handlers import cancellable

    async def handler():
        LocalContext.request.set("the visitor's request")
        return await cancellable(lambda should_stop: LocalContext.request.get(None))

    assert asyncio.run(handler()) == "the visitor's request"
