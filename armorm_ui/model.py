"""ArmoRM, natively: the checkpoint's layout as torch modules, safe loading, and shared-prompt batched scoring.

The only module that imports torch/transformers. Sources: SPEC sections 1-3 (what the published checkpoint holds and
computes; the published modeling code needs trust_remote_code and no longer loads on transformers >= 4.56).

Forward (per conversation, N candidates):
    h       = LlamaModel(ids)[last hidden state]             # after the final RMSNorm
    rewards = regression_layer(h[reward_pos])                 # (N, 19), reward_pos = each candidate's last token
    gating  = softmax(MLP(h[gate_pos]) / T) * logit_scale     # (19,), gate_pos = <|eot_id|> ending the last user turn
    score   = sum_j gating_j * (rewards @ reward_transform_matrix)_j

Scoring packs the conversation once and every candidate once into one row: a 4D mask lets each candidate see the
conversation and its own earlier tokens only, and position ids restart after the conversation for each candidate,
so every candidate gets exactly the positions and context it would have alone, without padding and without
re-encoding the prompt N times.
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn
from transformers import AutoTokenizer, DynamicCache, LlamaConfig, LlamaModel

from .batching import (
    bucket_candidates,
    candidate_batch_inputs,
    pack_candidates,
    shared_prompt_inputs,
    variant_batch_inputs,
)
from .chat import ChatEncoder, EncodedConversation, validate_messages
from .errors import CheckpointError, InputError, ScoringError
from .objectives import NUM_OBJECTIVES
from .results import ScoreResult
from .validation import Limits, check_request

HEAD_MODULES = ("regression_layer", "gating", "reward_transform_matrix")
"""Stored in float32 in the checkpoint and kept in float32 here, whatever the backbone's dtype."""
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class GatingNetwork(nn.Module):
    """The prompt-conditioned gate: MLP with ReLU, then softmax(x / temperature) * logit_scale (SPEC section 1)."""

    def __init__(self, in_features: int, out_features: int, hidden_dim: int, n_hidden: int, temperature: float):
        super().__init__()
        dims = [in_features] + [hidden_dim] * n_hidden
        self.layers = nn.ModuleList(
            [nn.Linear(a, b) for a, b in zip(dims, dims[1:])] + [nn.Linear(dims[-1], out_features)]
        )
        self.logit_scale = nn.Parameter(torch.ones(1))
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d) -> (B, 19)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return F.softmax(x / self.temperature, dim=-1) * self.logit_scale


class ArmoRM(nn.Module):
    """Module tree whose state-dict keys are exactly the checkpoint's (SPEC section 3)."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        k = config.num_objectives
        self.model = LlamaModel(config)
        self.regression_layer = nn.Linear(config.hidden_size, k, bias=False)
        self.gating = GatingNetwork(
            config.hidden_size, k, config.gating_hidden_dim, config.gating_n_hidden, config.gating_temperature
        )
        self.reward_transform_matrix = nn.Parameter(torch.eye(k), requires_grad=False)

    def head(self, h_gate: torch.Tensor, h_reward: torch.Tensor):
        """fp32 head on hidden states. h_gate (d,), h_reward (N, d) -> rewards (N, k), gating (k,), scores (N,)."""
        dev = self.regression_layer.weight.device  # with device_map the head may sit on another GPU
        h_gate, h_reward = h_gate.to(dev, torch.float32), h_reward.to(dev, torch.float32)
        rewards = self.regression_layer(h_reward)  # (N, k)
        gating = self.gating(h_gate[None])[0]  # (k,)
        scores = (rewards @ self.reward_transform_matrix) @ gating  # (N,)
        return rewards, gating, scores


# ----------------------------------------------------------------------------------------------------------- loading


def resolve_checkpoint(model: str, revision: str | None = None) -> Path:
    """A local folder as is; otherwise a hub id, downloading only json/safetensors/tokenizer files (never pickles)."""
    if os.path.isdir(model):
        return Path(model)
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(
            model, revision=revision, allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.jinja"]
        )
    except Exception as e:  # offline, gated, misspelt: say which and how to fix
        raise CheckpointError(
            f"Could not get {model!r} (revision {revision or 'main'}) from the Hugging Face hub: {e}. "
            "Give a local folder instead (ARMORM_MODEL=/path/to/checkpoint)."
        ) from e
    return Path(path)


def weights_file(folder: Path) -> Path:
    """The safetensors index or single file. Pickled .bin weights are refused: they can run code when loaded."""
    for name in ("model.safetensors.index.json", "model.safetensors"):
        if (folder / name).is_file():
            return folder / name
    found = sorted(p.name for p in folder.iterdir())
    raise CheckpointError(
        f"No safetensors weights in {folder} (found: {', '.join(found) or 'nothing'}). "
        "Only model.safetensors or model.safetensors.index.json are loaded; .bin/.pt pickles are never loaded."
    )


def shard_paths(weights: Path) -> list[Path]:
    if weights.name.endswith(".index.json"):
        files = sorted(set(json.loads(weights.read_text())["weight_map"].values()))
        return [weights.parent / f for f in files]
    return [weights]


def checkpoint_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, read from the safetensors headers only."""
    shapes = {}
    for p in shard_paths(weights):
        with safe_open(p, framework="pt") as f:
            for key in f.keys():
                shapes[key] = tuple(f.get_slice(key).get_shape())
    return shapes


def read_config(folder: Path) -> LlamaConfig:
    config = LlamaConfig.from_pretrained(folder)
    k = getattr(config, "num_objectives", None)
    if k != NUM_OBJECTIVES:
        raise CheckpointError(f"{folder}/config.json: expected num_objectives {NUM_OBJECTIVES}, got {k}.")
    for key in ("gating_temperature", "gating_hidden_dim", "gating_n_hidden"):
        if not hasattr(config, key):
            raise CheckpointError(f"{folder}/config.json lacks {key!r}: this is not an ArmoRM checkpoint.")
    return config


def check_keys(model: nn.Module, shapes: dict[str, tuple[int, ...]], where: Path) -> None:
    """Every checkpoint tensor is used and every parameter is loaded, with the right shape; else a clear error."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = sorted(
        f"{k} {shapes[k]} (expected {expected[k]})" for k in set(shapes) & set(expected) if shapes[k] != expected[k]
    )
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {', '.join(missing[:8])}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {', '.join(unexpected[:8])}")
        if wrong:
            parts.append(f"{len(wrong)} misshapen: {', '.join(wrong[:8])}")
        raise CheckpointError(f"{where} does not have the ArmoRM layout: " + "; ".join(parts) + ".")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def device_map_for(device: str):
    """One device -> {'': device}; 'auto' (or 'cuda' with several GPUs) -> accelerate's balanced split."""
    if device == "auto" or (device == "cuda" and torch.cuda.device_count() > 1):
        return "auto"
    if device == "cuda":
        device = "cuda:0"
    return {"": device}


def load_model(folder: Path, device: str, dtype: torch.dtype) -> ArmoRM:
    from accelerate import dispatch_model, infer_auto_device_map, init_empty_weights
    from accelerate.utils import load_checkpoint_in_model

    config = read_config(folder)
    config._attn_implementation = "sdpa"
    weights = weights_file(folder)
    with init_empty_weights():
        model = ArmoRM(config)
    check_keys(model, checkpoint_shapes(weights), folder)
    device_map = device_map_for(device)
    if device_map == "auto":
        device_map = infer_auto_device_map(model, no_split_module_classes=["LlamaDecoderLayer"], dtype=dtype)
    load_checkpoint_in_model(model, str(weights), device_map=device_map, dtype=dtype, strict=True)
    reload_head_fp32(model, weights)
    model = dispatch_model(model, device_map=device_map)
    return model.eval()


def reload_head_fp32(model: ArmoRM, weights: Path) -> None:
    """Put the head back in float32 as stored (accelerate casts every tensor to the backbone's dtype)."""
    params = dict(model.named_parameters())
    for path in shard_paths(weights):
        with safe_open(path, framework="pt") as f:
            for key in f.keys():
                if key.split(".")[0] in HEAD_MODULES:
                    p = params[key]
                    p.data = f.get_tensor(key).to(p.device, torch.float32)


# ----------------------------------------------------------------------------------------------------------- scoring


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
    'auto': packed on CUDA or for requests under `packed_below` tokens, prefix_cache otherwise (batching.py)."""
    packed_below: int = 1024
    """Under 'auto' off CUDA, requests with fewer tokens than this (conversation once + candidates) are packed."""
    deadline: float = 120.0
    """Seconds a request may run; checked between forward passes, then the request is refused."""
    max_request_tokens: int = 65_536
    """Most tokens in one request: the conversation once plus every candidate."""
    limits: Limits = field(default_factory=Limits)
    """Candidate counts and text sizes, checked before tokenising (validation.py)."""


class Scorer:
    """Loaded once, reused for every request: score(messages, candidates) -> ScoreResult."""

    def __init__(self, model: ArmoRM, tokenizer, config: ScorerConfig | None = None, source: str = ""):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config or ScorerConfig()
        self.encoder = ChatEncoder(tokenizer, self.config.max_tokens)
        self.source = source
        self.is_demo = bool(getattr(model.config, "armorm_ui_demo", False))
        self.device = model.model.embed_tokens.weight.device
        self.transform = model.reward_transform_matrix.detach().float().cpu().numpy().astype(np.float64)
        self._cache: OrderedDict[tuple[str, str], tuple[np.ndarray, np.ndarray, int]] = OrderedDict()

    def score(self, messages, candidates: list[str], should_stop: Callable[[], bool] | None = None) -> ScoreResult:
        """Validate (validation.py), tokenise (chat.py), score what is not cached, and return every output.
        `should_stop` is polled between forward passes: when it returns True (the request was cancelled), scoring
        stops with a ScoringError."""
        self._should_stop = should_stop
        messages = validate_messages(messages)
        check_request(messages, candidates, self.config.limits)
        enc = self.encoder.encode(messages, list(candidates))
        total = len(enc.prefix_ids) + sum(len(c) for c in enc.candidate_ids)
        if total > self.config.max_request_tokens:
            raise InputError(f"The request is {total:,} tokens (conversation once + all candidates); the limit is "
                             f"{self.config.max_request_tokens:,}. Send fewer or shorter candidates.")  # fmt: skip
        conv_key = json.dumps(messages, ensure_ascii=False, sort_keys=True)
        todo: dict[str, int] = {}  # candidate text -> first index; duplicates are computed once
        for k, c in enumerate(candidates):
            if (conv_key, c) not in self._cache:
                todo.setdefault(c, k)
        if todo:
            ks = list(todo.values())
            rewards, gating = self._run(enc, ks)
            for row, k in zip(rewards, ks):
                self._remember((conv_key, candidates[k]), (row, gating, len(enc.candidate_ids[k])))
        rows = [self._recall((conv_key, c)) for c in candidates]
        rewards = np.stack([r[0] for r in rows])  # (N, 19)
        gating = rows[0][1]  # (19,)
        T = self.transform
        return ScoreResult(
            scores=(rewards @ T) @ gating,
            rewards=rewards,
            gating_output=gating,
            coefficients=gating @ T.T,
            reward_transform_matrix=T,
            prompt_tokens=len(enc.prefix_ids),
            candidate_tokens=np.array([r[2] for r in rows], dtype=np.int64),
        )

    def score_variants(self, messages, base: str, variants: list[str], should_stop=None) -> ScoreResult:
        """Score `base` and variants of it (the same text with a part left out, or trimmed) in one pass: the
        conversation and the base are computed once, and each variant computes only the tokens after the
        beginning it shares with the base. Row 0 of the result is the base, then the variants in order."""
        candidates = [base, *variants]
        self._should_stop = should_stop
        messages = validate_messages(messages)
        check_request(messages, candidates, replace(self.config.limits, max_candidates=len(candidates)))
        enc = self.encoder.encode(messages, candidates)
        all_rewards, gating = self._variants(enc)
        p = len(enc.prefix_ids)
        T = self.transform
        return ScoreResult(
            scores=(all_rewards @ T) @ gating,
            rewards=all_rewards,
            gating_output=gating,
            coefficients=gating @ T.T,
            reward_transform_matrix=T,
            prompt_tokens=p,
            candidate_tokens=np.array([len(c) for c in enc.candidate_ids], dtype=np.int64),
        )

    @torch.inference_mode()
    def _variants(self, enc: EncodedConversation) -> tuple[np.ndarray, np.ndarray]:
        """Rewards (1 + V, 19) and gating (19,) for candidate 0 (the base) and its variants (candidates 1..V)."""
        full = enc.prefix_ids + enc.candidate_ids[0]
        p = len(enc.prefix_ids)
        self._started = time.monotonic()
        backbone = self.model.model
        out = backbone(input_ids=torch.tensor([full], device=self.device),
                       past_key_values=DynamicCache(config=backbone.config), use_cache=True)  # fmt: skip
        h = out.last_hidden_state[0]  # (P + F, d)
        kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        rewards, gating, _ = self.model.head(h[enc.gate_position], h[-1:])
        rows = [rewards.double().cpu().numpy()[0]]
        gating = gating.double().cpu().numpy()
        shared, suffixes = [], []
        for ids in enc.candidate_ids[1:]:
            n = 0  # longest common token prefix with the base, leaving at least the final token to compute
            while n < min(len(ids), len(enc.candidate_ids[0])) - 1 and ids[n] == enc.candidate_ids[0][n]:
                n += 1
            shared.append(n)
            suffixes.append(ids[n:])
        variant_rewards = np.zeros((len(suffixes), NUM_OBJECTIVES))
        for batch in bucket_candidates([len(x) for x in suffixes], self.config.token_budget):
            self._check_deadline()
            inputs = variant_batch_inputs(p, [shared[i] for i in batch], [suffixes[i] for i in batch], self.device)
            ends, k, b = inputs.pop("ends"), inputs.pop("cache_len"), len(batch)
            cache = DynamicCache(
                ddp_cache_data=[(x[:, :, :k].expand(b, -1, -1, -1), y[:, :, :k].expand(b, -1, -1, -1)) for x, y in kv],
                config=backbone.config,
            )
            hb = backbone(**inputs, past_key_values=cache, use_cache=True).last_hidden_state  # (B, W, d)
            r, _, _ = self.model.head(h[enc.gate_position], hb[torch.arange(b, device=hb.device), ends])
            variant_rewards[batch] = r.double().cpu().numpy()
        all_rewards = np.vstack([rows[0][None], variant_rewards])
        if not np.isfinite(all_rewards).all():
            raise ScoringError("The model returned non-finite values (NaN or inf); the checkpoint may be damaged.")
        return all_rewards, gating

    def self_check(self) -> str:
        """Score a two-candidate probe: the head must give finite outputs (start-up check, before serving)."""
        probe = self.score([{"role": "user", "content": "Say hello."}], ["Hello!", "Goodbye."])
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
    def _run(self, enc: EncodedConversation, ks: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Rewards (len(ks), 19) and gating (19,) for candidates ks."""
        lengths = [len(enc.candidate_ids[k]) for k in ks]
        strategy = self.strategy(len(enc.prefix_ids) + sum(lengths))
        self._started = time.monotonic()
        if strategy == "packed":
            groups = pack_candidates(len(enc.prefix_ids), lengths, self.config.token_budget)
        else:
            groups = [list(range(len(ks)))]  # one prefix pass; batching happens inside
        rewards = np.zeros((len(ks), NUM_OBJECTIVES))
        gating = None
        for group in groups:
            r, g = self._forward_split(enc, [ks[i] for i in group], strategy)
            rewards[group] = r
            gating = g if gating is None else gating
        if not (np.isfinite(rewards).all() and np.isfinite(gating).all()):
            raise ScoringError("The model returned non-finite values (NaN or inf); the checkpoint may be damaged.")
        return rewards, gating

    def _forward_split(self, enc: EncodedConversation, ks: list[int], strategy: str):
        """One group; on CUDA out-of-memory, halve it and retry, down to one candidate."""
        try:
            return self._forward(enc, ks, strategy)
        except torch.cuda.OutOfMemoryError as e:
            torch.cuda.empty_cache()
            if len(ks) == 1:
                n = len(enc.prefix_ids) + len(enc.candidate_ids[ks[0]])
                raise ScoringError(f"Out of GPU memory scoring candidate {ks[0] + 1} ({n} tokens) alone.") from e
            half = len(ks) // 2
            r1, g = self._forward_split(enc, ks[:half], strategy)
            r2, _ = self._forward_split(enc, ks[half:], strategy)
            return np.concatenate([r1, r2]), g

    def _check_deadline(self) -> None:
        """Between forward passes: stop a cancelled request, and one past its deadline."""
        if getattr(self, "_should_stop", None) is not None and self._should_stop():
            raise ScoringError("The request was cancelled; scoring stopped.")
        elapsed = time.monotonic() - self._started
        if elapsed > self.config.deadline:
            raise ScoringError(f"Scoring took {elapsed:.0f} s, over the {self.config.deadline:.0f} s limit per "
                               "request; it was stopped. Send fewer or shorter candidates.")  # fmt: skip

    def _forward(self, enc: EncodedConversation, ks: list[int], strategy: str):
        self._check_deadline()
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
            self._check_deadline()
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
