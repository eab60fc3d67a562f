"""Scoring speed: the model card's one-conversation-per-pass loop vs. this project's shared-prompt packed scorer.

Both run in one process, on one device, on the same random token ids, with random weights of a chosen shape:
    python benchmarks/bench_scoring.py                       # small shape on CPU
    python benchmarks/bench_scoring.py --shape llama3-8b     # on a GPU: bf16, ~16 GB of weights
Prints, per workload, medians of --repeats interleaved runs after 2 warm-ups, the ratio (card time / project
time), useful TFLOP/s (2 x non-embedding params x (prompt tokens once + every candidate token once) / time), peak
GPU memory, and the app's own overhead (tokenising, explanation, figures) for 8 candidates; writes the figures as JSON.
Workloads and latest figures: the Benchmark section of the README.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from armorm_ui.backend.base import Request  # noqa: E402
from armorm_ui.backend.model import ArmoRM  # noqa: E402
from armorm_ui.backend.native import NativeBackend  # noqa: E402
from armorm_ui.chat import EncodedConversation  # noqa: E402
from armorm_ui.objectives import NUM_OBJECTIVES  # noqa: E402
from armorm_ui.scoring import ScorerConfig  # noqa: E402

SHAPES = {
    "llama3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8, gating_hidden_dim=1024),
    "small": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=8,
                  num_key_value_heads=2, gating_hidden_dim=256),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, gating_hidden_dim=32),  # smoke tests of the scripts themselves
}  # fmt: skip
WORKLOADS = [  # name, prompt tokens, candidates, candidate token range
    ("card example", 25, 3, (12, 150)),
    ("HelpSteer N=8", 200, 8, (150, 450)),
    ("HelpSteer N=16", 200, 16, (150, 450)),
    ("long prompt", 2000, 8, (100, 300)),
]


def build_model(shape: str, device: str, dtype: torch.dtype) -> ArmoRM:
    from transformers import LlamaConfig

    config = LlamaConfig(
        vocab_size=128257, max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5,
        num_objectives=NUM_OBJECTIVES, gating_temperature=10, gating_n_hidden=3, **SHAPES[shape],
    )  # fmt: skip
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = ArmoRM(config)
    model.model.to(dtype)
    return model.eval()


def workload(prompt: int, n: int, lo: int, hi: int, seed: int) -> EncodedConversation:
    g = torch.Generator().manual_seed(seed)

    def ids(k):
        return torch.randint(0, 128000, (k,), generator=g).tolist()

    prefix = [128000, 128006, 882, 128007] + ids(prompt - 8) + [128009, 128006, 78191, 128007]
    lengths = torch.randint(lo, hi + 1, (n,), generator=g).tolist()
    return EncodedConversation(prefix, len(prefix) - 4, [[271] + ids(k - 2) + [128009] for k in lengths])


@torch.inference_mode()
def card_loop(model: ArmoRM, enc: EncodedConversation, device) -> torch.Tensor:
    """As the model card's pipeline: one forward pass per (conversation + candidate), prompt re-encoded each time."""
    scores = []
    for k in range(len(enc.candidate_ids)):
        ids = torch.tensor([enc.full_ids(k)], device=device)
        h = model.model(input_ids=ids, use_cache=False).last_hidden_state[0]
        scores.append(model.head(h[enc.gate_position], h[-1:])[2])
    return torch.cat(scores)


def project_score(backend: NativeBackend, enc: EncodedConversation, ks: list[int]):
    """The project's scoring path for candidates ks of `enc`: the backend the Scorer calls, one fresh Request."""
    picked = dataclasses.replace(enc, candidate_ids=[enc.candidate_ids[k] for k in ks])
    return backend.score([picked], Request())[0]


def timed(fn, device, repeats: int, warmup: int = 2) -> float:
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def timed_pair(card, ours, device, repeats: int) -> tuple[dict, list]:
    """Median seconds of each, runs interleaved (card, ours, card, ...) so that drift hits both; peak GPU GB."""
    times, peaks = {"card": [], "ours": []}, []
    for fn in (card, ours):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        timed(fn, device, 1)
        if device.type == "cuda":
            peaks.append(torch.cuda.max_memory_allocated(device) / 2**30)
    for _ in range(repeats):
        for label, fn in (("card", card), ("ours", ours)):
            times[label].append(timed(fn, device, 1, warmup=0))
    return {k: statistics.median(v) for k, v in times.items()}, peaks


def app_overhead(repeats: int) -> dict:
    """Tokenising 8 candidates and building every view/table/export for them, on this machine's CPU."""
    from transformers import AutoTokenizer

    from armorm_ui.backend import demo_checkpoint
    from armorm_ui.chat import ChatEncoder
    from armorm_ui.results import ScoreResult
    from armorm_ui.ui import views as ui

    tok = AutoTokenizer.from_pretrained(demo_checkpoint.ensure())
    enc = ChatEncoder(tok)
    words = "The answer depends on context, but here is a careful explanation with examples and code. ".split()
    prompt = " ".join(words * 15)
    cands = [" ".join(words[k:] + words * (20 + 2 * k)) for k in range(8)]
    import numpy as np

    rng = np.random.default_rng(0)
    T = np.eye(19)
    result = ScoreResult(rng.normal(size=8), rng.normal(size=(8, 19)), rng.random(19), rng.random(19), T, 200,
                         np.full(8, 300))  # fmt: skip
    state = {"result": result.to_dict(), "labels": list("ABCDEFGH"), "responses": cands,
             "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
    t_tok = timed(lambda: enc.encode(state["messages"], cands), torch.device("cpu"), repeats)
    t_views = timed(lambda: ui.views(state), torch.device("cpu"), repeats)
    figs = [f for f in ui.views(state).values() if hasattr(f, "to_json")]
    t_json = timed(lambda: [f.to_json() for f in figs], torch.device("cpu"), repeats)  # what gr.Plot does
    t_export = timed(lambda: ui.export_files(state), torch.device("cpu"), repeats)
    total = t_tok + t_views + t_json + t_export
    return {"tokenise_ms": t_tok * 1e3, "views_ms": t_views * 1e3, "figure_json_ms": t_json * 1e3,
            "export_ms": t_export * 1e3, "total_ms": total * 1e3}  # fmt: skip


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=SHAPES, default="small")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=["bfloat16", "float32"], default=None)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", default="benchmarks/results.json", help="where to write the figures")
    ap.add_argument("--skip-app", action="store_true", help="skip the app-overhead measurement")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    model = build_model(args.shape, args.device, dtype)
    params = sum(p.numel() for n, p in model.model.named_parameters() if "embed_tokens" not in n)
    # the Scorer's model work without a tokenizer: token ids go to the native backend directly
    backend = NativeBackend(model, source=f"random {args.shape}", **ScorerConfig().backend_settings())

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    print(f"device {device} ({name}), shape {args.shape} ({params / 1e9:.3f} B non-embedding params), {dtype}, "
          f"torch {torch.__version__}")  # fmt: skip
    header = (f"{'workload':<16} {'tokens P+sum':>12} {'card ms':>9} {'ours ms':>9} {'ratio':>6} {'TFLOP/s':>8} "
              f"{'max |Δ|':>9}")  # fmt: skip
    print(header + ("  peak GB card/ours" if device.type == "cuda" else ""))
    rows = []
    for i, (name, p, n, (lo, hi)) in enumerate(WORKLOADS):
        enc = workload(p, n, lo, hi, seed=i)
        ks = list(range(n))
        useful = len(enc.prefix_ids) + sum(len(c) for c in enc.candidate_ids)
        results, peaks = timed_pair(
            lambda e=enc: card_loop(model, e, device),
            lambda e=enc, k=ks: project_score(backend, e, k),
            device,
            args.repeats,
        )
        out = project_score(backend, enc, ks)
        ours_scores = torch.tensor((out.rewards @ backend.reward_transform_matrix) @ out.gating_output)
        diff = float((card_loop(model, enc, device).double().cpu() - ours_scores).abs().max())
        tflops = 2 * params * useful / results["ours"] / 1e12
        row = {"workload": name, "prompt_tokens": len(enc.prefix_ids), "candidates": n, "useful_tokens": useful,
               "card_ms": results["card"] * 1e3, "ours_ms": results["ours"] * 1e3,
               "ratio": results["card"] / results["ours"], "useful_tflops": tflops, "max_score_diff": diff,
               "peak_gb": peaks}  # fmt: skip
        rows.append(row)
        line = (f"{name:<16} {useful:>12} {row['card_ms']:>9.1f} {row['ours_ms']:>9.1f} {row['ratio']:>5.2f}x "
                f"{tflops:>8.2f} {diff:>9.2e}")  # fmt: skip
        print(line + (f"  {peaks[0]:.1f}/{peaks[1]:.1f}" if peaks else ""), flush=True)
    out = {"device": str(device), "shape": args.shape, "dtype": str(dtype), "torch": torch.__version__, "rows": rows}
    if not args.skip_app:
        out["app_overhead"] = app_overhead(args.repeats)
        a = out["app_overhead"]
        print(f"app overhead, 8 candidates (CPU): tokenise {a['tokenise_ms']:.1f} ms + views {a['views_ms']:.1f} ms"
              f" + figure JSON {a['figure_json_ms']:.1f} ms + export {a['export_ms']:.1f} ms"
              f" = {a['total_ms']:.1f} ms")  # fmt: skip
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
