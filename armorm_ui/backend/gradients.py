"""Token attribution on ArmoRM: gradient x input and Integrated Gradients, with the token embeddings as the input.

What is explained is one scalar of candidate 0 (base.TokenTarget): its preference score, one objective's reward,
or one objective's coefficient (gating @ Tᵀ). The head is the model card's (RLHFlow/ArmoRM-Llama3-8B-v0.1): rewards
read at the last token, the gate at the <|eot_id|> closing the last user turn, score = (rewards @ T) · gating. Only
the embeddings at the requested positions are the input x; every other token's embedding stays as it is.

- gradient x input: a_t = Σ_d ∂f/∂x_t,d · x_t,d, one forward and one backward pass.
- Integrated Gradients (Sundararajan et al. 2017, "Axiomatic Attribution for Deep Networks"): baseline zeros at the
  attributed positions, straight path α·x, a_t = x_t · ∫₀¹ ∂f/∂x_t(α·x) dα. The integral uses Gauss-Legendre
  nodes and weights on [0, 1] with `steps` points, the default of Captum's IntegratedGradients and
  LayerIntegratedGradients (here applied to the embedding layer's output). Completeness: Σ_t a_t ≈ f(x) - f(0),
  which base.TokenAttributions.completeness_gap measures.

The path points run as rows of one batched forward/backward pass, rows x tokens <= the backend's token budget, with
`request.check()` before each batch; on CUDA out-of-memory a batch is halved and retried, down to one path point
per pass. Gradients are taken with torch.autograd.grad with respect to the input only,
with the parameters' requires_grad switched off for the call (restored after): nothing accumulates in `.grad`, and
autograd saves only what the input's gradient needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from operator import index

import numpy as np
import torch

from ..chat import EncodedConversation
from ..errors import InputError, ScoringError
from .base import Method, Request, TokenAttributions, TokenTarget
from .model import ArmoRM


def check_positions(positions, length: int) -> list[int]:
    """Positions as ints: non-empty, each inside the full ids (0..length-1), no repeats; else an InputError."""
    try:
        out = [index(p) for p in positions]
    except TypeError as e:
        raise InputError(f"Token positions must be whole numbers, got {list(positions)!r:.120}.") from e
    if not out:
        raise InputError("No token positions to attribute: give at least one position.")
    outside = [p for p in out if not 0 <= p < length]
    if outside:
        raise InputError(f"Token positions {outside[:8]} are outside the conversation and candidate, which has "
                         f"{length} tokens (positions 0 to {length - 1}).")  # fmt: skip
    repeated = sorted({p for p in out if out.count(p) > 1})
    if repeated:
        raise InputError(f"Token positions {repeated[:8]} are given more than once; give each position once.")
    return out


def head_rows(model: ArmoRM, h_gate: torch.Tensor, h_reward: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """model.head, one gate per row: h_gate (B, d), h_reward (B, d) -> rewards (B, k), gating (B, k), in the
    head's own dtype (float32 as stored; float64 once a test calls .double())."""
    weight = model.regression_layer.weight
    rewards = model.regression_layer(h_reward.to(weight.device, weight.dtype))  # (B, k)
    gating = model.gating(h_gate.to(weight.device, weight.dtype))  # (B, k)
    return rewards, gating


def target_function(model: ArmoRM, conversation: EncodedConversation, target: TokenTarget, positions: list[int]
                    ) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:  # fmt: skip
    """(f, x): x (T, d) the embeddings at `positions` of candidate 0's full ids, and f the target as a function of
    them. f takes (T, d) -> scalar, or rows (B, T, d) -> (B,); every other embedding is fixed."""
    ids = conversation.prefix_ids + conversation.candidate_ids[0]
    positions = check_positions(positions, len(ids))
    embed = model.model.embed_tokens
    device, dtype = embed.weight.device, embed.weight.dtype
    with torch.no_grad():
        fixed = embed(torch.tensor(ids, device=device))  # (L, d)
    where = torch.tensor(positions, device=device)  # (T,)
    x = fixed[where].clone()  # (T, d)
    length, gate = len(ids), conversation.gate_position
    T = model.reward_transform_matrix  # (k, k)

    def f(rows: torch.Tensor) -> torch.Tensor:
        single = rows.dim() == 2
        rows = rows[None] if single else rows  # (B, T, d)
        b = rows.shape[0]
        embeds = fixed.expand(b, -1, -1).index_copy(1, where, rows.to(device, dtype))  # (B, L, d)
        position_ids = torch.arange(length, device=device).expand(b, -1)  # (B, L)
        h = model.model(inputs_embeds=embeds, position_ids=position_ids, use_cache=False).last_hidden_state  # (B, L, d)
        rewards, gating = head_rows(model, h[:, gate], h[:, -1])  # (B, k), (B, k)
        if target.kind == "score":
            out = ((rewards @ T.to(rewards)) * gating).sum(-1)  # (B,)
        elif target.kind == "reward":
            out = rewards[:, target.objective]  # (B,)
        else:
            out = (gating @ T.to(gating).T)[:, target.objective]  # (B,)
        return out[0] if single else out

    return f, x


@contextmanager
def frozen(model: torch.nn.Module) -> Iterator[None]:
    """Parameters out of autograd for the call; their requires_grad is put back after, whatever happens."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def path_points(method: Method, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, weights) of the path integral: the input itself for gradient x input; Gauss-Legendre on [0, 1]."""
    if method == "gradient_x_input":
        return np.ones(1), np.ones(1)
    if method != "integrated_gradients":
        raise InputError(f"method {method!r} is not one of gradient_x_input, integrated_gradients.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"Integrated Gradients needs a whole number of steps from 1 up, got {steps!r}.")
    nodes, weights = np.polynomial.legendre.leggauss(steps)  # on [-1, 1]
    return (nodes + 1) / 2, weights / 2


def attribute_tokens(model: ArmoRM, conversation: EncodedConversation, target: TokenTarget, positions: list[int],
                     method: Method, steps: int, request: Request, token_budget: int) -> TokenAttributions:  # fmt: skip
    """Attribute `target` of candidate 0 to the embeddings at `positions` of its full ids (see the module doc)."""
    ids = conversation.prefix_ids + conversation.candidate_ids[0]
    positions = check_positions(positions, len(ids))
    alphas, weights = path_points(method, steps)
    f, x = target_function(model, conversation, target, positions)
    rows = max(1, token_budget // len(ids))  # path points per batch: rows x tokens <= the token budget
    leaf = torch.promote_types(x.dtype, torch.float32)  # path points in fp32 at least, cast to the model's in f
    x_leaf = x.to(leaf)  # (T, d)
    grad_sum = torch.zeros(x.shape, dtype=torch.float64, device=x.device)  # (T, d): Σ_k w_k ∂f/∂x(α_k x)
    value = None
    start = 0
    with torch.enable_grad(), frozen(model):
        while start < len(alphas):
            request.check()
            a = torch.tensor(alphas[start : start + rows], dtype=leaf, device=x.device)  # (B,)
            w = torch.tensor(weights[start : start + rows], dtype=torch.float64, device=x.device)  # (B,)
            try:
                path = (a[:, None, None] * x_leaf).requires_grad_()  # (B, T, d)
                out = f(path)  # (B,)
                (grads,) = torch.autograd.grad(out.sum(), path)  # (B, T, d); the graph is freed here
            except torch.cuda.OutOfMemoryError as e:  # fewer path points per pass, down to one
                path = out = None
                torch.cuda.empty_cache()
                if rows == 1:
                    raise ScoringError(f"Out of GPU memory for one gradient pass of {len(ids):,} tokens; explain a "
                                       "shorter conversation or response.") from e  # fmt: skip
                rows = max(1, rows // 2)
                continue
            grad_sum += torch.einsum("b,btd->td", w, grads.double())  # (T, d)
            if method == "gradient_x_input":
                value = float(out[0].detach())
            start += len(a)
            del path, out, grads
    request.check()
    ends = torch.stack([torch.zeros_like(x_leaf)] + ([x_leaf] if value is None else []))  # (1 or 2, T, d)
    with torch.no_grad():
        found = torch.cat([f(chunk) for chunk in ends.split(rows)]).tolist()  # baseline, then the input for IG
    baseline_value = found[0]
    value = found[1] if value is None else value
    attributions = (x.double() * grad_sum).sum(-1)  # (T,)
    return TokenAttributions(
        positions=np.asarray(positions, dtype=np.int64),
        token_ids=np.asarray([ids[p] for p in positions], dtype=np.int64),
        attributions=attributions.cpu().numpy(),
        value=value,
        baseline_value=baseline_value,
        method=method,
        steps=1 if method == "gradient_x_input" else steps,
    )
