"""The project against its peer, RewardBench's ArmoRM pipeline, on the same preference pairs, side by side in one run.

    python benchmarks/bench_peer.py --peer-code DIR --peer-python PEER_VENV/bin/python            # 64 pairs, 5 rounds
    python benchmarks/bench_peer.py --peer-code DIR --peer-python ... --pairs 1000 --rounds 2     # RewardBench-sized

The peer is the model authors' `modeling_custom.py` (LlamaForRewardModelWithGating, loaded with trust_remote_code)
run by RewardBench's ArmoRM pipeline (its LegacyArmoRMPipeline: `apply_chat_template` then `model(input_ids).score`,
one conversation per forward pass, prompt + chosen and prompt + rejected as two passes). It runs in its own
interpreter (--peer-python: an environment with torch, transformers 4.51.3 and accelerate; the authors' file does
not import on later transformers), from the folder given as --peer-code; nothing of it is copied into this project.

What is built: a random checkpoint of the demo checkpoint's layout (demo_checkpoint.demo_config / demo_tensors,
two safetensors shards with an index, the Llama-3 tokenizer) but wider (--hidden 256, --layers 4), and a temporary
copy of it holding the authors' modeling_custom.py next to config.json (whose auto_map names it) for the peer;
--pairs RewardBench-layout pairs (id, subset, prompt, chosen, rejected, chosen_model, rejected_model), plain text
with prompts and answers of 50-400 tokens (uniform, fixed --seed), as a JSONL file. Both sides run fp32 on the CPU.

Before timing, the first --check-pairs pairs are scored by both: the token ids must be identical and the scores
within 1e-5, or the run stops. Then, in --rounds interleaved rounds (the order rotates each round), medians of:
1. library: the peer's pipeline over all pairs in a process that loaded the model once (only the scoring is
   timed, in that process) vs the project in-process (`load_scorer(folder, device="cpu")`, result cache off):
   `score_many` over all pairs, and one `score` call per pair; the better of the two is the project's figure;
2. end to end: a new process each, wall time from start to exit: the peer's script (start the interpreter, load,
   score, write results; RewardBench's pipeline file has no entry point of its own, so the driver in this file
   does what RewardBench's run_rm.py does with it for ArmoRM, minus the data-set download) vs
   `python -m armorm_ui evaluate PAIRS.jsonl -o OUT.jsonl --model FOLDER --device cpu` (OUT, its partial file and
   its report are deleted before each run);
3. tokens: what each side runs: the peer every full conversation (two per pair), the project the prompt once
   plus each answer; their ratio bounds what sharing the prompt can save at equal cost per token.
Afterwards all scores are compared (the peer's, the project's in-process and the CLI's output file) and the
decisions (chosen > rejected) counted. Prints a table; writes benchmarks/peer_results.json (runs keyed by pair
count) with the machine and both sides' versions. --profile adds where the CLI's time goes (-X importtime, cProfile).

This file is also the peer's driver (`peer-serve`, `peer-run`, run with --peer-python): at import it uses only the
standard library, so it runs in the peer's environment without this project's requirements.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-5
"""Largest score difference allowed between the peer and the project in fp32 (the check before timing)."""
SUBSETS = ("alpacaeval-easy", "mt-bench-med", "llmbar-natural", "refusals-dangerous", "xstest-should-respond",
           "hep-python", "math-prm")  # fmt: skip
WORDS = """time person year way day thing world life hand part child eye place work week case point company number
group problem fact answer question model data result method reason system water light sound story history music
science city river road house table window garden market energy paper letter language picture country money
evening morning winter summer field plant animal teacher student doctor engineer simple clear careful quick slow
bright quiet important different small large early late young old public private general special useful
first next last every other many several each both always often never usually clearly carefully quickly
explain describe compare write read build measure follow check improve choose change keep show find give take
make know think consider suggest include remain become begin continue return open close carry bring hold
the a an and but or because while when where which that this these those with from into over under about
after before between through during without within of in on at by for to as than""".split()
PEER_COMMANDS = ("peer-serve", "peer-run")


# ----------------------------------------------------------------------------------------------- the peer's side
# Runs under --peer-python: standard library at import, torch/transformers and the authors' files when called.


def peer_load(peer_code: str, folder: str) -> tuple[object, dict]:
    """The authors' model and RewardBench's pipeline, loaded as run_rm.py loads ArmoRM (AutoModelForSequence-
    Classification, trust_remote_code, device_map="auto"), in fp32 for this CPU comparison (RewardBench: bf16)."""
    start = time.perf_counter()
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    sys.path.insert(0, peer_code)
    from rewardbench_armorm_pipeline import LegacyArmoRMPipeline

    imported = time.perf_counter()
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, trust_remote_code=True, torch_dtype=torch.float32, device_map="auto"
    )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    pipe = LegacyArmoRMPipeline("text-classification", model, tokenizer)
    info = {"torch": torch.__version__, "transformers": transformers.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "model_class": type(model).__name__,
            "import_s": imported - start, "load_s": time.perf_counter() - imported}  # fmt: skip
    return pipe, info


def read_rows(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def peer_conversations(rows: list[dict]) -> tuple[list[list[dict]], list[list[dict]]]:
    """RewardBench's custom-dialogue layout: [user prompt, assistant answer] for the chosen and the rejected."""
    chosen = [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["chosen"]}] for r in rows]
    rejected = [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["rejected"]}]
                for r in rows]  # fmt: skip
    return chosen, rejected


def peer_scores(pipe, rows: list[dict], with_ids: bool) -> dict:
    """Each conversation's score as the pipeline computes it (its loop, keeping the scores it compares), the token
    count of every forward pass, and optionally the ids."""
    import torch

    out = {"chosen": [], "rejected": [], "tokens": [], "ids": []}
    chosen, rejected = peer_conversations(rows)
    with torch.no_grad():
        for a, b in zip(chosen, rejected):
            for name, conv in (("chosen", a), ("rejected", b)):
                input_ids = pipe.tokenizer.apply_chat_template(conv, return_tensors="pt").to(pipe.model.device)
                out[name].append(pipe.model(input_ids).score.float().item())
                out["tokens"].append(int(input_ids.shape[1]))
                if with_ids:
                    out["ids"].append(input_ids[0].tolist())
    return out


def peer_serve(args) -> None:
    """Load once, then answer commands on stdin (one JSON per line) on stdout, each reply a line starting '@@'."""
    pipe, info = peer_load(args.peer_code, args.model)
    rows = read_rows(args.pairs)
    chosen, rejected = peer_conversations(rows)

    def reply(obj) -> None:
        print("@@" + json.dumps(obj), flush=True)

    reply({"ready": True, **info})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "time":  # the timed part: RewardBench's pipeline over every pair, nothing else
            n = cmd.get("n") or len(rows)
            start = time.perf_counter()
            decisions = pipe(chosen[:n], rejected[:n])
            seconds = time.perf_counter() - start
            reply({"seconds": seconds, "decisions": [bool(x) for x in decisions.tolist()]})
        elif cmd["op"] == "scores":
            n = cmd.get("n") or len(rows)
            reply(peer_scores(pipe, rows[:n], cmd.get("ids", False)))
        else:
            break


def peer_run(args) -> None:
    """The peer end to end: start, load, score every pair with the pipeline, write one result per pair."""
    pipe, _ = peer_load(args.peer_code, args.model)
    rows = read_rows(args.pairs)
    decisions = pipe(*peer_conversations(rows))
    with open(args.out, "w", encoding="utf-8") as f:
        for row, right in zip(rows, decisions.tolist()):
            f.write(json.dumps({"id": row["id"], "subset": row["subset"], "results": int(right)}) + "\n")


def peer_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description="the peer's driver (run by bench_peer.py with --peer-python)")
    ap.add_argument("command", choices=PEER_COMMANDS)
    ap.add_argument("--peer-code", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    (peer_serve if args.command == "peer-serve" else peer_run)(args)


# -------------------------------------------------------------------------------------------- inputs for both


def build_checkpoint(out: Path, hidden: int, layers: int, heads: int, kv_heads: int, seed: int) -> Path:
    """demo_checkpoint.build's layout (two shards + index, tokenizer, config.json last) with a wider backbone."""
    from safetensors.torch import save_file

    from armorm_ui.backend import demo_checkpoint

    out.mkdir(parents=True, exist_ok=True)
    cfg = demo_checkpoint.demo_config(hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads)
    tensors = demo_checkpoint.demo_tensors(cfg, seed)
    shards = {"model-00001-of-00002.safetensors": {}, "model-00002-of-00002.safetensors": {}}
    for name, v in tensors.items():
        shards[sorted(shards)[0 if name.startswith("model.") else 1]][name] = v
    for shard, part in shards.items():
        save_file(part, out / shard, metadata={"format": "pt"})
    index = {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in tensors.values())},
             "weight_map": {name: shard for shard, part in shards.items() for name in part}}  # fmt: skip
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    demo_checkpoint.write_tokenizer(out)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    return out


def peer_checkpoint(folder: Path, peer_code: Path, out: Path) -> Path:
    """A copy of the checkpoint the authors' code loads: modeling_custom.py beside config.json (its auto_map points
    there) and tokenizer_config.json's model_input_names as in Meta's."""
    shutil.copytree(folder, out)
    shutil.copy(peer_code / "modeling_custom.py", out / "modeling_custom.py")
    tok = json.loads((out / "tokenizer_config.json").read_text())
    tok["model_input_names"] = ["input_ids", "attention_mask"]
    (out / "tokenizer_config.json").write_text(json.dumps(tok, indent=2))
    return out


def make_pairs(n: int, tokenizer_file: Path, seed: int) -> list[dict]:
    """RewardBench-layout rows of plain text whose prompt and answers are 50-400 tokens (uniform), cut at a token
    boundary of the Llama-3 tokenizer."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    rng = random.Random(seed)

    def text(tokens: int) -> str:
        sentences = []
        while sum(len(s.split()) for s in sentences) < tokens * 1.3:
            words = [rng.choice(WORDS) for _ in range(rng.randint(6, 18))]
            if len(words) > 8 and rng.random() < 0.4:
                words[rng.randint(3, len(words) - 3)] += ","
            sentences.append(" ".join(words).capitalize() + ".")
        full = " ".join(sentences)
        enc = tok.encode(full, add_special_tokens=False)
        return full[: enc.offsets[tokens - 1][1]].strip()

    rows = []
    for k in range(n):
        prompt, chosen, rejected = (text(rng.randint(50, 400)) for _ in range(3))
        rows.append({"prompt": prompt, "chosen": chosen, "chosen_model": "model-a", "rejected": rejected,
                     "rejected_model": "model-b", "subset": SUBSETS[k % len(SUBSETS)], "id": k})  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------------------ measurement


class Peer:
    """The peer's long-lived process (peer-serve): loads once, times the pipeline on request."""

    def __init__(self, python: str, peer_code: Path, folder: Path, pairs: Path, env: dict, log: Path):
        self.log = log.open("w")
        cmd = [python, str(Path(__file__).resolve()), "peer-serve", "--peer-code", str(peer_code), "--model",
               str(folder), "--pairs", str(pairs)]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env=env, cwd=tempfile.gettempdir())  # fmt: skip
        self.info = self._read()

    def _read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
        raise SystemExit(f"the peer's process ended without answering; its log: {self.log.name}\n"
                         + Path(self.log.name).read_text()[-3000:])  # fmt: skip

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        self.log.close()


def wall(cmd: list[str], env: dict, cwd: Path, log: Path) -> float:
    """Seconds from starting `cmd` to its exit; a failure stops the benchmark with the command's output."""
    start = time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.run(cmd, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({rc}):\n{log.read_text()[-3000:]}")
    return seconds


def cli_outputs(out: Path) -> list[Path]:
    return [out, out.with_name(out.name + ".partial.jsonl"), out.with_name(out.stem + ".report.json"),
            out.with_name(out.name + ".tmp")]  # fmt: skip


def git_state() -> dict:
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "commit": git("rev-parse", "HEAD"),
        "modified": git("status", "--porcelain", "--untracked-files=no").splitlines(),
    }


def profile_cli(cli: list[str], env: dict, work: Path, out: Path) -> dict:
    """Where the CLI's wall time goes: import time per top-level package (-X importtime) and the functions with the
    most cumulative time (cProfile), one run each."""
    import pstats

    for p in cli_outputs(out):
        p.unlink(missing_ok=True)
    res = subprocess.run([sys.executable, "-X", "importtime", *cli[1:]], env=env, cwd=REPO, capture_output=True,
                         text=True)  # fmt: skip
    packages: dict[str, float] = {}  # self time of every module imported, by its top-level package
    for line in res.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            own, _, name = line[len("import time:") :].split("|")
            if own.strip().isdigit():
                top = name.strip().split(".")[0]
                packages[top] = packages.get(top, 0.0) + int(own) / 1e6
    for p in cli_outputs(out):
        p.unlink(missing_ok=True)
    prof = work / "cli.prof"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), *cli[1:]], env=env, cwd=REPO,
                   capture_output=True, check=True)  # fmt: skip
    profiled = time.perf_counter() - start
    for p in cli_outputs(out):
        p.unlink(missing_ok=True)
    stats = pstats.Stats(str(prof))
    rows = []
    for (file, line, func), (_, calls, tottime, cumtime, _) in stats.stats.items():
        rows.append({"function": f"{Path(file).name}:{line}({func})", "path": file, "calls": calls,
                     "tottime_s": tottime, "cumtime_s": cumtime})  # fmt: skip
    top_cum = sorted(rows, key=lambda r: -r["cumtime_s"])[:40]
    top_self = sorted(rows, key=lambda r: -r["tottime_s"])[:20]
    imports = sorted(packages.items(), key=lambda kv: -kv[1])[:15]
    return {"import_self_s_by_package": dict(imports), "import_self_s_total": sum(packages.values()),
            "profiled_wall_s": profiled, "top_cumulative": top_cum,
            "top_self": top_self}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer-code", required=True, type=Path,
                    help="a folder holding the authors' modeling_custom.py (from the model's hub page) and "
                    "RewardBench's ArmoRM pipeline script")  # fmt: skip
    ap.add_argument(
        "--peer-python",
        required=True,
        help="the interpreter of the peer's environment (torch, transformers 4.51.3, accelerate)",
    )
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads on both sides, also for the processes started (OMP_NUM_THREADS); 0: "
                    "torch's default. Default 1: steady figures on a machine shared with other work")  # fmt: skip
    ap.add_argument("--check-pairs", type=int, default=4, help="pairs checked (ids, scores) before timing")
    ap.add_argument("--profile", action="store_true", help="also profile the CLI once (-X importtime, cProfile)")
    ap.add_argument("--workdir", type=Path, default=None, help="where to build (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (checkpoints, pairs, logs)")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "peer_results.json")
    args = ap.parse_args(argv)
    for name in ("rewardbench_armorm_pipeline.py", "modeling_custom.py"):
        if not (args.peer_code / name).is_file():
            raise SystemExit(f"--peer-code {args.peer_code} has no {name}")
    peer_code = args.peer_code.resolve()

    sys.path.insert(0, str(REPO))
    import numpy as np
    import torch
    import transformers

    from armorm_ui.scoring import ScorerConfig, load_scorer

    work = args.workdir or Path(tempfile.mkdtemp(prefix="armorm-bench-peer-"))
    work.mkdir(parents=True, exist_ok=True)
    ckpt = build_checkpoint(work / "checkpoint", args.hidden, args.layers, args.heads, args.kv_heads, args.seed)
    peer_ckpt = peer_checkpoint(ckpt, peer_code, work / "checkpoint-peer")
    rows = make_pairs(args.pairs, ckpt / "tokenizer.json", args.seed)
    pairs_file = work / "pairs.jsonl"
    pairs_file.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    warm_file = work / "warmup.jsonl"
    warm_file.write_text("".join(json.dumps(r) + "\n" for r in rows[:8]), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    env.pop("ARMORM_MODEL", None)
    if args.threads:
        torch.set_num_threads(args.threads)
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)

    load_before = os.getloadavg()
    scorer = load_scorer(str(ckpt), device="cpu", config=ScorerConfig(cache_size=0))
    requests = [([{"role": "user", "content": r["prompt"]}], [r["chosen"], r["rejected"]]) for r in rows]
    peer = Peer(args.peer_python, peer_code, peer_ckpt, pairs_file, env, work / "peer-serve.log")
    try:
        # the check before timing: identical ids and scores within TOLERANCE on the first pairs
        k = min(args.check_pairs, len(rows))
        first = peer.ask(op="scores", n=k, ids=True)
        mine = [scorer.score(m, c) for m, c in requests[:k]]
        for j, (m, c) in enumerate(requests[:k]):
            enc = scorer.prepare(m, c).enc
            if [enc.full_ids(0), enc.full_ids(1)] != first["ids"][2 * j : 2 * j + 2]:
                raise SystemExit(f"pair {j}: the peer's token ids differ from the project's")
        check = max(max(abs(r.scores[0] - a), abs(r.scores[1] - b))
                    for r, a, b in zip(mine, first["chosen"], first["rejected"]))  # fmt: skip
        print(f"check: {k} pairs, identical token ids, scores differ by at most {check:.1e} (limit {TOLERANCE:g})")
        if not check <= TOLERANCE:
            raise SystemExit("the peer and the project disagree beyond the tolerance; nothing was timed")

        out = work / "out.jsonl"
        peer_out = work / "peer-out.jsonl"
        cli = [sys.executable, "-m", "armorm_ui", "evaluate", str(pairs_file), "-o", str(out), "--model", str(ckpt),
               "--device", "cpu"]  # fmt: skip
        peer_cmd = [args.peer_python, str(Path(__file__).resolve()), "peer-run", "--peer-code", str(peer_code),
                    "--model", str(peer_ckpt), "--pairs", str(pairs_file), "--out", str(peer_out)]  # fmt: skip
        last: dict = {}

        def lib_peer() -> float:
            reply = peer.ask(op="time")
            last["peer_decisions"] = reply["decisions"]
            return reply["seconds"]

        def lib_many() -> float:
            start = time.perf_counter()
            last["many"] = scorer.score_many(requests)
            return time.perf_counter() - start

        def lib_each() -> float:
            start = time.perf_counter()
            last["each"] = [scorer.score(m, c) for m, c in requests]
            return time.perf_counter() - start

        def e2e_peer(pairs: Path = pairs_file) -> float:
            peer_out.unlink(missing_ok=True)
            cmd = [*peer_cmd[:-4], "--pairs", str(pairs), "--out", str(peer_out)]
            return wall(cmd, env, Path(tempfile.gettempdir()), work / "peer-run.log")

        def e2e_project(pairs: Path = pairs_file) -> float:
            for p in cli_outputs(out):
                p.unlink(missing_ok=True)
            cmd = [*cli[:4], str(pairs), *cli[5:]]
            seconds = wall(cmd, env, REPO, work / "cli.log")
            if pairs == pairs_file:
                last["cli_rows"] = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines() if x.strip()]
            return seconds

        ways = {"library_peer": lib_peer, "library_project_score_many": lib_many,
                "library_project_score_each": lib_each, "e2e_peer": e2e_peer, "e2e_project": e2e_project}  # fmt: skip
        peer.ask(op="time", n=8), scorer.score_many(requests[:8]), scorer.score(*requests[0])  # warm-up
        e2e_peer(warm_file), e2e_project(warm_file)  # warm-up: the files each process reads, on a short input
        times: dict[str, list[float]] = {name: [] for name in ways}
        names = list(ways)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # the order rotates each round
                times[name].append(ways[name]())
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in names))
        med = {name: statistics.median(t) for name, t in times.items()}

        full = peer.ask(op="scores")
        peer_info = peer.info
    finally:
        peer.close()

    n = len(rows)
    peer_scores_ = np.array([full["chosen"], full["rejected"]]).T  # (n, 2)
    many = np.array([r.scores for r in last["many"]])
    each = np.array([r.scores for r in last["each"]])
    cli_scores = np.array([[x["score_chosen"], x["score_rejected"]] for x in last["cli_rows"]])
    peer_right = np.array(last["peer_decisions"], dtype=bool)
    cli_right = cli_scores[:, 0] > cli_scores[:, 1]
    tokens_peer = int(sum(full["tokens"]))
    tokens_project = int(sum(r.prompt_tokens + r.candidate_tokens.sum() for r in last["many"]))
    best = "score_many" if med["library_project_score_many"] <= med["library_project_score_each"] else "score_each"
    t_best = med[f"library_project_{best}"]
    prompt_tokens = [r.prompt_tokens for r in last["many"]]
    answer_tokens = [int(x) for r in last["many"] for x in r.candidate_tokens]
    result = {
        "pairs": n,
        "rounds": args.rounds,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },  # fmt: skip
        "project": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "threads": torch.get_num_threads(),
            **git_state(),
        },  # fmt: skip
        "peer": {k: peer_info[k] for k in ("torch", "transformers", "threads", "python", "model_class")},
        "checkpoint": {
            "hidden": args.hidden,
            "layers": args.layers,
            "heads": args.heads,
            "kv_heads": args.kv_heads,
            "intermediate": 2 * args.hidden,
            "dtype": "float32 (bf16 values upcast), head float32",
        },
        "inputs": {
            "seed": args.seed,
            "prompt_tokens": [min(prompt_tokens), max(prompt_tokens)],
            "answer_tokens_with_template": [min(answer_tokens), max(answer_tokens)],
        },  # fmt: skip
        "check": {"pairs": k, "max_score_difference": check, "tolerance": TOLERANCE, "identical_ids": True},
        "seconds": med,
        "all_seconds": times,
        "library": {
            "peer_pairs_per_s": n / med["library_peer"],
            "project_best": best,
            "project_pairs_per_s": n / t_best,
            "project_score_many_pairs_per_s": n / med["library_project_score_many"],
            "project_score_each_pairs_per_s": n / med["library_project_score_each"],
            "speedup_project_over_peer": med["library_peer"] / t_best,
        },  # fmt: skip
        "end_to_end": {
            "peer_s": med["e2e_peer"],
            "project_s": med["e2e_project"],
            "speedup_project_over_peer": med["e2e_peer"] / med["e2e_project"],
            "peer_import_s": peer_info["import_s"],
            "peer_load_s": peer_info["load_s"],
        },  # fmt: skip
        "tokens": {
            "peer": tokens_peer,
            "project": tokens_project,
            "project_over_peer": tokens_project / tokens_peer,
            "bound_speedup_peer_over_project": tokens_peer / tokens_project,
        },  # fmt: skip
        "agreement": {
            "max_score_difference_in_process": float(np.abs(many - peer_scores_).max()),
            "max_score_difference_score_each": float(np.abs(each - peer_scores_).max()),
            "max_score_difference_cli": float(np.abs(cli_scores - peer_scores_).max()),
            "decisions_agree": int((peer_right == cli_right).sum()),
            "decisions_agree_in_process": int((peer_right == (many[:, 0] > many[:, 1])).sum()),
            "pairs": n,
        },
    }
    if args.profile:
        result["cli_profile"] = profile_cli(cli, env, work, out)
    print_table(result)
    runs = {}
    if args.json.is_file():
        try:
            runs = json.loads(args.json.read_text()).get("runs", {})
        except (ValueError, AttributeError):
            runs = {}
    runs[str(n)] = result
    args.json.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    print(f"wrote {args.json}")
    if not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}")
    return result


def print_table(r: dict) -> None:
    n, lib, e2e, tok, agr = r["pairs"], r["library"], r["end_to_end"], r["tokens"], r["agreement"]
    c = r["checkpoint"]
    print()
    print(f"{n} pairs, random {c['layers']}-layer {c['hidden']}-wide ArmoRM-layout checkpoint, fp32 on CPU "
          f"({r['machine']['cpu_count']} CPUs; threads: project {r['project']['threads']}, peer {r['peer']['threads']})"
          f"; medians of {r['rounds']} interleaved rounds")  # fmt: skip
    print(f"peer: modeling_custom.py + RewardBench LegacyArmoRMPipeline, torch {r['peer']['torch']}, transformers "
          f"{r['peer']['transformers']}; project: torch {r['project']['torch']}, transformers "
          f"{r['project']['transformers']}")  # fmt: skip
    w = 34
    print(f"{'measurement':{w}} {'peer':>16} {'project':>16}  project/peer")
    print(f"{'library, pairs/s (best: ' + lib['project_best'] + ')':{w}} {lib['peer_pairs_per_s']:16.1f} "
          f"{lib['project_pairs_per_s']:16.1f}  {lib['speedup_project_over_peer']:.2f}x speed")  # fmt: skip
    for way in ("score_many", "score_each"):
        v = lib[f"project_{way}_pairs_per_s"]
        print(f"{'  project ' + way + ', pairs/s':{w}} {'':>16} {v:16.1f}  {v / lib['peer_pairs_per_s']:.2f}x speed")
    print(f"{'end to end, wall s':{w}} {e2e['peer_s']:16.2f} {e2e['project_s']:16.2f}  "
          f"{e2e['speedup_project_over_peer']:.2f}x speed")  # fmt: skip
    print(f"{'  end to end, pairs/s':{w}} {n / e2e['peer_s']:16.1f} {n / e2e['project_s']:16.1f}")
    print(f"{'tokens run':{w}} {tok['peer']:16,} {tok['project']:16,}  {tok['project_over_peer']:.3f} "
          f"(bound: {tok['bound_speedup_peer_over_project']:.2f}x speed)")  # fmt: skip
    print(f"max |score difference| vs peer: in-process {agr['max_score_difference_in_process']:.1e}, "
          f"CLI file {agr['max_score_difference_cli']:.1e}; decisions agree {agr['decisions_agree']}/{n} (CLI), "
          f"{agr['decisions_agree_in_process']}/{n} (in-process)")  # fmt: skip
    if "cli_profile" in r:
        prof = r["cli_profile"]
        print(
            f"CLI imports (-X importtime, self time by package; {prof['import_self_s_total']:.2f} s in all): "
            + ", ".join(f"{k} {v:.2f}" for k, v in list(prof["import_self_s_by_package"].items())[:10])
        )
        print("CLI cProfile, cumulative (s):")
        for row in prof["top_cumulative"][:25]:
            print(f"  {row['cumtime_s']:7.2f} {row['tottime_s']:7.2f} {row['calls']:>8}  {row['function']}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in PEER_COMMANDS:
        peer_main(sys.argv[1:])
    else:
        main()
