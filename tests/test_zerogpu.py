"""ZeroGPU (backend/zerogpu.py): the model work of every way in goes through one `@spaces.GPU` function, refusals
made before it cost no GPU call, and a refusal or a deadline inside it comes back with its own sentence while the
worker is kept.

Three levels:
- in-process: a stand-in for `spaces.GPU` that asks for the duration as `spaces` does and sends the arguments and
  the result through `spaces`' own queue (its SimpleQueue: fork context, ForkingPickler);
- a fresh interpreter with the real `spaces` package in ZeroGPU mode: `spaces` before torch, the model loaded on
  the CPU and moved to cuda, no self-check, a score through the real GPU wrapper;
- app.py started under the real `spaces` package, its forked worker and its device API (a local stand-in), with
  the shim of tests/zerogpu/site for what a CPU build of torch lacks: /score and the page's own queue endpoint.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import subprocess
import sys
import textwrap
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from armorm_ui.attribution import attribute
from armorm_ui.backend import native, zerogpu
from armorm_ui.errors import CandidateTooLarge, InputError, ScoringError
from armorm_ui.scoring import Scorer, ScorerConfig
from armorm_ui.validation import Limits

from .conftest import CARD_PROMPT, CARD_RESPONSES, free_port
from .zerogpu import SITE, DeviceAPI, press, stop_workers, wait_until, zerogpu_env

ROOT = Path(__file__).resolve().parent.parent
CARD = [{"role": "user", "content": CARD_PROMPT}]
GPU_ERROR = "ZeroGPU worker error"


# ------------------------------------------------------------------------------------------------- in-process


def through_spaces_queue(value):
    """Send a value the way `spaces` sends a GPU call's arguments to its worker and the result back."""
    from spaces.utils import SimpleQueue  # the real package's queue (fork context, ForkingPickler)

    queue = SimpleQueue()
    queue.put(value)
    return queue.get()


@dataclass
class Call:
    method: str
    seconds: int
    """The duration asked for."""
    deadline: float
    elapsed: float
    tokens: int


class FakeGPU:
    """`spaces.GPU(duration=zerogpu.duration)` as it behaves on ZeroGPU, minus the GPU: asks for the duration with
    the call's arguments, runs the function on copies of its arguments that crossed the queue and returns a copy of
    its result; an exception raised inside becomes its bare class name, as `spaces` makes it (and counts as a
    failed call, after which `spaces` would start a new worker)."""

    def __init__(self):
        self.calls: list[Call] = []
        self.failed = 0

    def __call__(self, fn):
        def run(*args):
            seconds = zerogpu.duration(*args)
            method, call_args, deadline, elapsed = through_spaces_queue(args)
            self.calls.append(Call(method, seconds, deadline, elapsed, zerogpu.work_tokens(method, call_args)))
            try:
                out = fn(method, call_args, deadline, elapsed)
            except Exception as e:
                self.failed += 1
                raise RuntimeError(f"{GPU_ERROR}: {type(e).__name__}") from None
            return through_spaces_queue(out)

        return run


@pytest.fixture
def zero(scorer, monkeypatch):
    """A scorer whose backend is ZeroGPUBackend over the session's native backend, with a FakeGPU; a fresh
    throughput estimate (restored after)."""
    monkeypatch.setattr(zerogpu, "THROUGHPUT", zerogpu.Throughput())
    monkeypatch.setattr(zerogpu, "_native", None)
    gpu = FakeGPU()
    z = Scorer(zerogpu.ZeroGPUBackend(scorer.backend, gpu), scorer.tokenizer, ScorerConfig())
    z.fake_gpu = gpu
    return z


def test_every_way_in_goes_through_the_gpu_function(zero, scorer, tmp_path):
    gpu = zero.fake_gpu
    got = zero.score(CARD, CARD_RESPONSES)
    np.testing.assert_allclose(got.scores, scorer.score(CARD, CARD_RESPONSES).scores, atol=1e-9)
    np.testing.assert_allclose(got.gating_output, scorer.score(CARD, CARD_RESPONSES).gating_output, atol=1e-9)
    assert [c.method for c in gpu.calls] == ["score"]
    # attribution: the response and its variants in one GPU call
    found = attribute(zero, CARD, CARD_RESPONSES[0])
    assert [c.method for c in gpu.calls] == ["score", "score_variants"]
    np.testing.assert_allclose(found.score, scorer.score(CARD, CARD_RESPONSES[:1]).scores[0], atol=1e-6)
    np.testing.assert_allclose(found.effects, attribute(scorer, CARD, CARD_RESPONSES[0]).effects, atol=1e-6)
    # a batch file: checked whole, then scored in chunks (here one GPU call for six items)
    from armorm_ui.ui.batch import score_file

    path = tmp_path / "items.csv"
    path.write_text("prompt,response_1,response_2\n" + "".join(f"q{i},a{i},b{i}\n" for i in range(6)))
    out, _ = score_file(zero, str(path), "CSV", Limits(), 100)
    assert len(gpu.calls) == 3
    expected, _ = score_file(scorer, str(path), "CSV", Limits(), 100)
    # native scales multiply rewards by up to 5: 2e-7 apart in a reward is 1e-6 on the scale (isclose: atol or rtol)
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(expected), atol=1e-5)
    # evaluation pairs too
    from armorm_ui.config import AppConfig
    from armorm_ui.ui.evaluate import evaluate_file

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(f'{{"prompt": "q{i}", "chosen": "yes {i}", "rejected": "no"}}\n' for i in range(4)))
    report = evaluate_file(zero, AppConfig(), str(pairs))
    assert len(gpu.calls) == 4 and gpu.failed == 0
    pd.testing.assert_frame_equal(report["frame"], evaluate_file(scorer, AppConfig(), str(pairs))["frame"], atol=1e-6)


def test_token_attribution_goes_through_the_gpu_function(zero, scorer):
    from armorm_ui.backend import TokenTarget

    enc = zero.prepare(CARD, [CARD_RESPONSES[0]]).enc
    positions = list(range(len(enc.prefix_ids) + 1, len(enc.prefix_ids) + 6))
    target = TokenTarget("reward", 0)
    got = zero.attribute_tokens(enc, target, positions, "integrated_gradients", 4)
    expected = scorer.attribute_tokens(enc, target, positions, "integrated_gradients", 4)
    [call] = zero.fake_gpu.calls
    assert call.method == "attribute_tokens"
    assert call.tokens == zerogpu.tokens_of([enc]) * 4 * zerogpu.ATTRIBUTION_PASSES  # the steps' passes, counted
    np.testing.assert_array_equal(got.positions, expected.positions)
    np.testing.assert_allclose(got.attributions, expected.attributions, atol=1e-6)
    assert got.value == pytest.approx(expected.value, abs=1e-6)


def test_refusals_before_the_gpu_cost_no_gpu_call(zero):
    with pytest.raises(InputError, match="Candidate B is empty"):
        zero.score(CARD, ["fine", "   "])
    with pytest.raises(InputError, match="Item 2: Candidate B is empty"):
        zero.score_many([(CARD, ["a", "b"]), (CARD, ["a", "\u200b"])])  # the whole batch is checked first
    with pytest.raises(ScoringError, match="cancelled"):
        zero.score(CARD, ["one", "two"], should_stop=lambda: True)
    assert zero.fake_gpu.calls == []


def test_the_duration_asked_stays_within_the_seconds_left(zero):
    zero.config.deadline = 3.0
    zero.score(CARD, ["x", "y"])
    zero.score(CARD, CARD_RESPONSES)
    for call in zero.fake_gpu.calls:
        assert call.deadline == 3.0
        assert 1 <= call.seconds <= math.ceil(call.deadline - call.elapsed) <= 3


def test_big_batches_are_split_into_several_calls(zero, scorer, monkeypatch):
    monkeypatch.setattr(zerogpu, "CHUNK_SECONDS", zerogpu.BASE_SECONDS + 1)
    monkeypatch.setattr(zerogpu.THROUGHPUT, "tokens_per_second", 200.0)  # 100 tokens a call; none measured
    assert zero.chunk_tokens == 100
    requests = [([{"role": "user", "content": f"question {i} " * 4}], [f"answer {i} " * 4, "no"]) for i in range(8)]
    results = zero.score_many(requests)
    assert len(results) == 8 and 2 <= len(zero.fake_gpu.calls) < 8
    assert all(c.method == "score" and c.tokens <= 100 for c in zero.fake_gpu.calls)
    for (messages, candidates), r in zip(requests, results):
        np.testing.assert_allclose(r.scores, scorer.score(messages, candidates).scores, atol=1e-6)


def test_the_duration_follows_the_measured_throughput(zero):
    t = zerogpu.Throughput(tokens_per_second=2000.0)
    assert t.seconds(100_000) == zerogpu.BASE_SECONDS + 100
    t.update(100_000, 10.0)  # measured 10,000 tokens/s
    assert t.tokens_per_second == pytest.approx(0.7 * 2000 + 0.3 * 10_000)
    assert t.seconds(100_000) == zerogpu.BASE_SECONDS + math.ceil(200_000 / 4400)
    t.update(100, 100.0)  # too small a call to say anything
    assert t.tokens_per_second == pytest.approx(4400)
    assert zerogpu.Throughput(1.0).seconds(10**9) == zerogpu.MAX_SECONDS
    # each GPU call's measured time moves the shared estimate; the duration and the chunk size follow it
    before, chunk = zerogpu.THROUGHPUT.tokens_per_second, zero.chunk_tokens
    zero.score(CARD, CARD_RESPONSES + ["another answer " * 200])  # over 256 tokens: measured
    assert zero.fake_gpu.calls[-1].tokens >= 256
    after = zerogpu.THROUGHPUT.tokens_per_second
    assert after != before and zero.chunk_tokens != chunk
    conversation = zero.prepare(CARD, ["x " * 3000]).enc
    assert zerogpu.duration("score", ([conversation],), 120, 0) == zerogpu.THROUGHPUT.seconds(
        zerogpu.tokens_of([conversation])
    )


class SlowToStart:
    """A native backend whose GPU calls start after the request's time is up (a long wait for the GPU, a slow
    start): the deadline then passes inside the GPU call."""

    def __init__(self, native_backend):
        self.native = native_backend

    def __getattr__(self, name):
        return getattr(self.native, name)

    def score(self, conversations, request):
        wait_until(lambda: request.remaining() < 0, 10, "the request's deadline to pass")
        return self.native.score(conversations, request)


def test_a_deadline_inside_the_gpu_call_comes_back_with_its_sentence(scorer, monkeypatch):
    monkeypatch.setattr(zerogpu, "_native", None)
    gpu = FakeGPU()
    slow = Scorer(zerogpu.ZeroGPUBackend(SlowToStart(scorer.backend), gpu), scorer.tokenizer,
                  ScorerConfig(deadline=1.0))  # fmt: skip
    with pytest.raises(ScoringError, match=r"over the 1 s limit per request; it was stopped") as caught:
        slow.score(CARD, ["a fresh answer", "another"])
    assert type(caught.value) is ScoringError and GPU_ERROR not in str(caught.value)
    assert len(gpu.calls) == 1 and gpu.failed == 0  # returned as a value: on ZeroGPU the worker is kept


def emulate_small_gpu(monkeypatch, tokens: int) -> None:
    """Out of GPU memory (torch.cuda.OutOfMemoryError) on any forward pass holding a candidate over `tokens`."""
    import torch

    real, real_many = native.NativeBackend._forward, native.NativeBackend._forward_many

    def forward(self, enc, ks, strategy, request):
        if max(len(enc.candidate_ids[k]) for k in ks) > tokens:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (emulated)")
        return real(self, enc, ks, strategy, request)

    def forward_many(self, encs, request):  # a row of several conversations (NativeBackend.score packs them)
        if max(len(c) for e in encs for c in e.candidate_ids) > tokens:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (emulated)")
        return real_many(self, encs, request)

    monkeypatch.setattr(native.NativeBackend, "_forward", forward)
    monkeypatch.setattr(native.NativeBackend, "_forward_many", forward_many)


def test_a_refusal_inside_the_gpu_call_comes_back_with_its_class_and_message(zero, monkeypatch):
    emulate_small_gpu(monkeypatch, 50)
    long = "a long answer " * 30
    with pytest.raises(ScoringError, match=r"Out of GPU memory scoring candidate 2 \(\d+ tokens\) alone") as caught:
        zero.score(CARD, ["short", long])
    assert GPU_ERROR not in str(caught.value)
    with pytest.raises(ScoringError, match=r"^Item 2: Out of GPU memory scoring candidate 1 "):
        zero.score_many([(CARD, ["fine", "also fine"]), (CARD, [long + "!", "ok"])])
    # the backend's own refusal, with its fields, as raised inside the GPU call
    enc = zero.prepare(CARD, ["short", long + "?"]).enc
    with pytest.raises(CandidateTooLarge) as caught, zero._holding(None) as request:
        zero.backend.score([enc], request)
    assert (caught.value.conversation, caught.value.index) == (0, 1)
    assert caught.value.tokens == len(enc.prefix_ids) + len(enc.candidate_ids[1])
    assert str(caught.value).startswith("Out of GPU memory scoring a candidate of")
    assert zero.fake_gpu.failed == 0 and len(zero.fake_gpu.calls) == 3


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


# ------------------------------------------------------------------------------- the real `spaces` package


@pytest.fixture
def device_api():
    api = DeviceAPI()
    yield api
    api.close()


def shim_lines(text: str) -> list[tuple[int, str]]:
    """(worker pid, what) of each line the shim printed from inside a GPU worker."""
    return [(int(m[1]), m[2]) for m in re.finditer(r"^zerogpu-shim: worker (\d+) (.*)$", text, re.M)]


def test_spaces_comes_before_torch_and_the_model_goes_to_cuda(tmp_path, demo_dir, device_api):
    """A fresh interpreter with ZeroGPU switched on and the real `spaces` package: `spaces` is imported before torch;
    the model is loaded on the CPU and moved to cuda (spaces' emulated cuda in this process); the self-check is
    skipped; a score runs in the worker `spaces` forks."""
    script = textwrap.dedent("""
        import json, os, sys
        begun = []  # the order in which imports of spaces and torch begin
        class Order:
            def find_spec(self, name, path=None, target=None):
                begun.append(name) if name in ("spaces", "torch") and name not in begun else None
        sys.meta_path.insert(0, Order())
        import app
        from armorm_ui.backend import native
        from armorm_ui.config import AppConfig
        asked, real = [], native.load
        native.load = lambda model, **kw: asked.append(kw) or real(model, **kw)
        scorer, demo = app.create(AppConfig.from_env())
        result = scorer.score([{"role": "user", "content": "hi"}], ["a", "b"])
        print("RESULT", json.dumps({"begun": begun, "pid": os.getpid(),
              "asked": {k: asked[0].get(k) for k in ("device", "move_to")}, "backend": type(scorer.backend).__name__,
              "device": scorer.backend.device, "chunk_tokens": scorer.chunk_tokens, "scores": result.scores.tolist()}))
    """)
    env = {**os.environ, **zerogpu_env(device_api, tmp_path), "ARMORM_MODEL": str(demo_dir), "ARMORM_DEVICE": "",
           "PYTHONPATH": f"{SITE}{os.pathsep}{ROOT}"}  # fmt: skip
    try:
        out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=300)  # fmt: skip
    finally:
        stop_workers(p["pid"] for p in device_api.routes("/allow"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "self-check is skipped" in out.stdout and "self-check passed" not in out.stdout
    found = json.loads(out.stdout.split("RESULT ", 1)[1])
    assert found["begun"] == ["spaces", "torch"]
    assert found["asked"] == {"device": "cpu", "move_to": "cuda"}
    assert found["backend"] == "ZeroGPUBackend" and found["device"] == "cuda:0" and found["chunk_tokens"] > 0
    assert len(found["scores"]) == 2 and np.isfinite(found["scores"]).all()
    workers = shim_lines(out.stdout)
    assert [what for _, what in workers] == ["init", "score -> done"]
    assert workers[0][0] != found["pid"]  # the model ran in the worker spaces forked, not in the app's process
    assert len(device_api.routes("/schedule")) == 1 and len(device_api.routes("/allow")) == 1


DEADLINE = 3
MEMORY_TOKENS = 5000
"""The emulated GPU runs out of memory on a forward pass holding a candidate longer than this."""


@dataclass
class ZeroGPUApp:
    url: str
    api: DeviceAPI
    log: Path
    client: object

    def shim(self) -> list[tuple[int, str]]:
        return shim_lines(self.log.read_text())

    def workers(self) -> list[str]:
        """The pid of each worker `spaces` started: it reports each to the device API (/allow) as it starts."""
        return [p["pid"] for p in self.api.routes("/allow")]


@pytest.fixture(scope="module")
def zerogpu_app(demo_dir, tmp_path_factory):
    """app.py as a ZeroGPU Space starts it, under the real `spaces` package with the shim, on the demo checkpoint
    in float32 (as the in-process scorer); a deadline of DEADLINE s and room for a request that runs past it."""
    from gradio_client import Client

    scratch = tmp_path_factory.mktemp("zerogpu-app")
    api = DeviceAPI()
    port = free_port()
    env = {**os.environ, **zerogpu_env(api, scratch), "PYTHONPATH": f"{SITE}{os.pathsep}{ROOT}",
           "ARMORM_MODEL": str(demo_dir), "ARMORM_DEVICE": "", "ARMORM_DTYPE": "float32",
           "GRADIO_SERVER_PORT": str(port), "ARMORM_DATA_DIR": str(scratch / "data"),
           "XDG_CACHE_HOME": str(scratch / "cache"), "HF_HUB_OFFLINE": "1", "ARMORM_DEADLINE": str(DEADLINE),
           "ARMORM_MAX_TOKENS": "8192", "ARMORM_API_CANDIDATES": "64", "ARMORM_MAX_REQUEST_TOKENS": "400000",
           "ZEROGPU_SHIM_MEMORY_TOKENS": str(MEMORY_TOKENS), "OMP_NUM_THREADS": "2"}  # fmt: skip
    log = scratch / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"

    def serving():
        if proc.poll() is not None:
            raise AssertionError(f"app.py exited:\n{log.read_text()[-5000:]}")
        try:
            return urllib.request.urlopen(url, timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_until(serving, 180, "app.py to serve", interval=0.25)
        assert "self-check is skipped" in log.read_text()
        yield ZeroGPUApp(url, api, log, Client(url, verbose=False))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        stop_workers(p["pid"] for p in api.routes("/allow"))
        api.close()


def the_worker_was_kept(app: ZeroGPUApp) -> None:
    """One worker for the app's whole life, every GPU call released as a success, within the deadline."""
    assert len(app.workers()) == 1, app.api.requests
    assert all(p["fail"] == "false" for p in app.api.routes("/release")), app.api.routes("/release")
    assert all(1 <= int(p["durationSeconds"]) <= DEADLINE for p in app.api.routes("/schedule"))
    assert {pid for pid, _ in app.shim()} == {int(app.workers()[0])}


def score_fresh(app: ZeroGPUApp, scorer, tag: str) -> None:
    """A /score call whose candidates are not cached (so it needs the GPU), equal to the in-process scorer's."""
    candidates = [f"{tag}: {CARD_RESPONSES[0]}", f"{tag}: {CARD_RESPONSES[2]}"]
    schedules = len(app.api.routes("/schedule"))
    got = app.client.predict(CARD, candidates, api_name="/score")
    assert len(app.api.routes("/schedule")) == schedules + 1
    np.testing.assert_allclose(got["scores"], scorer.score(CARD, candidates).scores, atol=1e-6)


def test_score_runs_in_the_worker_and_matches_the_in_process_scorer(zerogpu_app, scorer):
    got = zerogpu_app.client.predict(CARD, CARD_RESPONSES, api_name="/score")
    expected = scorer.score(CARD, CARD_RESPONSES)
    np.testing.assert_allclose(got["scores"], expected.scores, atol=1e-6)
    np.testing.assert_allclose(got["rewards"], expected.rewards, atol=1e-6)
    np.testing.assert_allclose(got["gating_output"], expected.gating_output, atol=1e-6)
    assert any(what == "score -> done" for _, what in zerogpu_app.shim())
    score_fresh(zerogpu_app, scorer, "again")
    the_worker_was_kept(zerogpu_app)


def test_a_deadline_inside_the_gpu_call_reaches_score_with_its_sentence(zerogpu_app, scorer):
    """64 candidates of about 3,900 tokens each: over ten seconds of work for two CPU threads, stopped inside the
    GPU call at the first forward pass after DEADLINE s."""
    from gradio_client.exceptions import AppError

    bold = [chr(0x1D400 + i) for i in range(52)]  # mathematical bold letters: about 3 tokens each
    big = ["".join(bold[(i * 7 + k) % 52] for i in range(1300)) for k in range(64)]
    with pytest.raises(AppError) as caught:
        zerogpu_app.client.predict([{"role": "user", "content": "Which is best?"}], big, api_name="/score")
    message = str(caught.value)
    assert f"over the {DEADLINE} s limit per request; it was stopped" in message, message
    assert "ScoringError" not in message and GPU_ERROR not in message
    wait_until(lambda: any("score -> ScoringError: Scoring took" in what for _, what in zerogpu_app.shim()), 30,
               "the worker's record of the deadline")  # fmt: skip
    score_fresh(zerogpu_app, scorer, "after the deadline")
    the_worker_was_kept(zerogpu_app)


def test_a_refusal_inside_the_gpu_call_reaches_score_and_the_page_with_its_sentence(zerogpu_app, scorer):
    """A candidate too large for the (emulated) GPU's memory: the native backend halves the candidates down to it
    alone inside the GPU call and refuses it, named by its place in the request."""
    from gradio_client.exceptions import AppError

    long = "x y z " * 2000  # about 6,000 tokens
    sentence = re.compile(r"Out of GPU memory scoring candidate 2 \(\d+ tokens\) alone\. Shorten it, or run the app "
                          r"on a GPU with more memory\.")  # fmt: skip
    with pytest.raises(AppError) as caught:
        zerogpu_app.client.predict(CARD, ["A short answer.", long], api_name="/score")
    assert sentence.search(str(caught.value)), str(caught.value)
    assert "ScoringError" not in str(caught.value) and GPU_ERROR not in str(caught.value)
    score_fresh(zerogpu_app, scorer, "after /score's refusal")
    # the page: its Score button's event, sent over the page's own queue, shows the sentence beside the form
    shown = press(zerogpu_app.url, "score-button", {"prompt": CARD_PROMPT, "candidate-A": "Another short answer.",
                                                    "candidate-B": long + " again"})  # fmt: skip
    text = html.unescape(re.sub(r"\\(.)", r"\1", shown["form-message"]))  # as the Markdown renders it
    assert text.startswith("**Not scored:**") and sentence.search(text), text
    refusals = [what for _, what in zerogpu_app.shim() if what.startswith("score -> CandidateTooLarge")]
    assert len(refusals) == 2  # raised inside the GPU call, both times
    score_fresh(zerogpu_app, scorer, "after the page's refusal")
    the_worker_was_kept(zerogpu_app)
