"""Hugging Face ZeroGPU: the native backend run inside `@spaces.GPU` calls, as the `spaces` package asks.

On a ZeroGPU Space (`SPACES_ZERO_GPU=true`) a GPU is lent per call to a function decorated with `@spaces.GPU`,
which runs in a worker process forked for it; its arguments and result cross that boundary pickled. So:
- `spaces` is imported first, before torch (this module is imported by the package's `__init__`, before anything
  else: `spaces` refuses to start once CUDA is initialised);
- the model is loaded on the CPU and moved to `cuda` at start-up, as the `spaces` documentation shows (`spaces`
  then moves it to the lent GPU for each call);
- every model call of the backend interface (score, score_variants, attribute_tokens) goes through one GPU
  function, `gpu_call(method, args, deadline, elapsed)`, whose arguments are plain data (token ids) and whose
  result is a plain value; validation and tokenising run before it (scoring.py), so most refusals cost no GPU time;
- a refusal or a stop inside the GPU call (the deadline, a candidate that does not fit in memory) comes back as a
  value, `Refused`, and is raised again here with its own message: `spaces` passes only `gr.Error` through a GPU
  call (any other exception becomes its bare class name) and recreates its worker after a failed call, which on
  hardware would copy the 16 GB of weights again for the next visitor;
- the seconds asked for follow the throughput measured in earlier calls (`Throughput`), within the request's
  deadline; batch work is sent in chunks of about `CHUNK_SECONDS` of work per call;
- the visitor's request reaches `spaces` (handlers run with the caller's context: ui/handlers.py `cancellable`),
  so the visitor's own quota is used; a cancelled request stops before and after each GPU call, since the stop flag
  cannot follow the work into the worker, where only the deadline applies.
Elsewhere nothing here is used and the native backend runs in-process.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from .. import errors
from .base import Request, tokens_of

ACTIVE = os.getenv("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true")
if ACTIVE:
    import spaces  # noqa: F401 - before torch, as ZeroGPU requires

log = logging.getLogger(__name__)

BASE_SECONDS = 10
"""Start-up allowance of a GPU call: moving the weights to the lent GPU, launching kernels."""
MAX_SECONDS = 120
CHUNK_SECONDS = 60
"""Batch work is scored in chunks of about this many seconds of GPU time each."""
ATTRIBUTION_PASSES = 3
"""An attribution step costs about a forward and a backward pass: counted as three forward passes."""


class Throughput:
    """Tokens per second of the GPU calls, measured: the seconds asked for follow it. Starts from a conservative
    figure for the 8B model on a ZeroGPU slice; each call's measured rate moves it (an exponential average), and the
    request asks for twice the time that rate predicts, so one slow call does not overrun its lease."""

    def __init__(self, tokens_per_second: float = 2000.0, weight: float = 0.3):
        self.tokens_per_second = tokens_per_second
        self.weight = weight
        self._lock = threading.Lock()

    def update(self, tokens: int, seconds: float) -> None:
        if tokens < 256 or seconds <= 0:  # too small a call to say anything of throughput
            return
        with self._lock:
            rate = tokens / seconds
            self.tokens_per_second = (1 - self.weight) * self.tokens_per_second + self.weight * rate

    def seconds(self, tokens: int) -> int:
        return int(min(MAX_SECONDS, BASE_SECONDS + math.ceil(2 * tokens / self.tokens_per_second)))


THROUGHPUT = Throughput()


@dataclass(frozen=True)
class Refused:
    """A refusal or a stop raised inside the GPU call, sent back as a value (see the module's docstring)."""

    kind: str
    """The project's error class (errors.py): InputError, ScoringError, CandidateTooLarge..."""
    args: tuple
    """Its arguments: the message first."""


@dataclass(frozen=True)
class Done:
    value: Any
    seconds: float
    """Measured inside the worker, for the throughput estimate."""


_native = None  # the backend the GPU function runs; set at start-up, so the forked worker sees it as it was then


def work_tokens(method: str, args: tuple) -> int:
    """Tokens a GPU call computes (an attribution counted as its steps' forward and backward passes)."""
    if method == "score":
        return tokens_of(args[0])
    if method == "score_variants":
        return tokens_of([args[0]])
    conversation, _target, _positions, _method, steps = args
    return tokens_of([conversation]) * steps * ATTRIBUTION_PASSES


def duration(method: str, args: tuple, deadline: float, elapsed: float) -> int:
    """Seconds to ask ZeroGPU for: a start-up allowance plus time per token, within the request's deadline."""
    return max(1, min(THROUGHPUT.seconds(work_tokens(method, args)), math.ceil(deadline - elapsed)))


def gpu_call(method: str, args: tuple, deadline: float, elapsed: float) -> Done | Refused:
    """The GPU function: runs in the worker ZeroGPU forks, with the native backend as it was at start-up. The
    request's deadline goes along (the time already spent counts); its stop flag cannot."""
    request = Request(deadline=deadline, started=time.monotonic() - elapsed)
    started = time.monotonic()
    try:
        value = getattr(_native, method)(*args, request)
    except errors.ArmoRMError as e:  # expected: returned, so that the message survives and the worker is kept
        return Refused(type(e).__name__, e.args)
    return Done(value, time.monotonic() - started)


class ZeroGPUBackend:
    """The backend interface (base.Backend) over a native backend whose calls each run in a GPU call."""

    def __init__(self, native, gpu=None):
        """`gpu`: a decorator like `spaces.GPU(duration=...)` (tests pass their own); default the real one."""
        global _native
        _native = native
        self.native = native
        self.source = native.source
        self.is_demo = native.is_demo
        self.device = native.device
        self.reward_transform_matrix = native.reward_transform_matrix
        if gpu is None:
            import spaces

            gpu = spaces.GPU(duration=duration)
        self._call = gpu(gpu_call)

    @property
    def chunk_tokens(self) -> int:
        """Batch work per GPU call: what the measured throughput computes in the chunk's time."""
        return int((CHUNK_SECONDS - BASE_SECONDS) * THROUGHPUT.tokens_per_second / 2)

    def _run(self, method: str, args: tuple, request: Request):
        request.check()
        out = self._call(method, args, request.deadline, time.monotonic() - request.started)
        if isinstance(out, Refused):
            raise getattr(errors, out.kind, errors.ScoringError)(*out.args)
        THROUGHPUT.update(work_tokens(method, args), out.seconds)
        request.check()
        return out.value

    def score(self, conversations, request):
        return self._run("score", (conversations,), request)

    def score_variants(self, conversation, request):
        return self._run("score_variants", (conversation,), request)

    def attribute_tokens(self, conversation, target, positions, method, steps, request):
        return self._run("attribute_tokens", (conversation, target, positions, method, steps), request)
