"""Command line: `python -m armorm_ui score IN -o OUT`, resumable, with a progress bar.

Each scored item is appended at once to OUT.partial.jsonl (flushed and synced); after an interruption the same command
skips the items already there and finishes with the same output as an uninterrupted run. The final file is written
under a temporary name and renamed, then the partial file is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from .batch import Item, file_digest, parse_items, results_frame, write_results
from .errors import ArmoRMError
from .results import ScoreResult
from .validation import Limits


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial.jsonl")


def load_partial(path: Path, digest: str) -> dict[str, tuple[ScoreResult, list | None]]:
    """Results already scored for this input (identified by its SHA-256); a torn last line is ignored."""
    if not path.exists():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0]) if lines else {}
    if header.get("input_sha256") != digest:
        raise ArmoRMError(f"{path} belongs to another input file; delete it to start over.")
    done = {}
    for line in lines[1:]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # interrupted mid-write
        done[row["item_id"]] = (ScoreResult.from_dict(row["result"]), row.get("attribution"))
    return done


def local_engine(args):
    from . import load_scorer
    from .attribution import attribute

    scorer = load_scorer(args.model, device=args.device, dtype=args.dtype)

    def run(items: list[Item]):
        for item in items:
            extra = None
            if args.attribute:
                extra = [attribute(scorer, item.messages, c).to_dict() for c in item.candidates]
            yield item.item_id, scorer.score(item.messages, item.candidates), extra

    return run


def score_command(args) -> int:
    inp, out = Path(args.input), Path(args.output)
    items = parse_items(inp, Limits(max_candidates=args.max_candidates), args.max_rows)
    digest = file_digest(inp)
    partial = partial_path(out)
    done = load_partial(partial, digest)
    todo = [item for item in items if item.item_id not in done]
    if done:
        print(f"resuming: {len(items) - len(todo)} of {len(items)} items already scored", file=sys.stderr)
    if args.attribute and args.engine == "ray":
        raise ArmoRMError("--attribute runs with the local engine; drop --engine ray or --attribute.")
    if todo:
        if args.engine == "ray":
            from .ray_engine import ray_engine

            run = ray_engine(args)
        else:
            run = local_engine(args)
        new = not partial.exists() or partial.stat().st_size == 0
        with partial.open("a", encoding="utf-8") as f, tqdm(total=len(items), initial=len(done), unit="item") as bar:
            if new:
                f.write(json.dumps({"input_sha256": digest, "input": inp.name}) + "\n")
            for item_id, result, extra in run(todo):
                row = {"item_id": item_id, "result": result.to_dict(), "attribution": extra}
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
                done[item_id] = (result, extra)
                bar.update(1)
    results = [done[item.item_id][0] for item in items]
    extras = [done[item.item_id][1] for item in items] if args.attribute else None
    write_results(results_frame(items, results, extras), out)
    partial.unlink(missing_ok=True)
    print(f"wrote {out} ({len(items)} items)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    from .config import AppConfig

    env = AppConfig.from_env()
    ap = argparse.ArgumentParser(prog="python -m armorm_ui", description="ArmoRM Explorer command line.")
    sub = ap.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("score", help="score a CSV/JSONL/Parquet file of prompts and candidates")
    sc.add_argument("input", help="a .csv, .jsonl or .parquet file (wide or long layout; see the README)")
    sc.add_argument("-o", "--output", required=True, help="results file: .csv, .jsonl or .parquet")
    sc.add_argument("--model", default=env.model, help="hub id or local folder (env ARMORM_MODEL; default: demo)")
    sc.add_argument("--device", default=env.device or None, help="cpu, cuda, cuda:N or auto")
    sc.add_argument("--dtype", default=env.dtype or None, help="bfloat16, float16 or float32")
    sc.add_argument("--engine", choices=["local", "ray"], default="local", help="ray: one scorer per GPU on a cluster")
    sc.add_argument("--workers", type=int, default=None, help="ray: scorer actors (default: GPUs, or 1 on CPU)")
    sc.add_argument("--attribute", action="store_true",
                    help="add segment columns: each segment's effect on the score, and the length probe")  # fmt: skip
    sc.add_argument("--max-rows", type=int, default=env.max_rows, help="rows per file (env ARMORM_MAX_ROWS)")
    sc.add_argument("--max-candidates", type=int, default=env.api_candidates, help="candidates per item")
    args = ap.parse_args(argv)
    if not args.model:
        from . import demo_checkpoint

        args.model = str(demo_checkpoint.ensure())
    try:
        return score_command(args)
    except ArmoRMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
