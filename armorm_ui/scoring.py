"""Scoring with a loaded ArmoRM: the Scorer, loaded once and reused for every request, and load_scorer.

The Scorer keeps the life of a request: it is validated (validation.py), tokenised (chat.py), looked up in the
result cache per (conversation, candidate), and what is not cached goes to the backend (backend/), which runs the
model on token ids and returns typed outputs. The Scorer imports no torch; the backend is the only place that does.

One model slot: every call that runs the model holds the scorer's slot from its first forward pass to its last, so
a cancelled request that is still finishing its current pass and the next request never run at once. The slot is
fair: a long job (a batch file, an evaluation, a probe run: `score_many`, or any work inside `Scorer.job()`) takes it
one chunk at a time, and a waiting interactive request goes before the job's next chunk, so it waits at most one
chunk whatever jobs are running or being stopped. What belongs to a request (its stop flag, its start time, whether
it is a job) lives in the request and its context, never on the shared scorer.
"""

from __future__ import annotations

import contextvars
import hashlib
import heapq
import itertools
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np

from .backend import Backend, Method, Request, TokenAttributions, TokenTarget
from .chat import ChatEncoder, EncodedConversation, validate_messages
from .errors import CandidateTooLarge, InputError, ScoringError
from .results import ScoreResult
from .validation import Limits, check_request

log = logging.getLogger(__name__)
__all__ = ["Scorer", "ScorerConfig", "Request", "load_scorer"]


@dataclass
class ScorerConfig:
    max_tokens: int = 4096
    """Longest conversation + response, in tokens; longer ones are refused, never truncated."""
    token_budget: int = 8192
    """Most tokens in one forward pass (the conversation plus the candidates packed with it)."""
    cache_size: int = 4096
    """How many (conversation, candidate) results to keep; a repeated pair is not recomputed."""
    strategy: str = "auto"
    """'packed' (one row, shared-prompt mask), 'prefix_cache' (conversation once, padded candidate batches), or
    'auto': packed on CUDA or for requests under `packed_below` tokens, prefix_cache otherwise (backend/packing.py)."""
    packed_below: int = 1024
    """Under 'auto' off CUDA, requests with fewer tokens than this (conversation once + candidates) are packed."""
    deadline: float = 120.0
    """Seconds a request may run; checked between forward passes, then the request is refused."""
    max_request_tokens: int = 65_536
    """Most tokens in one request: the conversation once plus every candidate."""
    limits: Limits = field(default_factory=Limits)
    """Candidate counts and text sizes, checked before tokenising (validation.py)."""

    def backend_settings(self) -> dict:
        """What the native backend takes of this configuration (its layouts)."""
        return {"token_budget": self.token_budget, "strategy": self.strategy, "packed_below": self.packed_below}


CHECK_EVERY = 64
"""score_many polls its stop flag every this many items while it checks and tokenises them (seconds for a large
file), so a stopped job gives its thread and the CPU back before it has checked the rest."""
IN_JOB = contextvars.ContextVar("armorm_in_job", default=False)
"""True inside a long job (Scorer.job): its model calls wait behind interactive ones."""


class FairSlot:
    """A lock handed out in turn: interactive callers first, then jobs; first come, first served within each. A
    waiter whose caller went away (`should_stop`) leaves the line."""

    def __init__(self):
        self._turns = threading.Condition()
        self._held = False
        self._line: list[tuple[int, int]] = []  # heap of (1 for a job else 0, ticket)
        self._tickets = itertools.count()

    def acquire(self, job: bool, should_stop: Callable[[], bool] | None) -> None:
        with self._turns:
            place = (int(job), next(self._tickets))
            heapq.heappush(self._line, place)
            try:
                if should_stop is not None and should_stop():  # gone before its turn: never takes the slot
                    raise ScoringError("The request was cancelled while waiting for the model.")
                while self._held or self._line[0] != place:
                    if should_stop is not None and should_stop():
                        raise ScoringError("The request was cancelled while waiting for the model.")
                    self._turns.wait(timeout=0.05)
            except BaseException:
                self._line.remove(place)
                heapq.heapify(self._line)
                self._turns.notify_all()
                raise
            heapq.heappop(self._line)
            self._held = True

    def release(self) -> None:
        with self._turns:
            self._held = False
            self._turns.notify_all()

    def waiting(self) -> int:
        """Callers in line for it."""
        with self._turns:
            return len(self._line)

    def busy(self) -> bool:
        """Held, or someone waiting for it."""
        with self._turns:
            return self._held or bool(self._line)


@dataclass
class Prepared:
    """A request checked and tokenised, ready for the model: everything that can refuse it has run."""

    messages: list[dict]
    candidates: list[str]
    enc: EncodedConversation
    keys: list[bytes]
    """One digest per candidate (conversation + candidate): the result cache's keys."""


class Scorer:
    """Loaded once, reused for every request: score(messages, candidates) -> ScoreResult.

    The model work goes to `backend` (backend.Backend: token ids in, typed outputs out). Validation and
    tokenising happen here first, so a refusal never reaches the model, on ZeroGPU not even the GPU queue."""

    def __init__(self, backend: Backend, tokenizer, config: ScorerConfig | None = None):
        self.backend = backend
        self.tokenizer = tokenizer
        self.config = config or ScorerConfig()
        self.encoder = ChatEncoder(tokenizer, self.config.max_tokens)
        self.source = backend.source
        self.is_demo = backend.is_demo
        self.transform = np.asarray(backend.reward_transform_matrix, dtype=np.float64)
        self._cache: OrderedDict[bytes, tuple[np.ndarray, np.ndarray, int]] = OrderedDict()  # key: digest
        self._slot = FairSlot()  # the one model slot (module docstring)
        self._inside = 0  # calls holding the slot now; `peak_concurrency` records the most ever seen
        self.peak_concurrency = 0

    @property
    def chunk_tokens(self) -> int:
        """score_many: most tokens per model call (0: one request per call); set by the backend."""
        return getattr(self.backend, "chunk_tokens", 0)

    @contextmanager
    def _holding(self, should_stop: Callable[[], bool] | None):
        """Hold the model slot for one request (or one chunk of a job), yielding its Request. Waiting gives up if
        the caller goes away first; the deadline counts from when the slot is held."""
        self._slot.acquire(IN_JOB.get(), should_stop)
        self._inside += 1
        self.peak_concurrency = max(self.peak_concurrency, self._inside)
        if self._inside > 1:  # cannot happen while the lock is held; said loudly if it ever does
            log.error("model slot: %d calls at once", self._inside)
        try:
            yield Request(should_stop, self.config.deadline)
        finally:
            self._inside -= 1
            self._slot.release()

    def prepare(self, messages, candidates: list[str]) -> Prepared:
        """Validate (validation.py) and tokenise (chat.py): every refusal happens here, before any model work."""
        messages = validate_messages(messages)
        check_request(messages, candidates, self.config.limits)
        enc = self.encoder.encode(messages, list(candidates))
        total = len(enc.prefix_ids) + sum(len(c) for c in enc.candidate_ids)
        if total > self.config.max_request_tokens:
            raise InputError(f"The request is {total:,} tokens (conversation once + all candidates); the limit is "
                             f"{self.config.max_request_tokens:,}. Send fewer or shorter candidates.")  # fmt: skip
        conv = hashlib.sha256(json.dumps(messages, ensure_ascii=False, sort_keys=True).encode("utf-8", "surrogatepass"))
        keys = []  # one digest per candidate: the cache holds no text, so its memory stays bounded by cache_size
        for c in candidates:
            h = conv.copy()
            h.update(b"\0" + c.encode("utf-8", "surrogatepass"))
            keys.append(h.digest())
        return Prepared(messages, list(candidates), enc, keys)

    def score(self, messages, candidates: list[str], should_stop: Callable[[], bool] | None = None) -> ScoreResult:
        """Validate, tokenise, score what is not cached, and return every output. `should_stop` is polled between
        forward passes: when it returns True (the request was cancelled), scoring stops with a ScoringError."""
        return self._score([self.prepare(messages, candidates)], should_stop)[0]

    @contextmanager
    def job(self):
        """Model calls made inside this block (in this thread, or threads given its context) are a long job's:
        each waits for the slot behind every waiting interactive request."""
        token = IN_JOB.set(True)
        try:
            yield
        finally:
            IN_JOB.reset(token)

    def score_many(self, requests: list[tuple[list[dict], list[str]]], should_stop=None, progress=None):
        """Score many requests (a batch file): all are checked first, then scored in chunks of up to
        `chunk_tokens` tokens per model call (one GPU call each on ZeroGPU), the slot taken per chunk as a job's,
        so that interactive requests go first between chunks. `progress(done, total)` is called before each chunk."""
        with self.job():
            return self._score_many(requests, should_stop, progress)

    def _score_many(self, requests, should_stop, progress):
        prepared = []
        for i, (messages, candidates) in enumerate(requests):
            if i % CHECK_EVERY == 0 and should_stop is not None and should_stop():  # stopped while checking
                raise ScoringError(f"Stopped after 0 of {len(requests)} items; nothing was written.")
            try:
                prepared.append(self.prepare(messages, candidates))
            except InputError as e:
                raise InputError(f"Item {i + 1}: {e}") from e
        results: list[ScoreResult] = []
        for chunk in self._chunks(prepared):
            if should_stop is not None and should_stop():
                raise ScoringError(f"Stopped after {len(results)} of {len(prepared)} items; nothing was written.")
            if progress is not None:
                progress(len(results), len(prepared))
            results += self._score(chunk, should_stop, items_from=len(results))
        return results

    def score_prepared(self, prepared: list[Prepared], should_stop=None) -> list[ScoreResult]:
        """Requests already checked and tokenised (`prepare`) scored in one model call, the slot held once: for a
        few small requests that belong together (the edited conversations of one probed answer)."""
        return self._score(prepared, should_stop)

    def _chunks(self, prepared: list[Prepared]):
        chunk, tokens = [], 0
        for p in prepared:
            n = len(p.enc.prefix_ids) + sum(len(c) for c in p.enc.candidate_ids)
            if chunk and tokens + n > self.chunk_tokens:
                yield chunk
                chunk, tokens = [], 0
            chunk.append(p)
            tokens += n
        if chunk:
            yield chunk

    def _score(self, prepared: list[Prepared], should_stop, items_from: int | None = None) -> list[ScoreResult]:
        """Score prepared requests in one model call; `items_from`: their place in a batch (for messages)."""
        with self._holding(should_stop) as request:  # the cache is shared too: used only inside the slot
            known = {key: self._recall(key) for p in prepared for key in p.keys if key in self._cache}  # before
            work, owners = [], []  # one conversation per request, holding only the candidates not cached
            for i, p in enumerate(prepared):
                todo: dict[str, int] = {}  # candidate text -> first index; duplicates are computed once
                for k, c in enumerate(p.candidates):
                    if p.keys[k] not in known:
                        todo.setdefault(c, k)
                if todo:
                    ks = list(todo.values())
                    work.append(replace(p.enc, candidate_ids=[p.enc.candidate_ids[k] for k in ks]))
                    owners.append((i, ks))
            try:
                outputs = self.backend.score(work, request) if work else []
            except CandidateTooLarge as e:  # named by its place in the request
                i, ks = owners[e.conversation]
                where = f"Item {items_from + i + 1}: " if items_from is not None else ""
                raise ScoringError(f"{where}Out of GPU memory scoring candidate {ks[e.index] + 1} ({e.tokens} tokens) "
                                   "alone. Shorten it, or run the app on a GPU with more memory.") from e  # fmt: skip
            fresh = known  # with what is computed now: remembering new rows may push out rows this call reads
            for enc, (i, ks), out in zip(work, owners, outputs):
                for row, k, ids in zip(out.rewards, ks, enc.candidate_ids):
                    key = prepared[i].keys[k]
                    fresh[key] = (row, out.gating_output, len(ids))
                    self._remember(key, fresh[key])
            results = []
            for p in prepared:
                rows = [fresh[key] for key in p.keys]
                results.append(self._result(np.stack([r[0] for r in rows]), rows[0][1], len(p.enc.prefix_ids),
                                            [r[2] for r in rows]))  # fmt: skip
        return results

    def _encode_variants(self, messages, base: str, variants: list[str]) -> EncodedConversation:
        """Variants are cut from `base`: only `base` was sent, so only the candidate count is derived."""
        candidates = [base, *variants]
        messages = validate_messages(messages)
        derived = replace(self.config.limits, max_candidates=len(candidates), max_request_chars=2**62)
        check_request(messages, candidates, derived)
        return self.encoder.encode(messages, candidates)

    def score_variants(self, messages, base: str, variants: list[str], should_stop=None) -> ScoreResult:
        """Score `base` and variants of it (the same text with a part left out, or trimmed) in one pass: the
        conversation and the base are computed once, and each variant computes only the tokens after the
        beginning it shares with the base. Row 0 of the result is the base, then the variants in order."""
        enc = self._encode_variants(messages, base, variants)
        with self._holding(should_stop) as request:
            out = self.backend.score_variants(enc, request)
        return self._result(out.rewards, out.gating_output, len(enc.prefix_ids), [len(c) for c in enc.candidate_ids])

    def attribute_tokens(self, enc: EncodedConversation, target: TokenTarget, positions: list[int],
                         method: Method = "integrated_gradients", steps: int = 32,
                         should_stop=None) -> TokenAttributions:  # fmt: skip
        """Attribute `target` (the score, one objective's reward, or one coefficient) of candidate 0 of a prepared
        conversation (`prepare`) to the tokens at `positions` (backend.Backend.attribute_tokens)."""
        if method not in ("gradient_x_input", "integrated_gradients"):
            raise InputError(f"method {method!r} is not one of gradient_x_input, integrated_gradients.")
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 256:
            raise InputError(f"steps must be a whole number from 1 to 256, got {steps!r}.")
        steps = 1 if method == "gradient_x_input" else steps
        with self._holding(should_stop) as request:
            return self.backend.attribute_tokens(enc, target, list(positions), method, steps, request)

    def _result(self, rewards: np.ndarray, gating: np.ndarray, prompt_tokens: int, tokens: list[int]) -> ScoreResult:
        """Every output from rewards (N, 19) and gating (19,), with the card's identities."""
        T = self.transform
        return ScoreResult(
            scores=(rewards @ T) @ gating,
            rewards=rewards,
            gating_output=gating,
            coefficients=gating @ T.T,
            reward_transform_matrix=T,
            prompt_tokens=prompt_tokens,
            candidate_tokens=np.array(tokens, dtype=np.int64),
        )

    def self_check(self) -> str:
        """Score a two-candidate probe: the head must give finite outputs (start-up check, before serving)."""
        probe = self.score([{"role": "user", "content": "Say hello."}], ["Hello!", "Goodbye."])
        with self._holding(None):
            self._cache.clear()
        return f"self-check passed: {self.source} gives finite scores {np.round(probe.scores, 4).tolist()}"

    def _remember(self, key, value) -> None:
        self._cache[key] = value
        self._cache.move_to_end(key)
        while len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)

    def _recall(self, key):
        self._cache.move_to_end(key)
        return self._cache[key]


def load_scorer(
    model: str,
    device: str | None = None,
    dtype: str | None = None,
    revision: str | None = None,
    config: ScorerConfig | None = None,
) -> Scorer:
    """Load an ArmoRM checkpoint (local folder or hub id) into the native backend and return a ready Scorer.

    device: 'cpu', 'cuda', 'cuda:1', 'auto' (split over all GPUs); default cuda when available.
    dtype: backbone precision, 'bfloat16' | 'float16' | 'float32'; default bf16 on CUDA, fp32 on CPU.
    The head (regression layer, gating network, transform matrix) always stays in fp32, as stored.
    """
    from .backend import native

    config = config or ScorerConfig()
    backend, tokenizer = native.load(model, device, dtype, revision, **config.backend_settings())
    return Scorer(backend, tokenizer, config)
