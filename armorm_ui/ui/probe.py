"""The Probe tab: does style move ArmoRM's score? A candidates or preference-pairs file in; for each probe of the
library (probes.py: bold text, emojis, an affirmative opener, padding, a user's stated opinion, ...) how far its edit
moves the score, with a 95% interval, which objectives carry the change, and on pairs how often it flips a right
decision or rescues a wrong one (probing.probe_report).

Each answer is scored about once per probe, so the page takes a smaller file than the other tabs (AppConfig's
probe_rows); the command line (`python -m armorm_ui probe`) takes whole data sets, resumably, and writes the same
table and report. Probing runs item by item in the model slot; Stop ends it before the next model call and says how
far it got. The table and charts appear only once there is a report, and a new file takes the old one away at once
(stopping a run still going).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gradio as gr

from .. import report_figures
from ..batch import write_results
from ..errors import InputError, ScoringError
from ..probe_files import probe_results, read_probe_input, write_probe_report
from ..probes import PROBES, by_names
from ..probing import probe_item
from ..scratch import scratch_folder
from .batch import SHOWN_NAME_JS, WORKING, Runs, Stopped, shown_name
from .handlers import JOBS, as_text, friendly

GROUPS = tuple(dict.fromkeys(p.group for p in PROBES))
"""Formatting, Tone, Length, Conversation: the library's order, one group of boxes each."""
DASH = "–"


def probe_file(scorer, path: str, columns: str, names: list[str], limits, max_rows: int, row_cap: int,
               progress=None, should_stop=None, *, name: str | None = None) -> dict:  # fmt: skip
    """Read and check the whole file (and every item's length in tokens), probe each item, and return the report
    with the per-answer table (CSV) and the report (JSON) written for download. `name`: the file's name as the page
    shows it (Gradio stores an upload under a name without characters such as ? * < >)."""
    try:
        probes = by_names(list(names))
    except ValueError as e:
        raise InputError(f"Probes: {e}.") from e
    if not probes:
        raise InputError("Choose at least one probe.")
    source = read_probe_input(Path(path), limits, max_rows, columns)
    if name:
        source = dataclasses.replace(source, name=name)
    unit = "pair" if source.pairs else "item"
    n = len(source.items)
    if n > row_cap:
        raise InputError(f"{source.name} has {n:,} {unit}s; the Probe tab takes at most {row_cap:,}, since each "
                         f"answer is scored about {len(probes) + 1} times. Take a sample, or run the whole file "
                         "with `python -m armorm_ui probe`.")  # fmt: skip
    for item in source.items:  # the token limits, before any model work
        try:
            scorer.prepare(item.messages, item.candidates)
        except InputError as e:
            raise InputError(f"{source.name}, line {item.line}: {e}") from e
    done = {}
    for i, item in enumerate(source.items):
        if should_stop is not None and should_stop():
            raise ScoringError(f"Stopped after {i} of {n} {unit}s; nothing was written.")
        if progress is not None:
            progress((i, n), desc=f"{unit} {i + 1} of {n}")
        done[item.item_id] = probe_item(scorer, item.messages, item.candidates, probes, should_stop)
    frame, found = probe_results(source, done, probes)
    folder = scratch_folder("armorm-probe-")
    stem = Path(path).stem
    table, report_file = folder / f"{stem}-probes.csv", folder / f"{stem}-probe-report.json"
    write_results(frame, table)
    write_probe_report(found, report_file)
    return {"report": found, "table": str(table), "report_file": str(report_file)}


def _missing(value) -> bool:
    return value is None or value != value


def _share(s: dict) -> str:
    """'3/5 · 60% (23–88%)': a count, its share and the share's 95% interval; a dash when nothing qualified."""
    if not s["n"]:
        return DASH
    return f"{s['k']}/{s['n']} · {s['rate']:.0%} ({s['low'] * 100:.0f}{DASH}{s['high']:.0%})"


def summary_table(found: dict):
    """One row per probe: its mean Δscore and 95% interval (first: what a phone shows beside the pinned probe),
    how often it applied, the share of answers it raises, the tokens it adds, and on pairs its flips and
    rescues."""
    import pandas as pd

    rows = []
    for e in found["probes"]:
        done = e["applied"]
        row = {"Probe": e["label"]}
        row.update(dict.fromkeys(("Mean Δscore", "95% interval"), DASH))
        row["Applied"] = f"{done} of {done + e['skipped']}"
        row.update(dict.fromkeys(("Raised", "Tokens added"), DASH))
        if done:
            raised = e["raised"]
            row.update({"Mean Δscore": f"{e['mean_delta']:+.4f}",
                        "Raised": f"{raised['rate']:.0%} ({raised['low'] * 100:.0f}{DASH}{raised['high']:.0%})",
                        "Tokens added": f"{e['mean_tokens_added']:+.1f}"})  # fmt: skip
            if not _missing(e["low"]):
                row["95% interval"] = f"{e['low']:+.4f} to {e['high']:+.4f}"
        if found["pairs"]:
            row.update({"Flips": _share(e["flip"]), "Rescues": _share(e["rescue"])})
        rows.append(row)
    return pd.DataFrame(rows)


def summary_text(found: dict) -> str:
    unit = "pairs" if found["pairs"] else "items"
    text = (f"**{found['items']} {unit}** ({found['answers']} answers) from {as_text(found['input'])}, "
            f"{len(found['probe_names'])} probes.")  # fmt: skip
    applied = [e for e in found["probes"] if e["applied"]]
    if applied:
        top = max(applied, key=lambda e: abs(e["mean_delta"]))
        text += f" The largest mean change: **{top['label']}**, {top['mean_delta']:+.4f}"
        text += "." if _missing(top["low"]) else f" (95% interval {top['low']:+.4f} to {top['high']:+.4f})."
    if found["pairs"]:
        flips = [e for e in found["probes"] if e["flip"]["n"]]
        if flips:
            top = max(flips, key=lambda e: (e["flip"]["rate"], e["flip"]["n"]))
            text += (f" Most flips: **{top['label']}**, {top['flip']['k']} of {top['flip']['n']} pairs the model "
                     "got right.")  # fmt: skip
    text += "\n\nΔscore: the edited answer's score minus the original's; raised: the share of answers it raises."
    if found["pairs"]:
        text += (" Flips: of the pairs the model gets right, the share where the edited rejected answer now wins; "
                 "rescues: of the pairs it gets wrong, the share where the edited chosen answer now wins.")  # fmt: skip
    return text + " Intervals are 95%; the per-answer table has every answer, edit and objective."


def descriptions() -> str:
    """What each probe does and the work behind it, as a Markdown table (the library's own words)."""
    lines = ["| Probe | Group | What it changes | Source |", "|---|---|---|---|"]
    lines += [f"| {p.label} (`{p.name}`) | {p.group} | {p.changes} | {p.source} |" for p in PROBES]
    return "\n".join(lines)


def build_probe_tab(scorer, config) -> None:
    gr.Markdown(
        "Does **style** move the score? Upload **candidates** (`prompt`, `response_1`, `response_2`... as in Batch "
        "file) or **preference pairs** (`prompt`, `chosen`, `rejected`, as in Evaluate). Each answer is edited by "
        "every probe you pick (bold text, emojis, padding...; conversation probes edit the prompt and keep the "
        f"answer) and scored again. Each answer costs about 15 scorings, so the page takes at most "
        f"**{config.probe_rows} rows**; `python -m armorm_ui probe` takes whole data sets."
    )
    with gr.Row():
        upload = gr.File(label="Candidates or preference pairs", file_types=[".csv", ".jsonl", ".parquet"],
                         elem_id="probe-upload")  # fmt: skip
        columns = gr.Textbox(label="Pairs files: your column names, if they differ", elem_id="probe-columns",
                             placeholder="prompt=question,chosen=good")  # fmt: skip
    with gr.Row(elem_id="probe-choices"):
        boxes = [
            gr.CheckboxGroup(
                [(p.label, p.name) for p in PROBES if p.group == g],
                label=g,
                elem_id=f"probe-{g.lower()}",
                value=[p.name for p in PROBES if p.group == g],
                min_width=200,
            )
            for g in GROUPS
        ]
    with gr.Accordion("What each probe does", open=False, elem_id="probe-about"):
        gr.Markdown(descriptions())
    with gr.Row():
        run = gr.Button("Run probes", variant="primary", elem_id="probe-run", scale=3)
        stop = gr.Button("Stop", elem_id="probe-stop", scale=1)
    summary = gr.Markdown(elem_id="probe-summary")
    with gr.Column(visible=False, elem_id="probe-results") as results:  # shown with a report: no empty frames
        table = gr.Dataframe(label="Per probe", interactive=False, wrap=True, max_height=1200, pinned_columns=1,
                             elem_id="probe-table")  # fmt: skip
        deltas = gr.Plot(label="Mean Δscore", elem_id="plot-probe-deltas")
        parts = gr.Plot(label="By objective", elem_id="plot-probe-parts")
        flips = gr.Plot(label="Flips and rescues", visible=False, elem_id="plot-probe-flips")
        with gr.Row():
            table_file = gr.DownloadButton("Download per-answer table (CSV)", value=None, interactive=False,
                                           elem_id="probe-table-file")  # fmt: skip
            report_file = gr.DownloadButton("Download report (JSON)", value=None, interactive=False,
                                            elem_id="probe-report-file")  # fmt: skip
    runs = Runs("item", "the report needs every answer probed")
    named = gr.Textbox(visible=False)  # the file's name as the page shows it (SHOWN_NAME_JS)

    def gone(said: str = "") -> dict:
        """No report: its table, charts and downloads hidden and emptied, and `said` in its place."""
        return {summary: said, results: gr.update(visible=False), table: None,
                **{b: gr.update(value=None, interactive=False) for b in (table_file, report_file)}}  # fmt: skip

    def started(path, shown):
        """Run pressed: the last report goes (it is about to be replaced), and Stop knows of the run."""
        ok = path and isinstance(path, str) and runs.announce(path, shown_name(path, shown))
        return gone(WORKING) if ok else gr.skip()

    @friendly
    async def probed(given: dict, progress=gr.Progress()):  # noqa: B008 - how Gradio injects a progress bar
        path = given[upload]
        if not path or not isinstance(path, str):
            raise InputError("Choose a file of candidates or preference pairs first.")
        names = [n for box in boxes for n in (given[box] or [])]
        try:
            out = await runs.run(path, Path(path).name, scorer, probe_file, scorer, path, given[columns] or "", names,
                                 config.limits(), config.max_rows, config.probe_rows, progress=progress,
                                 uploaded=path)  # fmt: skip
        except Stopped as e:
            return gone(e.said) if e.said else gr.skip()
        found = out["report"]
        name = found["input"]
        return {
            results: gr.update(visible=True),
            summary: summary_text(found),
            table: summary_table(found),
            deltas: report_figures.probe_deltas(found, name),
            parts: report_figures.probe_parts(found, name),
            flips: gr.update(
                value=report_figures.probe_flips(found, name) if found["pairs"] else None, visible=found["pairs"]
            ),  # fmt: skip
            table_file: gr.update(value=out["table"], interactive=True),
            report_file: gr.update(value=out["report_file"], interactive=True),
        }

    def stopped():
        said = runs.stop()
        return gone(said) if said else gr.skip()

    def chosen(path):
        """A new file (or none): the old report goes at once, and a run of another file stops."""
        changed, said = runs.chose(path if isinstance(path, str) and path else None)
        return gone(said or "") if changed else gr.skip()

    cleared = list(gone())
    outputs = [results, summary, table, deltas, parts, flips, table_file, report_file]
    probing = run.click(
        started, [upload, named], cleared, js=SHOWN_NAME_JS, queue=False, api_visibility="private"
    ).then(
        probed,
        {upload, columns, *boxes},
        outputs,
        api_visibility="private",
        concurrency_id="jobs",
        concurrency_limit=JOBS,
    )
    stop.click(stopped, None, cleared, cancels=[probing], queue=False, api_visibility="private")
    upload.change(chosen, upload, cleared, queue=False, api_visibility="private", show_progress="hidden")
