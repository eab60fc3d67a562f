"""The annotation tab: step through a file's items, record a choice (and optionally a full ranking and a note) per
item into the label database at once, and see agreement with the model. Built inside build_demo's Blocks.

Files and labels belong to a project, opened with the key the server made for it ('New project'); inside it an
annotator's name is claimed with a passcode (label_store.py). Every action signs in again from the fields on the page,
with the caller's address for the count of wrong passcodes, so nothing about who is labelling is kept on the server
between requests. Text that came from a user (names, item ids, file names) is shown as text.
"""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import gradio as gr

from .. import explain
from ..errors import InputError
from ..label_store import LabelStore
from .annotate_db import client_address, db, item_view, oauth_available, open_file, sign_in
from .annotate_views import as_typed, checked_label, choice_text, opened_item
from .handlers import as_text, cancellable, friendly, upload
from .review import review_layout, settings_layout, wire_agreement, wire_review, wire_settings

MAX_SHOWN = 16
"""Candidate boxes in the tab: a file with more candidates per item is refused when it is opened."""

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


NO_FILE_OPEN = (
    "Open a file first, or choose one under 'or continue a file of this project': no file is open in this page. If "
    "you were labelling, the server has forgotten this page's place (it keeps only so many pages at once): your "
    "saved labels are kept, and choosing the file again continues where you stopped."
)
"""An action on the open item when the session holds none: never opened, or the session was evicted (sessions.py)."""


def build_annotate_tab(scorer, store: LabelStore, config) -> None:
    u = _layout(explain.candidate_labels(MAX_SHOWN))
    wire_settings(store, u)  # first: opening a file then shows the project's settings
    _wire_labelling(scorer, store, config, u)
    wire_review(scorer, store, u)
    wire_agreement(store, u)
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
    review_layout(u)
    settings_layout(u)
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
