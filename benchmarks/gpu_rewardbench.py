"""ArmoRM at its real size on one GPU: RewardBench-sized preference pairs through the project's native backend.

    python benchmarks/gpu_rewardbench.py                                  # Llama-3-8B shape, bf16, cuda, 2,985 pairs
    python benchmarks/gpu_rewardbench.py --shape tiny --device cpu --pairs 64 --check-pairs 8   # CPU smoke run

For a GPU machine with torch and transformers only (no gradio, no other requirement of the project, no internet,
no checkpoint, no tokenizer): it imports armorm_ui.backend.{model,native,base,packing,demo_checkpoint},
armorm_ui.chat, armorm_ui.objectives and armorm_ui.errors (and, through the package's __init__, armorm_ui.results,
which needs numpy). Run it from the repository root, or with the root on PYTHONPATH.

What is measured: random weights of ArmoRM's shape (--shape 8b: hidden 4096, 32 layers, 32 heads, 8 KV heads,
intermediate 14336, vocab 128257, gating MLP 3 x 1024), built directly on the device (`armorm_ui.backend.model.ArmoRM`
constructed under `torch.device(DEVICE)` with the backbone's dtype as default, randomly initialised, no safetensors
file), the backbone in --dtype (bf16) and the head (regression layer, gating network, transform matrix) in fp32 as
the project's loader keeps it. --pairs (2,985: RewardBench's size) pairs of random token ids in Llama-3's chat frame
(chat.py): a user prompt of 50-400 tokens and two answers of 50-400 tokens, uniform with a fixed --seed (the range
of RewardBench's prompts and answers; random ids because no tokenizer is needed), built as chat.EncodedConversation
with the gate at the <|eot_id|> closing the user turn. They are scored by `NativeBackend.score` as the project's CLI
calls it, --pairs-per-call conversations per call (1: the CLI today, one `Scorer.score` per pair; 64: a batch per
call, as `Scorer.score_many` would send it), with the backend's own layouts and packing (on CUDA one packed row of
up to 8,192 tokens per pass, several pairs per row when a call has several). After a warm-up, each setting is timed
once over all pairs (--repeats for more; median); printed: wall time, pairs/s, tokens/s, forward passes, peak memory
and useful TFLOP/s = 2 x non-embedding parameters x tokens / s, tokens = each prompt once + each answer (attention
not counted).

The check: on --check-pairs pairs spread over the set, every setting's scores against one conversation per forward
pass, the authors' way (prompt + answer as one causal row, no mask: the gate read at its <|eot_id|>, the reward at the
last token), in the same dtype; and that one-pass reference against the same in fp32 (the parameters cast to fp32
and back, exactly), which measures bf16's own noise. The packed scores must be within max(3 x that noise, 1e-5)
of the one-pass ones, or the script exits with status 1.
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
import torch
import transformers
from transformers import LlamaConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from armorm_ui.backend.base import Request, tokens_of  # noqa: E402
from armorm_ui.backend.demo_checkpoint import demo_config  # noqa: E402
from armorm_ui.backend.model import ArmoRM  # noqa: E402
from armorm_ui.backend.native import DTYPES, NativeBackend  # noqa: E402
from armorm_ui.chat import EncodedConversation  # noqa: E402

SHAPES = {  # hidden, layers, heads, KV heads, intermediate, gating hidden
    "8b": (4096, 32, 32, 8, 14336, 1024),  # RLHFlow/ArmoRM-Llama3-8B-v0.1's config.json
    "tiny": (64, 2, 4, 2, 128, 32),
}
BOS, START_HEADER, USER, END_HEADER, NL2, EOT, ASSISTANT = 128000, 128006, 882, 128007, 271, 128009, 78191
DEADLINE = 3600.0
"""Seconds one call may run (a Request's deadline); the CLI's default, 120 s per pair, never binds here."""


def build_model(shape: str, device: str, dtype: torch.dtype, seed: int) -> ArmoRM:
    """ArmoRM of `shape` with random weights, made on `device`: the backbone in `dtype`, the head in fp32."""
    hidden, layers, heads, kv_heads, intermediate, gating_hidden = SHAPES[shape]
    cfg = demo_config(hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, gating_hidden=gating_hidden)
    cfg["intermediate_size"] = intermediate
    cfg["torch_dtype"] = str(dtype).removeprefix("torch.")
    config = LlamaConfig.from_dict(cfg)
    config._attn_implementation = "sdpa"  # as backend/model.py's load_model
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # parameters made in `dtype`; buffers made as float32 explicitly stay float32
    try:
        with torch.device(device):
            model = ArmoRM(config)
    finally:
        torch.set_default_dtype(previous)
    model.regression_layer.float()
    model.gating.float()
    model.reward_transform_matrix.data = model.reward_transform_matrix.data.float()
    return model.eval()


def make_pairs(n: int, seed: int, prompt=(50, 400), answer=(50, 400)) -> list[EncodedConversation]:
    """n conversations of one user turn and two answers, random ordinary-token ids in the chat frame (chat.py):
    prefix = BOS, user header, "\\n\\n", prompt, <|eot_id|>, assistant header; candidate = "\\n\\n", answer,
    <|eot_id|>."""
    g = torch.Generator().manual_seed(seed)

    def ids(lo: int, hi: int) -> list[int]:
        k = int(torch.randint(lo, hi + 1, (1,), generator=g))
        return torch.randint(0, BOS, (k,), generator=g).tolist()

    pairs = []
    for _ in range(n):
        prefix = [BOS, START_HEADER, USER, END_HEADER, NL2, *ids(*prompt), EOT, START_HEADER, ASSISTANT, END_HEADER]
        answers = [[NL2, *ids(*answer), EOT] for _ in range(2)]
        pairs.append(EncodedConversation(prefix, len(prefix) - 4, answers))
    return pairs


def scores_of(backend: NativeBackend, outputs) -> np.ndarray:
    """(n, 2): each pair's chosen and rejected score, score = gating . (rewards @ T)."""
    return np.stack([(o.rewards @ backend.reward_transform_matrix) @ o.gating_output for o in outputs])


def score_all(backend: NativeBackend, pairs: list[EncodedConversation], per_call: int) -> list:
    out = []
    for i in range(0, len(pairs), per_call):
        out += backend.score(pairs[i : i + per_call], Request(deadline=DEADLINE))
    return out


@torch.inference_mode()
def one_pass_scores(model: ArmoRM, pairs: list[EncodedConversation]) -> np.ndarray:
    """(n, 2): the authors' way, one conversation per forward pass, plain causal attention, no mask."""
    device = model.model.embed_tokens.weight.device
    out = np.zeros((len(pairs), 2))
    for i, enc in enumerate(pairs):
        for k in range(2):
            ids = torch.tensor([enc.full_ids(k)], device=device)
            h = model.model(input_ids=ids, use_cache=False).last_hidden_state[0]
            out[i, k] = float(model.head(h[enc.gate_position], h[-1:])[2][0])
    return out


def cast_backbone(model: ArmoRM, dtype: torch.dtype) -> None:
    """Cast the backbone's parameters in place (bf16 -> fp32 -> bf16 is exact); buffers (RoPE) are left alone."""
    for p in model.model.parameters():
        p.data = p.data.to(dtype)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=list(SHAPES), default="8b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", choices=list(DTYPES), default="bfloat16", help="the backbone's (the head: float32)")
    ap.add_argument("--pairs", type=int, default=2985)
    ap.add_argument("--pairs-per-call", type=int, nargs="+", default=[1, 64], help="settings to time")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs of each setting (median)")
    ap.add_argument("--check-pairs", type=int, default=32)
    ap.add_argument("--no-fp32-check", action="store_true", help="skip the fp32 reference (it needs 2x memory)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    dtype = DTYPES[args.dtype]

    start = time.perf_counter()
    model = build_model(args.shape, args.device, dtype, args.seed)
    backend = NativeBackend(model, source=f"random {args.shape}-shape weights")
    device = backend.torch_device
    sync(device)
    built = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    non_embedding = params - model.model.embed_tokens.weight.numel()
    rope = model.model.rotary_emb.inv_freq.dtype
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    cfg = model.config
    print(f"{args.shape} shape: hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, {cfg.num_attention_heads} "
          f"heads / {cfg.num_key_value_heads} KV, intermediate {cfg.intermediate_size}, vocab {cfg.vocab_size}; "
          f"{params / 1e6:,.1f} M parameters ({non_embedding / 1e6:,.1f} M non-embedding); backbone {args.dtype}, head "
          f"{str(model.regression_layer.weight.dtype)[6:]}, RoPE {str(rope)[6:]}; built in {built:.1f} s on {device} "
          f"({name}); torch "
          f"{torch.__version__}, transformers {transformers.__version__}")  # fmt: skip

    pairs = make_pairs(args.pairs, args.seed)
    tokens = tokens_of(pairs)
    lengths = [len(p.prefix_ids) for p in pairs], [len(c) for p in pairs for c in p.candidate_ids]
    print(
        f"{len(pairs)} pairs, {tokens:,} tokens (prompt once + each answer; the authors' one pass per answer would "
        f"run {sum(len(p.prefix_ids) * 2 + sum(map(len, p.candidate_ids)) for p in pairs):,}); prompts "
        f"{min(lengths[0])}-{max(lengths[0])} tokens, answers {min(lengths[1])}-{max(lengths[1])} with the frame"
    )

    passes = [0]
    model.model.register_forward_pre_hook(lambda *_: passes.__setitem__(0, passes[0] + 1))
    results, outputs = [], {}
    for per_call in args.pairs_per_call:
        score_all(backend, pairs[: max(8, 2 * per_call)], per_call)  # warm-up: kernels, allocator, autotuning
        times = []
        for _ in range(args.repeats):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            passes[0] = 0
            sync(device)
            t0 = time.perf_counter()
            outputs[per_call] = score_all(backend, pairs, per_call)
            sync(device)
            times.append(time.perf_counter() - t0)
        seconds = statistics.median(times)
        peak_gb = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        row = {"pairs_per_call": per_call, "seconds": seconds, "all_seconds": times,
               "pairs_per_s": len(pairs) / seconds, "tokens_per_s": tokens / seconds,
               "useful_tflops": 2 * non_embedding * tokens / seconds / 1e12, "forward_passes": passes[0],
               "peak_gb": peak_gb}  # fmt: skip
        results.append(row)
        peak = f", peak {row['peak_gb']:.1f} GB" if row["peak_gb"] is not None else ""
        print(f"  {per_call:4d} pairs per call: {seconds:8.2f} s  {row['pairs_per_s']:8.1f} pairs/s  "
              f"{row['tokens_per_s']:10,.0f} tokens/s  {row['useful_tflops']:7.2f} useful TFLOP/s  "
              f"{passes[0]} forward passes{peak}")  # fmt: skip

    # the check: packed vs one pass per conversation (same dtype), and bf16's own noise (one pass vs fp32)
    sample = sorted({int(i) for i in np.linspace(0, len(pairs) - 1, min(args.check_pairs, len(pairs)))})
    picked = [pairs[i] for i in sample]
    ref = one_pass_scores(model, picked)
    noise = None
    if not args.no_fp32_check and dtype != torch.float32:
        cast_backbone(model, torch.float32)
        noise = float(np.abs(ref - one_pass_scores(model, picked)).max())
        cast_backbone(model, dtype)
    elif dtype == torch.float32:
        noise = 0.0
    tolerance = max(3 * noise, 1e-5) if noise is not None else max(0.03 * float(np.sqrt((ref**2).mean())), 1e-5)
    ok = True
    check = {"pairs": len(sample), "bf16_noise_vs_fp32": noise, "tolerance": tolerance,
             "score_rms": float(np.sqrt((ref**2).mean())), "settings": {}}  # fmt: skip
    for per_call, outs in outputs.items():
        got = scores_of(backend, [outs[i] for i in sample])
        diff = float(np.abs(got - ref).max())
        agree = int(((got[:, 0] > got[:, 1]) == (ref[:, 0] > ref[:, 1])).sum())
        check["settings"][str(per_call)] = {"max_score_difference": diff, "decisions_agree": agree}
        ok &= diff <= tolerance
        print(f"  check, {per_call} per call vs one pass per conversation on {len(sample)} pairs: max |score "
              f"difference| {diff:.2e} (limit {tolerance:.2e}; {args.dtype} vs fp32 one pass: "
              f"{'n/a' if noise is None else f'{noise:.2e}'}; score RMS {check['score_rms']:.3f}); decisions agree "
              f"{agree}/{len(sample)}")  # fmt: skip
    out = {"shape": args.shape, "device": str(device), "device_name": name, "dtype": args.dtype,
           "torch": torch.__version__, "transformers": transformers.__version__, "parameters": params,
           "non_embedding_parameters": non_embedding, "build_s": built, "pairs": len(pairs), "tokens": tokens,
           "results": results, "check": check, "passed": bool(ok)}  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print("check passed" if ok else "CHECK FAILED: packed scores differ from one pass per conversation")
    if not ok:
        sys.exit(1)
    return out


if __name__ == "__main__":
    main()
