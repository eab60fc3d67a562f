"""Many requests per forward pass: preference pairs scored one conversation per pass vs. several conversations
packed into one row (a block-diagonal shared-prompt mask: backend/packing.py, multi_prompt_inputs).

    python benchmarks/bench_many.py                              # the demo checkpoint, this machine's CPU
    python benchmarks/bench_many.py --hidden 256 --layers 4      # a wider random checkpoint of the demo's layout
    python benchmarks/bench_many.py --device cuda                # on a GPU

Workloads: RewardBench-like pairs (prompt 50-400 tokens, two answers of 50-400 tokens; the lengths of the
RewardBench prompts and answers the model card evaluates on) and short chat pairs (prompt 10-60, answers 5-60),
random token ids in the Llama-3 chat template. Both ways go through `NativeBackend.score` on the same backend:
one conversation per call (each takes the per-conversation layout), and every pair in one call with shared rows
capped by the backend's rule (auto) and at each of --row-tokens. Rounds are interleaved (one, each cap, one, ...) so that drift hits all; prints
medians of --rounds after a warm-up, pairs/s, the ratio, and the largest score difference; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from armorm_ui.backend import demo_checkpoint  # noqa: E402
from armorm_ui.backend.base import Request  # noqa: E402
from armorm_ui.backend.native import NativeBackend, load  # noqa: E402
from armorm_ui.chat import EncodedConversation  # noqa: E402

WORKLOADS = {  # name: (prompt token range, answer token range)
    "rewardbench": ((50, 400), (50, 400)),
    "short": ((10, 60), (5, 60)),
}


def checkpoint(hidden: int | None, layers: int | None) -> Path:
    """The demo checkpoint, or one of its layout with a wider/deeper random backbone (demo_checkpoint's builders)."""
    if hidden is None and layers is None:
        return demo_checkpoint.ensure()
    from safetensors.torch import save_file

    cfg = demo_checkpoint.demo_config(hidden=hidden or 64, layers=layers or 2, heads=max(4, (hidden or 64) // 64))
    out = Path(tempfile.mkdtemp(prefix="armorm-bench-many-"))
    save_file(demo_checkpoint.demo_tensors(cfg), out / "model.safetensors", metadata={"format": "pt"})
    demo_checkpoint.write_tokenizer(out)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    return out


def make_pairs(n: int, prompt: tuple[int, int], answer: tuple[int, int], seed: int = 0) -> list[EncodedConversation]:
    """n conversations of one user turn and two answers, random ids in the template's frame (chat.py)."""
    g = torch.Generator().manual_seed(seed)

    def ids(k: int) -> list[int]:
        return torch.randint(0, 128000, (k,), generator=g).tolist()

    def length(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    pairs = []
    for _ in range(n):
        prefix = [128000, 128006, 882, 128007, 271] + ids(length(*prompt)) + [128009, 128006, 78191, 128007]
        answers = [[271] + ids(length(*answer)) + [128009] for _ in range(2)]
        pairs.append(EncodedConversation(prefix, len(prefix) - 4, answers))
    return pairs


def scores(backend: NativeBackend, outputs) -> np.ndarray:
    return np.concatenate([(o.rewards @ backend.reward_transform_matrix) @ o.gating_output for o in outputs])


def run(backend: NativeBackend, pairs: list[EncodedConversation], way):
    """None: one conversation per call (each takes the per-conversation layouts); "auto": every pair in one call,
    rows as the backend's rule caps them (NativeBackend.row_tokens); a number: every pair in one call, rows capped
    there."""
    if way is None:
        return [backend.score([p], Request())[0] for p in pairs]
    if way == "auto":
        return backend.score(pairs, Request())
    backend.row_tokens = lambda: way  # this instance only, for this call
    try:
        return backend.score(pairs, Request())
    finally:
        del backend.row_tokens


def bench(backend: NativeBackend, pairs, caps: list[int], rounds: int, device) -> dict:
    ways = [None, "auto", *caps]

    def timed(way) -> float:
        start = time.perf_counter()
        run(backend, pairs, way)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    base = scores(backend, run(backend, pairs, None))  # warm-up, and the reference scores
    diffs = {way: float(np.abs(scores(backend, run(backend, pairs, way)) - base).max()) for way in ways[1:]}
    times = {way: [] for way in ways}
    for _ in range(rounds):
        for way in ways:
            times[way].append(timed(way))
    med = {way: statistics.median(t) for way, t in times.items()}
    return {"one_per_pass_s": med[None], "one_per_pass_pairs_per_s": len(pairs) / med[None],
            "packed": [{"row_tokens": way if way != "auto" else f"auto ({backend.row_tokens()})", "s": med[way],
                        "ratio": med[None] / med[way], "pairs_per_s": len(pairs) / med[way],
                        "max_score_diff": diffs[way]} for way in ways[1:]]}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=None, help="backbone width (default: the demo checkpoint's, 64)")
    ap.add_argument("--layers", type=int, default=None, help="backbone layers (default: the demo checkpoint's, 2)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--row-tokens", default="512,1024,2048,8192", help="caps on a shared row to time, comma-separated")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help=f"of {', '.join(WORKLOADS)}")
    ap.add_argument("--json", default=None, help="where to write the figures")
    args = ap.parse_args(argv)
    caps = [int(x) for x in args.row_tokens.split(",")]
    folder = checkpoint(args.hidden, args.layers)
    backend, _ = load(str(folder), device=args.device, dtype="float32")
    device = backend.torch_device
    cfg = backend.model.config
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    print(f"device {device} ({name}, {torch.get_num_threads()} threads), hidden {cfg.hidden_size}, "
          f"{cfg.num_hidden_layers} layers, float32, torch {torch.__version__}")  # fmt: skip
    out = {"device": str(device), "hidden": cfg.hidden_size, "layers": cfg.num_hidden_layers, "pairs": args.pairs,
           "torch": torch.__version__, "threads": torch.get_num_threads(), "workloads": {}}  # fmt: skip
    for w, wname in enumerate(args.workloads.split(",")):
        pairs = make_pairs(args.pairs, *WORKLOADS[wname], seed=w)
        sizes = [len(p.prefix_ids) + sum(len(c) for c in p.candidate_ids) for p in pairs]
        r = bench(backend, pairs, caps, args.rounds, device)
        out["workloads"][wname] = {"tokens": sum(sizes), "median_pair_tokens": statistics.median(sizes), **r}
        print(f"{wname}: {args.pairs} pairs, {sum(sizes)} tokens (median {statistics.median(sizes):.0f} a pair), "
              f"medians of {args.rounds} interleaved rounds")  # fmt: skip
        print(f"  one conversation per pass   {r['one_per_pass_s'] * 1e3:8.1f} ms  "
              f"{r['one_per_pass_pairs_per_s']:7.1f} pairs/s")  # fmt: skip
        for p in r["packed"]:
            print(f"  shared rows <= {p['row_tokens']!s:>11} tokens  {p['s'] * 1e3:8.1f} ms  {p['pairs_per_s']:7.1f} pairs/s"
                  f"  ratio {p['ratio']:5.2f}x  max |score diff| {p['max_score_diff']:.1e}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
