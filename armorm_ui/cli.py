"""Command line: `python -m armorm_ui score IN -o OUT`, `evaluate IN -o OUT` and `probe IN -o OUT`, resumable, with a
progress bar.

Settings come from the same AppConfig as the app (every ARMORM_* variable), with the flags below on top. Everything
that would be refused later is refused before the model loads: the whole input file, the output's name, format and
folder, and a partial file from an earlier run. Scored items are appended to OUT.partial.jsonl in batches (written,
flushed and synced every --flush-every items or --flush-seconds after the last write, whichever comes first, and at
the end, on Ctrl-C and on any error) under a header (run_header) that records the input's SHA-256, the model with a
fingerprint of its weights (fingerprint.py), and every option that changes the items or their numbers; the same
command after an interruption (a crash, kill -9, Ctrl-C) skips the items already there and ends with the same output
as an uninterrupted run, and a run that differs in any of them (another model, or the same folder with other files,
other --columns, another --sample) is refused before the model loads, instead of mixing their scores. A kill -9 or
a power cut loses at most the items of the batch not yet written. Damaged lines of a partial file (a batch torn by a
kill, a result with a NaN or a missing or misshapen field) are dropped and their items scored again. The final file
is written under a temporary name and renamed, then the partial file is removed.

`probe` runs the probe library (probes.py) on every answer of a candidates or preference-pairs file and writes the
per-answer table (one row per item, answer and probe, its Δscore split by objective) and OUT.report.json
(probing.probe_report). Each item's probe record is stored in the partial file beside its scores; the header also
records the input's kind and the probes, so a run with other probes is refused, and a stored record that does not
fit (probing.outcomes_from_dict) is dropped and its item probed again.

Start-up imports only what the command uses: nothing of the web app, and no pandas, scipy, torch or transformers
before the model loads (torch and transformers load with it; pandas when the results are written), so a refused
input is refused in a fraction of a second. (A `probe` run that resumes checks its stored records with probing.py
before scoring, which brings numpy's and pandas' imports forward.)

Test hooks (environment, read once per run; for the tests of the guarantees above):
- ARMORM_CLI_TEST_KILL_AFTER=N[:torn]: kill -9 this process once the N-th item of this run is scored, before it is
  written (with `:torn`, after writing half of the unwritten batch's bytes, as a kill during a write leaves it);
- ARMORM_CLI_TEST_PAUSE_AFTER=N:PATH: once the N-th item is scored (not yet written), create PATH and wait there
  until interrupted (SIGINT), so a test can interrupt a run that is certainly still running.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

from .batch import FORMATS, Item, file_digest, parse_items, results_frame, write_results
from .config import AppConfig
from .errors import ArmoRMError, InputError
from .fingerprint import weights_fingerprint
from .results import ScoreResult

FLUSH_EVERY = 64
"""Items per write (and sync) of the partial file, by default."""
FLUSH_SECONDS = 1.0
"""Longest a scored item waits to be written (and synced), by default."""


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial.jsonl")


def check_output(inp: Path | None, out: Path) -> None:
    """Refuse now what writing the results would refuse after all the scoring (inp: the input file, if any)."""
    if out.suffix.lower() not in FORMATS:
        raise InputError(f"Output {out.name}: unknown file type {out.suffix or '(none)'}; use .csv, .jsonl or "
                         ".parquet.")  # fmt: skip
    if inp is not None and (out.resolve() == inp.resolve() or (out.exists() and os.path.samefile(out, inp))):
        raise InputError(f"The output {out} is the input file; choose another name, so the input is kept.")
    folder = out.resolve().parent
    if not folder.is_dir():
        raise InputError(f"The output folder {folder} does not exist; create it or choose another.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"The output folder {folder} is not writable; choose another.")
    if out.is_dir():
        raise InputError(f"The output {out} is a folder; give a file name.")


def run_header(digest: str, inp: Path, config: AppConfig, **options) -> dict:
    """The partial file's first line: the input (its SHA-256, and its name for the reader), the model, its weights'
    fingerprint, where and how it runs, and the command's `options` (--attribute, --columns, the data set's split
    and sample, the probes). To resume, every key but the input's name must be the same (check_same_run)."""
    model = {"model": config.model or "(demo checkpoint)", "revision": config.revision,
             "weights": weights_fingerprint(config.model, config.revision), "device": config.device,
             "dtype": config.dtype}  # fmt: skip
    return {"input_sha256": digest, "input": inp.name, **model, **options}


def _option(key: str, value) -> str:
    return f"no {key}" if value is None else f"{key} {value!r}"


def check_same_run(path: Path, found: dict, header: dict) -> None:
    """Refuse to resume from `path`, a partial file under the header `found`, unless this run's `header` is the
    same in every key but the input's name; the message names each difference, then and now."""
    fix = "delete it to start over, or choose another output"
    if found.get("input_sha256") != header["input_sha256"]:
        raise InputError(f"{path} belongs to another input file; {fix}.")
    keys = [k for k in {**header, **found} if k not in ("input", "input_sha256")]
    changed = [k for k in keys if found.get(k) != header.get(k)]
    if changed:
        was = ", ".join(_option(k, found.get(k)) for k in changed)
        now = ", ".join(_option(k, header.get(k)) for k in changed)
        why = ""
        if "weights" in changed and "model" not in changed:
            why = f" (the files of {header['model']} changed since: their names, sizes, times or tensors)"
        raise InputError(f"{path} was scored with {was}; this run has {now}{why}. Run with the same options to "
                         f"resume, or {fix}.")  # fmt: skip


def load_partial(
    path: Path, header: dict, item_ids: set[str], check=None
) -> dict[str, tuple[ScoreResult, list | None]]:
    """Results already scored for this input with these options (check_same_run). Damaged lines (a torn last line
    after a kill, anything unreadable, a result that ScoreResult.from_dict(strict=True) refuses: a NaN, a missing
    field, 18 gating weights; or an extra that `check(item_id, result, extra)` refuses with ValueError) are dropped
    and the file is rewritten without them, so appending continues cleanly."""
    if not path.exists() or path.stat().st_size == 0:  # an empty file: killed before its header was written
        return {}
    raw = path.read_bytes()
    lines = raw.decode("utf-8", errors="replace").splitlines()
    try:
        found = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:
        found = None
    if not isinstance(found, dict) or "input_sha256" not in found:
        raise InputError(f"{path} is damaged or not a partial results file (its first line is not the run's "
                         "header); delete it to start over, or choose another output.")  # fmt: skip
    check_same_run(path, found, header)
    done, damaged, first = {}, 0, ""
    for number, line in enumerate(lines[1:], start=2):
        try:
            row = json.loads(line)
            if row["item_id"] not in item_ids:
                raise ValueError(f"item {row['item_id']!r} is not in the input")
            result, extra = ScoreResult.from_dict(row["result"], strict=True), row.get("attribution")
            if check is not None:
                check(row["item_id"], result, extra)
            done[row["item_id"]] = (result, extra)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            damaged += 1
            first = first or f"line {number}: {f'no {e}' if isinstance(e, KeyError) else e}"[:200]
    if damaged or not raw.endswith(b"\n"):
        if damaged:
            print(f"{path}: {damaged} damaged line(s) dropped (the first, {first}); those items are scored again",
                  file=sys.stderr)  # fmt: skip
        tmp = path.with_name(path.name + ".tmp")
        rows = [{"item_id": k, "result": r.to_dict(), "attribution": a} for k, (r, a) in done.items()]
        tmp.write_text("".join(json.dumps(x) + "\n" for x in [found, *rows]), encoding="utf-8")
        tmp.replace(path)
    return done


def local_engine(config: AppConfig, attribute: bool, probes: tuple | None = None):
    """run(items) yields (item_id, result, extra): extra is the segment attributions with `attribute`, the probe
    record (probing.probe_item) with `probes`, else None."""
    scorer = config.load_scorer()
    if probes is not None:
        from .probing import probe_item

        def probed(items: list[Item]):
            for item in items:
                yield item.item_id, *probe_item(scorer, item.messages, item.candidates, probes)

        return probed
    if attribute:
        from .attribution import attribute as explain_segments

    def run(items: list[Item]):
        for item in items:
            extra = None
            if attribute:
                extra = [explain_segments(scorer, item.messages, c).to_dict() for c in item.candidates]
            yield item.item_id, scorer.score(item.messages, item.candidates), extra

    return run


class PartialWriter:
    """Appends rows to the open partial file in batches: rows wait in memory until `every` of them wait or `seconds`
    have passed since the last write (checked as each row comes); then they are written in one piece, flushed and
    synced. The cost per row is its own JSON, whatever the file's size; a kill loses at most the rows waiting: at most
    `every`, scored in the last `seconds`."""

    def __init__(self, f, every: int = FLUSH_EVERY, seconds: float = FLUSH_SECONDS):
        self.f, self.every, self.seconds = f, every, seconds
        self.waiting: list[str] = []
        self.written = time.monotonic()

    def add(self, row: dict) -> None:
        self.waiting.append(json.dumps(row) + "\n")

    def due(self) -> bool:
        return len(self.waiting) >= self.every or time.monotonic() - self.written >= self.seconds

    def flush(self) -> None:
        if self.waiting:
            data, self.waiting = "".join(self.waiting), []
            self.f.write(data)
        self.f.flush()
        os.fsync(self.f.fileno())
        self.written = time.monotonic()


def _test_hook() -> tuple[int, str, str] | None:
    """(N, "kill" or "pause", detail) from ARMORM_CLI_TEST_KILL_AFTER or ARMORM_CLI_TEST_PAUSE_AFTER (see above)."""
    for name, action in (("ARMORM_CLI_TEST_KILL_AFTER", "kill"), ("ARMORM_CLI_TEST_PAUSE_AFTER", "pause")):
        value = os.environ.get(name)
        if value:
            count, _, detail = value.partition(":")
            return int(count), action, detail
    return None


def _run_test_hook(hook: tuple[int, str, str], writer: PartialWriter) -> None:
    _, action, detail = hook
    if action == "kill":
        if detail == "torn" and writer.waiting:
            data = "".join(writer.waiting).encode("utf-8")
            writer.f.flush()
            writer.f.buffer.write(data[: len(data) // 2])
            writer.f.buffer.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    if detail:
        Path(detail).touch()
    deadline = time.monotonic() + 600  # a test that forgot the process does not leave it waiting for ever
    while time.monotonic() < deadline:
        time.sleep(0.05)  # Ctrl-C lands here as KeyboardInterrupt


def score_items(
    items: list[Item],
    header: dict,
    out: Path,
    config: AppConfig,
    engine: str = "local",
    workers: int | None = None,
    attribute: bool = False,
    flush_every: int = FLUSH_EVERY,
    flush_seconds: float = FLUSH_SECONDS,
    probes: tuple | None = None,
    check=None,
) -> dict | None:
    """Every item's (result, extra), scoring only those not already in OUT's partial file and appending them in
    batches (PartialWriter); None when interrupted (what was scored is written for the next run). With `probes`,
    each item is probed (extra: its probe record); `check`: load_partial's check of a stored extra."""
    partial = partial_path(out)
    done = load_partial(partial, header, {item.item_id for item in items}, check)
    todo = [item for item in items if item.item_id not in done]
    if done:
        print(f"resuming: {len(items) - len(todo)} of {len(items)} items already scored", file=sys.stderr)
    if not todo:
        return done
    if engine == "ray":
        from .ray_engine import ray_engine

        run = ray_engine(config, workers, probes)
    else:
        run = local_engine(config, attribute, probes)
    new = not partial.exists() or partial.stat().st_size == 0
    # Only now is a hub model's commit (or the demo checkpoint) on disk: a new file's header records it, and a
    # resumed run whose weights changed while they loaded (a newer commit downloaded) is refused before scoring.
    loaded = {**header, "weights": weights_fingerprint(config.model, config.revision)}
    if not new:
        check_same_run(partial, header, loaded)
    header = loaded
    from tqdm import tqdm

    hook = _test_hook()
    interrupted = False
    with partial.open("a", encoding="utf-8") as f, tqdm(total=len(items), initial=len(done), unit="item") as bar:
        writer = PartialWriter(f, flush_every, flush_seconds)
        if new:
            f.write(json.dumps(header) + "\n")
            writer.flush()
        try:
            for n, (item_id, result, extra) in enumerate(run(todo), start=1):
                writer.add({"item_id": item_id, "result": result.to_dict(), "attribution": extra})
                done[item_id] = (result, extra)
                bar.update(1)
                if hook is not None and n == hook[0]:
                    _run_test_hook(hook, writer)
                if writer.due():
                    writer.flush()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            writer.flush()  # on success, Ctrl-C or any error: nothing scored is lost
    if interrupted:
        print(f"interrupted: {len(done)} of {len(items)} items are saved in {partial}; run the same command "
              "again to resume.", file=sys.stderr)  # fmt: skip
        return None
    return done


def score_command(args, config: AppConfig) -> int:
    inp, out = Path(args.input), Path(args.output)
    if not inp.is_file():
        raise InputError(f"The input {inp} is not a file.")
    check_output(inp, out)
    if args.attribute and args.engine == "ray":
        raise InputError("--attribute runs with the local engine; drop --engine ray or --attribute.")
    items = parse_items(inp, config.limits(), config.max_rows)
    header = run_header(file_digest(inp), inp, config, attribute=args.attribute)
    done = score_items(items, header, out, config, args.engine, args.workers, args.attribute, args.flush_every,
                       args.flush_seconds)  # fmt: skip
    if done is None:
        return 130
    results = [done[item.item_id][0] for item in items]
    extras = [done[item.item_id][1] for item in items] if args.attribute else None
    write_results(results_frame(items, results, extras), out)
    partial_path(out).unlink(missing_ok=True)
    print(f"wrote {out} ({len(items)} items)", file=sys.stderr)
    return 0


def report_path(out: Path) -> Path:
    """Where `evaluate` writes its report beside the per-pair table: OUT.report.json."""
    return out.with_name(out.stem + ".report.json")


def evaluate_command(args, config: AppConfig) -> int:
    from .preferences import load_dataset_comparisons, parse_columns, read_comparisons

    out = Path(args.output)
    mapping = parse_columns(args.columns)
    if args.input is not None and args.dataset is not None:
        raise InputError("Give a preference file (IN) or --dataset NAME, not both.")
    if args.input is None and args.dataset is None:
        raise InputError("Give a preference file (IN) or --dataset NAME.")
    if args.input is not None:
        inp = Path(args.input)
        if not inp.is_file():
            raise InputError(f"The input {inp} is not a file.")
        check_output(inp, out)
        found = read_comparisons(inp, config.limits(), config.max_rows, mapping, args.layout)
        digest, source, selection = file_digest(inp), inp, {}
    else:
        check_output(None, out)
        found, digest = load_dataset_comparisons(args.dataset, args.split, config.limits(), config.max_rows, mapping,
                                                 args.sample, args.seed, args.layout)  # fmt: skip
        source, selection = Path(args.dataset), {"split": args.split, "sample": args.sample, "seed": args.seed}
    for note in found.notes:
        print(f"note: {note}", file=sys.stderr)
    items = [c.item() for c in found.comparisons]
    header = run_header(digest, source, config, attribute=False, columns=mapping, layout=found.layout, **selection)
    done = score_items(items, header, out, config, args.engine, args.workers, False, args.flush_every,
                       args.flush_seconds)  # fmt: skip
    if done is None:
        return 130
    from .evaluation import (
        evaluation_meta,
        evaluation_summary,
        pair_frame,
        report,
        write_report,
        write_rewardbench_results,
    )

    frame = pair_frame(found.comparisons, [done[item.item_id][0] for item in items])
    meta = evaluation_meta(config, source.name if args.input is not None else args.dataset, digest, found.notes)
    result = report(frame, meta, found.layout)
    write_results(frame, out)
    write_report(result, report_path(out))
    written = [out, report_path(out)]
    if write_rewardbench_results(result, rewardbench_path(out)):
        written.append(rewardbench_path(out))
    partial_path(out).unlink(missing_ok=True)
    print(f"{evaluation_summary(result)}; wrote {', '.join(map(str, written))}", file=sys.stderr)
    return 0


def rewardbench_path(out: Path) -> Path:
    """Where `evaluate` writes RewardBench's own results file when the subsets are RewardBench's."""
    return out.with_name(out.stem + ".rewardbench.json")


# ------------------------------------------------------------------------------------------------------- probe


def probe_command(args, config: AppConfig) -> int:
    from .preferences import parse_columns
    from .probe_files import probe_results, probe_summary, read_probe_input, record_check, write_probe_report
    from .probes import BY_NAME, by_names

    inp, out = Path(args.input), Path(args.output)
    if not inp.is_file():
        raise InputError(f"The input {inp} is not a file.")
    try:
        probes = by_names(args.probes)
    except ValueError as e:
        raise InputError(f"--probes: {e}.") from e
    if not probes:
        raise InputError(f"--probes names no probe; choose from {', '.join(BY_NAME)}.")
    check_output(inp, out)
    source = read_probe_input(inp, config.limits(), config.max_rows, args.columns)
    header = run_header(file_digest(inp), inp, config, attribute=False, columns=parse_columns(args.columns),
                        input_kind=source.kind, probes=[p.name for p in probes])  # fmt: skip
    done = score_items(source.items, header, out, config, args.engine, args.workers, False, args.flush_every,
                       args.flush_seconds, probes=probes, check=record_check(source, probes))  # fmt: skip
    if done is None:
        return 130
    frame, found = probe_results(source, done, probes)
    write_results(frame, out)
    write_probe_report(found, report_path(out))
    partial_path(out).unlink(missing_ok=True)
    print(f"{probe_summary(found)}; wrote {out} and {report_path(out)}", file=sys.stderr)
    return 0


def add_run_flags(p: argparse.ArgumentParser, env: AppConfig) -> None:
    """The model, where it runs, and the limits: the same for every command (defaults from ARMORM_*)."""
    p.add_argument("--model", default=env.model, help="hub id or local folder (env ARMORM_MODEL; default: demo)")
    p.add_argument("--revision", default=env.revision, help="hub revision to pin (env ARMORM_REVISION)")
    p.add_argument("--device", default=env.device, help="cpu, cuda, cuda:N or auto (env ARMORM_DEVICE)")
    p.add_argument("--dtype", default=env.dtype, help="bfloat16, float16 or float32 (env ARMORM_DTYPE)")
    p.add_argument("--engine", choices=["local", "ray"], default="local", help="ray: one scorer per GPU on a cluster")
    p.add_argument("--workers", type=int, default=None, help="ray: scorer actors (default: GPUs, or 1 on CPU)")
    p.add_argument("--max-rows", type=int, default=env.max_rows, help="rows per file (env ARMORM_MAX_ROWS)")
    p.add_argument("--max-candidates", type=int, default=env.api_candidates,
                   help="candidates per item (env ARMORM_API_CANDIDATES)")  # fmt: skip
    p.add_argument("--flush-every", type=_positive(int), default=FLUSH_EVERY, metavar="N",
                   help=f"write scored items to OUT.partial.jsonl every N (default {FLUSH_EVERY})...")  # fmt: skip
    p.add_argument("--flush-seconds", type=_positive(float, zero=True), default=FLUSH_SECONDS, metavar="S",
                   help=f"...or S seconds after the last write (default {FLUSH_SECONDS:g}; 0: every item); a kill "
                   "-9 loses at most the items not yet written")  # fmt: skip


def _positive(kind, zero: bool = False):
    def parse(text: str):
        value = kind(text)
        if value < 0 or (value == 0 and not zero) or value != value:
            raise argparse.ArgumentTypeError(f"{text} is not {'a non-negative' if zero else 'a positive'} number")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its message for a value kind() refuses
    return parse


def read_decisions(path: Path):
    """A per-pair table `evaluate` wrote (CSV, JSONL or Parquet): its right / wrong decisions (a pandas Series of
    bools) by pair id."""
    import pandas as pd

    from .tables import unescape_formula

    path = Path(path)
    kind = {".csv": "csv", ".jsonl": "json", ".parquet": "parquet"}.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{path.name}: give the .csv, .jsonl or .parquet table that `evaluate -o` wrote.")
    try:
        if kind == "csv":
            frame = pd.read_csv(path, usecols=["pair_id", "right"], dtype={"pair_id": str}, keep_default_na=False)
            frame["pair_id"] = frame["pair_id"].map(unescape_formula)
        elif kind == "json":
            frame = pd.read_json(path, lines=True, dtype={"pair_id": str})[["pair_id", "right"]]
        else:
            frame = pd.read_parquet(path, columns=["pair_id", "right"])
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{path.name} is not a per-pair table of `evaluate` (pair_id and right columns): {e}") from e
    if frame["pair_id"].duplicated().any():
        raise InputError(f"{path.name} lists pair {frame['pair_id'][frame['pair_id'].duplicated()].iloc[0]} twice.")
    return frame.set_index("pair_id")["right"].astype(bool)


def compare_command(args) -> int:
    """Two runs' decisions on the same pairs (two models, two settings): both accuracies, McNemar's exact test
    and a bootstrap interval of the difference, over the pairs both tables have."""
    from .paired import compare_rules

    a, b = read_decisions(args.first), read_decisions(args.second)
    shared = a.index.intersection(b.index)
    if shared.empty:
        raise InputError(f"{Path(args.first).name} and {Path(args.second).name} share no pair ids: compare runs "
                         "over the same file.")  # fmt: skip
    names = (Path(args.first).name, Path(args.second).name)
    found = compare_rules(a[shared].to_numpy(), b[shared].to_numpy(), names=names, seed=args.seed)
    left_out = len(a.index.union(b.index)) - len(shared)
    found["left_out"] = left_out
    m, i = found["mcnemar"], found["interval"]
    extra = f" ({left_out} in one table only, left out)" if left_out else ""
    print(f"{names[0]}: {found['a']['accuracy']:.3f}, {names[1]}: {found['b']['accuracy']:.3f} over {len(shared)} "
          f"shared pairs{extra}; difference {found['difference']:+.3f} (95% bootstrap interval {i['low']:+.3f} to "
          f"{i['high']:+.3f}); right in one run only: {m['only_a']} and {m['only_b']}, McNemar's exact p = "
          f"{m['p_value']:.3g}", file=sys.stderr)  # fmt: skip
    if args.output:
        from .evaluation import write_report

        write_report(found, args.output)
    return 0


def main(argv: list[str] | None = None) -> int:
    env = AppConfig.from_env()
    ap = argparse.ArgumentParser(prog="python -m armorm_ui", description="ArmoRM Explorer command line.")
    sub = ap.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("score", help="score a CSV/JSONL/Parquet file of prompts and candidates")
    sc.add_argument("input", help="a .csv, .jsonl or .parquet file (wide or long layout; see the README)")
    sc.add_argument("-o", "--output", required=True, help="results file: .csv, .jsonl or .parquet")
    sc.add_argument("--attribute", action="store_true",
                    help="add segment columns: each segment's effect on the score, and the length probe")  # fmt: skip
    add_run_flags(sc, env)
    sc.set_defaults(run=score_command)
    ev = sub.add_parser("evaluate", help="accuracy on preference pairs (chosen vs rejected), per subset and objective")
    ev.add_argument("input", nargs="?", help="a .csv, .jsonl or .parquet file of prompt/chosen/rejected pairs")
    ev.add_argument("-o", "--output", required=True, help="per-pair table (.csv, .jsonl or .parquet); the report "
                    "goes beside it as OUT.report.json")  # fmt: skip
    ev.add_argument("--dataset", help="a Hugging Face data set: hub name, or a folder written by save_to_disk")
    ev.add_argument("--split", default="train", help="the data set's split (default: train)")
    ev.add_argument("--sample", type=int, default=None, help="score a random sample of this many pairs")
    ev.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    ev.add_argument("--columns", default=None, help="map column names: prompt=question,chosen=good,rejected=bad")
    ev.add_argument("--layout", choices=["pairs", "best_of_n", "rm_bench"], default=None,
                    help="how to read the file (default: recognised from it; see the README)")  # fmt: skip
    add_run_flags(ev, env)
    ev.set_defaults(run=evaluate_command, attribute=False)
    pr = sub.add_parser("probe", help="does style move the score? each probe's Δscore, split by objective")
    pr.add_argument("input", help="a .csv, .jsonl or .parquet file: candidates (as for score) or preference pairs "
                    "(prompt/chosen/rejected, as for evaluate)")  # fmt: skip
    pr.add_argument("-o", "--output", required=True, help="per-answer table (.csv, .jsonl or .parquet); the report "
                    "goes beside it as OUT.report.json")  # fmt: skip
    pr.add_argument(
        "--probes",
        default=None,
        help="comma-separated probe names, e.g. bold,opener (default: all 15; a wrong name is refused with the list)",
    )
    pr.add_argument("--columns", default=None, help="pairs files: map column names, prompt=question,chosen=good,...")
    add_run_flags(pr, env)
    pr.set_defaults(run=probe_command, attribute=False)
    cr = sub.add_parser("compare", help="two evaluate runs on the same pairs: McNemar's test and the difference")
    cr.add_argument("first", help="a per-pair table written by evaluate -o")
    cr.add_argument("second", help="another, over the same file")
    cr.add_argument("-o", "--output", default=None, help="also write the comparison as JSON here")
    cr.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (default 0)")
    args = ap.parse_args(argv)
    if args.command == "compare":  # no model: only the two tables
        try:
            return compare_command(args)
        except ArmoRMError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    try:
        config = replace(env, model=args.model, revision=args.revision, device=args.device, dtype=args.dtype,
                         max_rows=args.max_rows, api_candidates=args.max_candidates)  # fmt: skip
        config.check()
    except SystemExit as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return args.run(args, config)
    except ArmoRMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted before scoring began; nothing was written.", file=sys.stderr)
        return 130
