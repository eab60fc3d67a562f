"""The Annotate tab's review queue (items annotators disagree on, and their gold labels), the owner's project settings,
and the agreement of the labels with the model, with their downloads."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import gradio as gr

from ..errors import InputError
from ..label_export import export_labels
from ..label_store import MAX_GUIDELINES_CHARS, MAX_OVERLAP, Annotator, LabelStore
from ..preference_items import file_labels
from ..scratch import scratch_folder
from .annotate_db import db, item_view, reviewer, sign_in
from .annotate_views import (
    ALL_BAD_TEXT,
    TIE_TEXT,
    agreement_view,
    checked_label,
    choice_text,
    opened_item,
    project_view,
    queue_text,
    settings_view,
)
from .handlers import as_text, friendly

SCORES_CHOICES = [
    ("Each member chooses (their 'Blind' box)", "member"),
    ("Hidden until the item is labelled, for everyone", "blind"),
    ("Shown from the start, for everyone (reviewing the model)", "shown"),
]
"""The project's setting for the model's scores before an item is labelled (label_store.SCORE_MODES)."""


def review_layout(u: SimpleNamespace) -> None:
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


def settings_layout(u: SimpleNamespace) -> None:
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


def wire_review(scorer, store: LabelStore, u: SimpleNamespace) -> None:
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


def wire_settings(store: LabelStore, u: SimpleNamespace) -> None:
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


def wire_agreement(store: LabelStore, u: SimpleNamespace) -> None:
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
