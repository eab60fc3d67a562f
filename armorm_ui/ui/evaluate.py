"""The Evaluate tab: a file of preference pairs in, a report out: how often the model picks the chosen response,
per subset (RewardBench's sections when the subsets are RewardBench's), which objectives carry its right and wrong
decisions, and whether length sways it. The most confident wrong decisions open in Compare.

Scoring runs pair by pair in the model slot (the prompt encoded once per pair); Stop ends it before the next pair.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from .. import report_figures
from ..batch import write_results
from ..errors import InputError
from ..evaluation import pair_frame, report, write_report
from ..preferences import parse_columns, read_pairs
from ..scratch import scratch_folder
from .handlers import JOBS, as_text, friendly, long_job

SHOWN_WRONG = 10


def evaluate_file(scorer, path: str, columns: str, limits, max_rows: int, progress=None, should_stop=None) -> dict:
    """Read and check every pair, score each, and return the report with the files to download and the most
    confident wrong decisions (with their text, to open in Compare)."""
    pairs = read_pairs(Path(path), limits, max_rows, parse_columns(columns))

    def shown(done: int, total: int) -> None:
        if progress is not None:
            progress((done, total), desc=f"pair {done + 1} of {total}")

    results = scorer.score_many([(p.messages, [p.chosen, p.rejected]) for p in pairs], should_stop, shown)
    frame = pair_frame(pairs, results)
    found = report(frame)
    folder = scratch_folder("armorm-evaluate-")
    table_path, report_path = folder / (Path(path).stem + "-pairs.csv"), folder / (Path(path).stem + "-report.json")
    write_results(frame, table_path)  # as the command line writes it: formula-like cells escaped (tables.to_csv)
    write_report(found, report_path)
    by_id = {p.pair_id: p for p in pairs}
    wrong = [by_id[w["pair_id"]] for w in found["worst"][:SHOWN_WRONG]]
    return {"report": found, "frame": frame, "name": Path(path).name, "table": str(table_path),
            "report_file": str(report_path),
            "wrong": [{"pair_id": p.pair_id, "messages": p.messages, "chosen": p.chosen, "rejected": p.rejected}
                      for p in wrong]}  # fmt: skip


def summary_text(found: dict, name: str) -> str:
    o = found["overall"]
    text = (f"**{o['accuracy']:.1%}** of {o['n']} pairs in {as_text(name)}: the model scores the chosen response "
            f"higher (95% interval {o['low']:.1%} to {o['high']:.1%}).")  # fmt: skip
    rb = found["rewardbench"]
    if rb:
        parts = [f"{k} {v:.1%}" for k, v in rb["sections"].items() if v is not None]
        text += f"\n\nRewardBench sections: {', '.join(parts)}; mean **{rb['score']:.1%}**" + (
            "" if rb["complete"] else " (not every section is covered by this file)"
        )
    length = found["length"]
    longer, shorter = length["chosen_longer"], length["chosen_shorter"]
    if longer["n"] and shorter["n"]:
        text += (f"\n\nLength: right on {longer['accuracy']:.0%} of the pairs where the chosen answer is longer, "
                 f"{shorter['accuracy']:.0%} where it is shorter.")  # fmt: skip
    return text


def wrong_choices(found: dict) -> list[tuple[str, str]]:
    return [(f"{w['pair_id']} · {w['subset']} · {w['margin']:+.4f}", w["pair_id"])
            for w in found["worst"][:SHOWN_WRONG]]  # fmt: skip


def build_evaluate_tab(scorer, config, compare: SimpleNamespace, tabs: gr.Tabs) -> None:
    """`compare` is the Compare tab's handle: a wrong decision opens there, scored, with its full explanation."""
    gr.Markdown(
        "Upload **preference pairs** (CSV, JSONL or Parquet): `prompt`, `chosen`, `rejected`, optionally `subset` "
        "and `id` (RewardBench's layout), or TRL's conversational layout (message lists). Every row is checked "
        "first. The command line does the same for Hugging Face data sets: `python -m armorm_ui evaluate`."
    )
    with gr.Row():
        upload = gr.File(label="Preference pairs", file_types=[".csv", ".jsonl", ".parquet"], elem_id="eval-upload")
        with gr.Column():
            columns = gr.Textbox(label="Your column names, if they differ", elem_id="eval-columns",
                                 placeholder="prompt=question,chosen=good")  # fmt: skip
            with gr.Row():
                run = gr.Button("Evaluate", variant="primary", elem_id="eval-run", scale=3)
                stop = gr.Button("Stop", elem_id="eval-stop", scale=1)
    state = gr.State(None)
    summary = gr.Markdown(elem_id="eval-summary")
    with gr.Row():
        subsets = gr.Plot(label="Accuracy by subset", elem_id="plot-eval-subsets")
        margins = gr.Plot(label="Margins", elem_id="plot-eval-margins")
    with gr.Row():
        alone = gr.Plot(label="Objectives alone", elem_id="plot-eval-objectives")
        decisions = gr.Plot(label="Contributions to right and wrong decisions", elem_id="plot-eval-decisions")
    length = gr.Plot(label="Length", elem_id="plot-eval-length")
    with gr.Row():
        wrong = gr.Dropdown([], label="Most confident wrong decisions", elem_id="eval-wrong", scale=3)
        open_pair = gr.Button("Open in Compare", elem_id="eval-open", scale=1)
    with gr.Row():
        table_file = gr.DownloadButton("Download per-pair table (CSV)", value=None, interactive=False)
        report_file = gr.DownloadButton("Download report (JSON)", value=None, interactive=False)

    @friendly
    async def evaluated(path, column_text, progress=gr.Progress()):  # noqa: B008 - how Gradio injects a progress bar
        if not path or not isinstance(path, str):
            raise InputError("Choose a file of preference pairs first.")
        out = await long_job(scorer, evaluate_file, scorer, path, column_text or "", config.limits(), config.max_rows,
                                progress)  # fmt: skip
        found, frame = out["report"], out.pop("frame")
        choices = wrong_choices(found)
        return {
            state: {"wrong": out["wrong"]},
            summary: summary_text(found, out["name"]),
            subsets: report_figures.subset_accuracy(found),
            margins: report_figures.margins(frame),
            alone: report_figures.objective_agreement(found),
            decisions: report_figures.objective_decisions(found),
            length: report_figures.length_effect(found, frame),
            wrong: gr.update(choices=choices, value=choices[0][1] if choices else None),
            table_file: gr.update(value=out["table"], interactive=True),
            report_file: gr.update(value=out["report_file"], interactive=True),
        }

    outputs = [state, summary, subsets, margins, alone, decisions, length, wrong, table_file, report_file]
    scoring = run.click(
        evaluated, [upload, columns], outputs, api_visibility="private", concurrency_id="jobs", concurrency_limit=JOBS
    )
    stop.click(None, None, None, cancels=[scoring], api_visibility="private")

    def opened(st, pair_id):
        pair = next((w for w in (st or {}).get("wrong", []) if w["pair_id"] == pair_id), None)
        if pair is None:
            raise gr.Error("Evaluate a file first, then pick one of its wrong decisions.")
        return compare.fill(pair["messages"], [pair["chosen"], pair["rejected"]], tabs)

    compare.score_after(
        open_pair.click(
            opened, [state, wrong], compare.fill_outputs(tabs), api_visibility="private", show_progress="hidden"
        )  # fmt: skip
    )
