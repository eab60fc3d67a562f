"""How N candidates to one conversation are laid out for the backbone, without re-encoding the conversation.

Two layouts, both giving every candidate exactly the context and positions it would have alone:
- packed (`shared_prompt_inputs`): one row, conversation then every candidate; a 4D mask lets each candidate see the
  conversation and its own earlier tokens only, and position ids restart after the conversation for each candidate.
  No padding and one pass: the fastest on a GPU (8B shape, H200: PERF section of the README), but its attention is
  L x L over the whole row, which dominates on a CPU with a small model.
- prefix cache (`candidate_batch_inputs`): the conversation once, its keys/values reused by batches of candidates
  grouped by length (`bucket_candidates`) so that padding stays small; attention costs len x (P + len) per candidate.

Variants of one response (`variant_batch_inputs`) read the keys/values of the conversation and the full response:
each computes only its tokens after the beginning it shares with the response, in padded batches chosen by
`bucket_variants` for their cost, which counts the cached keys a batch must address as well as its padding.

Several conversations can share one packed row (`multi_prompt_inputs`, grouped by `pack_conversations`): the mask
is block-diagonal over conversations, each block the shared-prompt mask above, and position ids restart at 0 for
each conversation. Every candidate still sees exactly what it would see scored alone, as in the model card's
one-conversation-per-row pipeline (the authors' `modeling_custom.py` reads the reward at each row's last real token
and the gate at the <|eot_id|> ending its last user turn; here those are the indices `ends` and `gates`).
"""

from __future__ import annotations

import torch


def pack_candidates(prompt_len: int, lengths: list[int], budget: int) -> list[list[int]]:
    """Group candidate indices into packed rows of at most `budget` tokens (the prompt counts once per row)."""
    packs, current, used = [], [], prompt_len
    for k in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if current and used + lengths[k] > budget:
            packs.append(current)
            current, used = [], prompt_len
        current.append(k)
        used += lengths[k]
    if current:
        packs.append(current)
    return packs


def bucket_candidates(lengths: list[int], budget: int, max_padding: float = 0.1) -> list[list[int]]:
    """Group candidate indices, longest first, into padded batches of at most `budget` tokens (padding included)
    whose padding stays under `max_padding` of their real tokens."""
    batches, current = [], []
    for k in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if current:
            width, size = lengths[current[0]], len(current) + 1
            real = sum(lengths[i] for i in current) + lengths[k]
            if size * width > budget or size * width > (1 + max_padding) * real:
                batches.append(current)
                current = []
        current.append(k)
    if current:
        batches.append(current)
    return batches


def pass_cost(rows: int, width: int, keys: int, pair_weight: float) -> float:
    """Work of one padded batch, in token units: `rows` x `width` query tokens, each through the layers' linear
    maps (1 a token) and attending to `keys` + `width` keys (`pair_weight` a query-key pair; the mask is dense, so
    masked and padded pairs cost as much as real ones)."""
    return rows * width * (1.0 + pair_weight * (keys + width))


def bucket_variants(prompt_len: int, shared: list[int], lengths: list[int], budget: int, pass_tokens: float = 512.0,
                    pair_weight: float = 0.0) -> list[list[int]]:  # fmt: skip
    """Group variants (variant b: `shared[b]` response tokens read from the cache, `lengths[b]` tokens computed)
    into padded batches of at most `budget` query tokens (padding included), at the least total cost.

    A batch is `width` = its longest suffix wide and addresses `prompt_len` + its largest share of cached keys, so
    that one variant sharing a long beginning makes every row of its batch attend to those keys too, and a short
    suffix batched with long ones is padded to their width. Each batch costs `pass_cost` plus `pass_tokens` (the
    fixed cost of a forward pass, in token units). The least-cost split into runs of consecutive variants is found
    by dynamic programming, in three orders (by suffix length, by share, by the end of the suffix), the cheapest
    kept; each batch lists its variants longest suffix first."""
    n = len(lengths)
    if n == 0:
        return []
    orders = [
        sorted(range(n), key=lambda i: (-lengths[i], -shared[i], i)),
        sorted(range(n), key=lambda i: (-shared[i], -lengths[i], i)),
        sorted(range(n), key=lambda i: (-shared[i] - lengths[i], -lengths[i], i)),
    ]
    best_cost, best = float("inf"), []
    for order in orders:
        cost = [0.0] + [float("inf")] * n  # cost[i]: the cheapest split of order[:i]
        cut = [0] * (n + 1)
        for i in range(1, n + 1):
            width = share = 0
            for j in range(i - 1, -1, -1):  # the batch order[j:i], grown to the left
                width, share = max(width, lengths[order[j]]), max(share, shared[order[j]])
                if i - j > 1 and (i - j) * width > budget:
                    break  # wider still only adds rows
                c = cost[j] + pass_tokens + pass_cost(i - j, width, prompt_len + share, pair_weight)
                if c < cost[i]:
                    cost[i], cut[i] = c, j
        if cost[n] < best_cost:
            batches, i = [], n
            while i > 0:
                batches.append(sorted(order[cut[i] : i], key=lambda k: (-lengths[k], k)))
                i = cut[i]
            best_cost, best = cost[n], batches[::-1]
    return best


def pack_conversations(sizes: list[int], budget: int) -> list[list[int]]:
    """Group conversation indices, in order, into packed rows of at most `budget` tokens (`sizes`: each one's
    conversation once plus its candidates). Each group is a run of consecutive indices, so the groups concatenated
    are 0..n-1; a conversation over `budget` is a group of its own."""
    groups, current, used = [], [], 0
    for j, n in enumerate(sizes):
        if current and (used + n > budget or n > budget):
            groups.append(current)
            current, used = [], 0
        current.append(j)
        used += n
        if n > budget:
            groups.append(current)
            current, used = [], 0
    if current:
        groups.append(current)
    return groups


def multi_prompt_inputs(prefixes: list[list[int]], candidates_per_prefix: list[list[list[int]]], device,
                        gate_positions: list[int] | None = None) -> dict:  # fmt: skip
    """Packed layout of several conversations in one row: for each, its prefix then every candidate.

    A query sees a key only in its own conversation, causally, and, inside the candidates, only its own candidate's
    tokens. Position ids run 0..P-1 over each prefix and P.. over each of its candidates, as scored alone.
    Returns input_ids (1, L), position_ids (1, L), attention_mask (1, 1, L, L) bool (True = attend), `starts`
    (C,) each prefix's first index, `ends` (sum of N,) each candidate's last index (conversation by conversation,
    candidates in order), and `gates` (C,) each conversation's gate index when `gate_positions` (into each prefix)
    are given."""
    ids, conv, cand, pos, starts, ends = [], [], [], [], [], []
    for c, (prefix, cands) in enumerate(zip(prefixes, candidates_per_prefix)):
        p = len(prefix)
        starts.append(len(ids))
        ids += prefix
        conv.append(torch.full((p,), c))
        cand.append(torch.full((p,), -1))
        pos.append(torch.arange(p))
        for k, x in enumerate(cands):
            ids += x
            ends.append(len(ids) - 1)
            conv.append(torch.full((len(x),), c))
            cand.append(torch.full((len(x),), k))
            pos.append(torch.arange(p, p + len(x)))
    conv, cand = torch.cat(conv).to(device), torch.cat(cand).to(device)  # (L,) each
    idx = torch.arange(len(ids), device=device)  # (L,)
    causal = idx[None, :] <= idx[:, None]  # (L, L) key <= query
    same = conv[None, :] == conv[:, None]  # (L, L) key in the query's conversation
    visible = (cand[None, :] == -1) | (cand[None, :] == cand[:, None])  # (L, L) key in a prefix or the query's cand.
    out = {
        "input_ids": torch.tensor(ids, device=device)[None],  # (1, L)
        "position_ids": torch.cat(pos).to(device)[None],  # (1, L)
        "attention_mask": (causal & same & visible)[None, None],  # (1, 1, L, L), True = attend
        "starts": torch.tensor(starts, device=device),  # (C,)
        "ends": torch.tensor(ends, device=device),  # (sum N,)
    }
    if gate_positions is not None:
        out["gates"] = out["starts"] + torch.tensor(gate_positions, device=device)  # (C,)
    return out


def shared_prompt_inputs(prefix: list[int], cands: list[list[int]], device) -> dict:
    """Packed layout: one row, prefix then every candidate; each candidate attends to the prefix and to itself
    (`multi_prompt_inputs` for one conversation)."""
    out = multi_prompt_inputs([prefix], [cands], device)
    del out["starts"]
    return out


def candidate_batch_inputs(prompt_len: int, cands: list[list[int]], device) -> dict:
    """Prefix-cache layout: candidates right-padded into (B, W) after a cached prefix of prompt_len tokens."""
    lens = torch.tensor([len(c) for c in cands], device=device)
    b, w = len(cands), int(lens.max())
    ids = torch.zeros(b, w, dtype=torch.long, device=device)  # pad id is irrelevant: pad keys are masked
    for i, c in enumerate(cands):
        ids[i, : len(c)] = torch.tensor(c, device=device)
    q = torch.arange(w, device=device)
    own = (q[None, :] <= q[:, None])[None] & (q[None, None, :] < lens[:, None, None])  # (B, W, W) causal, no pads
    mask = torch.cat([torch.ones(b, w, prompt_len, dtype=torch.bool, device=device), own], dim=2)
    return {
        "input_ids": ids,
        "position_ids": (prompt_len + q)[None].expand(b, -1),
        "attention_mask": mask[:, None],  # (B, 1, W, P + W), True = attend
        "ends": lens - 1,
    }


def variant_batch_inputs(prompt_len: int, shared: list[int], suffixes: list[list[int]], device) -> dict:
    """Variants of one response, after a cached prefix (conversation + the full response): row b reuses the first
    `shared[b]` response tokens from the cache and computes only its own suffix. Keys of the cache beyond a row's
    shared part are masked for that row."""
    b, w = len(suffixes), max(len(s) for s in suffixes)
    k = prompt_len + max(shared)  # cached keys every row can address
    lens = torch.tensor([len(s) for s in suffixes], device=device)
    start = prompt_len + torch.tensor(shared, device=device)  # (B,) first position of each suffix
    ids = torch.zeros(b, w, dtype=torch.long, device=device)
    for i, s in enumerate(suffixes):
        ids[i, : len(s)] = torch.tensor(s, device=device)
    q = torch.arange(w, device=device)
    cached = torch.arange(k, device=device)[None, None, :] < start[:, None, None]  # (B, 1, K) shared part only
    own = (q[None, :] <= q[:, None])[None] & (q[None, None, :] < lens[:, None, None])  # (B, W, W)
    mask = torch.cat([cached.expand(b, w, k), own], dim=2)
    return {
        "input_ids": ids,
        "position_ids": start[:, None] + q[None, :],
        "attention_mask": mask[:, None],  # (B, 1, W, K + W)
        "ends": lens - 1,
        "cache_len": k,
    }
