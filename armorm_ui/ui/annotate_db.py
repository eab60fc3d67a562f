"""The label database and who is asking, as the Annotate tab's handlers reach them: every database call off the event
loop with a deadline, a sign-in per request (a passcode, or a Hugging Face account on a Space), the reviewers' check,
and one item of a file read into what the tab shows."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import html
import importlib.util
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from .. import explain, tables
from ..batch import file_digest
from ..label_store import LOCK_WAIT_S, Annotator, DatabaseUnavailable, LabelStore
from ..preference_items import read_annotation_items
from .annotate_views import (
    ALL_BAD_TEXT,
    TIE_TEXT,
    choice_text,
    conversation_text,
    item_list,
    progress_html,
    project_view,
)
from .handlers import as_text, cancellable

OAUTH_MODULES = ("authlib", "itsdangerous")
"""What Gradio's OAuth needs beyond Gradio itself (its `oauth` extra)."""


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


def client_address(request: gr.Request | None) -> str | None:
    """The caller's address, which wrong passcodes are counted against as well as the name (None outside a request)."""
    client = getattr(request, "client", None)
    return getattr(client, "host", None)


def sign_in(store: LabelStore, key_text, name, code, request: gr.Request | None, profile=None):
    """The annotator of a request (a coroutine): the Hugging Face account the server signed in, where there is one
    (named 'hf:<username>', no passcode), else the name proven by its passcode."""
    username = getattr(profile, "username", None)
    if username:
        return db(store.sign_in_account, key_text, username)
    return db(store.sign_in, key_text, name, code, client_address(request))


async def reviewer(store: LabelStore, who: Annotator) -> None:
    """Refuse anyone but the project's reviewers (the owner and whoever the owner named)."""
    if not await db(store.is_reviewer, who):
        owner = (await db(store.settings, who.project)).owner
        raise gr.Error(f"Only the project's reviewers see the review queue and set gold labels: ask its owner "
                       f"({html.escape(owner or 'nobody yet')}) to make you one in 'Project settings'.")  # fmt: skip


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
