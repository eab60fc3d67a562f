"""The Compare tab: a conversation and candidates on the left, the verdict and its explanation on the right.

Built inside build_demo's Blocks by `build_compare_tab`: layout in three parts (form, results, panels), then the
wiring. The visitor's last analysis lives in gr.State; handlers call the pure functions of views.py.
"""

from __future__ import annotations

import asyncio
import copy
import math
from itertools import groupby
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np

from .. import explain, figures, share, tables
from ..attribution import attribute
from ..errors import ArmoRMError, InputError
from ..objectives import LABELS, OBJECTIVES
from ..probes import PROBES
from ..probing import probe_answer
from ..results import ScoreResult
from ..token_attribution import METHODS, explain_tokens, parse_target
from ..validation import duplicates
from .handlers import as_text, cancellable, friendly
from .views import (
    analyse,
    asset,
    candidates_from_form,
    conversation_from_form,
    edit_choices,
    edit_html,
    export_files,
    load_examples,
    pair,
    pair_heading,
    probe_record,
    probe_summary,
    token_html,
    token_summary,
    views,
)

STALE_JS = """() => { const r = document.getElementById('results');
  if (r && r.dataset.scored) for (const x of [r, document.getElementById('summary')]) x?.classList.add('stale'); }"""
VERDICT_JS = "() => document.getElementById('summary')?.scrollIntoView({block: 'start'})"
"""Brings the verdict to the top of the screen (after a pair opened from another tab is scored)."""
FRESH_JS = """(message) => { const r = document.getElementById('results'), v = document.getElementById('summary');
  if (r && !message?.startsWith('**Not scored')) { for (const x of [r, v]) x?.classList.remove('stale');
    r.dataset.scored = '1'; r.dataset.runs = String(Number(r.dataset.runs || 0) + 1); } }"""
"""Results answer the form again: unmarked, and counted (`data-runs`: what a test waits on after pressing Score)."""
SHARE_JS = "() => new URLSearchParams(location.hash.slice(1)).get('share') || ''"
LINK_JS = """(token) => { const u = new URL(location.href);
  u.searchParams.delete('__sign');  // a Space's per-visitor signature is not part of a link
  u.hash = 'share=' + token; history.replaceState(null, '', u);
  navigator.clipboard?.writeText(u.href).catch(() => {}); return u.href; }"""
STOPPED = (
    "**Stopped.** Nothing new was scored; the results shown (if any) are from the last completed scoring. "
    "Press Score candidates to try again."
)
TOKEN_TARGETS = [
    ("score", "score"),
    *[(f"{o.label} reward", f"reward:{o.name}") for o in OBJECTIVES],
    *[(f"{o.label} coefficient (the conversation's words)", f"coefficient:{o.name}") for o in OBJECTIVES],
]
"""What a token attribution can explain: the score, each objective's reward, each objective's coefficient."""
REDRAWN = ("pairwise", "what_if", "what_if_table")
"""The views a pair pick or a what-if weight changes (the other eleven stay as scored)."""


# ------------------------------------------------------------------------------------------------ layout


def _form(letters: list[str], examples: list[dict]) -> SimpleNamespace:
    f = SimpleNamespace()
    f.example = gr.Dropdown([e["name"] for e in examples], label="Start from an example", value=None,
                            elem_id="example-pick")  # fmt: skip
    with gr.Accordion("Earlier turns, system message", open=False, elem_id="context") as f.context:
        f.system = gr.Textbox(label="System message", lines=2, max_lines=8, elem_id="system")
        f.turns = gr.Dataframe(
            headers=["role", "content"],
            datatype=["str", "str"],
            type="array",
            row_count=1,
            column_count=2,
            interactive=True,
            label="Earlier turns, oldest first (role: user or assistant)",
            wrap=True,
            column_widths=["30%", "70%"],
            max_chars=None,
            elem_id="turns",
        )
        gr.Markdown("A whole conversation pasted into the prompt box (a JSON list of messages, or lines starting "
                    "*User:* and *Assistant:*) is split into these turns.", elem_classes="hint")  # fmt: skip
    f.origin = gr.Markdown("", elem_id="form-origin")
    f.prompt = gr.Textbox(label="Prompt (last user turn)", lines=2, max_lines=8, elem_id="prompt")
    f.boxes = [
        gr.Textbox(label=f"Candidate {x}", lines=2, max_lines=8, visible=i < 3, elem_id=f"candidate-{x}",
                   elem_classes="candidate-box")
        for i, x in enumerate(letters)
    ]  # fmt: skip
    with gr.Row():
        f.add = gr.Button("+ Add candidate", size="sm", elem_id="add-candidate")
        f.remove = gr.Button("− Remove last", size="sm", elem_id="remove-candidate")
    with gr.Row(elem_id="score-row"):  # stays at the bottom of the screen while the form is longer than it
        f.run = gr.Button("Score candidates", variant="primary", elem_id="score-button", scale=3, min_width=150)
        f.stop = gr.Button("Stop", elem_id="stop-button", scale=1, min_width=70)
    f.message = gr.Markdown("", elem_id="form-message")
    f.count = gr.State(min(3, len(letters)))
    return f


def _results(letters: list[str]) -> SimpleNamespace:
    r = SimpleNamespace()
    v = r.views = {}
    with gr.Column(visible=False, elem_id="results-body") as r.body:  # shown once scored: no empty frames
        with gr.Row(elem_id="result-actions"):
            r.share = gr.Button("Copy a link to this comparison", size="sm", elem_id="share-button")
            r.csv_file = gr.DownloadButton("Download CSV", value=None, interactive=False, size="sm")
            r.json_file = gr.DownloadButton("Download JSON", value=None, interactive=False, size="sm")
        r.share_token = gr.Textbox(visible="hidden", elem_id="share-token")
        r.share_link = gr.Textbox(label="Link to this comparison (it holds the texts; whoever opens it sees them)",
                                  visible=False, buttons=["copy"], interactive=False, elem_id="share-link")  # fmt: skip
        with gr.Row():
            v["ranking"] = table("Ranking", "ranking", [36, 36, 28])
            v["scores"] = gr.Plot(label="Scores", elem_id="plot-scores")
        with gr.Row():
            v["contributions"] = gr.Plot(label="Contributions", elem_id="plot-contributions")
            v["heatmap"] = gr.Plot(label="Objective rewards", elem_id="plot-heatmap")
        v["helpsteer"] = gr.Plot(label="HelpSteer scale", elem_id="plot-helpsteer")
        v["helpsteer_table"] = table("HelpSteer scale 0-4 (↓ below, ↑ above the scale)", "helpsteer-table")
        with gr.Row():
            with gr.Column(min_width=240):
                r.pair_title = gr.Markdown("### Why A over B?", elem_id="pair-title")
                r.pick_a = gr.Dropdown(letters[:3], value="A", label="Candidate", elem_id="pick-a")
                r.pick_b = gr.Dropdown(letters[1:3], value="B", label="compared with", elem_id="pick-b")
            v["pairwise"] = gr.Plot(label="Score difference by objective", elem_id="plot-pairwise")
        with gr.Accordion("Which parts drive a score", open=False):
            with gr.Row():
                r.seg_pick = gr.Dropdown(letters[:3], value="A", label="Candidate", elem_id="seg-pick")
                r.seg_what = gr.Dropdown(["score", *LABELS], value="score", label="Effect on", elem_id="seg-what")
                r.seg_run = gr.Button("Find out (scores every leave-one-out variant)", elem_id="seg-run")
            r.seg_html = gr.HTML(elem_id="seg-html")
            with gr.Row():
                r.seg_plot = gr.Plot(label="Largest effects", elem_id="plot-segments")
                r.length_plot = gr.Plot(label="Length probe", elem_id="plot-length")
            r.seg_state = gr.State(None)
        with gr.Accordion("Which words drive a score, an objective, or the gate (gradients)", open=False):
            with gr.Row():
                r.tok_pick = gr.Dropdown(letters[:3], value="A", label="Candidate", elem_id="tok-pick")
                r.tok_target = gr.Dropdown(TOKEN_TARGETS, value="score", label="Explain", elem_id="tok-target")
                r.tok_method = gr.Radio([(v, k) for k, v in METHODS.items()], value="integrated_gradients",
                                        label="Method", elem_id="tok-method")  # fmt: skip
                r.tok_run = gr.Button("Find the words", elem_id="tok-run")
            r.tok_summary = gr.Markdown(elem_id="tok-summary")
            r.tok_html = gr.HTML(elem_id="tok-html")
            r.tok_plot = gr.Plot(label="Gradients against leave-one-out", elem_id="plot-tok-agreement", visible=False)
        with gr.Accordion("Does style move it? Probe an answer", open=False, elem_id="compare-probe"):
            sides = [p.side for p in PROBES]
            gr.Markdown(f"{len(PROBES)} fixed edits of form, not content: {sides.count('answer')} of the answer (bold, "
                        "bullets, emojis, an upbeat opener, an apology, its length) and "
                        f"{sides.count('conversation')} of the conversation, each scored and its change split by "
                        "objective.", elem_classes="probe-intro")  # fmt: skip
            with gr.Row():
                r.probe_pick = gr.Dropdown(letters[:3], value="A", label="Candidate", elem_id="compare-probe-pick")
                r.probe_run = gr.Button("Probe this answer", elem_id="compare-probe-run")
            r.probe_plot = gr.Plot(label="Score change per edit", elem_id="plot-compare-probes")
            r.probe_summary = gr.HTML(elem_id="compare-probe-summary")
            r.probe_edit = gr.Dropdown([], label="See an edit", elem_id="compare-probe-edit")
            r.probe_diff = gr.HTML(elem_id="compare-probe-diff")
            r.probe_state = gr.State(None)
        with gr.Accordion("What-if weights: multiply each objective's coefficient", open=True):
            with gr.Row():
                v["what_if"] = gr.Plot(label="Re-ranking", elem_id="plot-what-if")
                v["what_if_table"] = table("Model rank vs. your rank", "what-if-table", [36, 30, 34])
            with gr.Row(equal_height=True):
                r.only = gr.Dropdown(LABELS, value=None, label="Rank by one objective alone", elem_id="only-objective",
                                     scale=2)  # fmt: skip
                r.reset = gr.Button("Reset weights to the model's", size="sm", elem_id="reset-weights", scale=1)
            r.weights_note = gr.Markdown("", elem_id="weights-note")
            r.sliders = _weight_sliders()
        with gr.Accordion("Model internals: gating and coefficients, raw rewards, transform matrix", open=True,
                          elem_id="internals"):  # fmt: skip
            with gr.Row():
                v["gating"] = gr.Plot(label="Gating and coefficients", elem_id="plot-gating")
                v["bars"] = gr.Plot(label="Rewards by candidate", elem_id="plot-bars")
            v["top"] = table(
                "Top objectives: coefficients, then contributions per candidate", "top-table", [36, 40, 24]
            )
            v["transform"] = gr.Plot(label="Transform matrix", elem_id="plot-transform")
    gr.Markdown(asset("about.md"))
    return r


def table(label: str, elem_id: str, widths: list[int] | None = None) -> gr.Dataframe:
    """A results table: read-only; its columns share the width in these percentages and their cells wrap, so
    that every column fits the page, phones included (no column hidden behind a scroll bar)."""
    column_widths = [f"{w}%" for w in widths] if widths else None
    return gr.Dataframe(label=label, elem_id=elem_id, interactive=False, wrap=True, column_widths=column_widths)


def _weight_sliders() -> list[gr.Slider]:
    """One slider per objective, in the objectives' order, grouped by the data set each was trained on."""
    sliders = []
    for group, members in groupby(OBJECTIVES, key=lambda o: o.group):
        members = list(members)
        sources = ", ".join(dict.fromkeys(o.source for o in members))
        with gr.Group(elem_classes="weight-group"):
            gr.Markdown(f"**{group}** · {sources}", elem_classes="weight-group-title")
            with gr.Row():
                sliders += [gr.Slider(0, 3, value=1, step=0.1, label=o.label, min_width=150,
                                      elem_id=f"weight-{o.name}") for o in members]  # fmt: skip
    return sliders


def form_values(f: SimpleNamespace, system: str, turns: list[dict], prompt: str, candidates: list[str],
                origin: str = "", roles: list[str] | None = None) -> dict:  # fmt: skip
    """Updates that put a conversation and its candidates in the form (earlier turns shown when there are any).
    `origin` says where they come from (e.g. a pair of an evaluated file), `roles` marks boxes ("chosen")."""
    n_boxes = len(f.boxes)
    texts = candidates[:n_boxes] + [""] * (n_boxes - len(candidates[:n_boxes]))
    n = max(2, min(len(candidates), n_boxes))
    roles = list(roles or [])[:n_boxes]
    roles += [""] * (n_boxes - len(roles))
    letters = explain.candidate_labels(n_boxes)
    return {
        f.system: system, f.prompt: prompt, f.count: n, f.origin: origin,
        f.turns: [[t["role"], t["content"]] for t in turns] or [["", ""]],
        f.context: gr.update(open=bool(turns or system)),
        **{box: gr.update(value=v, visible=i < n, label=f"Candidate {x}" + (f" · {role}" if role else ""))
           for i, (box, v, x, role) in enumerate(zip(f.boxes, texts, letters, roles))},
    }  # fmt: skip


# ------------------------------------------------------------------------------------------------ the tab


def build_compare_tab(scorer, config) -> SimpleNamespace:
    """Build the tab; returns its handle for other tabs: `fill(messages, candidates, tabs)` puts a conversation and
    its candidates in the form (and shows this tab), `score_after(event)` scores the form when the event is done,
    `on_load(demo)` fills the page when it opens (a share link's comparison, or the model card's example)."""
    letters = explain.candidate_labels(config.ui_candidates)
    examples = load_examples()
    analysis = gr.State(None)
    # the verdict spans the page above form and charts: on a phone it is on the first screen, not below the form
    summary = gr.Markdown(asset("how_to.md"), elem_id="summary", elem_classes="winner-line")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            form = _form(letters, examples)
        with gr.Column(scale=5, min_width=320, elem_id="results"):
            res = _results(letters)
    res.views = {"summary": summary, **res.views}
    score_after, on_load, scoring = _wire_form(scorer, form, res, analysis, examples, letters)
    _wire_share(res, analysis)
    model_work = [scoring, *_wire_attribution(scorer, res, analysis), _wire_probes(scorer, res, analysis)]
    # Stop ends whatever model work this tab is doing, and says so
    form.stop.click(lambda: STOPPED, None, form.message, cancels=model_work, api_visibility="private",
                    concurrency_limit=None)  # fmt: skip

    redraw_after = _wire_redraw(res, analysis)

    def fill(messages: list[dict], candidates: list[str], tabs: gr.Tabs, origin: str = "",
             roles: list[str] | None = None) -> dict:  # fmt: skip
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
        turns = messages[1 if system else 0 : -1]
        return {tabs: gr.Tabs(selected="compare"), **form_values(form, system, turns, messages[-1]["content"],
                                                                 candidates, origin, roles)}  # fmt: skip

    def fill_outputs(tabs: gr.Tabs) -> list:
        return [tabs, form.system, form.prompt, form.turns, form.count, form.context, form.origin, *form.boxes]

    return SimpleNamespace(fill=fill, fill_outputs=fill_outputs, score_after=score_after, sliders=res.sliders,
                           redraw_after=redraw_after, on_load=on_load)  # fmt: skip


def _wire_form(scorer, f, r, analysis, examples: list[dict], letters: list[str]):
    n_boxes = len(f.boxes)
    count = f.count
    form_fields = [f.example, f.system, f.turns, f.prompt, count, f.context, f.origin, *f.boxes]

    def shown(n: int) -> dict:
        return {count: n, **{box: gr.update(visible=i < n) for i, box in enumerate(f.boxes)}}

    def example_values(ex: dict) -> dict:
        origin = (
            f"**Example:** {as_text(ex['name'])}. Edit anything, or write your own, then press **Score candidates**."
        )
        return {f.example: ex["name"], **form_values(f, ex["system"], ex["turns"], ex["prompt"], ex["candidates"],
                                                     origin)}  # fmt: skip

    def load_example(name):
        ex = next((e for e in examples if e["name"] == name), None)
        return example_values(ex) if ex else {f.example: gr.skip()}

    f.example.input(load_example, f.example, form_fields, api_visibility="private")
    # "multiple": every quick click counts (the count lives on the server, read by each click in turn)
    f.add.click(lambda n: shown(min(n + 1, n_boxes)), count, [count, *f.boxes], api_visibility="private",
                trigger_mode="multiple")  # fmt: skip
    f.remove.click(lambda n: shown(max(n - 1, 2)), count, [count, *f.boxes], api_visibility="private",
                   trigger_mode="multiple")  # fmt: skip

    def results(state: dict, weights, lead: str = "", files: tuple[str, str] | None = None) -> dict:
        """Every view of a scored analysis, and what goes with it (pair pickers, downloads), shown; `lead` comes
        before the verdict (where the comparison comes from); `files`: its downloads, when already written."""
        labels = state["labels"]
        a, b = pair(state, None, None)  # the winner and the runner-up
        csv_path, json_path = files or export_files(state)
        shown = views(state, weights, a, b)
        shown["summary"] = lead + shown["summary"]
        return {
            analysis: state,
            r.body: gr.update(visible=True),
            r.share_link: gr.update(visible=False, value=""),
            **{r.views[k]: v for k, v in shown.items()},
            r.pair_title: pair_heading(labels, a, b),
            r.pick_a: gr.update(choices=labels, value=labels[a]),
            r.pick_b: gr.update(choices=[x for x in labels if x != labels[a]], value=labels[b]),
            r.seg_pick: gr.update(choices=labels, value=labels[a]),  # attribution starts with the winner
            r.tok_pick: gr.update(choices=labels, value=labels[a]),
            r.probe_pick: gr.update(choices=labels, value=labels[a]),
            r.csv_file: gr.update(value=csv_path, interactive=True),
            r.json_file: gr.update(value=json_path, interactive=True),
        }

    async def score_form(system, turns, prompt, n, *rest):
        """A refusal is one message beside the form; the results on screen stay (marked stale if edited)."""
        try:
            return await scored(system, turns, prompt, n, list(rest[:n_boxes]), rest[n_boxes:])
        except ArmoRMError as e:
            return {f.message: f"**Not scored:** {as_text(e)}"}

    async def scored(system, turns, prompt, n, texts, weights):
        if len(texts) != n_boxes or len(weights) != len(OBJECTIVES):
            raise InputError(f"Expected {n_boxes} candidate boxes and {len(OBJECTIVES)} weights.")
        weights, clamped = clamp_weights(weights)
        pasted = share.pasted_conversation(prompt)
        if pasted and not (system or "").strip() and not has_turns(turns):
            messages, how = pasted
            system, turns, prompt = share.split_conversation(messages)
            turns = [[t["role"], t["content"]] for t in turns]
            filled = form_values(f, system, [{"role": x, "content": y} for x, y in turns], prompt,
                                 candidates_from_form(n, texts))  # fmt: skip
            note = f"Your prompt was read as {as_text(how)}: its earlier turns are now under *Earlier turns*."
        else:
            filled, note = {}, ""
        messages = conversation_from_form(system, turns, prompt)
        responses = candidates_from_form(n, texts)
        for a, b in duplicates(responses):
            gr.Warning(f"Candidates {letters[a]} and {letters[b]} are identical: they get the same score.")
        state = await cancellable(analyse, scorer, messages, responses)
        return {**filled, **results(state, weights), f.message: note,
                **{s: w for s, w in zip(r.sliders, weights) if clamped}}  # fmt: skip

    score_inputs = [f.system, f.turns, f.prompt, count, *f.boxes, *r.sliders]
    score_outputs = [analysis, f.message, r.body, r.share_link, *r.views.values(), r.pair_title, r.pick_a, r.pick_b,
                     r.seg_pick, r.tok_pick, r.probe_pick, r.csv_file, r.json_file, *form_fields,
                     *r.sliders]  # fmt: skip

    def marked_fresh(scoring):
        # results on screen answer the inputs they were scored from: any edit marks them stale until scored again
        scoring.success(None, [f.message], None, js=FRESH_JS)
        return scoring

    # preprocess=False: the form's raw values, so that a what-if box typed out of range is clamped with a word
    # rather than refused by Gradio before any handler runs (the turns table arrives as {"headers", "data"})
    def score_after(event, scroll: bool = False):
        """Score the form when `event` is done (another tab filled the form); `scroll`: then bring the verdict into
        view."""
        scoring = marked_fresh(event.then(score_form, score_inputs, score_outputs, api_visibility="private",
                                          concurrency_id="model", preprocess=False))  # fmt: skip
        if scroll:
            scoring.success(None, None, None, js=VERDICT_JS)
        return scoring

    # the page's own form is not an API endpoint: programs use /score
    scoring = marked_fresh(f.run.click(score_form, score_inputs, score_outputs, api_visibility="private",
                                       concurrency_id="model", preprocess=False))  # fmt: skip
    edits = [f.system.change, f.turns.change, f.prompt.change, *[b.change for b in f.boxes], f.add.click,
             f.remove.click]  # fmt: skip
    gr.on(edits, None, f.message, f.message, js=STALE_JS)

    first = {}  # the model card's example, scored once for every visitor's first screen
    first_lock = asyncio.Lock()

    async def example_state() -> tuple[dict, tuple[str, str]]:
        """The example's analysis and its downloads: scored once, written again only when the hourly clean-up of
        the scratch folder has removed them (a page view writes nothing)."""
        async with first_lock:
            if "state" not in first:
                ex = examples[0]
                messages = conversation_from_form(ex["system"], [[t["role"], t["content"]] for t in ex["turns"]],
                                                  ex["prompt"])  # fmt: skip
                first["state"] = await cancellable(analyse, scorer, messages, ex["candidates"])
            if not all(Path(f).exists() for f in first.get("files", ["-"])):
                first["files"] = export_files(first["state"])
        return copy.deepcopy(first["state"]), first["files"]

    async def opened(token):
        """The page's first screen: a share link's comparison scored again, or the model card's example."""
        note = ""
        if token:
            try:
                shared = share.decode(token)
                if len(shared["candidates"]) > n_boxes:
                    raise InputError(f"It has {len(shared['candidates'])} candidates; this page holds {n_boxes}.")
                system, turns, prompt = share.split_conversation(shared["messages"])
                state = await cancellable(analyse, scorer, shared["messages"], shared["candidates"])
                origin = "**Shared comparison**, scored again when the page opened (the link holds its texts)."
                return {f.example: None, **form_values(f, system, turns, prompt, shared["candidates"], origin),
                        **results(state, shared["weights"], "*Shared comparison:* "), f.message: "",
                        **dict(zip(r.sliders, shared["weights"]))}  # fmt: skip
            except ArmoRMError as e:
                note = f"**This share link could not be opened:** {as_text(e)} The model card's example is shown."
        state, files = await example_state()
        lead = "*An example (the model card's), scored when the page opened:* "
        return {**example_values(examples[0]), **results(state, None, lead, files), f.message: note}

    def on_load(demo: gr.Blocks) -> None:
        # the part of the address after "#" never reaches the server: the page reads it and hands it over
        load = demo.load(opened, r.share_token, score_outputs, js=SHARE_JS, api_visibility="private",
                         concurrency_limit=None, show_progress="minimal")  # fmt: skip
        marked_fresh(load)

    return score_after, on_load, scoring


def has_turns(turns) -> bool:
    """Whether the earlier-turns table (as the form sends it) has any text."""
    rows = turns.get("data") if isinstance(turns, dict) else turns
    return any(str(cell or "").strip() for row in rows or [] for cell in (row if isinstance(row, list) else [row]))


def clamp_weights(weights) -> tuple[list[float], bool]:
    """The what-if boxes' raw values within the sliders' range (an empty box is 1, the model's own weight), and
    whether any was moved."""
    low, high = share.WEIGHT_RANGE
    out, moved = [], False
    for w in weights:
        try:
            x = 1.0 if w is None or w == "" else float(w)
        except (TypeError, ValueError):
            x, moved = 1.0, True
        if not math.isfinite(x):
            x, moved = 1.0, True
        if not low <= x <= high:
            x, moved = min(max(x, low), high), True
        out.append(x)
    return out, moved


def _wire_share(r, analysis) -> None:
    """ "Copy a link": the scored comparison (not the form, which may have been edited since) and its what-if
    weights packed into the address; the page then shows the link and copies it."""

    @friendly
    def token(state, *weights):
        if not state:
            raise InputError("Score the candidates first.")
        made = share.encode(state["messages"], state["responses"], clamp_weights(weights)[0])
        if len(made) > share.MAX_TOKEN_CHARS:
            raise InputError(f"This comparison is too long to share as a link ({len(made):,} characters); "
                             "download the JSON instead.")  # fmt: skip
        return made, gr.update(visible=True)

    r.share.click(token, [analysis, *r.sliders], [r.share_token, r.share_link], api_visibility="private",
                  concurrency_limit=None, preprocess=False).success(
        None, r.share_token, r.share_link, js=LINK_JS)  # fmt: skip


def _wire_redraw(r, analysis):
    """A pair pick or a what-if weight redraws three views from the cached analysis; never waits for the model.
    Returns `redraw_after(event)`, which redraws them when another tab's `event` has set the weights."""
    outputs = [*(r.views[k] for k in REDRAWN), r.pair_title, r.pick_b, r.weights_note, *r.sliders]

    @friendly
    def redraw(state, a_label, b_label, *raw):
        weights, moved = clamp_weights(raw)
        note = weights_note(raw, weights) if moved else ""
        fixed = {s: w for s, w, x in zip(r.sliders, weights, raw) if moved and w != x}  # the box shows what is used
        if not state:
            return {r.weights_note: note, **fixed}  # nothing scored yet: nothing to redraw
        labels = state["labels"]
        a, b = pair(state, a_label, b_label)
        out = views(state, weights, a, b, only=REDRAWN)
        return {**{r.views[k]: v for k, v in out.items()}, r.pair_title: pair_heading(labels, a, b),
                r.pick_b: gr.update(choices=[x for x in labels if x != labels[a]], value=labels[b]),
                r.weights_note: note, **fixed}  # fmt: skip

    # preprocess=False: a value typed past the slider's range reaches redraw, which clamps it and says so
    inputs = [analysis, r.pick_a, r.pick_b, *r.sliders]
    triggers = [r.pick_a.change, r.pick_b.change, *[s.input for s in r.sliders]]  # drag, arrow keys, typed value
    gr.on(triggers, redraw, inputs, outputs, api_visibility="private", concurrency_limit=None,
          show_progress="hidden", preprocess=False)  # fmt: skip

    def redraw_after(event):
        return event.then(redraw, inputs, outputs, api_visibility="private", concurrency_limit=None,
                          preprocess=False)  # fmt: skip

    redraw_after(r.reset.click(lambda: [None, *[1.0] * len(r.sliders)], None, [r.only, *r.sliders],
                               api_visibility="private"))  # fmt: skip
    alone = r.only.input(lambda label: [1.0 if o.label == label else 0.0 for o in OBJECTIVES], r.only, r.sliders,
                         api_visibility="private")  # fmt: skip
    redraw_after(alone)
    return redraw_after


def weights_note(raw, used) -> str:
    """Beside the what-if boxes: which typed values were moved into the range, to what."""
    low, high = share.WEIGHT_RANGE
    moved = [f"{o.label} {as_text(x)} → {u:g}" for o, x, u in zip(OBJECTIVES, raw, used)
             if x not in (None, "") and not (isinstance(x, (int, float)) and float(x) == u)]  # fmt: skip
    return f"**Weights go from {low:g} to {high:g}** (1 is the model's own): " + "; ".join(moved) + "."


def _wire_attribution(scorer, r, analysis) -> tuple:
    @friendly
    async def segmented(state, letter, what):
        if not state:
            raise gr.Error("Score the candidates first.")
        k = state["labels"].index(letter) if letter in state["labels"] else 0
        found = await cancellable(attribute, scorer, state["messages"], state["responses"][k])
        found = found.to_dict()
        return {r.seg_state: found, **segment_views(found, what)}

    def segment_views(found, what) -> dict:
        if not found:
            return {r.seg_html: gr.skip()}  # no attribution yet
        i = LABELS.index(what) if what in LABELS else None
        effects = np.array(found["effects"] if i is None else [x[i] for x in found["reward_effects"]], dtype=float)
        name = "score" if i is None else f"{what} reward"
        merged = ""
        if found.get("found_segments", 0) > len(found["segments"]):  # said, not silently merged
            merged = (f'<p class="seg-merged">This answer has {found["found_segments"]} parts (sentences, list items, '
                      f'lines of code); to keep it to {len(found["segments"])} scorings, neighbouring parts are left '
                      "out together, in runs: each number below is a run.</p>")  # fmt: skip
        return {
            r.seg_html: merged + tables.shaded_html(found["segments"], effects, name),
            r.seg_plot: figures.segment_effects(found["segments"], effects, name),
            r.length_plot: figures.length_probe(np.array(found["trimmed_scores"], dtype=float),
                                                np.array(found["trimmed_tokens"])),
        }  # fmt: skip

    segmenting = r.seg_run.click(segmented, [analysis, r.seg_pick, r.seg_what], [r.seg_state, r.seg_html,
                                 r.seg_plot, r.length_plot], api_visibility="private",
                                 concurrency_id="model")  # fmt: skip
    r.seg_what.change(segment_views, [r.seg_state, r.seg_what], [r.seg_html, r.seg_plot, r.length_plot],
                      api_visibility="private", concurrency_limit=None)  # fmt: skip

    @friendly
    async def tokens(state, letter, target, method):
        if not state:
            raise gr.Error("Score the candidates first.")
        k = state["labels"].index(letter) if letter in state["labels"] else 0
        kind, _, objective = (target or "score").partition(":")
        response = state["responses"][k]
        found = await cancellable(explain_tokens, scorer, state["messages"], response,
                                  parse_target(kind, objective or None), method)  # fmt: skip
        found = found.to_dict()
        shown = any(s.get("leave_one_out") is not None for s in found["segments"])
        return {
            r.tok_summary: token_summary(found, state["labels"][k]),
            r.tok_html: token_html(found, state["messages"], response),
            r.tok_plot: gr.update(
                value=figures.token_agreement(found["segments"], found["target"]) if shown else None, visible=shown
            ),  # fmt: skip
        }

    finding = r.tok_run.click(tokens, [analysis, r.tok_pick, r.tok_target, r.tok_method],
                              [r.tok_summary, r.tok_html, r.tok_plot], api_visibility="private",
                              concurrency_id="model")  # fmt: skip
    return segmenting, finding


def _wire_probes(scorer, r, analysis):
    """Probe: every edit of probes.py on one candidate, scored in one probe_answer call; the edit viewer redraws
    from the stored record, never waiting for the model."""

    @friendly
    async def probed(state, letter):
        if not state:
            raise gr.Error("Score the candidates first.")
        k = state["labels"].index(letter) if letter in state["labels"] else 0
        found = await cancellable(probe_answer, scorer, state["messages"], state["responses"], k,
                                  base=ScoreResult.from_dict(state["result"]))  # fmt: skip
        record = probe_record(found, state["messages"], state["responses"][k])
        choices = edit_choices(record)
        first = choices[0][1] if choices else None
        return {
            r.probe_state: record,
            r.probe_plot: figures.probe_effects(found.outcomes, state["labels"][k]),
            r.probe_summary: probe_summary(found.outcomes, state["labels"][k]),
            r.probe_edit: gr.update(choices=choices, value=first),
            r.probe_diff: edit_html(record, first),
        }

    probing = r.probe_run.click(probed, [analysis, r.probe_pick], [r.probe_state, r.probe_plot, r.probe_summary,
                                r.probe_edit, r.probe_diff], api_visibility="private",
                                concurrency_id="model")  # fmt: skip
    r.probe_edit.input(edit_html, [r.probe_state, r.probe_edit], r.probe_diff, api_visibility="private",
                       concurrency_limit=None, show_progress="hidden")  # fmt: skip
    return probing
