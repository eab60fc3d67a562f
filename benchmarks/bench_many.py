"""Many requests per forward pass: preference pairs scored one conversation per pass vs. several conversations
packed into one row (a block-diagonal shared-prompt mask: backend/packing.py, multi_prompt_inputs).

    python benchmarks/bench_many.py                              # the demo checkpoint, this machine's CPU
    python benchmarks/bench_many.py --hidden 256 --layers 4      # a wider random checkpoint of the demo's layout
    python benchmarks/bench_many.py --grid                       # k conversations of s tokens: where sharing pays
    python benchmarks/bench_many.py --device cuda                # on a GPU

Workloads: RewardBench-like pairs (prompt 50-400 tokens, two answers of 50-400 tokens) and short chat pairs
(prompt 10-60, answers 5-60), random token ids in the Llama-3 chat template (chat.py). Both ways go through
`NativeBackend.score` on one backend: one conversation per call (each takes the per-conversation layout), and
every pair in one call, its shared rows capped by the backend's own rule (auto) or at each of --row-tokens.

Rounds are interleaved (one per pass, auto, each cap, one per pass, ...) so that drift hits all; prints medians of
--rounds after a warm-up: wall-clock ms and pairs/s, the ratio to one per pass, and, on a CPU, the ratio of process
CPU times too (steadier than wall clock where other work shares the cores), and the largest score difference.
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
GRID_SIZES, GRID_COUNTS = (64, 128, 256, 512), (2, 4, 8)
"""--grid: k conversations (one prompt, two answers) of s tokens each, in k passes or one shared row of k * s."""


def checkpoint(hidden: int | None, layers: int | None) -> Path:
    """The demo checkpoint, or one of its layout with a wider/deeper random backbone (demo_checkpoint's builders)."""
    if hidden is None and layers is None:
        return demo_checkpoint.ensure()
    from safetensors.torch import save_file

    hidden, layers = hidden or 64, layers or 2
    cfg = demo_checkpoint.demo_config(hidden=hidden, layers=layers, heads=max(4, hidden // 64))
    out = Path(tempfile.mkdtemp(prefix="armorm-bench-many-"))
    save_file(demo_checkpoint.demo_tensors(cfg), out / "model.safetensors", metadata={"format": "pt"})
    demo_checkpoint.write_tokenizer(out)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    return out


def make_pairs(n: int, prompt: tuple[int, int], answer: tuple[int, int], seed: int = 0) -> list[EncodedConversation]:
    """n conversations of one user turn (`prompt` tokens) and two answers (`answer` tokens each, plus the template's
    '\\n\\n' and <|eot_id|>), random ids in the template's frame (chat.py)."""
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


def size(enc: EncodedConversation) -> int:
    return len(enc.prefix_ids) + sum(len(c) for c in enc.candidate_ids)


def scores(backend: NativeBackend, outputs) -> np.ndarray:
    return np.concatenate([(o.rewards @ backend.reward_transform_matrix) @ o.gating_output for o in outputs])


def run(backend: NativeBackend, pairs: list[EncodedConversation], way):
    """None: one conversation per call (the per-conversation layouts); "auto": every pair in one call, rows as the
    backend's rule caps them (NativeBackend.row_tokens); a number: every pair in one call, rows capped there."""
    if way is None:
        return [backend.score([p], Request())[0] for p in pairs]
    if way == "auto":
        return backend.score(pairs, Request())
    backend.row_tokens = lambda: way  # this instance only, for this call
    try:
        return backend.score(pairs, Request())
    finally:
        del backend.row_tokens


def interleaved(backend: NativeBackend, pairs, ways: list, rounds: int) -> dict:
    """Median wall-clock and process CPU seconds of each way, over `rounds` interleaved rounds after a warm-up."""
    device = backend.torch_device
    for way in ways:
        run(backend, pairs, way)
    wall, cpu = {w: [] for w in ways}, {w: [] for w in ways}
    for _ in range(rounds):
        for way in ways:
            t, c = time.perf_counter(), time.process_time()
            run(backend, pairs, way)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            wall[way].append(time.perf_counter() - t)
            cpu[way].append(time.process_time() - c)
    return {w: (statistics.median(wall[w]), statistics.median(cpu[w])) for w in ways}


def bench(backend: NativeBackend, pairs, caps: list[int], rounds: int) -> dict:
    ways = [None, "auto", *caps]
    base = scores(backend, run(backend, pairs, None))
    diffs = {way: float(np.abs(scores(backend, run(backend, pairs, way)) - base).max()) for way in ways[1:]}
    med = interleaved(backend, pairs, ways, rounds)
    (wall0, cpu0), n = med[None], len(pairs)
    rows = [{"row_tokens": way if way != "auto" else f"auto ({backend.row_tokens()})", "s": med[way][0],
             "cpu_s": med[way][1], "pairs_per_s": n / med[way][0], "ratio": wall0 / med[way][0],
             "cpu_ratio": cpu0 / med[way][1], "max_score_diff": diffs[way]} for way in ways[1:]]  # fmt: skip
    return {"one_per_pass_s": wall0, "one_per_pass_cpu_s": cpu0, "one_per_pass_pairs_per_s": n / wall0, "packed": rows}


def grid(backend: NativeBackend, rounds: int) -> list[dict]:
    """k conversations of s tokens: k passes vs one shared row of k * s tokens (caps lifted)."""
    rows = []
    for s in GRID_SIZES:
        for k in GRID_COUNTS:
            pairs = make_pairs(k, (s // 2 - 9, s // 2 - 9), (s // 4 - 2, s // 4 - 2), seed=s + k)  # s tokens each
            med = interleaved(backend, pairs, [None, k * s], rounds)
            rows.append({"tokens": size(pairs[0]), "conversations": k, "row": sum(map(size, pairs)),
                         "separate_s": med[None][0], "shared_s": med[k * s][0],
                         "ratio": med[None][0] / med[k * s][0], "cpu_ratio": med[None][1] / med[k * s][1]})  # fmt: skip
            r = rows[-1]
            print(f"  {k} x {r['tokens']:>3} tokens: {k} passes {r['separate_s'] * 1e3:7.1f} ms, one row of "
                  f"{r['row']:>4} {r['shared_s'] * 1e3:7.1f} ms, ratio {r['ratio']:4.2f}x (CPU time "
                  f"{r['cpu_ratio']:4.2f}x)", flush=True)  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=None, help="backbone width (default: the demo checkpoint's, 64)")
    ap.add_argument("--layers", type=int, default=None, help="backbone layers (default: the demo checkpoint's, 2)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--row-tokens", default="256,512,1024,2048", help="shared-row caps to time, comma-separated")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help=f"of {', '.join(WORKLOADS)}")
    ap.add_argument("--grid", action="store_true", help="also time k conversations of s tokens, apart and shared")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    ap.add_argument("--json", default=None, help="where to write the figures")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    caps = [int(x) for x in args.row_tokens.split(",") if x]
    backend, _ = load(str(checkpoint(args.hidden, args.layers)), device=args.device, dtype="float32")
    device, cfg = backend.torch_device, backend.model.config
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    print(f"device {device} ({name}, {torch.get_num_threads()} threads), hidden {cfg.hidden_size}, "
          f"{cfg.num_hidden_layers} layers, float32, torch {torch.__version__}")  # fmt: skip
    out = {"device": str(device), "hidden": cfg.hidden_size, "layers": cfg.num_hidden_layers, "pairs": args.pairs,
           "torch": torch.__version__, "threads": torch.get_num_threads(), "workloads": {}}  # fmt: skip
    for w, wname in enumerate(x for x in args.workloads.split(",") if x):
        pairs = make_pairs(args.pairs, *WORKLOADS[wname], seed=w)
        sizes = [size(p) for p in pairs]
        r = bench(backend, pairs, caps, args.rounds)
        out["workloads"][wname] = {"tokens": sum(sizes), "median_pair_tokens": statistics.median(sizes), **r}
        print(f"{wname}: {args.pairs} pairs, {sum(sizes)} tokens (median {statistics.median(sizes):.0f} a pair), "
              f"medians of {args.rounds} interleaved rounds")  # fmt: skip
        one = r["one_per_pass_s"]
        print(f"  one conversation per pass     {one * 1e3:8.1f} ms {args.pairs / one:7.1f} pairs/s")
        for p in r["packed"]:
            print(f"  shared rows <= {p['row_tokens']!s:>10}  {p['s'] * 1e3:8.1f} ms {p['pairs_per_s']:7.1f} pairs/s  "
                  f"ratio {p['ratio']:4.2f}x (CPU time {p['cpu_ratio']:4.2f}x)  max |score diff| "
                  f"{p['max_score_diff']:.1e}")  # fmt: skip
    if args.grid:
        print(f"grid: medians of {args.rounds} interleaved rounds")
        out["grid"] = grid(backend, args.rounds)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
