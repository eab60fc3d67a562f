"""The Evaluate tab: a file of preference pairs (or a Hugging Face data set by name) in, a report out: how often the
model picks the chosen response, per subset beside the rule "pick the longer answer", how much its preference
probability can be trusted (calibration), which objectives carry its right and wrong decisions, for best-of-N and
RM-Bench files the accuracy over prompts, and weights fitted to the labels, which can be tried in Compare. Every
pair is in a table that filters by subset and outcome; a row opens in Compare with the chosen answer as A.

Scoring runs prompt by prompt in the model slot as a long job (chunks, behind interactive calls); Stop ends it and
says how far it got. The report appears only once there is one, and a new file or data set takes the old one away at
once (stopping a run still going), so nothing on screen belongs to another input.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from .. import report_figures
from ..batch import file_digest, write_results
from ..errors import InputError
from ..evaluation import (
    evaluation_meta,
    pair_frame,
    report,
    write_report,
    write_rewardbench_results,
)
from ..preferences import load_dataset_comparisons, parse_columns, read_comparisons
from ..scratch import scratch_folder
from .batch import SHOWN_NAME_JS, WORKING, Runs, Stopped, shown_name
from .handlers import JOBS, as_text, friendly

SHOWN_ROWS = 200
"""Rows of the pairs table shown at once (filters narrow them; the download has every pair)."""
LAYOUTS = [("recognise it", ""), ("pairs", "pairs"), ("best-of-N", "best_of_n"), ("RM-Bench", "rm_bench")]
TABLE_COLUMNS = ["pair", "subset", "result", "Δ score", "P", "Δ len"]
TABLE_LABEL = ("Pairs, most confident wrong decisions first; click a row. Δ score: the margin, chosen minus "
               "rejected; P: the model's probability for the chosen answer; Δ len: chosen minus rejected length, in "
               "tokens")  # fmt: skip


def input_key(path, dataset, split) -> tuple | None:
    """What a run reads, as Runs tells runs apart: the file, else the data set and split (None: nothing yet)."""
    if path and isinstance(path, str):
        return ("file", path)
    if isinstance(dataset, str) and dataset.strip():
        return ("data set", dataset.strip(), (split if isinstance(split, str) else "").strip() or "train")
    return None


def input_name(key: tuple, shown: str | None = None) -> str:
    """The input as the page names it: the file's name as shown (`shown`, else as stored), or the data set's."""
    return shown_name(key[1], shown) if key[0] == "file" else key[1]


def read_input(path: str | None, dataset: str, split: str, columns: str, layout: str, config):
    """The comparisons of an uploaded file or of a data set named on the hub (or saved with save_to_disk), with
    the file's name and SHA-256 (a data set: its fingerprint)."""
    mapping, layout = parse_columns(columns), layout or None
    if path:
        found = read_comparisons(Path(path), config.limits(), config.max_rows, mapping, layout)
        return found, Path(path).name, file_digest(Path(path))
    if not dataset.strip():
        raise InputError("Choose a file of preference pairs, or name a Hugging Face data set.")
    found, digest = load_dataset_comparisons(dataset.strip(), split.strip() or "train", config.limits(),
                                             config.max_rows, mapping, None, 0, layout)  # fmt: skip
    return found, dataset.strip(), digest


def evaluate_file(scorer, config, path: str | None, dataset: str = "", split: str = "train", columns: str = "",
                  layout: str = "", progress=None, should_stop=None, *, name: str | None = None) -> dict:  # fmt: skip
    """Read and check every comparison, score each prompt once, and return the report with the files to download
    and the texts of every comparison (in a scratch file, read back one line when a pair is opened). `name`: the
    file's name as the page shows it (Gradio stores an upload under a name without characters such as ? * < >)."""
    found, stored, digest = read_input(path, dataset, split, columns, layout, config)
    name = (name or stored) if path else stored

    def shown(done: int, total: int) -> None:
        if progress is not None:
            progress((done, total), desc=f"prompt {done + 1} of {total}")

    comparisons = found.comparisons
    results = scorer.score_many([(c.messages, [*c.chosen, *c.rejected]) for c in comparisons], should_stop, shown)
    frame = pair_frame(comparisons, results)
    result = report(frame, evaluation_meta(config, name, digest, found.notes), found.layout)
    folder = scratch_folder("armorm-evaluate-")
    stem = Path(stored).stem or "evaluation"
    files = {"table": folder / f"{stem}-pairs.csv", "report": folder / f"{stem}-report.json",
             "rewardbench": folder / f"{stem}-rewardbench.json", "texts": folder / f"{stem}-texts.jsonl"}  # fmt: skip
    write_results(frame, files["table"])  # as the command line writes it: formula-like cells escaped (tables.to_csv)
    write_report(result, files["report"])
    rewardbench = write_rewardbench_results(result, files["rewardbench"])
    offsets = {}
    with files["texts"].open("w", encoding="utf-8") as f:
        for c in comparisons:
            offsets[c.comparison_id] = f.tell()
            f.write(json.dumps({"messages": c.messages, "chosen": c.chosen, "rejected": c.rejected}) + "\n")
    return {"report": result, "frame": frame, "name": name, "table": str(files["table"]),
            "report_file": str(files["report"]), "rewardbench_file": str(files["rewardbench"]) if rewardbench else None,
            "texts": str(files["texts"]), "offsets": offsets}  # fmt: skip


def pair_texts(st: dict, pair_id: str) -> dict:
    """The conversation and the two answers of one pair of the evaluated file (read back from its texts file)."""
    row = st["pairs"].get(pair_id)
    if row is None:
        raise InputError(f"No pair {pair_id} in the evaluated file.")
    group, chosen, rejected = row
    with open(st["texts"], encoding="utf-8") as f:
        f.seek(st["offsets"][group])
        texts = json.loads(f.readline())
    return {"messages": texts["messages"], "chosen": texts["chosen"][chosen], "rejected": texts["rejected"][rejected]}


def summary_text(found: dict, name: str) -> str:
    o, base = found["overall"], found["baselines"]
    text = (f"**{o['accuracy']:.1%}** of {o['n']} pairs in {as_text(name)}: the model scores the chosen response "
            f"higher (95% interval {o['low']:.1%} to {o['high']:.1%}). Picking the longer answer would get "
            f"**{base['length_only']['accuracy']:.1%}**")  # fmt: skip
    matched = base["length_matched"]
    text += (f"; on the {matched['n']} pairs of about the same length (within 10%) the model gets "
             f"{matched['accuracy']:.1%}." if matched["n"] else ".")  # fmt: skip
    prompts = found["prompts"]
    if prompts and prompts.get("rm_bench"):
        rm = prompts["rm_bench"]
        how = ("the mean of its four domains" if rm["by_domain"] else
               f"pooled over the {prompts['accuracy']['n']} prompts: not every domain of RM-Bench is here")  # fmt: skip
        text += (f"\n\n**RM-Bench** ({how}): Easy **{rm['easy']:.1%}**, Normal **{rm['normal']:.1%}**, Hard "
                 f"**{rm['hard']:.1%}** (in its matrix of styles: Easy below the diagonal, Normal on it, Hard above); "
                 "all three chosen answers above all three rejected in "
                 f"{prompts['accuracy']['accuracy']:.1%} of the prompts.")  # fmt: skip
    elif prompts:
        p = prompts["accuracy"]
        text += (f"\n\n**{p['accuracy']:.1%}** of {p['n']} prompts: the chosen answer above every rejected one "
                 "(RewardBench 2's best-of-N rule).")  # fmt: skip
        if prompts.get("ties"):
            text += f" Ties subset, by RewardBench 2's own rule: {prompts['ties']['score']:.1%}."
        rb2 = prompts.get("rewardbench2")
        if rb2 and rb2["overall"] is not None:
            text += f" RewardBench 2 score (the mean of its six subsets): **{rb2['overall']:.1%}**."
    for note in (prompts or {}).get("notes", []):
        text += f"\n\n*{as_text(note)}*"
    rb = found["rewardbench"]
    if rb:
        parts = [f"{k} {v:.1%}" for k, v in rb["sections"].items() if v is not None]
        text += f"\n\nRewardBench sections: {', '.join(parts)}; mean **{rb['score']:.1%}**" + (
            "" if rb["complete"] else " (not every section is covered by this file)"
        )
    text += (f"\n\nPreference probability sigmoid(margin): expected calibration error **{found['ece']:.3f}**, "
             f"Brier {found['brier']:.3f}, log-loss {found['log_loss']:.3f}.")  # fmt: skip
    temperature = found["calibration"].get("temperature")
    if temperature:
        text += (
            f" A temperature of {temperature['temperature']:.3g} fitted on half the pairs brings the other "
            f"half's ECE from {temperature['before']['ece']:.3f} to {temperature['after']['ece']:.3f}."
        )
    for note in found["meta"].get("notes", []):
        text += f"\n\n*{as_text(note)}*"
    return text


def fit_text(found: dict) -> str:
    fit = found["fit"]
    if fit.get("error"):
        return f"**Weights fitted to these labels:** not fitted: {as_text(fit['error'])}"
    paired = fit["paired"]
    more = ", ".join(r["label"] for r in fit["objectives"] if r["difference"] > 0)[:300]
    text = (f"**Weights fitted to these labels** (logistic regression on the 19 reward differences, "
            f"{fit['folds']}-fold cross-validated): held-out accuracy **{fit['fitted_accuracy']:.1%}** against the "
            f"model's own gate **{fit['model_accuracy']:.1%}** on the same pairs (difference "
            f"{paired['difference']:+.1%}, 95% bootstrap interval {paired['low']:+.1%} to {paired['high']:+.1%}; "
            f"McNemar's exact test p = {paired['p_value']:.3g}).")  # fmt: skip
    if more:
        text += f" The labels weigh more than the model: {more}."
    return text


def table_rows(st: dict | None, subset: str, outcome: str) -> list[list]:
    """The pairs table, filtered: most confident wrong decisions first (lowest margin), SHOWN_ROWS at most."""
    rows = (st or {}).get("rows", [])
    if subset and subset != "all subsets":
        rows = [r for r in rows if r[1] == subset]
    if outcome in ("right", "wrong"):
        rows = [r for r in rows if r[2] == outcome]
    return rows[:SHOWN_ROWS]


def _layout(config) -> SimpleNamespace:
    t = SimpleNamespace()
    gr.Markdown(
        "Upload **preference pairs** (CSV, JSONL or Parquet) or name a Hugging Face data set: `prompt`, `chosen`, "
        "`rejected` (RewardBench's layout, with `subset` and `id`), TRL's conversational layout, UltraFeedback-"
        "binarized, Anthropic hh-rlhf transcripts, best-of-N (RewardBench 2: `chosen` and `rejected` as lists) and "
        "RM-Bench (3 chosen x 3 rejected per prompt). Every row is checked first; other columns are ignored."
    )
    with gr.Row():
        t.upload = gr.File(label="Preference pairs", file_types=[".csv", ".jsonl", ".parquet"], elem_id="eval-upload")
        with gr.Column():
            with gr.Row():
                t.dataset = gr.Textbox(label="or a Hugging Face data set", placeholder="allenai/reward-bench",
                                       elem_id="eval-dataset", scale=3)  # fmt: skip
                t.split = gr.Textbox(label="split", value="train", elem_id="eval-split", scale=1, min_width=80)
            with gr.Row():
                t.columns = gr.Textbox(label="Your column names, if they differ", elem_id="eval-columns",
                                       placeholder="prompt=question,chosen=good", scale=3)  # fmt: skip
                t.layout = gr.Dropdown(LAYOUTS, value="", label="Layout", elem_id="eval-layout", scale=1,
                                       min_width=120)  # fmt: skip
            with gr.Row():
                t.run = gr.Button("Evaluate", variant="primary", elem_id="eval-run", scale=3)
                t.stop = gr.Button("Stop", elem_id="eval-stop", scale=1)
    t.state = gr.State(None)
    t.named = gr.Textbox(visible=False)  # the file's name as the page shows it (SHOWN_NAME_JS)
    t.summary = gr.Markdown(elem_id="eval-summary")
    with gr.Column(visible=False, elem_id="eval-results") as t.results:  # shown with a report: no empty frames
        _results(t)
    return t


def _results(t: SimpleNamespace) -> None:
    with gr.Row():
        t.subsets = gr.Plot(label="Accuracy by subset", elem_id="plot-eval-subsets")
        t.reliability = gr.Plot(label="Calibration", elem_id="plot-eval-reliability")
    t.rm_bench = gr.Plot(label="RM-Bench", elem_id="plot-eval-rm-bench", visible=False)
    t.margins = gr.Plot(label="Margins", elem_id="plot-eval-margins")
    with gr.Row():
        t.alone = gr.Plot(label="Objectives alone", elem_id="plot-eval-objectives")
        t.decisions = gr.Plot(label="Contributions to right and wrong decisions", elem_id="plot-eval-decisions")
    t.length = gr.Plot(label="Length", elem_id="plot-eval-length")
    with gr.Column(elem_id="eval-fit"):
        t.fit_summary = gr.Markdown(elem_id="eval-fit-summary")
        t.fit_plot = gr.Plot(label="Fitted weights", elem_id="plot-eval-fit", visible=False)
        t.fit_use = gr.Button("Try the fitted weights in Compare's what-if sliders", elem_id="eval-fit-use",
                              interactive=False, size="sm")  # fmt: skip
    gr.Markdown("### Every pair", elem_id="eval-pairs-title")
    with gr.Row():
        t.subset_filter = gr.Dropdown(["all subsets"], value="all subsets", label="Subset", elem_id="eval-subset")
        t.outcome_filter = gr.Radio(["all", "right", "wrong"], value="all", label="Decision", elem_id="eval-outcome")
    t.table = gr.Dataframe(headers=TABLE_COLUMNS, label=TABLE_LABEL,
                           elem_id="eval-table", interactive=False, wrap=True, max_height=420,
                           column_widths=["25%", "19%", "16%", "16%", "12%", "12%"])  # fmt: skip
    with gr.Row():
        t.picked = gr.Markdown("Click a row to pick a pair.", elem_id="eval-picked")
        t.open = gr.Button("Open in Compare", elem_id="eval-open", scale=0, min_width=160)
    t.picked_id = gr.State(None)
    with gr.Row():
        t.table_file = gr.DownloadButton("Download per-pair table (CSV)", value=None, interactive=False,
                                         elem_id="eval-table-file")  # fmt: skip
        t.report_file = gr.DownloadButton("Download report (JSON)", value=None, interactive=False,
                                          elem_id="eval-report-file")  # fmt: skip
        t.rewardbench_file = gr.DownloadButton("RewardBench results (JSON)", value=None, interactive=False,
                                               visible=False)  # fmt: skip


def build_evaluate_tab(scorer, config, compare: SimpleNamespace, tabs: gr.Tabs) -> None:
    """`compare` is the Compare tab's handle: a pair opens there, scored, with its full explanation; fitted weights
    go into its what-if sliders."""
    t = _layout(config)
    runs = Runs("prompt", "the report needs every pair scored")

    def gone(said: str = "") -> dict:
        """No report: its charts, table and downloads hidden and emptied, and `said` in its place."""
        return {t.state: None, t.summary: said, t.results: gr.update(visible=False), t.table: [], t.picked_id: None,
                t.picked: picked_text(None), t.fit_use: gr.update(interactive=False),
                **{b: gr.update(value=None, interactive=False) for b in (t.table_file, t.report_file)},
                t.rewardbench_file: gr.update(value=None, visible=False)}  # fmt: skip

    def started(path, dataset, split, shown):
        """Evaluate pressed: the last report goes (it is about to be replaced), and Stop knows of the run."""
        key = input_key(path, dataset, split)
        return gone(WORKING) if key is not None and runs.announce(key, input_name(key, shown)) else gr.skip()

    @friendly
    async def evaluated(path, dataset, split, column_text, layout, progress=gr.Progress()):  # noqa: B008
        if path is not None and not isinstance(path, str):
            raise InputError("Choose a file of preference pairs first.")
        key = input_key(path, dataset, split) or ("data set", "", "train")
        try:
            out = await runs.run(key, input_name(key), scorer, evaluate_file, scorer, config, path, dataset or "",
                                 split or "train", column_text or "", layout or "", progress=progress,
                                 uploaded=path or None)  # fmt: skip
        except Stopped as e:
            return gone(e.said) if e.said else gr.skip()
        found, frame = out["report"], out.pop("frame")
        st = {"name": out["name"], "texts": out["texts"], "offsets": out["offsets"],
              "pairs": {p["pair_id"]: [p["group"], int(c), int(r)] for p, c, r in
                        zip(found["per_pair"], frame["chosen_index"], frame["rejected_index"])},
              "rows": [[p["pair_id"], p["subset"], "right" if p["right"] else "wrong", round(p["margin"], 3),
                        round(p["probability"], 2), p["tokens_chosen"] - p["tokens_rejected"]]
                       for p in sorted(found["per_pair"], key=lambda p: p["margin"])],
              "multipliers": (found["fit"].get("what_if") or {}).get("multipliers")}  # fmt: skip
        fitted = not found["fit"].get("error")
        first = st["rows"][0][0] if st["rows"] else None
        return {
            t.state: st,
            t.results: gr.update(visible=True),
            t.summary: summary_text(found, out["name"]),
            t.subsets: report_figures.subset_accuracy(found),
            t.reliability: report_figures.reliability(found),
            t.rm_bench: gr.update(value=report_figures.rm_bench_matrix(found) if (found["prompts"] or {}).get(
                "rm_bench") else None, visible=bool((found["prompts"] or {}).get("rm_bench"))),
            t.margins: report_figures.margins(frame),
            t.alone: report_figures.objective_agreement(found),
            t.decisions: report_figures.objective_decisions(found),
            t.length: report_figures.length_effect(found, frame),
            t.fit_summary: fit_text(found),
            t.fit_plot: gr.update(value=report_figures.fitted_weights(found) if fitted else None, visible=fitted),
            t.fit_use: gr.update(interactive=fitted and st["multipliers"] is not None),
            t.subset_filter: gr.update(choices=["all subsets", *sorted(found["subsets"])], value="all subsets"),
            t.outcome_filter: "all",
            t.table: table_rows(st, "all subsets", "all"),
            t.picked_id: first,
            t.picked: picked_text(first),
            t.table_file: gr.update(value=out["table"], interactive=True),
            t.report_file: gr.update(value=out["report_file"], interactive=True),
            t.rewardbench_file: gr.update(value=out["rewardbench_file"], interactive=bool(out["rewardbench_file"]),
                                          visible=bool(out["rewardbench_file"])),
        }  # fmt: skip

    def stopped():
        said = runs.stop()
        return gone(said) if said else gr.skip()

    def chosen(path, dataset, split, why=None):
        """A new file or data set (or none): the old report goes at once, and a run of another input stops."""
        why = ("" if path else " when the file was removed,") if why is None else why
        changed, said = runs.chose(input_key(path, dataset, split), why)
        return gone(said or "") if changed else gr.skip()

    def named(path, dataset, split):
        return chosen(path, dataset, split, "" if path else " when another data set was named,")

    cleared = list(gone())
    outputs = [t.state, t.results, t.summary, t.subsets, t.reliability, t.rm_bench, t.margins, t.alone, t.decisions,
               t.length, t.fit_summary, t.fit_plot, t.fit_use, t.subset_filter, t.outcome_filter, t.table,
               t.picked_id, t.picked, t.table_file, t.report_file, t.rewardbench_file]  # fmt: skip
    given = [t.upload, t.dataset, t.split]
    scoring = t.run.click(started, [*given, t.named], cleared, js=SHOWN_NAME_JS, queue=False,
                          api_visibility="private").then(  # fmt: skip
        evaluated, [*given, t.columns, t.layout], outputs, api_visibility="private", concurrency_id="jobs",
        concurrency_limit=JOBS)  # fmt: skip
    t.stop.click(stopped, None, cleared, cancels=[scoring], queue=False, api_visibility="private")
    t.upload.change(chosen, given, cleared, queue=False, api_visibility="private", show_progress="hidden")
    gr.on([t.dataset.input, t.split.input], named, given, cleared, queue=False, api_visibility="private",
          show_progress="hidden")  # fmt: skip
    _wire_table(t, compare, tabs)


def picked_text(pair_id: str | None) -> str:
    return f"Picked: **{as_text(pair_id)}**" if pair_id else "Click a row to pick a pair."


def _wire_table(t: SimpleNamespace, compare: SimpleNamespace, tabs: gr.Tabs) -> None:
    gr.on([t.subset_filter.input, t.outcome_filter.input], table_rows, [t.state, t.subset_filter, t.outcome_filter],
          t.table, api_visibility="private", show_progress="hidden")  # fmt: skip

    def picked(evt: gr.SelectData):
        pair_id = str(evt.row_value[0]) if evt.row_value else None
        return {t.picked_id: pair_id, t.picked: picked_text(pair_id)}

    t.table.select(picked, None, [t.picked_id, t.picked], api_visibility="private", show_progress="hidden")

    def opened(st, pair_id):
        if not st or not pair_id:
            raise gr.Error("Evaluate a file first, then pick one of its pairs in the table.")
        texts = pair_texts(st, pair_id)
        subset = next((r[1] for r in st["rows"] if r[0] == pair_id), "")
        origin = (f"Pair **{as_text(pair_id)}** ({as_text(subset)}) of {as_text(st['name'])}: **A is the chosen "
                  "answer, B the rejected one.**")  # fmt: skip
        return compare.fill(texts["messages"], [texts["chosen"], texts["rejected"]], tabs, origin,
                            ["chosen", "rejected"])  # fmt: skip

    compare.score_after(
        t.open.click(opened, [t.state, t.picked_id], compare.fill_outputs(tabs), api_visibility="private",
                     show_progress="hidden"),
        scroll=True,
    )  # fmt: skip

    def use_weights(st):
        multipliers = (st or {}).get("multipliers")
        if not multipliers:
            raise gr.Error("Evaluate a file with enough pairs to fit weights first.")
        gr.Info("The fitted weights are in Compare's what-if sliders: score a comparison there to see them re-rank.")
        return {tabs: gr.Tabs(selected="compare"), **dict(zip(compare.sliders, multipliers))}

    compare.redraw_after(
        t.fit_use.click(use_weights, t.state, [tabs, *compare.sliders], api_visibility="private")
    )  # fmt: skip
