"""Hugging Face ZeroGPU, as the `spaces` package asks for it.

On a ZeroGPU Space (`SPACES_ZERO_GPU=true`) a GPU is lent per call to a function decorated with `@spaces.GPU`,
which runs in a process forked for it; its arguments and result cross that boundary pickled. So:
- `spaces` is imported first, before torch (this module is imported by the package's `__init__`, before anything
  else: `spaces` refuses to start once CUDA is initialised);
- the model is placed on `cuda` at start-up (`spaces` moves it to the lent GPU for each call);
- the model work of every request (scores, attribution's variants, batch chunks, annotation) goes through one GPU
  function, `forward(kind, work, seconds_left)`, whose arguments are plain data (token ids) and whose result is
  numpy arrays; validation and tokenising run before it, so a refusal costs no GPU time and keeps its message;
- the visitor's request reaches `spaces` (handlers run with the caller's context: ui/handlers.py `cancellable`), so
  the visitor's own quota is used;
- a cancelled request stops before and after each GPU call: the stop flag cannot follow the work into the forked
  process, where only the deadline (seconds left) applies;
- batch work is sent in chunks of at most `CHUNK_SECONDS` worth of tokens per call.
Elsewhere nothing here is used and the same code runs in-process.
"""

from __future__ import annotations

import math
import os

ACTIVE = os.getenv("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true")
if ACTIVE:
    import spaces  # noqa: F401 - before torch, as ZeroGPU requires

BASE_SECONDS = 10
"""Start-up allowance of a GPU call: moving the weights to the lent GPU, launching kernels."""
TOKENS_PER_SECOND = 2000
"""Conservative throughput of the 8B model on a ZeroGPU slice."""
MAX_SECONDS = 120
CHUNK_SECONDS = 60
"""Batch files are scored in chunks that fit this many seconds of GPU time each."""

_scorer = None  # the app's scorer, set by install(); the forked GPU process sees it as it was at the fork


def tokens(kind: str, work: list) -> int:
    """Tokens a GPU call computes: each conversation once plus its candidates (or, for variants, every variant)."""
    if kind == "variants":
        return sum(len(enc.prefix_ids) + sum(len(c) for c in enc.candidate_ids) for enc in work)
    return sum(len(enc.prefix_ids) + sum(len(enc.candidate_ids[k]) for k in ks) for enc, ks in work)


def seconds(n_tokens: int) -> int:
    return int(min(MAX_SECONDS, BASE_SECONDS + math.ceil(n_tokens / TOKENS_PER_SECOND)))


def duration(kind: str, work: list, seconds_left: float) -> int:
    """Seconds to ask ZeroGPU for: a start-up allowance plus time per token, within the request's deadline."""
    return max(1, min(seconds(tokens(kind, work)), math.ceil(seconds_left)))


def forward(kind: str, work: list, seconds_left: float):
    """The GPU function: runs in the process ZeroGPU forks, with the scorer as it was at start-up."""
    from .scoring import Request

    return _scorer.forward(kind, work, Request(deadline=seconds_left))


def install(scorer, gpu=None) -> bool:
    """On ZeroGPU, route the scorer's model work through @spaces.GPU (or `gpu`, a decorator, in tests); returns
    whether it did."""
    global _scorer
    if gpu is None:
        if not ACTIVE:
            return False
        import spaces

        gpu = spaces.GPU(duration=duration)
    _scorer = scorer
    scorer.gpu = gpu(forward)
    scorer.chunk_tokens = (CHUNK_SECONDS - BASE_SECONDS) * TOKENS_PER_SECOND
    return True
