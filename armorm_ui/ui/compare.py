"""The Compare tab: a conversation and candidates on the left, the verdict and its explanation on the right.

Built inside build_demo's Blocks by `build_compare_tab`: layout in three parts (form, results, panels), then the
wiring. The visitor's last analysis lives in gr.State; handlers call the pure functions of views.py.
"""

from __future__ import annotations

from itertools import groupby
from types import SimpleNamespace

import gradio as gr
import numpy as np

from .. import explain, figures, tables
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

STALE_JS = (
    "() => { const r = document.getElementById('results'); if (r && r.dataset.scored) r.classList.add('stale'); }"
)
VERDICT_JS = "() => document.getElementById('summary')?.scrollIntoView({block: 'start'})"
"""Brings the verdict to the top of the screen (after a pair opened from another tab is scored)."""
FRESH_JS = """(message) => { const r = document.getElementById('results');
  if (r && !message) { r.classList.remove('stale'); r.dataset.scored = '1'; } }"""
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
    f.example = gr.Dropdown([e["name"] for e in examples], label="Start from an example", value=None)
    with gr.Accordion("Earlier turns, system message", open=False) as f.context:
        f.system = gr.Textbox(label="System message", lines=2)
        f.turns = gr.Dataframe(
            headers=["role", "content"],
            datatype=["str", "str"],
            type="array",
            row_count=1,
            column_count=2,
            interactive=True,
            label="Earlier turns, oldest first (role: user or assistant)",
            wrap=True,
        )
    f.origin = gr.Markdown("", elem_id="form-origin")
    f.prompt = gr.Textbox(label="Prompt (last user turn)", lines=3, elem_id="prompt")
    f.boxes = [
        gr.Textbox(label=f"Candidate {x}", lines=3, visible=i < 3, elem_id=f"candidate-{x}",
                   elem_classes="candidate-box")
        for i, x in enumerate(letters)
    ]  # fmt: skip
    with gr.Row():
        f.add = gr.Button("+ Add candidate", size="sm")
        f.remove = gr.Button("− Remove last", size="sm")
    with gr.Row():
        f.run = gr.Button("Score candidates", variant="primary", elem_id="score-button", scale=3)
        f.stop = gr.Button("Stop", elem_id="stop-button", scale=1)
    f.message = gr.Markdown("", elem_id="form-message")
    f.count = gr.State(min(3, len(letters)))
    return f


def _results(letters: list[str]) -> SimpleNamespace:
    r = SimpleNamespace()
    v = r.views = {}
    v["summary"] = gr.Markdown(asset("how_to.md"), elem_id="summary", elem_classes="winner-line")
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
        r.sliders = _weight_sliders()
        r.reset = gr.Button("Reset weights to the model's", size="sm", elem_id="reset-weights")
    with gr.Accordion("Model internals: gating and coefficients, raw rewards, transform matrix", open=True,
                      elem_id="internals"):  # fmt: skip
        with gr.Row():
            v["gating"] = gr.Plot(label="Gating and coefficients", elem_id="plot-gating")
            v["bars"] = gr.Plot(label="Rewards by candidate", elem_id="plot-bars")
        v["top"] = table("Top objectives: coefficients, then contributions per candidate", "top-table", [36, 40, 24])
        v["transform"] = gr.Plot(label="Transform matrix", elem_id="plot-transform")
    with gr.Row():
        r.csv_file = gr.DownloadButton("Download CSV", value=None, interactive=False)
        r.json_file = gr.DownloadButton("Download JSON", value=None, interactive=False)
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
    its candidates in the form (and shows this tab), `score_after(event)` scores the form when the event is done."""
    letters = explain.candidate_labels(config.ui_candidates)
    examples = load_examples()
    analysis = gr.State(None)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            form = _form(letters, examples)
        with gr.Column(scale=5, min_width=320, elem_id="results"):
            res = _results(letters)
    score_after = _wire_form(scorer, form, res, analysis, examples, letters)
    _wire_attribution(scorer, res, analysis)
    _wire_probes(scorer, res, analysis)

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
                           redraw_after=redraw_after)  # fmt: skip


def _wire_form(scorer, f, r, analysis, examples: list[dict], letters: list[str]):
    n_boxes = len(f.boxes)
    count = f.count

    def shown(n: int) -> dict:
        return {count: n, **{box: gr.update(visible=i < n) for i, box in enumerate(f.boxes)}}

    def load_example(name):
        ex = next((e for e in examples if e["name"] == name), None)
        if ex is None:
            return {f.example: gr.skip()}
        return form_values(f, ex["system"], ex["turns"], ex["prompt"], ex["candidates"])

    f.example.input(load_example, f.example, [f.example, f.system, f.turns, f.prompt, count, f.context, f.origin,
                                              *f.boxes], api_visibility="private")  # fmt: skip
    f.add.click(lambda n: shown(min(n + 1, n_boxes)), count, [count, *f.boxes], api_visibility="private")
    f.remove.click(lambda n: shown(max(n - 1, 2)), count, [count, *f.boxes], api_visibility="private")

    async def score_form(system, turns, prompt, n, *rest):
        """A refusal is one message beside the form; the results on screen stay (marked stale if edited)."""
        try:
            return await scored(system, turns, prompt, n, list(rest[:n_boxes]), rest[n_boxes:])
        except ArmoRMError as e:
            return {f.message: f"**Not scored:** {as_text(e)}"}

    async def scored(system, turns, prompt, n, texts, weights):
        if len(texts) != n_boxes or len(weights) != len(OBJECTIVES):
            raise InputError(f"Expected {n_boxes} candidate boxes and {len(OBJECTIVES)} weights.")
        messages = conversation_from_form(system, turns, prompt)
        responses = candidates_from_form(n, texts)
        for a, b in duplicates(responses):
            gr.Warning(f"Candidates {letters[a]} and {letters[b]} are identical: they get the same score.")
        state = await cancellable(analyse, scorer, messages, responses)
        labels = state["labels"]
        a, b = pair(state, None, None)  # the winner and the runner-up
        csv_path, json_path = export_files(state)
        return {
            analysis: state,
            f.message: "",
            **{r.views[k]: v for k, v in views(state, weights, a, b).items()},
            r.pair_title: pair_heading(labels, a, b),
            r.pick_a: gr.update(choices=labels, value=labels[a]),
            r.pick_b: gr.update(choices=[x for x in labels if x != labels[a]], value=labels[b]),
            r.seg_pick: gr.update(choices=labels, value=labels[a]),  # attribution starts with the winner
            r.tok_pick: gr.update(choices=labels, value=labels[a]),
            r.probe_pick: gr.update(choices=labels, value=labels[a]),
            r.csv_file: gr.update(value=csv_path, interactive=True),
            r.json_file: gr.update(value=json_path, interactive=True),
        }

    score_inputs = [f.system, f.turns, f.prompt, count, *f.boxes, *r.sliders]
    score_outputs = [analysis, f.message, *r.views.values(), r.pair_title, r.pick_a, r.pick_b, r.seg_pick, r.tok_pick,
                     r.probe_pick, r.csv_file, r.json_file]  # fmt: skip

    def marked_fresh(scoring):
        # results on screen answer the inputs they were scored from: any edit marks them stale until scored again
        scoring.success(None, [f.message], None, js=FRESH_JS)
        return scoring

    def score_after(event, scroll: bool = False):
        """Score the form when `event` is done (another tab filled the form); `scroll`: then bring the verdict into
        view."""
        scoring = marked_fresh(event.then(score_form, score_inputs, score_outputs, api_visibility="private",
                                          concurrency_id="model"))  # fmt: skip
        if scroll:
            scoring.success(None, None, None, js=VERDICT_JS)
        return scoring

    # the page's own form is not an API endpoint: programs use /score
    scoring = marked_fresh(f.run.click(score_form, score_inputs, score_outputs, api_visibility="private",
                                       concurrency_id="model"))  # fmt: skip
    edits = [f.system.change, f.turns.change, f.prompt.change, *[b.change for b in f.boxes], f.add.click,
             f.remove.click]  # fmt: skip
    gr.on(edits, None, f.message, f.message, js=STALE_JS)
    f.stop.click(None, None, None, cancels=[scoring], api_visibility="private")
    return score_after


def _wire_redraw(r, analysis):
    """A pair pick or a what-if weight redraws three views from the cached analysis; never waits for the model.
    Returns `redraw_after(event)`, which redraws them when another tab's `event` has set the weights."""
    outputs = [*(r.views[k] for k in REDRAWN), r.pair_title, r.pick_b]

    @friendly
    def redraw(state, a_label, b_label, *weights):
        if not state:
            return {r.views["what_if_table"]: gr.skip()}  # nothing scored yet: nothing to redraw
        labels = state["labels"]
        a, b = pair(state, a_label, b_label)
        out = views(state, weights, a, b, only=REDRAWN)
        return {**{r.views[k]: v for k, v in out.items()}, r.pair_title: pair_heading(labels, a, b),
                r.pick_b: gr.update(choices=[x for x in labels if x != labels[a]], value=labels[b])}  # fmt: skip

    inputs = [analysis, r.pick_a, r.pick_b, *r.sliders]
    triggers = [r.pick_a.change, r.pick_b.change, *[s.input for s in r.sliders]]  # drag, arrow keys, typed value
    gr.on(triggers, redraw, inputs, outputs, api_visibility="private", concurrency_limit=None,
          show_progress="hidden")  # fmt: skip

    def redraw_after(event):
        return event.then(redraw, inputs, outputs, api_visibility="private", concurrency_limit=None)

    redraw_after(r.reset.click(lambda: [1.0] * len(r.sliders), None, r.sliders, api_visibility="private"))
    return redraw_after


def _wire_attribution(scorer, r, analysis) -> None:
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
        return {
            r.seg_html: tables.shaded_html(found["segments"], effects, name),
            r.seg_plot: figures.segment_effects(found["segments"], effects, name),
            r.length_plot: figures.length_probe(np.array(found["trimmed_scores"], dtype=float),
                                                np.array(found["trimmed_tokens"])),
        }  # fmt: skip

    r.seg_run.click(segmented, [analysis, r.seg_pick, r.seg_what], [r.seg_state, r.seg_html, r.seg_plot,
                    r.length_plot], api_visibility="private", concurrency_id="model")  # fmt: skip
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

    r.tok_run.click(tokens, [analysis, r.tok_pick, r.tok_target, r.tok_method],
                    [r.tok_summary, r.tok_html, r.tok_plot], api_visibility="private",
                    concurrency_id="model")  # fmt: skip


def _wire_probes(scorer, r, analysis) -> None:
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

    r.probe_run.click(probed, [analysis, r.probe_pick], [r.probe_state, r.probe_plot, r.probe_summary, r.probe_edit,
                      r.probe_diff], api_visibility="private", concurrency_id="model")  # fmt: skip
    r.probe_edit.input(edit_html, [r.probe_state, r.probe_edit], r.probe_diff, api_visibility="private",
                       concurrency_limit=None, show_progress="hidden")  # fmt: skip
