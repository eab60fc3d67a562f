"""Scoring with a loaded ArmoRM: the Scorer, loaded once and reused for every request, and load_scorer.

A request is validated (validation.py), tokenised (chat.py), then laid out for the backbone (packing.py) so that
the conversation is encoded once and every candidate once: one packed row with a shared-prompt mask on a GPU, or the
conversation's keys/values reused by length-bucketed candidate batches on a CPU. The gate is read once per
conversation, results are cached per (conversation, candidate), and work stops between forward passes when the
request is cancelled or past its deadline.

One model slot: every call that runs the model (score, score_variants) holds the scorer's lock from its first forward
pass to its last, so a cancelled request that is still finishing its current pass and the next request never run at
once. What belongs to a request (its stop flag, its start time) lives in a `Request`, never on the shared scorer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from transformers import AutoTokenizer, DynamicCache

from .chat import ChatEncoder, EncodedConversation, validate_messages
from .errors import InputError, ScoringError
from .model import ArmoRM, default_device, load_model, resolve_checkpoint
from .objectives import NUM_OBJECTIVES
from .packing import (
    bucket_candidates,
    candidate_batch_inputs,
    pack_candidates,
    shared_prompt_inputs,
    variant_batch_inputs,
)
from .results import ScoreResult
from .validation import Limits, check_request

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ScorerConfig:
    max_tokens: int = 4096
    """Longest conversation + response, in tokens; longer ones are refused, never truncated."""
    token_budget: int = 8192
    """Most tokens in one packed forward pass (the conversation plus the candidates packed with it)."""
    cache_size: int = 4096
    """How many (conversation, candidate) results to keep; a repeated pair is not recomputed."""
    strategy: str = "auto"
    """'packed' (one row, shared-prompt mask), 'prefix_cache' (conversation once, padded candidate batches), or
    'auto': packed on CUDA or for requests under `packed_below` tokens, prefix_cache otherwise (packing.py)."""
    packed_below: int = 1024
    """Under 'auto' off CUDA, requests with fewer tokens than this (conversation once + candidates) are packed."""
    deadline: float = 120.0
    """Seconds a request may run; checked between forward passes, then the request is refused."""
    max_request_tokens: int = 65_536
    """Most tokens in one request: the conversation once plus every candidate."""
    limits: Limits = field(default_factory=Limits)
    """Candidate counts and text sizes, checked before tokenising (validation.py)."""


@dataclass
class Request:
    """What belongs to one scoring call: polled between forward passes by the code that runs the model."""

    should_stop: Callable[[], bool] | None = None
    """Returns True once the caller has gone (cancelled event, closed tab, Ctrl-C): scoring stops."""
    deadline: float = 120.0
    """Seconds the call may run once it holds the model."""
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return self.deadline - (time.monotonic() - self.started)

    def check(self) -> None:
        """Between forward passes: stop a cancelled request, and one past its deadline."""
        if self.should_stop is not None and self.should_stop():
            raise ScoringError("The request was cancelled; scoring stopped.")
        elapsed = time.monotonic() - self.started
        if elapsed > self.deadline:
            raise ScoringError(f"Scoring took {elapsed:.0f} s, over the {self.deadline:.0f} s limit per "
                               "request; it was stopped. Send fewer or shorter candidates.")  # fmt: skip


@dataclass
class Prepared:
    """A request checked and tokenised, ready for the model: everything that can refuse it has run."""

    candidates: list[str]
    enc: EncodedConversation
    keys: list[bytes]
    """One digest per candidate (conversation + candidate): the result cache's keys."""


class Scorer:
    """Loaded once, reused for every request: score(messages, candidates) -> ScoreResult.

    The model work of a request goes through `forward(kind, work, request)` with plain data (token ids in, numpy
    arrays out). On Hugging Face ZeroGPU, zerogpu.install routes it through a @spaces.GPU function (`self.gpu`);
    validation and tokenising stay outside, so a refusal costs no GPU time and keeps its message."""

    def __init__(self, model: ArmoRM, tokenizer, config: ScorerConfig | None = None, source: str = ""):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config or ScorerConfig()
        self.encoder = ChatEncoder(tokenizer, self.config.max_tokens)
        self.source = source
        self.is_demo = bool(getattr(model.config, "armorm_ui_demo", False))
        self.device = model.model.embed_tokens.weight.device
        self.transform = model.reward_transform_matrix.detach().float().cpu().numpy().astype(np.float64)
        self._cache: OrderedDict[bytes, tuple[np.ndarray, np.ndarray, int]] = OrderedDict()  # key: digest
        self._slot = threading.Lock()  # the one model slot (module docstring)
        self._inside = 0  # calls holding the slot now; `peak_concurrency` records the most ever seen
        self.peak_concurrency = 0
        self.gpu: Callable | None = None
        """When set (ZeroGPU), model work runs through it: gpu(kind, work, seconds left) -> forward's result."""
        self.chunk_tokens = 0
        """score_many: most tokens per model call (0: one request per call)."""

    @contextmanager
    def _holding(self, should_stop: Callable[[], bool] | None):
        """Hold the model slot for one request, yielding its Request. Waiting gives up if the caller goes away
        first; the deadline counts from when the slot is held."""
        while not self._slot.acquire(timeout=0.05):
            if should_stop is not None and should_stop():
                raise ScoringError("The request was cancelled while waiting for the model.")
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
        return Prepared(list(candidates), enc, keys)

    def score(self, messages, candidates: list[str], should_stop: Callable[[], bool] | None = None) -> ScoreResult:
        """Validate, tokenise, score what is not cached, and return every output. `should_stop` is polled between
        forward passes: when it returns True (the request was cancelled), scoring stops with a ScoringError."""
        return self._score([self.prepare(messages, candidates)], should_stop)[0]

    def score_many(self, requests: list[tuple[list[dict], list[str]]], should_stop=None, progress=None):
        """Score many requests (a batch file): all are checked first, then scored in chunks of up to
        `chunk_tokens` tokens per model call (one GPU call each on ZeroGPU), the slot held per chunk so that others
        get their turn between chunks. `progress(done, total)` is called before each chunk."""
        prepared = []
        for i, (messages, candidates) in enumerate(requests):
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
            results += self._score(chunk, should_stop)
        return results

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

    def _score(self, prepared: list[Prepared], should_stop) -> list[ScoreResult]:
        with self._holding(should_stop) as request:  # the cache is shared too: used only inside the slot
            work, owners = [], []
            for i, p in enumerate(prepared):
                todo: dict[str, int] = {}  # candidate text -> first index; duplicates are computed once
                for k, c in enumerate(p.candidates):
                    if p.keys[k] not in self._cache:
                        todo.setdefault(c, k)
                if todo:
                    work.append((p.enc, list(todo.values())))
                    owners.append(i)
            fresh = {}  # computed now: kept here too, as a small cache (or none) may already have let them go
            for (enc, ks), i, (rewards, gating) in zip(work, owners, self._model("score", work, request)):
                for row, k in zip(rewards, ks):
                    key = prepared[i].keys[k]
                    fresh[key] = (row, gating, len(enc.candidate_ids[k]))
                    self._remember(key, fresh[key])
            results = []
            for p in prepared:
                rows = [fresh[key] if key in fresh else self._recall(key) for key in p.keys]
                results.append(self._result(np.stack([r[0] for r in rows]), rows[0][1], len(p.enc.prefix_ids),
                                            [r[2] for r in rows]))  # fmt: skip
        return results

    def forward(self, kind: str, work: list, request: Request | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """The model work of one call, from plain data: kind "score", work [(encoded conversation, candidate
        indices), ...]; or kind "variants", work [encoded conversation whose candidate 0 is the base]. Returns
        (rewards, gating) per entry."""
        request = request or Request(deadline=self.config.deadline)
        if kind == "variants":
            return [self._variants(enc, request) for enc in work]
        return [self._run(enc, ks, request) for enc, ks in work]

    def _model(self, kind: str, work: list, request: Request):
        if not work:
            return []
        if self.gpu is None:
            return self.forward(kind, work, request)
        # ZeroGPU runs the work in another process: the stop flag cannot follow it there, so a cancelled request
        # stops before and after each GPU call, and the deadline goes along as seconds left
        request.check()
        out = self.gpu(kind, work, request.remaining())
        request.check()
        return out

    def score_variants(self, messages, base: str, variants: list[str], should_stop=None) -> ScoreResult:
        """Score `base` and variants of it (the same text with a part left out, or trimmed) in one pass: the
        conversation and the base are computed once, and each variant computes only the tokens after the
        beginning it shares with the base. Row 0 of the result is the base, then the variants in order."""
        candidates = [base, *variants]
        messages = validate_messages(messages)
        derived = replace(self.config.limits, max_candidates=len(candidates), max_request_chars=2**62)
        check_request(messages, candidates, derived)  # variants are cut from `base`: only `base` was sent
        enc = self.encoder.encode(messages, candidates)
        with self._holding(should_stop) as request:
            rewards, gating = self._model("variants", [enc], request)[0]
        return self._result(rewards, gating, len(enc.prefix_ids), [len(c) for c in enc.candidate_ids])

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

    @torch.inference_mode()
    def _variants(self, enc: EncodedConversation, request: Request | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rewards (1 + V, 19) and gating (19,) for candidate 0 (the base) and its variants (candidates 1..V)."""
        request = request or Request(deadline=self.config.deadline)
        full = enc.prefix_ids + enc.candidate_ids[0]
        p = len(enc.prefix_ids)
        backbone = self.model.model
        out = backbone(input_ids=torch.tensor([full], device=self.device),
                       past_key_values=DynamicCache(config=backbone.config), use_cache=True)  # fmt: skip
        h = out.last_hidden_state[0]  # (P + F, d)
        kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        base_rewards, gating, _ = self.model.head(h[enc.gate_position], h[-1:])
        shared, suffixes = [], []
        for ids in enc.candidate_ids[1:]:
            n = 0  # longest common token prefix with the base, leaving at least the final token to compute
            while n < min(len(ids), len(enc.candidate_ids[0])) - 1 and ids[n] == enc.candidate_ids[0][n]:
                n += 1
            shared.append(n)
            suffixes.append(ids[n:])
        variant_rewards = np.zeros((len(suffixes), NUM_OBJECTIVES))
        for batch in bucket_candidates([len(x) for x in suffixes], self.config.token_budget):
            request.check()
            inputs = variant_batch_inputs(p, [shared[i] for i in batch], [suffixes[i] for i in batch], self.device)
            ends, k, b = inputs.pop("ends"), inputs.pop("cache_len"), len(batch)
            cache = DynamicCache(
                ddp_cache_data=[(x[:, :, :k].expand(b, -1, -1, -1), y[:, :, :k].expand(b, -1, -1, -1)) for x, y in kv],
                config=backbone.config,
            )
            hb = backbone(**inputs, past_key_values=cache, use_cache=True).last_hidden_state  # (B, W, d)
            r, _, _ = self.model.head(h[enc.gate_position], hb[torch.arange(b, device=hb.device), ends])
            variant_rewards[batch] = r.double().cpu().numpy()
        return self._finite(np.vstack([base_rewards.double().cpu().numpy(), variant_rewards]),
                            gating.double().cpu().numpy())  # fmt: skip

    @staticmethod
    def _finite(rewards: np.ndarray, gating: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not (np.isfinite(rewards).all() and np.isfinite(gating).all()):
            raise ScoringError("The model returned non-finite values (NaN or inf); the checkpoint may be damaged.")
        return rewards, gating

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

    def strategy(self, tokens: int) -> str:
        """The layout for a request of `tokens` tokens (conversation once + candidates); measured choices."""
        if self.config.strategy != "auto":
            return self.config.strategy
        packed = self.device.type == "cuda" or tokens < self.config.packed_below
        return "packed" if packed else "prefix_cache"

    @torch.inference_mode()
    def _run(self, enc: EncodedConversation, ks: list[int], request: Request | None = None):
        """Rewards (len(ks), 19) and gating (19,) for candidates ks."""
        request = request or Request(deadline=self.config.deadline)
        lengths = [len(enc.candidate_ids[k]) for k in ks]
        strategy = self.strategy(len(enc.prefix_ids) + sum(lengths))
        if strategy == "packed":
            groups = pack_candidates(len(enc.prefix_ids), lengths, self.config.token_budget)
        else:
            groups = [list(range(len(ks)))]  # one prefix pass; batching happens inside
        rewards = np.zeros((len(ks), NUM_OBJECTIVES))
        gating = None
        for group in groups:
            r, g = self._forward_split(enc, [ks[i] for i in group], strategy, request)
            rewards[group] = r
            gating = g if gating is None else gating
        return self._finite(rewards, gating)

    def _forward_split(self, enc: EncodedConversation, ks: list[int], strategy: str, request: Request):
        """One group; on CUDA out-of-memory, halve it and retry, down to one candidate."""
        try:
            return self._forward(enc, ks, strategy, request)
        except torch.cuda.OutOfMemoryError as e:
            torch.cuda.empty_cache()
            if len(ks) == 1:
                n = len(enc.prefix_ids) + len(enc.candidate_ids[ks[0]])
                raise ScoringError(f"Out of GPU memory scoring candidate {ks[0] + 1} ({n} tokens) alone.") from e
            half = len(ks) // 2
            r1, g = self._forward_split(enc, ks[:half], strategy, request)
            r2, _ = self._forward_split(enc, ks[half:], strategy, request)
            return np.concatenate([r1, r2]), g

    def _forward(self, enc: EncodedConversation, ks: list[int], strategy: str, request: Request):
        request.check()
        cands = [enc.candidate_ids[k] for k in ks]
        backbone = self.model.model
        if strategy == "packed":
            inputs = shared_prompt_inputs(enc.prefix_ids, cands, self.device)
            ends = inputs.pop("ends")
            h = backbone(**inputs, use_cache=False).last_hidden_state[0]  # (L, d)
            rewards, gating, _ = self.model.head(h[enc.gate_position], h[ends])
            return rewards.double().cpu().numpy(), gating.double().cpu().numpy()
        # prefix cache: the conversation once, then length-bucketed candidate batches reading its keys/values
        p = len(enc.prefix_ids)
        prefix = torch.tensor([enc.prefix_ids], device=self.device)
        out = backbone(input_ids=prefix, past_key_values=DynamicCache(config=backbone.config), use_cache=True)
        h_gate = out.last_hidden_state[0, enc.gate_position]  # (d,)
        kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]  # each (1, kv_heads, P, hd)
        rewards = np.zeros((len(ks), NUM_OBJECTIVES))
        gating = None
        for batch in bucket_candidates([len(c) for c in cands], self.config.token_budget):
            request.check()
            inputs = candidate_batch_inputs(p, [cands[i] for i in batch], self.device)
            ends = inputs.pop("ends")
            b = len(batch)
            cache = DynamicCache(
                ddp_cache_data=[(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in kv],
                config=backbone.config,
            )
            h = backbone(**inputs, past_key_values=cache, use_cache=True).last_hidden_state  # (B, W, d)
            r, g, _ = self.model.head(h_gate, h[torch.arange(b, device=h.device), ends])
            rewards[batch] = r.double().cpu().numpy()
            gating = g.double().cpu().numpy()
        return rewards, gating


def load_scorer(
    model: str,
    device: str | None = None,
    dtype: str | None = None,
    revision: str | None = None,
    config: ScorerConfig | None = None,
) -> Scorer:
    """Load an ArmoRM checkpoint (local folder or hub id) and return a ready Scorer.

    device: 'cpu', 'cuda', 'cuda:1', 'auto' (split over all GPUs); default cuda when available.
    dtype: backbone precision, 'bfloat16' | 'float16' | 'float32'; default bf16 on CUDA, fp32 on CPU.
    The head (regression layer, gating network, transform matrix) always stays in fp32, as stored.
    """
    device = device or default_device()
    if dtype is None:
        dtype = "float32" if device == "cpu" else "bfloat16"
    if dtype not in DTYPES:
        raise InputError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}.")
    folder = resolve_checkpoint(model, revision)
    net = load_model(folder, device, DTYPES[dtype])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return Scorer(net, tokenizer, config, source=model)
