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
import importlib.util
import json
import os
import re
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from .. import explain, figures, report_figures, tables
from ..agreement import ALL_BAD_CHOICE, TIE_CHOICE, agreement_report, agreement_table, ratings
from ..batch import file_digest
from ..errors import InputError
from ..evaluation import label_pairs, report
from ..label_export import export_labels
from ..label_store import (
    LOCK_WAIT_S,
    MAX_GUIDELINES_CHARS,
    MAX_OVERLAP,
    Annotator,
    DatabaseUnavailable,
    LabelStore,
    ProjectSettings,
    agreement,
    parse_ranking,
)
from ..preference_items import file_labels, read_annotation_items
from ..scratch import scratch_folder
from .evaluate import fit_text
from .handlers import as_text, cancellable, friendly, upload

MAX_SHOWN = 16
"""Candidate boxes in the tab: a file with more candidates per item is refused when it is opened."""
TIE_TEXT, ALL_BAD_TEXT = "Tie", "All bad"
"""The choices that pick no candidate (stored as agreement.TIE_CHOICE / ALL_BAD_CHOICE)."""
SPECIAL = {TIE_TEXT.lower(): TIE_CHOICE, ALL_BAD_TEXT.lower(): ALL_BAD_CHOICE}

KEYS_LEGEND = (
    '<div id="annotate-keys" class="annotate-keys">Keys: <kbd>1</kbd>–<kbd>9</kbd> pick a response · '
    "<kbd>T</kbd> tie · <kbd>X</kbd> all bad · <kbd>Enter</kbd> save and next · <kbd>←</kbd>/<kbd>K</kbd> "
    "previous · <kbd>→</kbd>/<kbd>J</kbd> next · <kbd>Esc</kbd> leave a text box</div>"
)
KEYS_JS = """
if (!window.__annotateKeys) {
  window.__annotateKeys = true;
  const press = (selector) => { const b = document.querySelector(selector); if (b && !b.disabled) b.click(); };
  document.addEventListener("keydown", (e) => {
    const tab = document.getElementById("annotate-tab");
    if (!tab || tab.getClientRects().length === 0) return;  // another tab is open
    if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing || e.repeat) return;
    const t = e.target, k = e.key;
    const typing = t && (t.tagName === "TEXTAREA" || t.isContentEditable || t.tagName === "SELECT" ||
      (t.tagName === "INPUT" && !["radio", "checkbox", "button"].includes(t.type)));
    if (typing) { if (k === "Escape") t.blur(); return; }
    if (t && t.tagName === "BUTTON" && (k === "Enter" || k === " ")) return;  // the button's own press
    const radios = [...document.querySelectorAll("#annotate-choice input[type=radio]")];
    const text = (r) => (r.closest("label")?.innerText || r.value || "").trim();
    const special = ["Tie", "All bad"];
    const pick = (r) => { if (r) { r.click(); e.preventDefault(); } };
    if (/^[1-9]$/.test(k)) pick(radios.filter((r) => !special.includes(text(r)))[Number(k) - 1]);
    else if (k === "t" || k === "T") pick(radios.find((r) => text(r) === "Tie"));
    else if (k === "x" || k === "X") pick(radios.find((r) => text(r) === "All bad"));
    else if (k === "Enter") { e.preventDefault(); press("#annotate-save"); }
    else if (k === "ArrowLeft" || k === "k" || k === "K") { e.preventDefault(); press("#annotate-prev"); }
    else if (k === "ArrowRight" || k === "j" || k === "J") { e.preventDefault(); press("#annotate-skip"); }
  });
}
"""
"""Number keys, T, X, Enter and arrows (or J/K) label and move while the Annotate tab is open and no text box has
the focus (Esc leaves one); installed once per page."""


SCORES_CHOICES = [
    ("Each member chooses (their 'Blind' box)", "member"),
    ("Hidden until the item is labelled, for everyone", "blind"),
    ("Shown from the start, for everyone (reviewing the model)", "shown"),
]
"""The project's setting for the model's scores before an item is labelled (label_store.SCORE_MODES)."""
OAUTH_MODULES = ("authlib", "itsdangerous")
"""What Gradio's OAuth needs beyond Gradio itself (its `oauth` extra)."""
SAFE_LINK = re.compile(r"\]\(\s*<?\s*(?!https?://|mailto:|#)[^)]*\)", re.IGNORECASE)
"""A Markdown link target that is not a web page, a mail address or an anchor (javascript:, data:, file:...)."""


def oauth_available() -> bool:
    """Whether this server runs on a Hugging Face Space with OAuth (`hf_oauth: true`) and has Gradio's OAuth extras
    (`gradio[oauth]`: authlib, itsdangerous): only then does Gradio sign visitors in with their account (elsewhere
    its sign-in is a mock that needs the machine's own token; without the extras the page would not start)."""
    space = os.environ.get("SYSTEM") == "spaces" and os.environ.get("SPACE_ID")
    if not (space and os.environ.get("OAUTH_CLIENT_ID")):
        return False
    missing = [m for m in OAUTH_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        print(f"Hugging Face sign-in is off: install gradio[oauth] (missing {', '.join(missing)})", file=sys.stderr)
    return not missing


def guidelines_markdown(text: str) -> str:
    """A project's guidelines as Markdown that cannot carry markup of its own: HTML in them is shown as text (escaped),
    images become links (nothing loads from elsewhere when the page opens), and a link to anything but a web page or a
    mail address leads nowhere."""
    if not text or not text.strip():
        return ""
    safe = text.replace("&", "&amp;").replace("<", "&lt;").replace("![", "[")  # '>' stays: quotes
    return SAFE_LINK.sub("](#)", safe)


PHONE_CSS = """<style id="annotate-phone">
@media (max-width: 640px) {
  #annotate-tab #annotate-guidelines-column { order: -1; }
  #annotate-tab #annotate-guidelines { max-height: 40vh; overflow-y: auto; }
}
</style>"""
"""On a phone the guidelines come before the item (a collapsible box, its text scrolled past 40% of the screen)
rather than after the buttons."""


START_STATUS = "Enter the project key, your name and passcode, then open a file."
AGAIN_STATUS = "Welcome back: this browser kept your project key and name. Enter your passcode, then open a file."


def choice_text(choice: int) -> str:
    """A stored choice as the tab shows it: 'A', 'B', ..., 'Tie', 'All bad'."""
    special = {TIE_CHOICE: TIE_TEXT, ALL_BAD_CHOICE: ALL_BAD_TEXT}
    return special.get(choice) or explain.candidate_label(choice)


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
    items = await asyncio.to_thread(read_annotation_items, Path(path), limits, max_rows)  # preference files too
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


def client_address(request: gr.Request | None) -> str | None:
    """The caller's address, which wrong passcodes are counted against as well as the name (None outside a request)."""
    client = getattr(request, "client", None)
    return getattr(client, "host", None)


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


def sign_in(store: LabelStore, key_text, name, code, request: gr.Request | None, profile=None):
    """The annotator of a request (a coroutine): the Hugging Face account the server signed in, where there is one
    (named 'hf:<username>', no passcode), else the name proven by its passcode."""
    username = getattr(profile, "username", None)
    if username:
        return db(store.sign_in_account, key_text, username)
    return db(store.sign_in, key_text, name, code, client_address(request))


def build_annotate_tab(scorer, store: LabelStore, config) -> None:
    u = _layout(explain.candidate_labels(MAX_SHOWN))
    _wire_settings(store, u)  # first: opening a file then shows the project's settings
    _wire_labelling(scorer, store, config, u)
    _wire_review(scorer, store, u)
    _wire_agreement(store, u)
    _wire_remembered(u)


RECALL_JS = """(value, key, name, status) => {
  // Runs in the browser as it reads its storage, so nothing typed meanwhile is overwritten; fills empty boxes only.
  const ok = Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === 'string');
  const [k, n] = ok ? value.map((v) => v.slice(0, 256)) : ['', ''];
  const fill = [!key && k ? k : key, !name && n ? n : name];
  const filled = fill[0] !== key || fill[1] !== name;
  return [...fill, filled && status === START ? AGAIN : status]; }"""
"""Fills the key and name a reload kept (Gradio's BrowserState, read when the page mounts) and asks for the passcode."""


def _wire_remembered(u: SimpleNamespace):
    """A reload keeps the project key and the name, in this browser's local storage (Gradio's BrowserState; a
    restarted server reads none back). The passcode is not kept: it is asked again."""
    remembered = gr.BrowserState(["", ""], storage_key="armorm-annotate-who")

    def remember(key, name):
        return [key if isinstance(key, str) else "", name if isinstance(name, str) else ""]

    gr.on([u.key.change, u.annotator.blur], remember, [u.key, u.annotator], remembered, queue=False,
          show_progress="hidden", api_visibility="private")  # fmt: skip
    recall = RECALL_JS.replace("START", json.dumps(START_STATUS)).replace("AGAIN", json.dumps(AGAIN_STATUS))
    remembered.change(None, [remembered, u.key, u.annotator, u.status], [u.key, u.annotator, u.status], js=recall)


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
        if oauth_available():  # on a Space: the account names the annotator, no name or passcode needed
            with gr.Column(min_width=200):
                gr.LoginButton(elem_id="annotate-login")
                gr.Markdown("Signed in? Leave name and passcode empty: you label as *hf:your-username*.")
    with gr.Row():
        u.upload = gr.File(
            label="Open a file (.csv, .jsonl, .parquet)",
            file_types=[".csv", ".jsonl", ".parquet"],
            elem_id="annotate-upload",
        )
        u.stored = gr.Dropdown(
            label="or continue a file of this project", choices=[], allow_custom_value=True, elem_id="stored"
        )
        u.hide = gr.Checkbox(
            value=True,
            label="Blind: keep the model's scores and pick off the page until I have labelled the item",
            elem_id="annotate-blind",
        )
    u.status = gr.Markdown(START_STATUS, elem_id="annotate-status")
    with gr.Row(equal_height=True, elem_id="annotate-where"):
        u.progress = gr.HTML("", elem_id="annotate-progress", padding=False)
        u.jump = gr.Dropdown(label="Go to item", choices=[], value=None, elem_id="annotate-jump", min_width=240)
    with gr.Row(elem_id="annotate-work"):
        with gr.Column(scale=3, min_width=320):
            _item_layout(u, letters)
        with gr.Column(scale=1, min_width=260, visible=False, elem_id="annotate-guidelines-column") as column:
            u.guidelines_column = column
            with gr.Accordion("Guidelines", open=True, elem_id="annotate-guidelines-box"):
                u.guidelines = gr.Markdown("", elem_id="annotate-guidelines", sanitize_html=True)
    _review_layout(u)
    _settings_layout(u)
    with gr.Accordion("Agreement with the model, and export", open=False):
        u.refresh = gr.Button("Compute agreement", elem_id="agreement-button")
        u.agreement_text = gr.Markdown(elem_id="agreement-text")
        u.agreement_table = gr.Dataframe(
            label="Agreement between annotators, the model and gold labels (95% bootstrap intervals)",
            interactive=False,
            wrap=True,
            elem_id="agreement-table",
        )
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
            u.preference_zip = gr.DownloadButton(
                "Download preference data", value=None, interactive=False, elem_id="preference-data"
            )

    u.item_outputs = [u.state, u.status, u.progress, u.jump, u.conversation, u.prompt, *u.boxes, u.choice,
                      u.ranking, u.note, u.model_view, u.guidelines, u.guidelines_column, u.hide]  # fmt: skip
    u.who_inputs = [u.key, u.annotator, u.passcode]
    u.settings_outputs = [u.settings_status, u.overlap, u.scores, u.guidelines_text, u.settings_save,
                          u.reviewer_name, u.reviewer_add, u.reviewer_remove]  # fmt: skip
    return u


def _item_layout(u: SimpleNamespace, letters: list[str]) -> None:
    """The item being labelled: its conversation, candidates, the choice, the keys, and the buttons."""
    u.conversation = gr.Textbox(label="Conversation so far", interactive=False, visible=False, lines=3)
    u.prompt = gr.Textbox(label="Prompt", interactive=False, lines=2, elem_id="annotate-prompt")
    u.boxes = [
        gr.Textbox(label=f"Candidate {x}", interactive=False, visible=False, lines=3, elem_id=f"annotate-{x}")
        for x in letters
    ]
    with gr.Row():
        u.choice = gr.Radio(choices=[], label="Preferred response", elem_id="annotate-choice")
    gr.HTML(KEYS_LEGEND, js_on_load=KEYS_JS, head=PHONE_CSS, elem_id="annotate-legend", padding=False)
    with gr.Row():
        u.ranking = gr.Textbox(label="Full ranking (optional), best first: B > A > C", elem_id="annotate-ranking")
        u.note = gr.Textbox(label="Note (optional)", max_length=2000, elem_id="annotate-note")
    with gr.Row():
        u.prev = gr.Button("← Previous", elem_id="annotate-prev")
        u.save = gr.Button("Save label and next", variant="primary", elem_id="annotate-save")
        u.skip = gr.Button("Skip →", elem_id="annotate-skip")
    u.model_view = gr.Dataframe(label="The model's ranking", visible=False, interactive=False, elem_id="annotate-model")


def _review_layout(u: SimpleNamespace) -> None:
    """The reviewers' queue: the open file's items whose annotators disagree, and the gold label of each."""
    with gr.Accordion("Review: items annotators disagree on (reviewers)", open=False, elem_id="annotate-review"):
        gr.Markdown(
            "An item is queued when two or more annotators labelled it differently. Pick one to open it above, "
            "then set its **gold label**: agreement with gold (below) uses it."
        )
        with gr.Row():
            u.queue_refresh = gr.Button("Show the review queue", size="sm", elem_id="review-refresh")
            u.queue = gr.Dropdown(label="Queued items", choices=[], value=None, elem_id="review-queue", min_width=240)
        u.queue_labels = gr.Markdown("", elem_id="review-labels")
        with gr.Row():
            u.gold_choice = gr.Radio(choices=[], label="Gold label", elem_id="review-gold")
            u.gold_note = gr.Textbox(label="Why (optional)", max_length=2000, elem_id="review-note")
        u.gold_save = gr.Button("Set gold label", variant="primary", elem_id="review-save")


def _settings_layout(u: SimpleNamespace) -> None:
    """The owner's settings: annotators per item, the model's scores, guidelines, and reviewers."""
    with gr.Accordion("Project settings (the owner's)", open=False, elem_id="annotate-settings") as box:
        u.settings_box = box
        u.settings_status = gr.Markdown(
            "The first name signed in to a project owns it. Open a file to see this project's settings.",
            elem_id="settings-status",
        )
        with gr.Row():
            u.overlap = gr.Number(label="Annotators per item", value=1, minimum=1, maximum=MAX_OVERLAP, precision=0,
                                  elem_id="settings-overlap", min_width=160)  # fmt: skip
            u.scores = gr.Radio(SCORES_CHOICES, value="member", label="The model's scores before an item is labelled",
                                elem_id="settings-scores")  # fmt: skip
        u.guidelines_text = gr.Textbox(
            label="Guidelines (Markdown; shown beside every item)",
            lines=6,
            max_length=MAX_GUIDELINES_CHARS,
            elem_id="settings-guidelines",
        )
        u.settings_save = gr.Button("Save settings", variant="primary", elem_id="settings-save")
        with gr.Row():
            u.reviewer_name = gr.Textbox(label="A member's name", elem_id="settings-reviewer", min_width=200)
            u.reviewer_add = gr.Button("Make reviewer", size="sm", elem_id="settings-reviewer-add")
            u.reviewer_remove = gr.Button("No longer reviewer", size="sm", elem_id="settings-reviewer-remove")


async def item_view(
    scorer,
    store: LabelStore,
    u: SimpleNamespace,
    who: Annotator,
    file_id: str,
    position: int,
    hide_scores: bool,
    said: str = "",
) -> dict:
    """What the tab shows for item `position` of a file, with the annotator's saved label of it if any. Blind (the
    default): the model's scores and pick are not sent to the page until the annotator has labelled the item.
    `said`: the outcome of the last action, which starts the status line (no pop-ups to pile up). The project's
    settings may hide or show the scores for everyone, whatever the member's box says."""
    letters = u.letters
    settings = await db(store.settings, who.project)
    hide_scores = settings.hides_scores(hide_scores)
    total = await db(store.count, who.project, file_id)
    done = await db(store.labelled, who, file_id)
    name = as_text(who.name)
    said = f"{said} · " if said else ""
    ids, marks = await db(store.marks, who.project, file_id)
    listed = {
        u.progress: progress_html(ids, marks, who.name, settings.overlap),
        u.jump: gr.update(choices=item_list(ids, marks, who.name), value=position if position < total else None),
        **project_view(u, settings),
    }
    if position >= total:
        return {
            **listed,
            u.state: {"file_id": file_id, "position": total},
            # the last item's text and choice leave the page: nothing on it looks like one still to label
            u.conversation: gr.update(value="", visible=False),
            u.prompt: "",
            **{box: gr.update(value="", visible=False) for box in u.boxes},
            u.choice: gr.update(choices=[], value=None),
            u.ranking: "",
            u.note: "",
            u.status: f"{said}**All {total} items labelled** by {name}. Press ← to review, or compute agreement "
            "and download below.",
            u.model_view: gr.update(value=None, visible=False),
        }
    item = await db(store.item, who.project, file_id, position)
    saved = await db(store.label, who, file_id, item.item_id)
    show = saved is not None or not hide_scores
    result = await cancellable(scorer.score, item.messages, item.candidates) if show else None
    n = len(item.candidates)
    ranking = " > ".join(map(explain.candidate_label, saved["ranking"])) if saved and saved["ranking"] else ""
    return {
        **listed,
        u.state: {"file_id": file_id, "position": position},
        u.status: f"{said}Item **{position + 1} of {total}** · id {as_text(item.item_id)} · {done} labelled by "
        f"{name} ({done / total:.0%})"
        + (f" · your label: {choice_text(saved['choice'])} (saving replaces it)" if saved else ""),
        u.conversation: gr.update(value=conversation_text(item.messages), visible=len(item.messages) > 1),
        u.prompt: item.messages[-1]["content"],
        **{box: gr.update(value=item.candidates[k] if k < n else "", visible=k < n) for k, box in enumerate(u.boxes)},
        u.choice: gr.update(
            choices=[*letters[:n], TIE_TEXT, ALL_BAD_TEXT], value=choice_text(saved["choice"]) if saved else None
        ),
        u.ranking: ranking,
        u.note: saved["note"] if saved else "",
        # blind: no value at all (not a hidden one): the page holds nothing of the model's view of this item
        u.model_view: gr.update(value=tables.ranking(result, letters[:n]) if show else None, visible=show),
    }


def project_view(u: SimpleNamespace, settings: ProjectSettings) -> dict:
    """What the project's settings change beside the item: its guidelines, and the member's 'Blind' box, offered
    only where the project leaves the choice to each member."""
    guidelines = guidelines_markdown(settings.guidelines)
    return {
        u.guidelines: guidelines,
        u.guidelines_column: gr.update(visible=bool(guidelines)),
        u.hide: gr.update(visible=settings.scores == "member"),
    }


def _wire_labelling(scorer, store: LabelStore, config, u: SimpleNamespace) -> None:
    """Open or continue a file, step through its items, save labels: every action signs in again."""

    async def file_choices(project: str) -> list[tuple[str, str]]:
        return [(name, file_id) for file_id, name in await db(store.files, project)]

    def signed_in(key_text, name, code, request, profile=None):
        return sign_in(store, key_text, name, code, request, profile)

    async def opened(path, key_text, name, code, hide_scores, request: gr.Request = None,
                     profile: gr.OAuthProfile | None = None):  # fmt: skip
        if not path or not isinstance(path, str):
            raise gr.Error("Choose a .csv, .jsonl or .parquet file.")
        with upload(path) as file:  # deleted once read, or refused: a new try is a new upload
            who = await signed_in(key_text, name, code, request, profile)
            limits = replace(config.limits(), max_candidates=min(config.api_candidates, MAX_SHOWN))  # page's boxes
            file_id = await open_file(store, who.project, str(file), limits, config.max_rows)
        out = await item_view(scorer, store, u, who, file_id, await db(store.next_position, who, file_id), hide_scores)
        return {**out, u.stored: gr.update(choices=await file_choices(who.project), value=file_id)}

    async def resumed(file_id, key_text, name, code, hide_scores, request: gr.Request = None,
                      profile: gr.OAuthProfile | None = None):  # fmt: skip
        who = await signed_in(key_text, name, code, request, profile)
        if not file_id or not isinstance(file_id, str):
            return {u.status: "Choose a file of this project, or open one."}
        return await item_view(scorer, store, u, who, file_id, await db(store.next_position, who, file_id), hide_scores)

    async def saved(st, key_text, name, code, hide_scores, picked, ranking_text, note_text, request: gr.Request = None,
                    profile: gr.OAuthProfile | None = None):  # fmt: skip
        # not preprocessed (below): the choice is checked against the item here, not against the choices the page's
        # button had in this session, which an evicted session no longer has
        key_text, name, code, ranking_text, note_text = map(as_typed, (key_text, name, code, ranking_text, note_text))
        who = await signed_in(key_text, name, code, request, profile)
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
        nxt = await db(store.next_position, who, file_id, position)  # the next one that needs them, after this
        said = f"Saved: {as_text(choice_text(pick))} for item {as_text(item.item_id)}."
        return await item_view(scorer, store, u, who, file_id, nxt, hide_scores, said)

    async def jumped(st, picked, key_text, name, code, hide_scores, request: gr.Request = None,
                     profile: gr.OAuthProfile | None = None):  # fmt: skip
        if opened_item(st) is None or not isinstance(picked, int):
            return {u.status: "Open a file first, then pick an item to go to."}
        who = await signed_in(key_text, name, code, request, profile)
        file_id, _ = opened_item(st)
        total = await db(store.count, who.project, file_id)
        return await item_view(scorer, store, u, who, file_id, min(max(picked, 0), total), hide_scores)

    def mover(step: int):
        async def moved(st, key_text, name, code, hide_scores, request: gr.Request = None,
                        profile: gr.OAuthProfile | None = None):  # fmt: skip
            if opened_item(st) is None:
                return {u.status: NO_FILE_OPEN}
            who = await signed_in(key_text, name, code, request, profile)
            file_id, position = opened_item(st)
            total = await db(store.count, who.project, file_id)
            return await item_view(scorer, store, u, who, file_id, min(max(position + step, 0), total), hide_scores)

        if step == 0:  # 'Go to item': the position picked
            return friendly(jumped)
        moved.__name__ = moved.__qualname__ = "previous" if step < 0 else "next"  # told apart by name
        return friendly(moved)  # a function, not a partial: Gradio reads the gr.Request parameter from its hints

    async def listed(key_text):
        try:
            return gr.update(choices=await file_choices(await db(store.project, key_text)))
        except InputError:  # no key yet, one this server did not make, or no database: nothing to list
            return gr.update(choices=[])

    @friendly
    async def made(request: gr.Request = None):
        key = await db(store.new_project, client_address(request))
        said = (
            "**A new project key is in the box, shown this once: copy it and keep it.** It is the only way back to "
            "this project's files and labels (the server keeps only its hash and cannot show it again); share "
            "it only with people who may see and add to them. Then enter your name and passcode and open a file."
        )  # in the status line, which stays until the next action: no pop-up over the page
        return gr.update(value=key), gr.update(choices=[], value=None), said

    opened, resumed, saved = map(friendly, (opened, resumed, saved))
    quiet = {"show_progress": "hidden"}  # a refusal is one pop-up, not an error mark over every field
    # the page's own calls: named, so a project's members can script them, but not offered as API or MCP tools
    named = {**quiet, "api_visibility": "undocumented"}
    u.new_key.click(made, None, [u.key, u.stored, u.status], api_visibility="private")
    u.upload.upload(
        opened,
        [u.upload, *u.who_inputs, u.hide],
        [*u.item_outputs, u.stored],
        api_name="annotate_open",
        concurrency_id="labels",
        concurrency_limit=4,
        **named,
    ).success(u.settings_shown, u.who_inputs, u.all_settings_outputs, api_visibility="private", **quiet)
    u.stored.input(
        resumed,
        [u.stored, *u.who_inputs, u.hide],
        u.item_outputs,
        api_name="annotate_resume",
        concurrency_id="labels",
        concurrency_limit=4,
        **named,
    ).success(u.settings_shown, u.who_inputs, u.all_settings_outputs, api_visibility="private", **quiet)
    gr.on(  # Enter in the ranking or the note saves too: no reaching for Esc first
        [u.save.click, u.ranking.submit, u.note.submit],
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
    u.jump.input(
        mover(0),
        [u.state, u.jump, *u.who_inputs, u.hide],
        u.item_outputs,
        api_visibility="private",
        concurrency_id="labels",
        concurrency_limit=4,
        **quiet,
    )
    gr.on([u.stored.focus, u.key.change], listed, u.key, u.stored, api_visibility="private", show_progress="hidden")


def queue_text(entry: dict) -> str:
    """A queued item as the review list shows it: its place, id, everyone's label and the gold label if set."""
    labels = ", ".join(f"{a}: {choice_text(c)}" for a, c in entry["labels"].items())
    gold = f" · gold: {choice_text(entry['gold'])}" if entry["gold"] is not None else " · no gold yet"
    return f"{entry['position'] + 1}. {entry['item_id']} — {labels}{gold}"


async def reviewer(store: LabelStore, who: Annotator) -> None:
    """Refuse anyone but the project's reviewers (the owner and whoever the owner named)."""
    if not await db(store.is_reviewer, who):
        owner = (await db(store.settings, who.project)).owner
        raise gr.Error(f"Only the project's reviewers see the review queue and set gold labels: ask its owner "
                       f"({html.escape(owner or 'nobody yet')}) to make you one in 'Project settings'.")  # fmt: skip


def _wire_review(scorer, store: LabelStore, u: SimpleNamespace) -> None:
    """The review queue of the open file, an item of it opened above, and its gold label set."""

    async def queue_view(who: Annotator, file_id: str, said: str = "", picked=None) -> dict:
        queue = await db(store.review_queue, who.project, file_id)
        open_ = sum(e["gold"] is None for e in queue)
        said = f"{said} · " if said else ""
        text = (f"{said}{len(queue)} item{'s' if len(queue) != 1 else ''} where annotators disagree, {open_} without "
                "a gold label." if queue else f"{said}No item of this file has annotators who disagree.")  # fmt: skip
        return {u.queue: gr.update(choices=[(queue_text(e), e["position"]) for e in queue], value=picked),
                u.queue_labels: text}  # fmt: skip

    async def reviewing(st, key_text, name, code, request, profile) -> tuple[Annotator, str]:
        who = await sign_in(store, key_text, name, code, request, profile)
        if opened_item(st) is None:
            raise gr.Error("Open a file first: the review queue is the open file's.")
        await reviewer(store, who)
        return who, opened_item(st)[0]

    @friendly
    async def queued(st, key_text, name, code, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        who, file_id = await reviewing(st, key_text, name, code, request, profile)
        return await queue_view(who, file_id)

    @friendly
    async def reviewed(st, picked, key_text, name, code, hide_scores, request: gr.Request = None,
                       profile: gr.OAuthProfile | None = None):  # fmt: skip
        who, file_id = await reviewing(st, key_text, name, code, request, profile)
        if not isinstance(picked, int):
            return {u.queue_labels: "Pick a queued item."}
        view = await item_view(scorer, store, u, who, file_id, picked, hide_scores)  # the item, opened above
        item = await db(store.item, who.project, file_id, picked)
        entry = next((e for e in await db(store.review_queue, who.project, file_id) if e["item_id"] == item.item_id),
                     None)  # fmt: skip
        if entry is None:
            return {**view, u.queue_labels: "This item's annotators agree now: it left the queue."}
        choices = [*u.letters[: len(item.candidates)], TIE_TEXT, ALL_BAD_TEXT]
        gold = choice_text(entry["gold"]) if entry["gold"] is not None else None
        return {**view, u.queue_labels: f"Item {picked + 1} ({as_text(item.item_id)}) is open above. Labels: "
                + ", ".join(f"**{as_text(a)}**: {choice_text(c)}" for a, c in entry["labels"].items()),
                u.gold_choice: gr.update(choices=choices, value=gold)}  # fmt: skip

    @friendly
    async def gold_set(st, picked, key_text, name, code, gold, note, request: gr.Request = None,
                       profile: gr.OAuthProfile | None = None):  # fmt: skip
        who, file_id = await reviewing(st, key_text, name, code, request, profile)
        if not isinstance(picked, int):
            raise gr.Error("Pick a queued item first, then its gold label.")
        if not isinstance(gold, str) or not gold:
            raise gr.Error("Pick the gold label (A, B, ..., Tie or All bad), then press 'Set gold label'.")
        item = await db(store.item, who.project, file_id, picked)
        choice, _ = checked_label(len(item.candidates), gold, "", note)
        await db(store.set_gold, who, file_id, item, choice, note or "")
        said = f"Gold label set: {choice_text(choice)} for item {as_text(item.item_id)}"
        return await queue_view(who, file_id, said, picked)

    quiet = {"show_progress": "hidden", "api_visibility": "private", "concurrency_id": "labels"}
    u.queue_refresh.click(queued, [u.state, *u.who_inputs], [u.queue, u.queue_labels], **quiet)
    u.queue.input(reviewed, [u.state, u.queue, *u.who_inputs, u.hide],
                  [*u.item_outputs, u.queue_labels, u.gold_choice], **quiet)  # fmt: skip
    u.gold_save.click(gold_set, [u.state, u.queue, *u.who_inputs, u.gold_choice, u.gold_note],
                      [u.queue, u.queue_labels], **quiet)  # fmt: skip


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


def _wire_settings(store: LabelStore, u: SimpleNamespace) -> None:
    """The owner's settings: shown once a file is open, saved by the owner, reviewers named by the owner."""

    async def shown(who: Annotator, said: str = "") -> dict:
        settings = await db(store.settings, who.project)
        return {**settings_view(u, who, settings, await db(store.reviewers, who.project), said),
                **project_view(u, settings)}  # fmt: skip

    @friendly
    async def settings_shown(key_text, name, code, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        return await shown(await sign_in(store, key_text, name, code, request, profile))

    @friendly
    async def settings_saved(key_text, name, code, overlap, scores, guidelines, request: gr.Request = None,
                             profile: gr.OAuthProfile | None = None):  # fmt: skip
        who = await sign_in(store, key_text, name, code, request, profile)
        if overlap is None:
            raise gr.Error(f"Enter how many annotators should label each item (1 to {MAX_OVERLAP}).")
        await db(store.update_settings, who, overlap=overlap, scores=scores, guidelines=guidelines or "")
        return await shown(who, "Settings saved: they apply from each member's next item")

    def named(grant: bool):
        @friendly
        async def changed(key_text, name, code, member, request: gr.Request = None,
                          profile: gr.OAuthProfile | None = None):  # fmt: skip
            who = await sign_in(store, key_text, name, code, request, profile)
            await db(store.set_reviewer, who, member, grant)
            return await shown(who, f"{as_text(member.strip())} is {'now' if grant else 'no longer'} a reviewer")

        changed.__name__ = changed.__qualname__ = "reviewer_added" if grant else "reviewer_removed"
        return changed

    u.settings_shown = settings_shown
    outputs = u.all_settings_outputs = [*u.settings_outputs, u.guidelines, u.guidelines_column, u.hide]
    quiet = {"show_progress": "hidden", "api_visibility": "private", "concurrency_id": "labels"}
    u.settings_save.click(settings_saved, [*u.who_inputs, u.overlap, u.scores, u.guidelines_text], outputs, **quiet)
    u.reviewer_add.click(named(True), [*u.who_inputs, u.reviewer_name], outputs, **quiet)
    u.reviewer_remove.click(named(False), [*u.who_inputs, u.reviewer_name], outputs, **quiet)


def _wire_agreement(store: LabelStore, u: SimpleNamespace) -> None:
    """Agreement of the project's (or the open file's) labels with the model, and the downloads."""

    @friendly
    async def computed(st, key_text):
        project = await db(store.project, key_text)
        file_id = opened_item(st)[0] if opened_item(st) else None
        frame = await db(store.frame, project, file_id)
        if frame.empty:
            raise gr.Error("No labels yet in this project." if not file_id else "No labels yet for this file.")
        gold, export = None, None
        if file_id:  # one file: the reviewers' gold labels, else its own (a preference file's sides), and its pairs
            reviewed = await db(store.gold, project, file_id)
            gold = {**file_labels(await db(store.items, project, file_id)), **reviewed} or None
            try:  # what people decided (a reviewer's gold label, else the annotators'), as TRL preference pairs
                folder = scratch_folder("armorm-preferences-")
                export = await db(export_labels, store, project, file_id, folder, reviewed)
            except InputError as e:
                export = str(e)
        # the figures, the bootstrap and the files: off the event loop
        return await asyncio.to_thread(agreement_view, u, frame, gold, export)

    outputs = [u.agreement_text, u.agreement_table, u.agreement_plot, u.pairs_plot, u.labels_csv, u.agreement_json,
               u.preference_zip]  # fmt: skip
    # the page's own call: named, so a project's members can script it, but not offered as API or MCP tool
    u.refresh.click(
        computed,
        [u.state, u.key],
        outputs,
        api_name="annotate_agreement",
        show_progress="hidden",
        api_visibility="undocumented",
    )


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
