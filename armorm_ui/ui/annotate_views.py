"""What the Annotate tab shows, as functions of plain data: an item's list and progress, a label as the annotator
entered it, the review queue, the project's settings and guidelines, and the agreement report with its downloads.
No database and no model here: the handlers (annotate.py, review.py) read those and hand the results in. Text
that came from a user (names, item ids, guidelines) is shown as text."""

from __future__ import annotations

import html
import json
import re
import time
from collections import Counter
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from .. import explain, figures, report_figures, tables
from ..agreement import ALL_BAD_CHOICE, TIE_CHOICE, agreement_report, agreement_table, ratings
from ..evaluation import label_pairs, report
from ..label_store import Annotator, ProjectSettings, agreement, parse_ranking
from ..scratch import scratch_folder
from .evaluate import fit_text
from .handlers import as_text

TIE_TEXT, ALL_BAD_TEXT = "Tie", "All bad"
"""The choices that pick no candidate (stored as agreement.TIE_CHOICE / ALL_BAD_CHOICE)."""


SPECIAL = {TIE_TEXT.lower(): TIE_CHOICE, ALL_BAD_TEXT.lower(): ALL_BAD_CHOICE}


SAFE_LINK = re.compile(r"\]\(\s*<?\s*(?!https?://|mailto:|#)[^)]*\)", re.IGNORECASE)
"""A Markdown link target that is not a web page, a mail address or an anchor (javascript:, data:, file:...)."""


def guidelines_markdown(text: str) -> str:
    """A project's guidelines as Markdown that cannot carry markup of its own: HTML in them is shown as text (escaped),
    images become links (nothing loads from elsewhere when the page opens), and a link to anything but a web page or a
    mail address leads nowhere."""
    if not text or not text.strip():
        return ""
    safe = text.replace("&", "&amp;").replace("<", "&lt;").replace("![", "[")  # '>' stays: quotes
    return SAFE_LINK.sub("](#)", safe)


def choice_text(choice: int) -> str:
    """A stored choice as the tab shows it: 'A', 'B', ..., 'Tie', 'All bad'."""
    special = {TIE_CHOICE: TIE_TEXT, ALL_BAD_CHOICE: ALL_BAD_TEXT}
    return special.get(choice) or explain.candidate_label(choice)


def conversation_text(messages: list[dict]) -> str:
    """Earlier turns and system message as plain text (shown in a read-only text box: never rendered as HTML)."""
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages[:-1])


def labels_export(frame: pd.DataFrame) -> tuple[str, str]:
    """Labels as CSV (one row per label, with the model's choice) and the agreement summary as JSON."""
    rows = []
    for r in frame.itertuples():
        result = json.loads(r.result)
        model_top = max(range(len(result["scores"])), key=lambda k: result["scores"][k])
        picked = int(r.choice)
        ranking = (
            "" if not isinstance(r.ranking, str) else " > ".join(map(explain.candidate_label, json.loads(r.ranking)))
        )
        rows.append({"file": r.file, "item_id": r.item_id, "annotator": r.annotator,
                     "choice": choice_text(picked), "ranking": ranking, "note": r.note,
                     "model_choice": explain.candidate_label(model_top),
                     "agrees": picked == model_top if picked >= 0 else None,  # a tie or all bad: neither
                     "scores": json.dumps(result["scores"]),
                     "labelled_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.created))})  # fmt: skip
    folder = scratch_folder("armorm-labels-")
    csv_path, json_path = folder / "labels.csv", folder / "agreement.json"
    csv_path.write_text(tables.to_csv(pd.DataFrame(rows)), encoding="utf-8")
    json_path.write_text(json.dumps(agreement(frame) if len(frame) else {}, indent=2), encoding="utf-8")
    return str(csv_path), str(json_path)


def disagreed(marks: list[tuple[str, str, int]]) -> set[str]:
    """The items whose annotators disagree: two or more labels, not all the same (the review queue's items)."""
    choices: dict[str, set[int]] = {}
    for i, _, c in marks:
        choices.setdefault(i, set()).add(c)
    return {i for i, found in choices.items() if len(found) > 1}


def item_list(ids: list[str], marks: list[tuple[str, str, int]], name: str) -> list[tuple[str, int]]:
    """The file's items for 'Go to item', each with its status for this annotator: their label, skipped (left
    unlabelled before one they labelled), or unlabelled; how many labels others gave it; and whether annotators
    disagree on it."""
    mine = {i: c for i, a, c in marks if a == name}
    others = Counter(i for i, a, _ in marks if a != name)
    conflicting = disagreed(marks)
    furthest = max((k for k, i in enumerate(ids) if i in mine), default=-1)
    out = []
    for k, i in enumerate(ids):
        status = f"yours: {choice_text(mine[i])}" if i in mine else "skipped" if k < furthest else "unlabelled"
        if others[i]:
            status += f" · {others[i]} label{'s' if others[i] > 1 else ''} by others"
        if i in conflicting:
            status += " · annotators disagree"
        out.append((f"{k + 1}. {i} — {status}", k))
    return out


def progress_html(ids: list[str], marks: list[tuple[str, str, int]], name: str, overlap: int = 1) -> str:
    """Two bars: this annotator's items labelled, and the file's items that have the project's number of annotators
    (`overlap`), with how many items annotators disagree on."""
    known = set(ids)
    n = max(len(ids), 1)
    mine = len({i for i, a, _ in marks if a == name and i in known})
    counts = Counter(i for i, _, _ in marks if i in known)
    anyone = sum(k >= overlap for k in counts.values())
    people = len({a for i, a, _ in marks if i in known})
    conflicts = len(disagreed(marks) & known)

    def bar(text: str, k: int) -> str:
        return (f'<div class="annotate-bar"><span>{text}</span><progress max="{n}" value="{k}" '
                f'aria-label="{html.escape(text)}"></progress></div>')  # fmt: skip

    return (
        '<div class="annotate-progress">'
        + bar(f"You: {mine} of {len(ids)} ({mine / n:.0%})", mine)
        + bar(
            f"Everyone ({people} annotator{'s' if people != 1 else ''}): {anyone} of {len(ids)} items"
            + (f" with {overlap} labels each" if overlap > 1 else "")
            + (f" · annotators disagree on {conflicts}" if conflicts else ""),
            anyone,
        )
        + "</div>"
    )


def opened_item(st) -> tuple[str, int] | None:
    """(file_id, position) of the session's open file, or None when no file is open."""
    if isinstance(st, dict) and isinstance(st.get("file_id"), str) and isinstance(st.get("position"), int):
        return st["file_id"], max(st["position"], 0)
    return None


def as_typed(value):
    """A text field's value as Gradio's Textbox hands it to a handler (its preprocess): None or text."""
    return None if value is None else str(value)


def checked_label(n: int, picked, ranking_text, note_text) -> tuple[int, list[int] | None]:
    """The chosen candidate's index (or TIE_CHOICE / ALL_BAD_CHOICE) and the optional full ranking, from what the
    annotator entered."""
    if not isinstance(picked, str) or not picked:
        raise gr.Error("Pick the preferred response (A, B, ..., Tie or All bad) before saving.")
    if ranking_text is not None and not isinstance(ranking_text, str):
        raise gr.Error("The ranking must be text, like 'B > A > C'.")
    if note_text is not None and not isinstance(note_text, str):
        raise gr.Error("The note must be text.")
    if picked.strip().lower() in SPECIAL:
        if ranking_text and ranking_text.strip():
            raise gr.Error(f"A label '{html.escape(picked)}' takes no ranking: clear the ranking, or pick a response.")
        return SPECIAL[picked.strip().lower()], None
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
    return pick, order


def queue_text(entry: dict) -> str:
    """A queued item as the review list shows it: its place, id, everyone's label and the gold label if set."""
    labels = ", ".join(f"{a}: {choice_text(c)}" for a, c in entry["labels"].items())
    gold = f" · gold: {choice_text(entry['gold'])}" if entry["gold"] is not None else " · no gold yet"
    return f"{entry['position'] + 1}. {entry['item_id']} — {labels}{gold}"


def project_view(u: SimpleNamespace, settings: ProjectSettings) -> dict:
    """What the project's settings change beside the item: its guidelines, and the member's 'Blind' box, offered
    only where the project leaves the choice to each member."""
    guidelines = guidelines_markdown(settings.guidelines)
    return {
        u.guidelines: guidelines,
        u.guidelines_column: gr.update(visible=bool(guidelines)),
        u.hide: gr.update(visible=settings.scores == "member"),
    }


def settings_view(u: SimpleNamespace, who: Annotator, settings: ProjectSettings, reviewers: list[str],
                  said: str = "") -> dict:  # fmt: skip
    """The project's settings as the owner edits them; read-only to everyone else."""
    owner = who.name == settings.owner
    said = f"{said} · " if said else ""
    text = (f"{said}Owner: **{as_text(settings.owner or 'nobody yet')}** · reviewers: "
            f"{', '.join(as_text(r) for r in reviewers) or 'none'}"
            + ("" if owner else " · only the owner changes these settings"))  # fmt: skip
    editable = gr.update(interactive=owner)
    return {
        u.settings_status: text,
        u.overlap: gr.update(value=settings.overlap, interactive=owner),
        u.scores: gr.update(value=settings.scores, interactive=owner),
        u.guidelines_text: gr.update(value=settings.guidelines, interactive=owner),
        u.settings_save: editable,
        u.reviewer_name: editable,
        u.reviewer_add: editable,
        u.reviewer_remove: editable,
    }


def agreement_view(u: SimpleNamespace, frame: pd.DataFrame, gold: dict | None = None, export=None) -> dict:
    """The agreement report of these labels: between raters (the model one of them; `gold`: item id -> the file's
    own label), per annotator with the model, as preference pairs, and the downloads. `export`: export_labels'
    summary for the open file, or why it made none (a sentence), or None (no file open)."""
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
    ties, bad = int((frame["choice"] == TIE_CHOICE).sum()), int((frame["choice"] == ALL_BAD_CHOICE).sum())
    if ties or bad:
        lines.append(f"- {ties} labels say tie and {bad} all bad: they choose no candidate, so the figures above "
                     "leave them out")  # fmt: skip
    chose = frame[frame["choice"] >= 0]  # a tie or 'all bad' prefers no candidate: no pair
    pairs = label_pairs(chose) if len(chose) else pd.DataFrame()  # the chosen candidate against each other one
    found = report(pairs) if len(pairs) else None
    if found:
        o = found["overall"]
        lines.append(
            f"- As {o['n']} preference pairs (each choice against each other candidate): the model "
            f"agrees on {o['accuracy']:.0%} (95% interval {o['low']:.0%} to {o['high']:.0%})"
        )
        lines.append("\n" + fit_text(found))  # the Evaluate tab's weights fitted to labels, here to these labels
    if isinstance(export, dict):
        lines.append(f"- Preference data: {export['pairs']} pairs from {export['items_with_pairs']} of "
                     f"{export['items']} items (a tie or all bad gives none; an item without a majority label is "
                     "left out)")  # fmt: skip
    elif isinstance(export, str):
        lines.append(f"- No preference data: {as_text(export)}")
    table = agreement_table(agreement_report(ratings(frame), gold))
    csv_path, json_path = labels_export(frame)
    return {
        u.agreement_text: "\n".join(lines),
        u.agreement_table: table,
        u.preference_zip: gr.update(value=export["files"]["jsonl"], interactive=True)
        if isinstance(export, dict)
        else gr.update(value=None, interactive=False),
        u.agreement_plot: figures.agreement(summary),
        u.pairs_plot: report_figures.objective_agreement(found) if found else None,
        u.labels_csv: gr.update(value=csv_path, interactive=True),
        u.agreement_json: gr.update(value=json_path, interactive=True),
    }
