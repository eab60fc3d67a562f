"""Cost of token attribution (backend/gradients.py) against one scoring pass, on the model card's long answer.

    python benchmarks/bench_token_attribution.py                      # the demo checkpoint on the CPU
    python benchmarks/bench_token_attribution.py --model DIR --device cuda
Times, in one process and interleaved (scoring, gradient x input, IG 16, IG 64, scoring, ...), medians over
--repeats runs after one warm-up each: one scoring pass of the conversation (backend.score), gradient x input, and
Integrated Gradients with 16 and 64 steps of the target over the response's tokens. Prints each as a ratio to the
scoring pass, with the completeness gap |sum of attributions - (value - baseline)| / |value - baseline|.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from armorm_ui.backend import demo_checkpoint, native  # noqa: E402
from armorm_ui.backend.base import Request, TokenTarget  # noqa: E402
from armorm_ui.chat import ChatEncoder  # noqa: E402

CARD_PROMPT = 'What are some synonyms for the word "beautiful"?'
CARD_RESPONSE = (  # the model card's second (long) answer: CARD_RESPONSES[1] in tests/conftest.py
    'Certainly! Here are some synonyms for the word "beautiful":\n\n1. Gorgeous\n2. Lovely\n3. Stunning\n'
    "4. Attractive\n5. Pretty\n6. Elegant\n7. Exquisite\n8. Handsome\n9. Charming\n10. Alluring\n11. Radiant\n"
    "12. Magnificent\n13. Graceful\n14. Enchanting\n15. Dazzling\n\n"
    "These synonyms can be used in various contexts to convey the idea of beauty."
)


def interleaved(runs: dict, device: torch.device, repeats: int) -> dict[str, float]:
    """Median seconds of each run, one warm-up each, then rounds of every run in turn so that drift hits all."""

    def once(fn) -> float:
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t

    for fn in runs.values():
        once(fn)
    times = {label: [] for label in runs}
    for _ in range(repeats):
        for label, fn in runs.items():
            times[label].append(once(fn))
    return {label: statistics.median(t) for label, t in times.items()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="checkpoint folder or hub id (default: the demo checkpoint)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, help="bfloat16 | float16 | float32 (default: native.load's)")
    ap.add_argument("--target", default="score", choices=["score", "reward", "coefficient"])
    ap.add_argument("--objective", type=int, default=0, help="head index for reward and coefficient targets")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = args.model or str(demo_checkpoint.ensure())
    backend, tokenizer = native.load(model, device=args.device, dtype=args.dtype)
    device = backend.torch_device
    enc = ChatEncoder(tokenizer).encode([{"role": "user", "content": CARD_PROMPT}], [CARD_RESPONSE])
    target = TokenTarget(args.target, None if args.target == "score" else args.objective)
    p, n = len(enc.prefix_ids), len(enc.candidate_ids[0])
    if args.target == "coefficient":  # the gate reads the conversation: attribute the user's text
        positions = list(range(5, enc.gate_position))
    else:  # the response's own tokens: not the leading "\n\n" nor the final <|eot_id|>
        positions = list(range(p + 1, p + n - 1))

    def attribute(method: str, steps: int):
        return lambda: backend.attribute_tokens(enc, target, positions, method, steps, Request())

    runs = {
        "scoring pass": lambda: backend.score([enc], Request()),
        "gradient x input": attribute("gradient_x_input", 1),
        "IG, 16 steps": attribute("integrated_gradients", 16),
        "IG, 64 steps": attribute("integrated_gradients", 64),
    }
    times = interleaved(runs, device, args.repeats)
    gaps = {label: runs[label]().completeness_gap for label in list(runs)[1:]}
    rows = max(1, backend.token_budget // (p + n))
    dtype = backend.model.model.embed_tokens.weight.dtype
    print(f"model {model} ({'demo' if backend.is_demo else 'checkpoint'}), device {device}, backbone {dtype}, "
          f"{torch.get_num_threads()} CPU threads")  # fmt: skip
    print(f"conversation {p + n} tokens, {len(positions)} attributed; target {args.target}"
          f"{'' if target.objective is None else f' {target.objective}'}; token budget {backend.token_budget} "
          f"({rows} path points per batch); medians of {args.repeats} interleaved runs")  # fmt: skip
    print(f"{'':18} {'ms':>9} {'x scoring':>10} {'completeness gap':>17}")
    base = times["scoring pass"]
    for label, t in times.items():
        gap = f"{gaps[label]:.2e}" if label in gaps else "-"
        print(f"{label:18} {t * 1e3:9.2f} {t / base:10.2f} {gap:>17}")
    return {"times_s": times, "ratios": {k: v / base for k, v in times.items()}, "completeness_gaps": gaps}


if __name__ == "__main__":
    main()
