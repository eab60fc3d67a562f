"""The batch tab: upload a file, see every bad row before anything is scored, score with a progress bar, download.

Scoring runs item by item in the model slot; Stop (or closing the tab) ends it before the next item."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..batch import parse_items, results_frame, write_results
from ..errors import InputError
from ..scratch import scratch_folder
from ..validation import Limits
from .handlers import JOBS, as_text, friendly, long_job

OUTPUT_FORMATS = {"CSV": ".csv", "JSONL": ".jsonl", "Parquet": ".parquet"}


def score_file(scorer, path: str, fmt: str, limits: Limits, max_rows: int, progress=None, should_stop=None):
    """Validate the whole file, score every item (in chunks: scorer.score_many), write the results; returns
    (output path, summary). `should_stop` is polled between chunks and by the scorer between forward passes."""
    if not isinstance(fmt, str) or fmt not in OUTPUT_FORMATS:
        raise InputError(f"Results format {fmt!r}: choose one of {', '.join(OUTPUT_FORMATS)}.")
    items = parse_items(Path(path), limits, max_rows)

    def shown(done: int, total: int) -> None:
        if progress is not None:
            progress((done, total), desc=f"item {done + 1} of {total}")

    results = scorer.score_many([(i.messages, i.candidates) for i in items], should_stop, shown)
    out = scratch_folder("armorm-batch-") / (Path(path).stem + "-scored" + OUTPUT_FORMATS[fmt])
    write_results(results_frame(items, results), out)
    n = sum(len(i.candidates) for i in items)
    return str(out), f"Scored **{len(items)} items** ({n} candidates) from {as_text(Path(path).name)}."


def build_batch_tab(scorer, config) -> None:
    gr.Markdown(
        "Upload a **CSV, JSONL or Parquet** file: wide (`prompt`, `response_1`, `response_2`...) or long "
        "(`item_id`, `prompt`, `response`), optionally with `system` and `conversation` columns. Every row is "
        "checked first; if any is bad, you get the full list and nothing is scored."
    )
    with gr.Row():
        upload = gr.File(label="File to score", file_types=[".csv", ".jsonl", ".parquet"], elem_id="batch-upload")
        with gr.Column():
            fmt = gr.Radio(list(OUTPUT_FORMATS), value="CSV", label="Results format")
            with gr.Row():
                run = gr.Button("Score file", variant="primary", elem_id="batch-run", scale=3)
                stop = gr.Button("Stop", elem_id="batch-stop", scale=1)
    summary = gr.Markdown(elem_id="batch-summary")
    download = gr.DownloadButton("Download results", value=None, interactive=False, elem_id="batch-download")

    @friendly
    async def scored(path, out_format, progress=gr.Progress()):  # noqa: B008 - how Gradio injects a progress bar
        if not path or not isinstance(path, str):
            raise gr.Error("Choose a file first.")
        out, text = await long_job(
            scorer, score_file, scorer, path, out_format, config.limits(), config.max_rows, progress
        )
        return {summary: text, download: gr.update(value=out, interactive=True)}

    scoring = run.click(
        scored,
        [upload, fmt],
        [summary, download],
        api_name="score_file",
        concurrency_id="jobs",
        concurrency_limit=JOBS,
        api_visibility="undocumented",
    )  # the page's own call, not offered as API or tool: use the CLI
    stop.click(None, None, None, cancels=[scoring], api_visibility="private")
