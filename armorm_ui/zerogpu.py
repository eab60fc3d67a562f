"""Hugging Face ZeroGPU: when the `spaces` package is present, GPU work runs inside @spaces.GPU.

ZeroGPU lends a GPU per call for a declared number of seconds; a call that outlives it is killed, a call that asks for
too much waits longer in the queue. So the duration grows with the request: a fixed start-up allowance plus time
per token (the conversation counted once, as the scorer packs it, plus every candidate). Without `spaces` the same
code runs unchanged. Source: the `spaces` package's documentation (dynamic `duration` callables).
"""

from __future__ import annotations

import importlib.util
import math

BASE_SECONDS = 10
"""Start-up allowance: moving the first batch to the GPU, launching kernels."""
TOKENS_PER_SECOND = 2000
"""Conservative throughput of the 8B model on a ZeroGPU slice, including the prompt (characters / 4 per token)."""
MAX_SECONDS = 120


def available() -> bool:
    return importlib.util.find_spec("spaces") is not None


def duration(messages, candidates, **_ignored) -> int:
    """Seconds to ask ZeroGPU for, from the size of the request (estimated before tokenising)."""
    texts = [m.get("content", "") for m in messages or [] if isinstance(m, dict)]
    texts += [c for c in candidates or [] if isinstance(c, str)]
    tokens = sum(len(t) for t in texts if isinstance(t, str)) / 4
    return int(min(MAX_SECONDS, BASE_SECONDS + math.ceil(tokens / TOKENS_PER_SECOND)))


def wrap(score):
    """score(messages, candidates) run inside @spaces.GPU(duration=...) when `spaces` is installed."""
    if not available():
        return score
    import spaces

    return spaces.GPU(duration=duration)(score)
