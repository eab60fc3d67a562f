"""The whole probe suite (probes.PROBES) on one answer: probe_answer against every edit scored as its own request.

    python benchmarks/bench_probes.py --threads 1              # the demo checkpoint on the CPU, 200 answers
    python benchmarks/bench_probes.py --answers 20 --repeats 1 --json /tmp/p.json
    python benchmarks/bench_probes.py --model DIR --device cuda

Workloads: (a) the model card's example (its prompt and three candidates, each probed in turn) and (b) --answers
generated answers of 100-400 words to prompts of a sentence or two, one answer a request (fixed seed; plain
paragraphs, paragraphs with bullet lists, fenced code blocks and inline code, links).

Two ways, on one Scorer, each run starting from an empty result cache (cleared inside the model slot), so that
neither reads what the other computed:
- ours: probing.probe_answer per answer (the answer-side edits in one Scorer.score_variants call, the conversation-
  side edits, every candidate under each, together in one Scorer.score_prepared call);
- naive: the request scored (Scorer.score), then each answer-side edit as its own request, score(messages,
  [edited answer]), and each conversation-side edit as score(edited messages, candidates).
Both apply the probes to the text (probes.apply) inside the timed run. A third run, shared, does only what both do
alike before any edit is scored (the request scored, the probes applied): naive / shared is the ratio that no way
of scoring the edits can pass, even one that took no time.

Runs are interleaved (ours, naive, shared, ours, ...) after one warm-up each; prints medians of --repeats runs
(--card-repeats for the card) of wall-clock and process CPU time per answer (CPU time is the steadier where other
work shares the cores; on such a machine give --threads 1, as torch's threads then wait on each other), the ratios,
the largest difference between the two ways' scores after each probe, and whether both scored and skipped the same
probes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from armorm_ui.config import AppConfig  # noqa: E402
from armorm_ui.errors import InputError  # noqa: E402
from armorm_ui.probes import PROBES, apply  # noqa: E402
from armorm_ui.probing import probe_answer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "probe_results.json"

# ----------------------------------------------------------------------------------------------- generated answers

TOPICS = {  # topic: the nouns its sentences are made of
    "gardening": "soil, compost, seedlings, roots, watering, mulch, tomatoes, the greenhouse, pruning, drainage, "
    "sunlight, fertiliser, the raised bed, pests, the harvest",
    "personal finance": "a budget, savings, interest, the emergency fund, index funds, debt, expenses, the pension, "
    "inflation, a credit score, fees, the mortgage, taxes, income, diversification",
    "cooking": "the dough, the oven, garlic, the sauce, butter, salt, the pan, the recipe, onions, the stock, "
    "fresh herbs, the marinade, heat, the crust, seasoning",
    "running": "the warm-up, pace, the long run, recovery, shoes, intervals, hydration, the training plan, cadence, "
    "rest days, stretching, the race, mileage, form, the heart rate",
    "history": "the treaty, the empire, trade routes, the archive, the revolution, the records, the dynasty, "
    "the harbour, the parliament, taxation, the chronicle, the frontier, the guilds, the coinage, the army",
    "python": "the function, a list comprehension, the virtual environment, exceptions, type hints, the standard "
    "library, a generator, unit tests, the import system, a dictionary, the garbage collector, decorators, "
    "the event loop, f-strings, packaging",
    "databases": "the index, a transaction, the schema, the query planner, replication, a join, the primary key, "
    "locking, the write-ahead log, backups, normalisation, the cache, a migration, the connection pool, vacuuming",
}  # fmt: skip
TOPICS = {topic: tuple(nouns.split(", ")) for topic, nouns in TOPICS.items()}
CODE_TOPICS = {"databases", "python"}
VERBS = ("affects", "depends on", "improves", "limits", "changes", "supports", "protects", "shapes", "reduces",
         "balances", "reveals", "complicates", "strengthens", "follows", "drives")  # fmt: skip
OPENINGS = ("In practice,", "Most of the time,", "For a beginner,", "Over a few weeks,", "As a rule,",
            "In many cases,", "At first,", "Later on,", "For this reason,", "On the other hand,")  # fmt: skip
TAILS = ("more than most people expect", "in ways that are easy to miss", "when the conditions are right",
         "over the long run", "without much extra effort", "if you keep an eye on it", "for the whole season",
         "once the basics are in place", "in small but steady steps", "unless something goes wrong")  # fmt: skip
ADVERBS = ("usually", "often", "rarely", "clearly", "quietly", "directly", "gradually", "mostly")
ASKS = ("How should I think about {a} and {b}?", "What is the best way to handle {a}?",
        "Can you explain how {a} relates to {b}? I keep getting confused.",
        "I am new to {t}. What should I know about {a}?", "Why does {a} matter so much in {t}?",
        "Give me some practical advice on {a}. Keep it useful for a beginner.")  # fmt: skip
LINKS = ("[the official guide](https://example.org/guide)", "https://en.wikipedia.org/wiki/Main_Page",
         "[this overview](https://docs.python.org/3/tutorial/)")  # fmt: skip
CODE = {
    "databases": (
        "```sql\nCREATE INDEX idx_orders_customer ON orders (customer_id);\n"
        "SELECT * FROM orders WHERE customer_id = 42;\n```",
        "```python\nimport sqlite3\n\nconn = sqlite3.connect(\"shop.db\")\n"
        "with conn:\n    conn.execute(\"VACUUM\")\n```",
        "```bash\npg_dump --format=custom shop > shop.dump\npg_restore --dbname=shop_copy shop.dump\n```",
    ),
    "python": (
        "```python\ndef squares(n: int) -> list[int]:\n    return [i * i for i in range(n)]\n\n\n"
        "print(squares(5))\n```",
        "```python\ntry:\n    value = int(text)\nexcept ValueError:\n    value = 0\n```",
        "```bash\npython -m venv .venv\nsource .venv/bin/activate\npip install requests\n```",
    ),
}  # fmt: skip
INLINE = {
    "databases": ("`EXPLAIN ANALYZE`", "`BEGIN`", "`COMMIT`", "`pg_stat_activity`", "`ROLLBACK`", "`VACUUM`"),
    "python": ("`functools.cache`", "`dict.get()`", "`yield`", "`pip install`", "`__init__.py`", "`asyncio.run()`"),
}
LEADS = ("Here are the main points:", "A few things to keep in mind:", "In short:", "The usual steps are:",
         "Some practical tips:")  # fmt: skip


def _sentence(rng: random.Random, nouns, inline=(), link: bool = False) -> str:
    a, b = rng.sample(nouns, 2)
    verb = rng.choice(VERBS)
    if a.endswith("s"):  # a plural subject
        verb = re.sub(r"(?<=[^s])s\b|(?<=ss)es\b", "", verb, count=1)
    words = [rng.choice(OPENINGS)] if rng.random() < 0.4 else []
    words += [a, rng.choice(ADVERBS), verb, b]
    if rng.random() < 0.7:
        words.append(rng.choice(TAILS))
    if inline:
        words.append(f"(see {rng.choice(inline)})")
    if link:
        words.append(f"as explained in {rng.choice(LINKS)}")
    text = " ".join(words)
    return text[0].upper() + text[1:] + ("." if rng.random() < 0.9 else "?" if rng.random() < 0.5 else "!")


def _paragraph(rng: random.Random, nouns, inline=(), link=False) -> str:
    """Two to five sentences; `inline`: inline code to cite in one of them; `link`: one cites a link."""
    n = rng.randint(2, 5)
    mark = rng.randrange(n) if inline else -1
    where = rng.randrange(n) if link else -1
    return " ".join(_sentence(rng, nouns, inline if i == mark else (), i == where) for i in range(n))


def _bullets(rng: random.Random, nouns) -> str:
    """A lead-in line and a list of three to six items (dashes or numbers)."""
    items = [_sentence(rng, nouns).rstrip(".?!") for _ in range(rng.randint(3, 6))]
    numbered = rng.random() < 0.3
    lines = [f"{k + 1}. {x}" if numbered else f"- {x}" for k, x in enumerate(items)]
    return rng.choice(LEADS) + "\n\n" + "\n".join(lines)


def make_answer(rng: random.Random) -> tuple[list[dict], str, str]:
    """(messages, answer, shape) of one generated request: a prompt of a sentence or two, an answer of about
    100-400 words in one of four shapes (plain paragraphs; with bullet lists; with code; with links)."""
    topic = rng.choice(sorted(TOPICS))
    nouns = TOPICS[topic]
    shapes = ["paragraphs", "bullets", "links"] + (["code", "code"] if topic in CODE_TOPICS else [])
    shape = rng.choice(shapes)
    a, b = rng.sample(nouns, 2)
    prompt = rng.choice(ASKS).format(a=a, b=b, t=topic)
    target = rng.randint(100, 400)
    inline = INLINE.get(topic, ())
    blocks, words, lists, code = [], 0, 0, 0
    while words < target:
        kind = rng.random()
        if shape == "bullets" and blocks and lists < 2 and kind < 0.4:
            block, lists = _bullets(rng, nouns), lists + 1
        elif shape == "code" and blocks and code < 2 and kind < 0.35 and not blocks[-1].startswith("```"):
            block, code = rng.choice(CODE[topic]), code + 1
        else:
            cite = inline if shape == "code" and kind < 0.7 else ()
            block = _paragraph(rng, nouns, cite, link=shape == "links" and kind < 0.5)
        if words and words + len(block.split()) > 400:
            break
        blocks.append(block)
        words += len(block.split())
    return [{"role": "user", "content": prompt}], "\n\n".join(blocks), shape


def generated(n: int, seed: int = 0) -> list[tuple[list[dict], list[str], int]]:
    """n requests (messages, [answer], 0), deterministic for a seed; every answer 100-400 words."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        messages, answer, _ = make_answer(rng)
        if 100 <= len(answer.split()) <= 400:
            out.append((messages, [answer], 0))
    return out


def card() -> list[tuple[list[dict], list[str], int]]:
    """The model card's example (assets/examples.json, first entry), each of its candidates probed in turn."""
    ex = json.loads((ROOT / "assets" / "examples.json").read_text())[0]
    messages = ([{"role": "system", "content": ex["system"]}] if ex["system"] else []) + ex["turns"]
    messages = [*messages, {"role": "user", "content": ex["prompt"]}]
    return [(messages, ex["candidates"], k) for k in range(len(ex["candidates"]))]


# ------------------------------------------------------------------------------------------------------- the ways


def ours(scorer, items) -> list[dict]:
    """probe_answer per answer; per answer {probe name: (score after, skip reason)}."""
    out = []
    for messages, candidates, index in items:
        got = probe_answer(scorer, messages, candidates, index)
        out.append({o.probe.name: (float(o.scores_after[index]) if o.applied else None, o.skipped)
                    for o in got.outcomes})  # fmt: skip
    return out


def naive(scorer, items) -> list[dict]:
    """The request scored, then every edit as its own request: an answer-side edit as score(messages, [edited
    answer]), a conversation-side edit as score(edited messages, candidates); per answer as `ours`, an edit that a
    request refuses (a limit) counting as skipped."""
    out = []
    for messages, candidates, index in items:
        scorer.score(messages, candidates)
        messages = scorer.prepare(messages, candidates).messages
        answer = candidates[index]
        row = {}
        for probe in PROBES:
            edit = apply(probe, messages, answer)
            if edit.skipped is not None:
                row[probe.name] = (None, edit.skipped)
                continue
            asked = (messages, [edit.answer], 0) if probe.side == "answer" else (edit.messages, candidates, index)
            try:
                row[probe.name] = (float(scorer.score(*asked[:2]).scores[asked[2]]), None)
            except InputError as e:
                row[probe.name] = (None, f"refused: {e}")
        out.append(row)
    return out


def shared(scorer, items) -> list[dict]:
    """What both ways do alike before any edit is scored: the request scored and every probe applied to the text.
    What is left is scoring the edits, so naive / shared bounds the ratio that any way of scoring them could reach."""
    for messages, candidates, index in items:
        scorer.score(messages, candidates)
        messages = scorer.prepare(messages, candidates).messages
        for probe in PROBES:
            apply(probe, messages, candidates[index])
    return []


# ------------------------------------------------------------------------------------------------------ measuring


def fresh(scorer) -> None:
    """Empty the result cache (inside the model slot, as Scorer.self_check does)."""
    with scorer._holding(None):
        scorer._cache.clear()


def timed(scorer, way, items) -> tuple[float, float, list[dict]]:
    fresh(scorer)
    t, c = time.perf_counter(), time.process_time()
    got = way(scorer, items)
    if scorer.backend.torch_device.type == "cuda":
        torch.cuda.synchronize(scorer.backend.torch_device)
    return time.perf_counter() - t, time.process_time() - c, got


def compare(a: list[dict], b: list[dict]) -> dict:
    """Largest |score after| difference between the two ways, how many probes each scored, and whether both
    scored (and skipped, for the same reason) the same probes of every answer; a limit that probe_answer checks
    before scoring and a request refuses in naive counts as the same skip."""
    diff, same = 0.0, len(a) == len(b)
    for x, y in zip(a, b):
        same &= list(x) == list(y)
        for name in x:
            (sa, ra), (sb, rb) = x[name], y.get(name, (None, "missing"))
            same &= (sa is None) == (sb is None) and (ra == rb or bool(ra and rb and rb.startswith("refused: ")))
            if sa is not None and sb is not None:
                diff = max(diff, abs(sa - sb))
    scored = [sum(s is not None for s, _ in row.values()) for row in a], [
        sum(s is not None for s, _ in row.values()) for row in b]  # fmt: skip
    return {"max_score_diff": diff, "same_probes": bool(same), "applied": sum(scored[0]),
            "scored_ours": sum(scored[0]), "scored_naive": sum(scored[1])}  # fmt: skip


def token_work(scorer, items) -> dict:
    """Tokens each way runs through the backbone, from the token ids alone (what a large model's time follows):
    both score the request and each edited conversation with every candidate; naive then runs each answer-side
    edit with its conversation, ours the conversation and the original answer once and each edit after the
    beginning it shares with the original (at least its last token)."""
    both = naive = ours_ = 0
    for messages, candidates, index in items:
        prepared = scorer.prepare(messages, candidates)
        messages, answer = prepared.messages, candidates[index]
        p = len(prepared.enc.prefix_ids)
        both += p + sum(map(len, prepared.enc.candidate_ids))
        edits = [apply(probe, messages, answer) for probe in PROBES]
        for e in edits:
            if e.skipped is None and e.probe.side == "conversation":
                enc = scorer.prepare(e.messages, candidates).enc
                both += len(enc.prefix_ids) + sum(map(len, enc.candidate_ids))
        variants = [e.answer for e in edits if e.skipped is None and e.probe.side == "answer"]
        ids = scorer.encoder.encode(messages, [answer, *variants]).candidate_ids
        ours_ += p + len(ids[0]) if variants else 0
        for v in ids[1:]:
            n = 0
            while n < min(len(v), len(ids[0])) - 1 and v[n] == ids[0][n]:
                n += 1
            naive += p + len(v)
            ours_ += len(v) - n
    return {"tokens_naive": both + naive, "tokens_ours": both + ours_, "token_ratio": (both + naive) / (both + ours_)}


def bench(scorer, items, repeats: int) -> dict:
    ways = {"ours": ours, "naive": naive, "shared": shared}
    results = {name: timed(scorer, way, items)[2] for name, way in ways.items()}  # warm-up, and the answers
    wall, cpu = {n: [] for n in ways}, {n: [] for n in ways}
    for _ in range(repeats):
        for name, way in ways.items():
            w, c, _ = timed(scorer, way, items)
            wall[name].append(w)
            cpu[name].append(c)
    n = len(items)
    ms = {name: statistics.median(wall[name]) / n * 1e3 for name in ways}
    cpu_ms = {name: statistics.median(cpu[name]) / n * 1e3 for name in ways}
    tokens = [len(scorer.prepare(m, c).enc.candidate_ids[k]) for m, c, k in items]
    return {"answers": n, "median_answer_tokens": statistics.median(tokens),
            "ours_ms_per_answer": ms["ours"], "naive_ms_per_answer": ms["naive"], "ratio": ms["naive"] / ms["ours"],
            "ours_cpu_ms_per_answer": cpu_ms["ours"], "naive_cpu_ms_per_answer": cpu_ms["naive"],
            "cpu_ratio": cpu_ms["naive"] / cpu_ms["ours"],
            "shared_ms_per_answer": ms["shared"], "shared_cpu_ms_per_answer": cpu_ms["shared"],
            "ceiling": ms["naive"] / ms["shared"], "cpu_ceiling": cpu_ms["naive"] / cpu_ms["shared"],
            "wall_s": wall, "cpu_s": cpu, **compare(results["ours"], results["naive"]),
            **token_work(scorer, items)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="", help="checkpoint folder or hub id (default: the demo checkpoint)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--answers", type=int, default=200, help="generated answers")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved timed runs of each way")
    ap.add_argument("--card-repeats", type=int, default=15, help="the same for the card example (a few ms a run)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    ap.add_argument("--json", default=str(RESULTS), help="where to write the figures ('' for nowhere)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    scorer = AppConfig(model=args.model, device=args.device).load_scorer()
    device = scorer.backend.torch_device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    cfg = scorer.backend.model.config
    print(f"model {args.model or 'demo checkpoint'} (hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers), "
          f"device {device} ({name}, {torch.get_num_threads()} threads), torch {torch.__version__}; "
          f"{len(PROBES)} probes; medians of {args.card_repeats} (card), {args.repeats} interleaved runs")  # fmt: skip
    out = {"device": str(device), "processor": name, "load_average_before": os.getloadavg(),
           "model": args.model or "demo", "hidden": cfg.hidden_size,
           "layers": cfg.num_hidden_layers, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "probes": [p.name for p in PROBES], "repeats": args.repeats, "card_repeats": args.card_repeats,
           "seed": args.seed, "workloads": {}}  # fmt: skip
    workloads = (("card", card(), args.card_repeats), ("generated", generated(args.answers, args.seed), args.repeats))
    for label, items, repeats in workloads:
        r = bench(scorer, items, repeats)
        out["workloads"][label] = r
        print(f"{label}: {r['answers']} answers (median {r['median_answer_tokens']:.0f} tokens), {r['applied']} "
              f"probes applied by both; max |score diff| {r['max_score_diff']:.1e}; same probes {r['same_probes']}\n"
              f"  per answer    ours {r['ours_ms_per_answer']:7.1f} ms (CPU {r['ours_cpu_ms_per_answer']:7.1f})   "
              f"naive {r['naive_ms_per_answer']:7.1f} ms (CPU {r['naive_cpu_ms_per_answer']:7.1f})   "
              f"ratio {r['ratio']:.2f}x (CPU {r['cpu_ratio']:.2f}x)\n"
              f"  shared by both {r['shared_ms_per_answer']:6.1f} ms (CPU {r['shared_cpu_ms_per_answer']:7.1f})   "
              f"ceiling naive / shared {r['ceiling']:.2f}x (CPU {r['cpu_ceiling']:.2f}x)\n"
              f"  tokens through the backbone: ours {r['tokens_ours']:,}, naive {r['tokens_naive']:,}, "
              f"ratio {r['token_ratio']:.2f}x", flush=True)  # fmt: skip
    out["load_average_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
