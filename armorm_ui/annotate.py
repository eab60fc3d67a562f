"""The annotation tab: step through a file's items, record a choice (and optionally a full ranking and a note) per
item into the label database at once, and see agreement with the model. Built inside build_demo's Blocks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from . import explain, figures, tables
from .batch import file_digest, parse_items
from .gr_errors import friendly
from .labels import LabelStore, agreement, parse_ranking
from .scratch import scratch_folder
from .validation import Limits

MAX_SHOWN = 16


def open_file(store: LabelStore, path: str, max_candidates: int, max_rows: int) -> str:
    """Validate an uploaded file (every bad row reported) and keep its items; returns its id."""
    items = parse_items(Path(path), Limits(max_candidates=max_candidates), max_rows)
    file_id = file_digest(Path(path))
    store.add_file(file_id, Path(path).name, items)
    return file_id


def conversation_text(messages: list[dict]) -> str:
    """Earlier turns and system message as plain text (shown in a read-only text box: never rendered as HTML)."""
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages[:-1])


def labels_export(store: LabelStore, file_id: str | None) -> tuple[str, str]:
    """Labels as CSV (one row per label, with the model's choice) and the agreement summary as JSON."""
    frame = store.frame(file_id)
    rows = []
    for r in frame.itertuples():
        result = json.loads(r.result)
        model_top = max(range(len(result["scores"])), key=lambda k: result["scores"][k])
        ranking = "" if not isinstance(r.ranking, str) else " > ".join(chr(65 + k) for k in json.loads(r.ranking))
        rows.append({"file": r.file, "item_id": r.item_id, "annotator": r.annotator, "choice": chr(65 + r.choice),
                     "ranking": ranking, "note": r.note, "model_choice": chr(65 + model_top),
                     "agrees": r.choice == model_top, "scores": json.dumps(result["scores"]),
                     "labelled_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.created))})  # fmt: skip
    folder = scratch_folder("armorm-labels-")
    csv_path, json_path = folder / "labels.csv", folder / "agreement.json"
    csv_path.write_text(tables.to_csv(pd.DataFrame(rows)), encoding="utf-8")
    json_path.write_text(json.dumps(agreement(frame) if len(frame) else {}, indent=2), encoding="utf-8")
    return str(csv_path), str(json_path)


def build_annotate_tab(scorer, store: LabelStore, config) -> None:
    letters = explain.candidate_labels(MAX_SHOWN)
    state = gr.State({})  # {"file_id", "position"} for this browser session

    with gr.Row():
        annotator = gr.Textbox(label="Your name", placeholder="labels are kept per annotator", elem_id="annotator")
        upload = gr.File(label="Open a file (.csv, .jsonl, .parquet)", file_types=[".csv", ".jsonl", ".parquet"],
                         elem_id="annotate-upload")  # fmt: skip
        stored = gr.Dropdown(label="or continue a file", choices=[(n, f) for f, n in store.files()],
                             allow_custom_value=True, elem_id="stored")  # fmt: skip
        hide = gr.Checkbox(value=True, label="Hide the model's scores until I have chosen")
    status = gr.Markdown("Enter your name and open a file.", elem_id="annotate-status")
    conversation = gr.Textbox(label="Conversation so far", interactive=False, visible=False, lines=3)
    prompt = gr.Textbox(label="Prompt", interactive=False, lines=2, elem_id="annotate-prompt")
    boxes = [gr.Textbox(label=f"Candidate {x}", interactive=False, visible=False, lines=3,
                        elem_id=f"annotate-{x}") for x in letters]  # fmt: skip
    with gr.Row():
        choice = gr.Radio(choices=[], label="Preferred response", elem_id="annotate-choice")
        ranking = gr.Textbox(label="Full ranking (optional), best first: B > A > C", elem_id="annotate-ranking")
        note = gr.Textbox(label="Note (optional)", elem_id="annotate-note")
    with gr.Row():
        prev = gr.Button("← Previous")
        save = gr.Button("Save label and next", variant="primary", elem_id="annotate-save")
        skip = gr.Button("Skip →")
    model_view = gr.Dataframe(label="The model's ranking", visible=False, interactive=False)
    with gr.Accordion("Agreement with the model, and export", open=False):
        refresh = gr.Button("Compute agreement", elem_id="agreement-button")
        agreement_text = gr.Markdown()
        agreement_plot = gr.Plot(label="Objectives that predict each annotator's choices", elem_id="plot-agreement")
        with gr.Row():
            labels_csv = gr.DownloadButton("Download labels (CSV)", value=None, interactive=False, elem_id="labels-csv")
            agreement_json = gr.DownloadButton("Download agreement (JSON)", value=None, interactive=False)

    item_outputs = [state, status, conversation, prompt, *boxes, choice, ranking, note, model_view]

    def show(file_id: str, position: int, name: str, hide_scores: bool) -> dict:
        items = store.items(file_id)
        done = store.labelled(file_id, name) if name.strip() else set()
        if position >= len(items):
            return {state: {"file_id": file_id, "position": len(items)},
                    status: f"**All {len(items)} items labelled** by {name}. Compute agreement or download below.",
                    model_view: gr.update(visible=False)}  # fmt: skip
        item = items[position]
        result = scorer.score(item.messages, item.candidates)
        labelled = item.item_id in done
        n = len(item.candidates)
        return {
            state: {"file_id": file_id, "position": position},
            status: f"Item **{position + 1} of {len(items)}** · id `{item.item_id}` · {len(done)} labelled by "
            f"{name or '(no name)'}" + (" · already labelled (saving replaces it)" if labelled else ""),
            conversation: gr.update(value=conversation_text(item.messages), visible=len(item.messages) > 1),
            prompt: item.messages[-1]["content"],
            **{box: gr.update(value=item.candidates[k] if k < n else "", visible=k < n) for k, box in enumerate(boxes)},
            choice: gr.update(choices=letters[:n], value=None),
            ranking: "",
            note: "",
            model_view: gr.update(value=tables.ranking(result, letters[:n]), visible=labelled or not hide_scores),
        }

    def need_name(name: str) -> None:
        if not name or not name.strip():
            raise gr.Error("Enter your name first: labels are kept per annotator, and you resume where you stopped.")

    def opened(path, name, hide_scores):
        need_name(name)
        if not path:
            raise gr.Error("Choose a .csv, .jsonl or .parquet file.")
        file_id = open_file(store, path, config.api_candidates, config.max_rows)
        out = show(file_id, store.next_position(file_id, name), name, hide_scores)
        return {**out, stored: gr.update(choices=[(n, f) for f, n in store.files()], value=file_id)}

    def resumed(file_id, name, hide_scores):
        need_name(name)
        if not file_id:
            return {}
        return show(file_id, store.next_position(file_id, name), name, hide_scores)

    def saved(st, name, hide_scores, picked, ranking_text, note_text):
        need_name(name)
        if not st.get("file_id"):
            raise gr.Error("Open a file first.")
        items = store.items(st["file_id"])
        if st["position"] >= len(items):
            raise gr.Error("Every item of this file is labelled.")
        item = items[st["position"]]
        if not picked:
            raise gr.Error("Pick the preferred response (A, B, ...) before saving.")
        order = parse_ranking(ranking_text, len(item.candidates))
        pick = ord(picked) - 65
        if order and order[0] != pick:
            raise gr.Error(f"The ranking puts {chr(65 + order[0])} first but the preferred response is {picked}.")
        result = scorer.score(item.messages, item.candidates)
        store.record(st["file_id"], item, st["position"], name, pick, order, note_text, result)
        nxt = store.next_position(st["file_id"], name)
        gr.Info(f"Saved: {picked} for item {item.item_id}. The model preferred {letters[int(result.scores.argmax())]}.")
        return show(st["file_id"], nxt if nxt > st["position"] else st["position"] + 1, name, hide_scores)

    def moved(st, name, hide_scores, step):
        if not st.get("file_id"):
            return {}
        total = len(store.items(st["file_id"]))
        return show(st["file_id"], min(max(st["position"] + step, 0), total), name, hide_scores)

    def computed(st):
        file_id = st.get("file_id") if st else None
        frame = store.frame(file_id)
        if frame.empty:
            raise gr.Error("No labels yet for this file.")
        summary = agreement(frame)
        lines = [f"- **{a}**: {s['labels']} labels; the model's top choice matches {s['model_top_agreement']:.0%}"
                 + (f"; Spearman {s['spearman_mean']:+.2f} over {s['full_rankings']} full rankings"
                    if s["spearman_mean"] is not None else "") for a, s in summary.items()]  # fmt: skip
        csv_path, json_path = labels_export(store, file_id)
        return {agreement_text: "\n".join(lines), agreement_plot: figures.agreement(summary),
                labels_csv: gr.update(value=csv_path, interactive=True),
                agreement_json: gr.update(value=json_path, interactive=True)}  # fmt: skip

    def refresh_files():
        return gr.update(choices=[(n, f) for f, n in store.files()])

    opened, resumed, saved, moved, computed = map(friendly, (opened, resumed, saved, moved, computed))
    upload.upload(opened, [upload, annotator, hide], [*item_outputs, stored], api_name="annotate_open",
                  concurrency_id="model")  # fmt: skip
    stored.input(resumed, [stored, annotator, hide], item_outputs, api_name="annotate_resume", concurrency_id="model")
    save.click(saved, [state, annotator, hide, choice, ranking, note], item_outputs, api_name="annotate_save",
               concurrency_id="model")  # fmt: skip
    prev.click(lambda st, n, h: moved(st, n, h, -1), [state, annotator, hide], item_outputs,
               api_visibility="private", concurrency_id="model")  # fmt: skip
    skip.click(lambda st, n, h: moved(st, n, h, +1), [state, annotator, hide], item_outputs,
               api_visibility="private", concurrency_id="model")  # fmt: skip
    refresh.click(computed, state, [agreement_text, agreement_plot, labels_csv, agreement_json],
                  api_name="annotate_agreement")  # fmt: skip
    stored.focus(refresh_files, None, stored, api_visibility="private")
