"""The annotation tab: step through a file's items, record a choice (and optionally a full ranking and a note) per
item into the label database at once, and see agreement with the model. Built inside build_demo's Blocks.

Files and labels belong to a project, opened with the key the server made for it ('New project'); inside it an
annotator's name is claimed with a passcode (label_store.py). Every action signs in again from the fields on the page,
with the caller's address for the count of wrong passcodes, so nothing about who is labelling is kept on the server
between requests. Text that came from a user (names, item ids, file names) is shown as text.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import html
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from .. import explain, figures, report_figures, tables
from ..batch import file_digest, parse_items
from ..errors import InputError
from ..evaluation import label_pairs, report
from ..label_store import LOCK_WAIT_S, Annotator, DatabaseUnavailable, LabelStore, agreement, parse_ranking
from ..scratch import scratch_folder
from .evaluate import fit_text
from .handlers import as_text, cancellable, friendly, upload

MAX_SHOWN = 16
"""Candidate boxes in the tab: a file with more candidates per item is refused when it is opened."""
NO_FILE_OPEN = (
    "Open a file first, or choose one under 'or continue a file of this project': no file is open in this page. If "
    "you were labelling, the server has forgotten this page's place (it keeps only so many pages at once): your "
    "saved labels are kept, and choosing the file again continues where you stopped."
)
"""An action on the open item when the session holds none: never opened, or the session was evicted (sessions.py)."""


DATABASE_THREADS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="labels")
"""Label-database calls run here: off the event loop, and apart from the model's threads, so a database that does
not answer ties up these threads only; the page, other tabs and the model go on."""
DATABASE_WAIT_S = 2 * LOCK_WAIT_S
"""A call still waiting after this long is reported to its visitor (the database's own timeouts come first)."""


async def db(fn, *args, **kwargs):
    """`fn(*args, **kwargs)` (a LabelStore call) in DATABASE_THREADS, given up after DATABASE_WAIT_S."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    future = asyncio.get_running_loop().run_in_executor(DATABASE_THREADS, call)
    try:
        return await asyncio.wait_for(future, DATABASE_WAIT_S)
    except TimeoutError:
        raise DatabaseUnavailable(
            "The label database is not answering; nothing was saved. Try again in a minute."
        ) from None


async def open_file(store: LabelStore, project: str, path: str, limits, max_rows: int) -> str:
    """Validate an uploaded file (every bad row reported) and keep its items in the project; returns its id. The file
    is read in a worker thread: the event loop keeps serving everyone else."""
    items = await asyncio.to_thread(parse_items, Path(path), limits, max_rows)
    file_id = await asyncio.to_thread(file_digest, Path(path))
    await db(store.add_file, project, file_id, Path(path).name, items)
    return file_id


def conversation_text(messages: list[dict]) -> str:
    """Earlier turns and system message as plain text (shown in a read-only text box: never rendered as HTML)."""
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages[:-1])


def labels_export(frame: pd.DataFrame) -> tuple[str, str]:
    """Labels as CSV (one row per label, with the model's choice) and the agreement summary as JSON."""
    rows = []
    for r in frame.itertuples():
        result = json.loads(r.result)
        model_top = max(range(len(result["scores"])), key=lambda k: result["scores"][k])
        ranking = (
            "" if not isinstance(r.ranking, str) else " > ".join(map(explain.candidate_label, json.loads(r.ranking)))
        )
        rows.append({"file": r.file, "item_id": r.item_id, "annotator": r.annotator,
                     "choice": explain.candidate_label(r.choice), "ranking": ranking, "note": r.note,
                     "model_choice": explain.candidate_label(model_top), "agrees": r.choice == model_top,
                     "scores": json.dumps(result["scores"]),
                     "labelled_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.created))})  # fmt: skip
    folder = scratch_folder("armorm-labels-")
    csv_path, json_path = folder / "labels.csv", folder / "agreement.json"
    csv_path.write_text(tables.to_csv(pd.DataFrame(rows)), encoding="utf-8")
    json_path.write_text(json.dumps(agreement(frame) if len(frame) else {}, indent=2), encoding="utf-8")
    return str(csv_path), str(json_path)


def opened_item(st) -> tuple[str, int] | None:
    """(file_id, position) of the session's open file, or None when no file is open."""
    if isinstance(st, dict) and isinstance(st.get("file_id"), str) and isinstance(st.get("position"), int):
        return st["file_id"], max(st["position"], 0)
    return None


def as_typed(value):
    """A text field's value as Gradio's Textbox hands it to a handler (its preprocess): None or text."""
    return None if value is None else str(value)


def client_address(request: gr.Request | None) -> str | None:
    """The caller's address, which wrong passcodes are counted against as well as the name (None outside a request)."""
    client = getattr(request, "client", None)
    return getattr(client, "host", None)


def checked_label(n: int, picked, ranking_text, note_text) -> tuple[int, list[int] | None]:
    """The chosen candidate's index and the optional full ranking, from what the annotator entered."""
    if not isinstance(picked, str) or not picked:
        raise gr.Error("Pick the preferred response (A, B, ...) before saving.")
    if ranking_text is not None and not isinstance(ranking_text, str):
        raise gr.Error("The ranking must be text, like 'B > A > C'.")
    order = parse_ranking(ranking_text, n)
    try:
        pick = explain.candidate_index(picked)
    except ValueError:
        pick = -1
    if not 0 <= pick < n:
        raise gr.Error(f"Pick one of {', '.join(explain.candidate_labels(n))}.")
    if order and order[0] != pick:
        raise gr.Error(
            f"The ranking puts {explain.candidate_label(order[0])} first but the preferred response "
            f"is {html.escape(picked)}."
        )
    if note_text is not None and not isinstance(note_text, str):
        raise gr.Error("The note must be text.")
    return pick, order


def build_annotate_tab(scorer, store: LabelStore, config) -> None:
    u = _layout(explain.candidate_labels(MAX_SHOWN))
    _wire_labelling(scorer, store, config, u)
    _wire_agreement(store, u)


def _layout(letters: list[str]) -> SimpleNamespace:
    u = SimpleNamespace(letters=letters)
    u.state = gr.State({})  # {"file_id", "position"} for this browser session

    gr.Markdown(
        "Files and labels belong to a **project**: press *New project* to make one (its key is shown once: keep "
        "it), or paste the key your team was given. Everyone with the key sees its files and everyone's labels; "
        "nobody else can. Your **name** is claimed in the project by the passcode you give the first time."
    )
    with gr.Row():
        with gr.Column(min_width=240):
            u.key = gr.Textbox(
                label="Project key", placeholder="paste your team's key, or press New project", elem_id="project-key"
            )
            u.new_key = gr.Button("New project", size="sm", elem_id="new-project")
        u.annotator = gr.Textbox(label="Your name", max_length=64, elem_id="annotator")
        u.passcode = gr.Textbox(label="Your passcode", type="password", max_length=256, elem_id="passcode")
    with gr.Row():
        u.upload = gr.File(
            label="Open a file (.csv, .jsonl, .parquet)",
            file_types=[".csv", ".jsonl", ".parquet"],
            elem_id="annotate-upload",
        )
        u.stored = gr.Dropdown(
            label="or continue a file of this project", choices=[], allow_custom_value=True, elem_id="stored"
        )
        u.hide = gr.Checkbox(value=True, label="Hide the model's scores until I have chosen")
    u.status = gr.Markdown(
        "Enter the project key, your name and passcode, then open a file.", elem_id="annotate-status"
    )
    u.conversation = gr.Textbox(label="Conversation so far", interactive=False, visible=False, lines=3)
    u.prompt = gr.Textbox(label="Prompt", interactive=False, lines=2, elem_id="annotate-prompt")
    u.boxes = [
        gr.Textbox(label=f"Candidate {x}", interactive=False, visible=False, lines=3, elem_id=f"annotate-{x}")
        for x in letters
    ]
    with gr.Row():
        u.choice = gr.Radio(choices=[], label="Preferred response", elem_id="annotate-choice")
        u.ranking = gr.Textbox(label="Full ranking (optional), best first: B > A > C", elem_id="annotate-ranking")
        u.note = gr.Textbox(label="Note (optional)", max_length=2000, elem_id="annotate-note")
    with gr.Row():
        u.prev = gr.Button("← Previous", elem_id="annotate-prev")
        u.save = gr.Button("Save label and next", variant="primary", elem_id="annotate-save")
        u.skip = gr.Button("Skip →", elem_id="annotate-skip")
    u.model_view = gr.Dataframe(label="The model's ranking", visible=False, interactive=False)
    with gr.Accordion("Agreement with the model, and export", open=False):
        u.refresh = gr.Button("Compute agreement", elem_id="agreement-button")
        u.agreement_text = gr.Markdown(elem_id="agreement-text")
        u.agreement_plot = gr.Plot(label="Objectives that predict each annotator's choices", elem_id="plot-agreement")
        u.pairs_plot = gr.Plot(
            label="The labels as preference pairs: each objective alone (as in Evaluate)",
            elem_id="plot-agreement-pairs",
        )
        with gr.Row():
            u.labels_csv = gr.DownloadButton(
                "Download labels (CSV)", value=None, interactive=False, elem_id="labels-csv"
            )
            u.agreement_json = gr.DownloadButton("Download agreement (JSON)", value=None, interactive=False)

    u.item_outputs = [u.state, u.status, u.conversation, u.prompt, *u.boxes, u.choice, u.ranking, u.note, u.model_view]
    u.who_inputs = [u.key, u.annotator, u.passcode]
    return u


async def item_view(
    scorer,
    store: LabelStore,
    u: SimpleNamespace,
    who: Annotator,
    file_id: str,
    position: int,
    hide_scores: bool,
) -> dict:
    """What the tab shows for item `position` of a file (scored, the scores hidden until labelled if asked)."""
    letters = u.letters
    total = await db(store.count, who.project, file_id)
    done = await db(store.labelled, who, file_id)
    name = as_text(who.name)
    if position >= total:
        return {
            u.state: {"file_id": file_id, "position": total},
            u.status: f"**All {total} items labelled** by {name}. Compute agreement or download below.",
            u.model_view: gr.update(visible=False),
        }
    item = await db(store.item, who.project, file_id, position)
    labelled = await db(store.is_labelled, who, file_id, item.item_id)
    result = await cancellable(scorer.score, item.messages, item.candidates)
    n = len(item.candidates)
    return {
        u.state: {"file_id": file_id, "position": position},
        u.status: f"Item **{position + 1} of {total}** · id {as_text(item.item_id)} · {done} labelled by "
        f"{name}" + (" · already labelled (saving replaces it)" if labelled else ""),
        u.conversation: gr.update(value=conversation_text(item.messages), visible=len(item.messages) > 1),
        u.prompt: item.messages[-1]["content"],
        **{box: gr.update(value=item.candidates[k] if k < n else "", visible=k < n) for k, box in enumerate(u.boxes)},
        u.choice: gr.update(choices=letters[:n], value=None),
        u.ranking: "",
        u.note: "",
        u.model_view: gr.update(value=tables.ranking(result, letters[:n]), visible=labelled or not hide_scores),
    }


def _wire_labelling(scorer, store: LabelStore, config, u: SimpleNamespace) -> None:
    """Open or continue a file, step through its items, save labels: every action signs in again."""
    letters = u.letters

    async def file_choices(project: str) -> list[tuple[str, str]]:
        return [(name, file_id) for file_id, name in await db(store.files, project)]

    def signed_in(key_text, name, code, request):
        return db(store.sign_in, key_text, name, code, client_address(request))

    async def opened(path, key_text, name, code, hide_scores, request: gr.Request = None):
        if not path or not isinstance(path, str):
            raise gr.Error("Choose a .csv, .jsonl or .parquet file.")
        with upload(path) as file:  # deleted once read, or refused: a new try is a new upload
            who = await signed_in(key_text, name, code, request)
            limits = replace(config.limits(), max_candidates=min(config.api_candidates, MAX_SHOWN))  # page's boxes
            file_id = await open_file(store, who.project, str(file), limits, config.max_rows)
        out = await item_view(scorer, store, u, who, file_id, await db(store.next_position, who, file_id), hide_scores)
        return {**out, u.stored: gr.update(choices=await file_choices(who.project), value=file_id)}

    async def resumed(file_id, key_text, name, code, hide_scores, request: gr.Request = None):
        who = await signed_in(key_text, name, code, request)
        if not file_id or not isinstance(file_id, str):
            return {u.status: "Choose a file of this project, or open one."}
        return await item_view(scorer, store, u, who, file_id, await db(store.next_position, who, file_id), hide_scores)

    async def saved(st, key_text, name, code, hide_scores, picked, ranking_text, note_text, request: gr.Request = None):
        # not preprocessed (below): the choice is checked against the item here, not against the choices the page's
        # button had in this session, which an evicted session no longer has
        key_text, name, code, ranking_text, note_text = map(as_typed, (key_text, name, code, ranking_text, note_text))
        who = await signed_in(key_text, name, code, request)
        if opened_item(st) is None:
            raise gr.Error(NO_FILE_OPEN)
        file_id, position = opened_item(st)
        total = await db(store.count, who.project, file_id)
        if position >= total:
            raise gr.Error("Every item of this file is labelled.")
        item = await db(store.item, who.project, file_id, position)
        pick, order = checked_label(len(item.candidates), picked, ranking_text, note_text)
        result = await cancellable(scorer.score, item.messages, item.candidates)
        await db(store.record, who, file_id, item, position, pick, order, note_text, result)
        nxt = await db(store.next_position, who, file_id)
        gr.Info(
            f"Saved: {html.escape(picked)} for item {html.escape(item.item_id)}. "
            f"The model preferred {letters[int(result.scores.argmax())]}."
        )
        return await item_view(scorer, store, u, who, file_id, nxt if nxt > position else position + 1, hide_scores)

    def mover(step: int):
        async def moved(st, key_text, name, code, hide_scores, request: gr.Request = None):
            if opened_item(st) is None:
                return {u.status: NO_FILE_OPEN}
            who = await signed_in(key_text, name, code, request)
            file_id, position = opened_item(st)
            total = await db(store.count, who.project, file_id)
            return await item_view(scorer, store, u, who, file_id, min(max(position + step, 0), total), hide_scores)

        return friendly(moved)  # a function, not a partial: Gradio reads the gr.Request parameter from its hints

    async def listed(key_text):
        try:
            return gr.update(choices=await file_choices(await db(store.project, key_text)))
        except InputError:  # no key yet, one this server did not make, or no database: nothing to list
            return gr.update(choices=[])

    @friendly
    async def made(request: gr.Request = None):
        key = await db(store.new_project, client_address(request))
        gr.Info(
            "A new project key is in the box, shown this once: copy it and keep it. It is the only way back to "
            "this project's files and labels (the server keeps only its hash and cannot show it again); share "
            "it only with people who may see and add to them."
        )
        return gr.update(value=key), gr.update(choices=[], value=None)

    opened, resumed, saved = map(friendly, (opened, resumed, saved))
    quiet = {"show_progress": "hidden"}  # a refusal is one pop-up, not an error mark over every field
    # the page's own calls: named, so a project's members can script them, but not offered as API or MCP tools
    named = {**quiet, "api_visibility": "undocumented"}
    u.new_key.click(made, None, [u.key, u.stored], api_visibility="private")
    u.upload.upload(
        opened,
        [u.upload, *u.who_inputs, u.hide],
        [*u.item_outputs, u.stored],
        api_name="annotate_open",
        concurrency_id="labels",
        concurrency_limit=4,
        **named,
    )
    u.stored.input(
        resumed,
        [u.stored, *u.who_inputs, u.hide],
        u.item_outputs,
        api_name="annotate_resume",
        concurrency_id="labels",
        concurrency_limit=4,
        **named,
    )
    u.save.click(
        saved,
        [u.state, *u.who_inputs, u.hide, u.choice, u.ranking, u.note],
        u.item_outputs,
        api_name="annotate_save",
        concurrency_id="labels",
        concurrency_limit=4,
        preprocess=False,  # `saved` takes the raw values (as_typed)
        **named,
    )
    for button, step in ((u.prev, -1), (u.skip, +1)):
        button.click(
            mover(step),
            [u.state, *u.who_inputs, u.hide],
            u.item_outputs,
            api_visibility="private",
            concurrency_id="labels",
            concurrency_limit=4,
            **quiet,
        )
    gr.on([u.stored.focus, u.key.change], listed, u.key, u.stored, api_visibility="private", show_progress="hidden")


def _wire_agreement(store: LabelStore, u: SimpleNamespace) -> None:
    """Agreement of the project's (or the open file's) labels with the model, and the downloads."""

    @friendly
    async def computed(st, key_text):
        project = await db(store.project, key_text)
        file_id = opened_item(st)[0] if opened_item(st) else None
        frame = await db(store.frame, project, file_id)
        if frame.empty:
            raise gr.Error("No labels yet in this project." if not file_id else "No labels yet for this file.")
        return await asyncio.to_thread(agreement_view, u, frame)  # the figures and files: off the event loop

    outputs = [u.agreement_text, u.agreement_plot, u.pairs_plot, u.labels_csv, u.agreement_json]
    # the page's own call: named, so a project's members can script it, but not offered as API or MCP tool
    u.refresh.click(
        computed,
        [u.state, u.key],
        outputs,
        api_name="annotate_agreement",
        show_progress="hidden",
        api_visibility="undocumented",
    )


def agreement_view(u: SimpleNamespace, frame: pd.DataFrame) -> dict:
    """The agreement report of these labels: per annotator, as preference pairs, and the two downloads."""
    summary = agreement(frame)
    lines = [
        f"- **{as_text(a)}**: {s['labels']} labels; the model's top choice matches "
        f"{s['model_top_agreement']:.0%}"
        + (
            f"; Spearman {s['spearman_mean']:+.2f} over {s['full_rankings']} full rankings"
            if s["spearman_mean"] is not None
            else ""
        )
        for a, s in summary.items()
    ]
    pairs = label_pairs(frame)  # the chosen candidate against each other one: the Evaluate tab's analysis
    found = report(pairs) if len(pairs) else None
    if found:
        o = found["overall"]
        lines.append(
            f"- As {o['n']} preference pairs (each choice against each other candidate): the model "
            f"agrees on {o['accuracy']:.0%} (95% interval {o['low']:.0%} to {o['high']:.0%})"
        )
        lines.append("\n" + fit_text(found))  # the Evaluate tab's weights fitted to labels, here to these labels
    csv_path, json_path = labels_export(frame)
    return {
        u.agreement_text: "\n".join(lines),
        u.agreement_plot: figures.agreement(summary),
        u.pairs_plot: report_figures.objective_agreement(found) if found else None,
        u.labels_csv: gr.update(value=csv_path, interactive=True),
        u.agreement_json: gr.update(value=json_path, interactive=True),
    }
