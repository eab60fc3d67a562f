"""Evaluation speed: a preference pair scored as one request (the prompt encoded once, both answers beside it) vs.
the same pair as two separate requests, one per answer, as a loop over a reward model's API would do.

    python benchmarks/bench_evaluate.py                  # the demo checkpoint on this machine's CPU
    python benchmarks/bench_evaluate.py --model DIR      # any ArmoRM checkpoint, on a GPU when there is one

Both ways run in one process on the same pairs, interleaved, with the scorer's result cache off; prints medians of
--repeats runs, pairs per second each way, their ratio, and the time to compute the report; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from armorm_ui.backend import demo_checkpoint  # noqa: E402
from armorm_ui.evaluation import pair_frame, report  # noqa: E402
from armorm_ui.preferences import Pair  # noqa: E402
from armorm_ui.scoring import ScorerConfig, load_scorer  # noqa: E402

WORDS = ("the model reads each answer in context and weighs helpfulness correctness coherence safety and style "
         "before it settles on a single preference score for every response it is shown").split()  # fmt: skip


def text(rng, words: int) -> str:
    return " ".join(rng.choice(WORDS, size=words)).capitalize() + "."


def make_pairs(n: int, seed: int = 0) -> list[Pair]:
    """HelpSteer-like lengths: a prompt of ~150 words, answers of 100-250 words."""
    rng = np.random.default_rng(seed)
    return [Pair(f"p{k}", "all", [{"role": "user", "content": text(rng, 150)}], text(rng, int(rng.integers(100, 250))),
                 text(rng, int(rng.integers(100, 250))), k + 1) for k in range(n)]  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint folder or hub id (default: the demo checkpoint)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default="bench_evaluate.json")
    args = ap.parse_args(argv)
    model = args.model or str(demo_checkpoint.ensure())
    scorer = load_scorer(model, device=args.device, config=ScorerConfig(cache_size=0))
    pairs = make_pairs(args.pairs)

    def as_pairs():
        return [scorer.score(p.messages, [p.chosen, p.rejected]) for p in pairs]

    def separately():
        return [(scorer.score(p.messages, [p.chosen]), scorer.score(p.messages, [p.rejected])) for p in pairs]

    together, apart = as_pairs(), separately()  # warm-up, and the two ways agree
    diff = max(float(np.max(np.abs(t.scores - [a[0].scores[0], a[1].scores[0]]))) for t, a in zip(together, apart))
    times = {"pair": [], "separate": []}
    for _ in range(args.repeats):
        for name, run in (("pair", as_pairs), ("separate", separately)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    t_pair, t_sep = statistics.median(times["pair"]), statistics.median(times["separate"])
    start = time.perf_counter()
    report(pair_frame(pairs, together))
    t_report = time.perf_counter() - start
    tokens = int(sum(r.prompt_tokens + r.candidate_tokens.sum() for r in together))
    out = {"machine": platform.processor() or platform.machine(), "device": args.device, "pairs": args.pairs,
           "tokens": tokens, "pair_s": t_pair, "separate_s": t_sep, "pairs_per_s": args.pairs / t_pair,
           "separate_pairs_per_s": args.pairs / t_sep, "ratio": t_sep / t_pair, "report_ms": t_report * 1e3,
           "max_score_difference": diff}  # fmt: skip
    print(f"{args.pairs} pairs ({tokens} tokens) on {args.device}, medians of {args.repeats} interleaved runs")
    print(f"  one request per pair   {t_pair * 1e3:8.0f} ms  {out['pairs_per_s']:6.1f} pairs/s")
    print(f"  two requests per pair  {t_sep * 1e3:8.0f} ms  {out['separate_pairs_per_s']:6.1f} pairs/s")
    print(f"  ratio {out['ratio']:.2f}x; report {out['report_ms']:.0f} ms; scores differ by at most {diff:.1e}")
    Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
