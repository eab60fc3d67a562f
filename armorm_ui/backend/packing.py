"""How N candidates to one conversation are laid out for the backbone, without re-encoding the conversation.

Two layouts, both giving every candidate exactly the context and positions it would have alone:
- packed (`shared_prompt_inputs`): one row, conversation then every candidate; a 4D mask lets each candidate see the
  conversation and its own earlier tokens only, and position ids restart after the conversation for each candidate.
  No padding and one pass: the fastest on a GPU (8B shape, H200: PERF section of the README), but its attention is
  L x L over the whole row, which dominates on a CPU with a small model.
- prefix cache (`candidate_batch_inputs`): the conversation once, its keys/values reused by batches of candidates
  grouped by length (`bucket_candidates`) so that padding stays small; attention costs len x (P + len) per candidate.
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


def shared_prompt_inputs(prefix: list[int], cands: list[list[int]], device) -> dict:
    """Packed layout: one row, prefix then every candidate; each candidate attends to the prefix and to itself."""
    lens = torch.tensor([len(c) for c in cands])
    p = len(prefix)
    ids = torch.tensor(prefix + [t for c in cands for t in c], device=device)  # (L,)
    seg = torch.cat([torch.full((p,), -1), torch.repeat_interleave(torch.arange(len(cands)), lens)]).to(device)
    pos = torch.cat([torch.arange(p)] + [torch.arange(p, p + n) for n in lens.tolist()]).to(device)
    idx = torch.arange(ids.numel(), device=device)
    causal = idx[None, :] <= idx[:, None]  # (L, L) key <= query
    visible = (seg[None, :] == -1) | (seg[None, :] == seg[:, None])  # key in prefix or in the query's candidate
    ends = p + torch.cumsum(lens, 0) - 1  # (n,) each candidate's last token, its <|eot_id|>
    return {
        "input_ids": ids[None],
        "position_ids": pos[None],
        "attention_mask": (causal & visible)[None, None],  # (1, 1, L, L), True = attend
        "ends": ends.to(device),
    }


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
