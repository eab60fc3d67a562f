"""The native backend: ArmoRM as torch modules (model.py) in this process, laid out by packing.py.

Several conversations given to one `score` call share packed rows: each row holds whole conversations, in order,
up to `row_tokens()` tokens, under a block-diagonal shared-prompt mask (packing.multi_prompt_inputs), so that every
candidate sees only its own conversation and its own earlier tokens, at the positions it would have alone. A
conversation too large for a shared row, or alone in its group, is scored in one of two layouts (packing.py),
chosen per request by measured speed: one packed row with a shared-prompt mask (CUDA, and short requests on a CPU),
or the conversation's keys/values computed once and reused by length-bucketed candidate batches (longer requests on
a CPU). The gate is read once per conversation, at the <|eot_id|> that ends its last user turn, and the rewards at
each candidate's last token (the authors' `modeling_custom.py`). On CUDA out-of-memory a shared row is halved and
retried, down to one conversation, and a conversation's group of candidates likewise, down to one.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import DynamicCache

from ..chat import EncodedConversation
from ..errors import CandidateTooLarge, InputError
from ..objectives import NUM_OBJECTIVES
from .base import Method, Outputs, Request, TokenAttributions, TokenTarget
from .model import ArmoRM, default_device, load_model, resolve_checkpoint
from .packing import (
    bucket_candidates,
    bucket_variants,
    candidate_batch_inputs,
    multi_prompt_inputs,
    pack_candidates,
    pack_conversations,
    shared_prompt_inputs,
    variant_batch_inputs,
)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SHARED_ROW_TOKENS_CPU = 256
"""Off CUDA ('auto'), rows shared by several conversations hold at most this many tokens.

Measured with benchmarks/bench_many.py --grid (fp32, torch 2.13 CPU, 1 thread, medians of 5-7 interleaved rounds):
k conversations of s tokens in k passes vs one shared row of k * s tokens, ratio of times (> 1: the row is faster),
demo checkpoint (hidden 64, 2 layers) / a wider random one (hidden 256, 4 layers):
    row of  128: 2 x 64   1.49x / 1.28x
    row of  256: 4 x 64   1.72x / 1.27x    2 x 128  1.22x / 1.06x
    row of  512: 8 x 64   1.62x / 1.09x    4 x 128  1.09x / 0.93x    2 x 256  0.91x / 0.88x
    row of 1024: 8 x 128  0.70x / 0.75x    4 x 256  0.55x / 0.69x    2 x 512  0.68x / 0.73x
Rows up to 256 tokens won in every case on both shapes; from 512 the row's dense L x L attention can cost more
than the passes it saves, and from 1024 it always did. On 64 pairs through `score`: short chat pairs (median 116
tokens) 301 -> 403 pairs/s with 2 threads (1.34x), 409 -> 433-486 with 1 (1.06x-1.19x over two timings of the
same rule: this machine's noise), 72.9 -> 84.9 on the wider shape (1.17x); RewardBench-like pairs (median 681
tokens, so few fit a row) unchanged (0.99x-1.00x), and 0.51x-0.65x had rows of 2048 been allowed. FlexAttention (a
block mask) was tried on this CPU build: once compiled, 550 ms against SDPA's 70 ms for a 1024-token row in the same
run, and its recompile for a new row length failed to build; not used."""

PASS_TOKENS = 512.0
"""score_variants groups its variants by cost (packing.bucket_variants): a forward pass costs this many tokens' worth
of work before its first token. Measured on the demo checkpoint, fp32, torch 2.13 CPU, 1 thread: scoring one
conversation of L tokens took 5.6 ms at L = 19, 13.4 ms at 364 and 30.0 ms at 714, about 5.5 ms + 8.9 us a token +
36 ns a query-key pair, so a pass is worth some 600 tokens there; on a large model the per-token cost grows and the
pass is worth fewer tokens, and then merging batches costs a little padding at most."""


def pair_weight(config) -> float:
    """One query-key pair of attention (scores and weighted values, all layers) against one token through the
    layers' linear maps, from the backbone's shape: 2 * heads * head_dim / the linear weights of a layer."""
    d, heads, kv = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
    hd = getattr(config, "head_dim", None) or d // heads
    linear = d * heads * hd * 2 + 2 * d * kv * hd + 3 * d * config.intermediate_size
    return 2 * heads * hd / linear


class NativeBackend:
    """Runs a loaded ArmoRM (model.ArmoRM) on token ids; see base.Backend for the interface."""

    def __init__(self, model: ArmoRM, source: str = "", token_budget: int = 8192, strategy: str = "auto",
                 packed_below: int = 1024, shared_row_tokens: int = SHARED_ROW_TOKENS_CPU,
                 pass_tokens: float = PASS_TOKENS):  # fmt: skip
        self.model = model
        self.source = source
        self.token_budget = token_budget
        """Most tokens in one forward pass (padding included)."""
        self.strategy_name = strategy
        """'packed', 'prefix_cache', or 'auto' (packed on CUDA or under `packed_below` tokens)."""
        self.packed_below = packed_below
        self.shared_row_tokens = shared_row_tokens
        """Under 'auto' off CUDA: most tokens in a row shared by several conversations (`row_tokens`)."""
        self.pass_tokens = pass_tokens
        """score_variants: the fixed cost of a forward pass, in tokens' worth of work (PASS_TOKENS)."""
        self.pair_weight = pair_weight(model.config)
        """score_variants: the cost of one query-key pair of attention against one token's linear maps."""
        self.is_demo = bool(getattr(model.config, "armorm_ui_demo", False))
        self.device = str(self.torch_device)
        self.reward_transform_matrix = model.reward_transform_matrix.detach().double().cpu().numpy()

    @property
    def torch_device(self):
        """Where the embeddings are now (read per call: on ZeroGPU `spaces` moves the weights for each call)."""
        return self.model.model.embed_tokens.weight.device

    # ------------------------------------------------------------------------------------------------- interface

    def score(self, conversations: list[EncodedConversation], request: Request) -> list[Outputs]:
        """Conversations are grouped, in order, into packed rows of several conversations up to `row_tokens()`
        tokens (one forward pass each); a conversation alone in its group, or too large for a shared row, takes the
        one-conversation layouts (`_score_one`)."""
        sizes = [len(c.prefix_ids) + sum(len(x) for x in c.candidate_ids) for c in conversations]
        outputs: list[Outputs] = []
        for group in pack_conversations(sizes, self.row_tokens()):
            outputs += self._score_group(conversations, group, request)
        return outputs

    @torch.inference_mode()
    def score_variants(self, conversation: EncodedConversation, request: Request) -> Outputs:
        enc = conversation
        base_ids = enc.candidate_ids[0]
        p = len(enc.prefix_ids)
        backbone = self.model.model
        request.check()
        out = backbone(input_ids=torch.tensor([enc.prefix_ids + base_ids], device=self.torch_device),
                       past_key_values=DynamicCache(config=backbone.config), use_cache=True)  # fmt: skip
        h = out.last_hidden_state[0]  # (P + F, d)
        kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        base_rewards, gating, _ = self.model.head(h[enc.gate_position], h[-1:])
        shared, suffixes = [], []
        for ids in enc.candidate_ids[1:]:
            n = 0  # longest common token prefix with the base, leaving at least the final token to compute
            while n < min(len(ids), len(base_ids)) - 1 and ids[n] == base_ids[n]:
                n += 1
            shared.append(n)
            suffixes.append(ids[n:])
        variant_rewards = np.zeros((len(suffixes), NUM_OBJECTIVES))
        batches = bucket_variants(p, shared, [len(x) for x in suffixes], self.token_budget, self.pass_tokens,
                                  self.pair_weight)  # fmt: skip
        for batch in batches:
            request.check()
            inputs = variant_batch_inputs(p, [shared[i] for i in batch], [suffixes[i] for i in batch],
                                          self.torch_device)  # fmt: skip
            ends, k, b = inputs.pop("ends"), inputs.pop("cache_len"), len(batch)
            cache = DynamicCache(
                ddp_cache_data=[(x[:, :, :k].expand(b, -1, -1, -1), y[:, :, :k].expand(b, -1, -1, -1)) for x, y in kv],
                config=backbone.config,
            )
            hb = backbone(**inputs, past_key_values=cache, use_cache=True).last_hidden_state  # (B, W, d)
            r, _, _ = self.model.head(h[enc.gate_position], hb[torch.arange(b, device=hb.device), ends])
            variant_rewards[batch] = r.double().cpu().numpy()
        rewards = np.vstack([base_rewards.double().cpu().numpy(), variant_rewards])
        return Outputs(rewards, gating.double().cpu().numpy())

    def attribute_tokens(self, conversation: EncodedConversation, target: TokenTarget, positions: list[int],
                         method: Method, steps: int, request: Request) -> TokenAttributions:  # fmt: skip
        from .gradients import attribute_tokens

        return attribute_tokens(self.model, conversation, target, positions, method, steps, request,
                                self.token_budget)  # fmt: skip

    # ----------------------------------------------------------------------------------------------------- layouts

    def strategy(self, tokens: int) -> str:
        """The layout for a conversation of `tokens` tokens (once) plus candidates; measured choices (README)."""
        if self.strategy_name != "auto":
            return self.strategy_name
        packed = self.torch_device.type == "cuda" or tokens < self.packed_below
        return "packed" if packed else "prefix_cache"

    def row_tokens(self) -> int:
        """Most tokens in one row shared by several conversations (0: one conversation per pass).

        'packed': the token budget; 'prefix_cache': 0; 'auto': the token budget on CUDA (as for one conversation's
        packed row), and `shared_row_tokens` (SHARED_ROW_TOKENS_CPU, measured) elsewhere, where the row's dense
        L x L attention soon costs more than the passes it saves."""
        if self.strategy_name == "prefix_cache":
            return 0
        if self.strategy_name == "packed" or self.torch_device.type == "cuda":
            return self.token_budget
        return min(self.token_budget, self.shared_row_tokens)

    def _score_group(self, conversations: list[EncodedConversation], group: list[int], request: Request):
        """Conversations `group` (indices into `conversations`) in one shared row; on CUDA out-of-memory the group
        is halved and retried, down to one conversation, which takes `_score_one` (halving its candidates)."""
        if len(group) == 1:
            j = group[0]
            try:
                return [self._score_one(conversations[j], request)]
            except CandidateTooLarge as e:
                raise CandidateTooLarge(e.args[0], j, e.index, e.tokens) from e
        try:
            return self._forward_many([conversations[j] for j in group], request)
        except torch.cuda.OutOfMemoryError:
            pass  # retried below, once the failed pass's tensors are gone with the exception
        torch.cuda.empty_cache()
        half = len(group) // 2
        return self._score_group(conversations, group[:half], request) + self._score_group(
            conversations, group[half:], request
        )

    @torch.inference_mode()
    def _forward_many(self, encs: list[EncodedConversation], request: Request) -> list[Outputs]:
        """One forward pass over a row of several conversations (packing.multi_prompt_inputs); the fp32 head per
        conversation, its gate read at its own gate position and its rewards at its candidates' last tokens."""
        request.check()
        inputs = multi_prompt_inputs([e.prefix_ids for e in encs], [e.candidate_ids for e in encs],
                                     self.torch_device, [e.gate_position for e in encs])  # fmt: skip
        gates, ends = inputs.pop("gates"), inputs.pop("ends")  # (C,), (sum N,)
        del inputs["starts"]
        h = self.model.model(**inputs, use_cache=False).last_hidden_state[0]  # (L, d)
        rewards, gatings, i = [], [], 0
        for c, e in enumerate(encs):
            n = len(e.candidate_ids)
            r, g, _ = self.model.head(h[gates[c]], h[ends[i : i + n]])  # (n, k), (k,)
            rewards.append(r)
            gatings.append(g)
            i += n
        rewards = torch.cat(rewards).double().cpu().numpy()  # (sum N, k): one copy off the device
        gatings = torch.stack(gatings).double().cpu().numpy()  # (C, k)
        bounds = np.cumsum([0] + [len(e.candidate_ids) for e in encs])
        return [Outputs(rewards[a:b], gatings[c]) for c, (a, b) in enumerate(zip(bounds, bounds[1:]))]

    @torch.inference_mode()
    def _score_one(self, enc: EncodedConversation, request: Request) -> Outputs:
        lengths = [len(c) for c in enc.candidate_ids]
        strategy = self.strategy(len(enc.prefix_ids) + sum(lengths))
        if strategy == "packed":
            groups = pack_candidates(len(enc.prefix_ids), lengths, self.token_budget)
        else:
            groups = [list(range(len(lengths)))]  # one prefix pass; batching happens inside
        rewards = np.zeros((len(lengths), NUM_OBJECTIVES))
        gating = None
        for group in groups:
            r, g = self._forward_split(enc, group, strategy, request)
            rewards[group] = r
            gating = g if gating is None else gating
        return Outputs(rewards, gating)

    def _forward_split(self, enc: EncodedConversation, ks: list[int], strategy: str, request: Request):
        """One group; on CUDA out-of-memory, halve it and retry, down to one candidate."""
        try:
            return self._forward(enc, ks, strategy, request)
        except torch.cuda.OutOfMemoryError as e:
            torch.cuda.empty_cache()
            if len(ks) == 1:
                n = len(enc.prefix_ids) + len(enc.candidate_ids[ks[0]])
                raise CandidateTooLarge(
                    f"Out of GPU memory scoring a candidate of {n} tokens alone.", 0, ks[0], n
                ) from e
            half = len(ks) // 2
            r1, g = self._forward_split(enc, ks[:half], strategy, request)
            r2, _ = self._forward_split(enc, ks[half:], strategy, request)
            return np.concatenate([r1, r2]), g

    def _forward(self, enc: EncodedConversation, ks: list[int], strategy: str, request: Request):
        request.check()
        cands = [enc.candidate_ids[k] for k in ks]
        backbone = self.model.model
        if strategy == "packed":
            inputs = shared_prompt_inputs(enc.prefix_ids, cands, self.torch_device)
            ends = inputs.pop("ends")
            h = backbone(**inputs, use_cache=False).last_hidden_state[0]  # (L, d)
            rewards, gating, _ = self.model.head(h[enc.gate_position], h[ends])
            return rewards.double().cpu().numpy(), gating.double().cpu().numpy()
        # prefix cache: the conversation once, then length-bucketed candidate batches reading its keys/values
        p = len(enc.prefix_ids)
        prefix = torch.tensor([enc.prefix_ids], device=self.torch_device)
        out = backbone(input_ids=prefix, past_key_values=DynamicCache(config=backbone.config), use_cache=True)
        h_gate = out.last_hidden_state[0, enc.gate_position]  # (d,)
        kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]  # each (1, kv_heads, P, hd)
        rewards = np.zeros((len(ks), NUM_OBJECTIVES))
        gating = None
        for batch in bucket_candidates([len(c) for c in cands], self.token_budget):
            request.check()
            inputs = candidate_batch_inputs(p, [cands[i] for i in batch], self.torch_device)
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


def load(model: str, device: str | None = None, dtype: str | None = None, revision: str | None = None,
         move_to: str | None = None, **settings):  # fmt: skip
    """Load an ArmoRM checkpoint (local folder or hub id): returns (NativeBackend, tokenizer).

    device: 'cpu', 'cuda', 'cuda:1', 'auto' (split over all GPUs); default cuda when available.
    dtype: backbone precision, 'bfloat16' | 'float16' | 'float32'; default bf16 on CUDA, fp32 on CPU.
    move_to: load on `device`, then move the whole model there (ZeroGPU: load on the CPU, then `.to("cuda")`, as
    the `spaces` documentation shows). The head (regression layer, gating network, transform matrix) always stays
    in float32, as stored. `settings`: NativeBackend's layout settings (token_budget, strategy, packed_below,
    shared_row_tokens).
    """
    from transformers import AutoTokenizer

    device = device or default_device()
    if dtype is None:
        dtype = "float32" if (move_to or device) == "cpu" else "bfloat16"
    if dtype not in DTYPES:
        raise InputError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}.")
    folder = resolve_checkpoint(model, revision)
    net = load_model(folder, device, DTYPES[dtype])
    if move_to is not None:
        net = net.to(move_to)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return NativeBackend(net, source=model, **settings), tokenizer
