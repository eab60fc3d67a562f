"""Cost of leave-one-out attribution: every variant scored one by one like the model card, vs. the native backend's
score_variants, which computes the conversation and the full response once and each variant only after its shared
beginning.

    python benchmarks/bench_attribution.py                 # small shape on CPU: 200-token prompt, 20 segments
Prints both times (medians of interleaved runs), the ratio, the token counts and the largest score difference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scoring import build_model, card_loop, timed_pair  # noqa: E402

from armorm_ui.backend.base import Request  # noqa: E402
from armorm_ui.backend.native import NativeBackend  # noqa: E402
from armorm_ui.chat import EncodedConversation  # noqa: E402
from armorm_ui.scoring import ScorerConfig  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="small")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--prompt", type=int, default=200)
    ap.add_argument("--segments", type=int, default=20)
    ap.add_argument("--segment-tokens", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    model = build_model(args.shape, args.device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    backend = NativeBackend(model, source=f"random {args.shape}", **ScorerConfig().backend_settings())
    g = torch.Generator().manual_seed(0)
    prefix = [128000, 128006, 882, 128007] + torch.randint(0, 128000, (args.prompt - 8,), generator=g).tolist()
    prefix += [128009, 128006, 78191, 128007]
    segs = [torch.randint(0, 128000, (args.segment_tokens,), generator=g).tolist() for _ in range(args.segments)]
    base = [271] + [t for s in segs for t in s] + [128009]
    variants = [[271] + [t for j, s in enumerate(segs) if j != i for t in s] + [128009] for i in range(args.segments)]
    enc = EncodedConversation(prefix, len(prefix) - 4, [base, *variants])
    loop = EncodedConversation(prefix, len(prefix) - 4, variants)
    times, _ = timed_pair(lambda: card_loop(model, loop, device), lambda: backend.score_variants(enc, Request()),
                          device, args.repeats)  # fmt: skip
    out = backend.score_variants(enc, Request())
    ours = (out.rewards[1:] @ backend.reward_transform_matrix) @ out.gating_output
    diff = float((card_loop(model, loop, device).double().cpu() - torch.tensor(ours)).abs().max())
    p, f = len(prefix), len(base)
    card_tokens = sum(p + len(v) for v in variants)
    ours_tokens = p + f + sum(len(v) - 1 - i * args.segment_tokens for i, v in enumerate(variants))
    print(f"device {device}, shape {args.shape}; prompt {p} tokens, response {f} tokens in {args.segments} segments")
    print(f"one by one (card): {times['card'] * 1e3:.1f} ms, {card_tokens} tokens")
    print(f"shared prefixes:   {times['ours'] * 1e3:.1f} ms, {ours_tokens} tokens")
    print(f"ratio {times['card'] / times['ours']:.2f}x (tokens {card_tokens / ours_tokens:.2f}x); "
          f"max |score difference| {diff:.1e}")  # fmt: skip
    return {"card_s": times["card"], "ours_s": times["ours"], "card_tokens": card_tokens, "ours_tokens": ours_tokens,
            "max_score_diff": diff}  # fmt: skip


if __name__ == "__main__":
    main()
