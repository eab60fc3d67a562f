"""The web app: build_demo(scorer, config) -> gr.Blocks. Layout first, wiring last; handlers stay thin.

Per-user data (the last scored result) lives in gr.State; the scorer is shared and only reached through the queue,
one request at a time. Views are computed by `views()` from a plain dict, so they are testable without a browser.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from . import explain, figures, tables
from .annotate import build_annotate_tab
from .attribution import attribute
from .batch_tab import build_batch_tab
from .errors import ArmoRMError, InputError
from .gr_errors import as_text, cancellable, friendly
from .labels import LabelStore
from .objectives import LABELS, OBJECTIVES
from .results import ScoreResult
from .scratch import scratch_folder
from .validation import duplicates

ASSETS = Path(__file__).resolve().parent.parent / "assets"
STALE_JS = (
    "() => { const r = document.getElementById('results'); if (r && r.dataset.scored) r.classList.add('stale'); }"
)
FRESH_JS = """(message) => { const r = document.getElementById('results');
  if (r && !message) { r.classList.remove('stale'); r.dataset.scored = '1'; } }"""
TURN_ROLES = ("user", "assistant")


def asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def load_examples() -> list[dict]:
    return json.loads(asset("examples.json"))


# ------------------------------------------------------------------------------------------------ pure helpers


def conversation_from_form(system: str, turns, prompt: str) -> list[dict]:
    """System message (optional), earlier turns (rows of role, content), then the prompt as the last user turn."""
    for name, value in (("The system message", system), ("The prompt", prompt)):
        if value is not None and not isinstance(value, str):
            raise InputError(f"{name} must be text, got {type(value).__name__}.")
    if isinstance(turns, dict):  # the table's own form: {"headers": [...], "data": [[role, content], ...]}
        turns = turns.get("data")
    if turns is not None and not (isinstance(turns, list) and all(isinstance(r, (list, tuple)) for r in turns)):
        raise InputError("Earlier turns must be rows of (role, content).")
    messages = []
    if system and system.strip():
        messages.append({"role": "system", "content": system})
    for i, row in enumerate(turns or []):
        role, content = (list(row) + ["", ""])[:2]
        role, content = str(role or "").strip().lower(), str(content or "")
        if not content.strip() and not role:
            continue
        if role not in TURN_ROLES:
            raise InputError(f"Earlier turn {i + 1} has role {role!r}: write 'user' or 'assistant'.")
        if not content.strip():
            raise InputError(f"Earlier turn {i + 1} ({role}) is empty: write its text or delete the row.")
        messages.append({"role": role, "content": content})
    if not prompt or not prompt.strip():
        raise InputError("Write a prompt: the candidates are answers to it.")
    messages.append({"role": "user", "content": prompt})
    return messages


def candidates_from_form(count: int, boxes: list[str]) -> list[str]:
    """The filled candidate boxes among the first `count`: empty ones at the end are ignored; at least two to
    compare, and no empty box between filled ones (the letters would no longer match the boxes)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= len(boxes):
        raise InputError(f"The number of candidate boxes must be a whole number from 1 to {len(boxes)}.")
    texts = list(boxes[:count])
    labels = explain.candidate_labels(len(texts))
    for label, text in zip(labels, texts):
        if text is not None and not isinstance(text, str):
            raise InputError(f"Candidate {label} must be text, got {type(text).__name__}.")
    while texts and not (texts[-1] or "").strip():
        texts.pop()
    for label, text in zip(labels, texts):
        if not text or not text.strip():
            raise InputError(f"Candidate {label} is empty: write a response or remove the box.")
    if len(texts) < 2:
        raise InputError("Fill in at least two candidates to compare (one is filled).")
    return texts


def analyse(scorer, messages: list[dict], responses: list[str], should_stop=None) -> dict:
    """Score and package what every view needs, as plain JSON-able data (kept in gr.State)."""
    result = scorer.score(messages, responses, should_stop=should_stop)
    return {
        "result": result.to_dict(),
        "labels": explain.candidate_labels(result.n),
        "responses": responses,
        "messages": messages,
    }


def what_if_weights(weights) -> np.ndarray:
    """The 19 what-if multipliers as numbers (a slider left empty counts as 1, the model's own weight)."""
    if weights is None or len(weights) == 0:
        return np.ones(len(OBJECTIVES))
    try:
        values = np.array([1.0 if w is None else float(w) for w in weights], dtype=float)
    except (TypeError, ValueError) as e:
        raise InputError("What-if weights must be numbers.") from e
    if values.shape != (len(OBJECTIVES),) or not np.isfinite(values).all():
        raise InputError(f"What-if weights must be {len(OBJECTIVES)} finite numbers.")
    return values


def views(state: dict, weights=None, a: int = 0, b: int = 1, only: tuple[str, ...] | None = None) -> dict:
    """The charts and tables of one analysis, keyed by view name: every view, or `only` those named (a what-if
    or pair change redraws three views, not fourteen)."""
    result = ScoreResult.from_dict(state["result"])
    labels = state["labels"]
    weighted = explain.what_if(result, what_if_weights(weights))
    b = b if result.n > 1 else a
    build = {
        "summary": lambda: explain.verdict_text(explain.verdict(result), labels),
        "ranking": lambda: tables.ranking(result, labels),
        "scores": lambda: figures.scores(result, labels),
        "heatmap": lambda: figures.rewards_heatmap(result, labels),
        "bars": lambda: figures.rewards_bars(result, labels),
        "gating": lambda: figures.gating(result),
        "contributions": lambda: figures.contributions(result, labels),
        "helpsteer": lambda: figures.helpsteer(result, labels),
        "helpsteer_table": lambda: tables.helpsteer(result, labels),
        "pairwise": lambda: figures.pairwise(result, a, b, labels),
        "top": lambda: tables.top_objectives(result, labels),
        "transform": lambda: figures.transform(result),
        "what_if": lambda: figures.what_if(result, weighted, labels),
        "what_if_table": lambda: tables.weights_ranking(result, weighted, labels),
    }
    return {name: make() for name, make in build.items() if only is None or name in only}


def pair(state: dict, a_label, b_label) -> tuple[int, int]:
    """The two candidates of the "why A over B" view: by default the winner and the runner-up; never one
    candidate with itself (B then becomes the best-scored other one)."""
    labels = state["labels"]
    order = [int(k) for k in np.argsort(-np.asarray(state["result"]["scores"]), kind="stable")]
    a = labels.index(a_label) if a_label in labels else order[0]
    b = labels.index(b_label) if b_label in labels else None
    if b is None or b == a:
        b = next((k for k in order if k != a), a)
    return a, b


def pair_heading(labels: list[str], a: int, b: int) -> str:
    return f"### Why {labels[a]} over {labels[b]}?"


def export_files(state: dict) -> tuple[str, str]:
    """Write the results table as CSV and JSON into a private temp folder; return the two paths."""
    result = ScoreResult.from_dict(state["result"])
    frame = tables.export_frame(result, state["labels"], state["responses"])
    folder = scratch_folder("armorm-export-")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    csv_path, json_path = folder / f"armorm-scores-{stamp}.csv", folder / f"armorm-scores-{stamp}.json"
    csv_path.write_text(tables.to_csv(frame), encoding="utf-8")
    json_path.write_text(tables.to_json(result, state["labels"], state["messages"], state["responses"]), "utf-8")
    return str(csv_path), str(json_path)


# ------------------------------------------------------------------------------------------------ the app


def build_demo(scorer, config, store: LabelStore | None = None) -> gr.Blocks:
    examples = load_examples()
    n_boxes = config.ui_candidates
    letters = explain.candidate_labels(n_boxes)

    with gr.Blocks(title="ArmoRM Explorer", delete_cache=(3600, 3600), analytics_enabled=False) as demo:
        gr.Markdown("# ArmoRM Explorer\nWhich response does ArmoRM prefer, and why, objective by objective.")
        if scorer.is_demo:
            gr.Markdown(asset("demo_banner.md"), elem_classes="demo-banner", elem_id="demo-banner")
        analysis = gr.State(None)
        count = gr.State(min(3, n_boxes))

        with gr.Tab("Compare", id="compare"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=2, min_width=320):
                    example = gr.Dropdown([e["name"] for e in examples], label="Start from an example", value=None)
                    with gr.Accordion("System message and earlier turns (optional)", open=False) as context:
                        system = gr.Textbox(label="System message", lines=2)
                        turns = gr.Dataframe(
                            headers=["role", "content"],
                            datatype=["str", "str"],
                            type="array",
                            row_count=1,
                            column_count=2,
                            interactive=True,
                            label="Earlier turns, oldest first (role: user or assistant)",
                            wrap=True,
                        )
                    prompt = gr.Textbox(label="Prompt (last user turn)", lines=3, elem_id="prompt")
                    boxes = [
                        gr.Textbox(
                            label=f"Candidate {letter}",
                            lines=3,
                            visible=i < 3,
                            elem_id=f"candidate-{letter}",
                            elem_classes="candidate-box",
                        )
                        for i, letter in enumerate(letters)
                    ]
                    with gr.Row():
                        add = gr.Button("+ Add candidate", size="sm")
                        remove = gr.Button("− Remove last", size="sm")
                    with gr.Row():
                        run = gr.Button("Score candidates", variant="primary", elem_id="score-button", scale=3)
                        stop = gr.Button("Stop", elem_id="stop-button", scale=1)
                    form_message = gr.Markdown("", elem_id="form-message")

                with gr.Column(scale=5, min_width=320, elem_id="results"):
                    summary = gr.Markdown(
                        asset("how_to.md"),
                        elem_id="summary",
                        elem_classes="winner-line",
                    )
                    with gr.Row():
                        ranking = gr.Dataframe(label="Ranking", elem_id="ranking", interactive=False)
                        scores = gr.Plot(label="Scores", elem_id="plot-scores")
                    with gr.Row():
                        contributions = gr.Plot(label="Contributions", elem_id="plot-contributions")
                        heatmap = gr.Plot(label="Objective rewards", elem_id="plot-heatmap")
                    with gr.Row():
                        helpsteer = gr.Plot(label="HelpSteer scale", elem_id="plot-helpsteer")
                    helpsteer_table = gr.Dataframe(label="HelpSteer scale (0-4)", interactive=False)
                    with gr.Row():
                        with gr.Column(min_width=240):
                            pair_title = gr.Markdown("### Why A over B?", elem_id="pair-title")
                            pick_a = gr.Dropdown(letters[:3], value="A", label="Candidate", interactive=True,
                                                 elem_id="pick-a")  # fmt: skip
                            pick_b = gr.Dropdown(letters[1:3], value="B", label="compared with", interactive=True,
                                                 elem_id="pick-b")  # fmt: skip
                        pairwise = gr.Plot(label="Score difference by objective", elem_id="plot-pairwise")
                    with gr.Accordion("Which parts of a response drive its score", open=False):
                        with gr.Row():
                            seg_pick = gr.Dropdown(
                                letters[:3], value="A", label="Candidate", interactive=True, elem_id="seg-pick"
                            )
                            seg_what = gr.Dropdown(
                                ["score", *LABELS], value="score", label="Effect on", elem_id="seg-what"
                            )
                            seg_run = gr.Button("Find out (scores every leave-one-out variant)", elem_id="seg-run")
                        seg_html = gr.HTML(elem_id="seg-html")
                        with gr.Row():
                            seg_plot = gr.Plot(label="Largest effects", elem_id="plot-segments")
                            length_plot = gr.Plot(label="Length probe", elem_id="plot-length")
                        seg_state = gr.State(None)
                    with gr.Accordion("What-if weights: multiply each objective's coefficient", open=True):
                        with gr.Row():
                            what_if = gr.Plot(label="Re-ranking", elem_id="plot-what-if")
                            what_if_table = gr.Dataframe(label="Model rank vs. your rank", interactive=False)
                        sliders = []
                        for start in range(0, len(OBJECTIVES), 4):  # rows of four keep 19 sliders compact
                            with gr.Row():
                                sliders += [
                                    gr.Slider(
                                        0,
                                        3,
                                        value=1,
                                        step=0.1,
                                        label=o.label,
                                        min_width=150,
                                        elem_id=f"weight-{o.name}",
                                    )
                                    for o in OBJECTIVES[start : start + 4]
                                ]
                        reset = gr.Button("Reset weights to the model's", size="sm", elem_id="reset-weights")
                    with gr.Accordion("Model internals: gating and coefficients, raw rewards, transform matrix",
                                      open=True, elem_id="internals"):  # fmt: skip
                        with gr.Row():
                            gating = gr.Plot(label="Gating and coefficients", elem_id="plot-gating")
                            bars = gr.Plot(label="Rewards by candidate", elem_id="plot-bars")
                        top = gr.Dataframe(label="Top objectives per candidate", interactive=False)
                        transform = gr.Plot(label="Transform matrix", elem_id="plot-transform")
                    with gr.Row():
                        csv_file = gr.DownloadButton("Download CSV", value=None, interactive=False)
                        json_file = gr.DownloadButton("Download JSON", value=None, interactive=False)
                    gr.Markdown(asset("about.md"))
        with gr.Tab("Batch file", id="batch"):
            build_batch_tab(scorer, config)
        with gr.Tab("Annotate", id="annotate"):
            build_annotate_tab(scorer, store or config.label_store(), config)

        view_outputs = {
            "summary": summary, "ranking": ranking, "scores": scores, "heatmap": heatmap, "bars": bars,
            "gating": gating, "contributions": contributions, "helpsteer": helpsteer,
            "helpsteer_table": helpsteer_table, "pairwise": pairwise, "top": top, "transform": transform,
            "what_if": what_if, "what_if_table": what_if_table,
        }  # fmt: skip

        # ---------------------------------------------------------------------------------------- wiring
        def shown(n: int) -> dict:
            return {count: n, **{box: gr.update(visible=i < n) for i, box in enumerate(boxes)}}

        def load_example(name):
            ex = next((e for e in examples if e["name"] == name), None)
            if ex is None:
                return {example: gr.skip()}
            values = ex["candidates"][:n_boxes] + [""] * (n_boxes - len(ex["candidates"][:n_boxes]))
            rows = [[t["role"], t["content"]] for t in ex["turns"]] or [["", ""]]
            n = max(2, min(len(ex["candidates"]), n_boxes))
            return {
                system: ex["system"], turns: rows, prompt: ex["prompt"], count: n,
                context: gr.update(open=bool(ex["turns"] or ex["system"])),  # an example's context is shown
                **{box: gr.update(value=v, visible=i < n) for i, (box, v) in enumerate(zip(boxes, values))},
            }  # fmt: skip

        example.input(load_example, example, [example, system, turns, prompt, count, context, *boxes],
                      api_visibility="private")  # fmt: skip
        add.click(lambda n: shown(min(n + 1, n_boxes)), count, [count, *boxes], api_visibility="private")
        remove.click(lambda n: shown(max(n - 1, 2)), count, [count, *boxes], api_visibility="private")

        async def score_form(system_text, turn_rows, prompt_text, n, *rest):
            """A refusal is one message beside the form; the results on screen stay (marked stale if edited)."""
            try:
                return await scored_form(system_text, turn_rows, prompt_text, n, *rest)
            except ArmoRMError as e:
                return {form_message: f"**Not scored:** {as_text(e)}"}

        async def scored_form(system_text, turn_rows, prompt_text, n, *rest):
            if len(rest) != n_boxes + len(OBJECTIVES):
                raise InputError(f"Expected {n_boxes} candidate boxes and {len(OBJECTIVES)} weights.")
            texts, weights = rest[:n_boxes], rest[n_boxes:]
            messages = conversation_from_form(system_text, turn_rows, prompt_text)
            responses = candidates_from_form(n, list(texts))
            for a, b in duplicates(responses):
                gr.Warning(f"Candidates {letters[a]} and {letters[b]} are identical: they get the same score.")
            state = await cancellable(analyse, scorer, messages, responses)
            labels = state["labels"]
            a, b = pair(state, None, None)  # the winner and the runner-up
            out = views(state, weights, a, b)
            csv_path, json_path = export_files(state)
            return {
                analysis: state,
                form_message: "",
                **{view_outputs[k]: v for k, v in out.items()},
                pair_title: pair_heading(labels, a, b),
                pick_a: gr.update(choices=labels, value=labels[a]),
                pick_b: gr.update(choices=[x for x in labels if x != labels[a]], value=labels[b]),
                seg_pick: gr.update(choices=labels, value=labels[a]),  # attribution starts with the winner
                csv_file: gr.update(value=csv_path, interactive=True),
                json_file: gr.update(value=json_path, interactive=True),
            }

        scoring = run.click(
            score_form,
            [system, turns, prompt, count, *boxes, *sliders],
            [analysis, form_message, *view_outputs.values(), pair_title, pick_a, pick_b, seg_pick, csv_file,
             json_file],
            api_visibility="private",  # the page's own form; programs use /score
            concurrency_id="model",
        )  # fmt: skip
        # results on screen answer the inputs they were scored from: any edit marks them stale until scored again
        scoring.success(None, [form_message], None, js=FRESH_JS)
        gr.on([system.change, turns.change, prompt.change, *[b.change for b in boxes], add.click, remove.click],
              None, form_message, form_message, js=STALE_JS)  # fmt: skip

        stop.click(None, None, None, cancels=[scoring], api_visibility="private")

        @friendly
        def redraw(state, a_label, b_label, *weights):
            if not state:
                return {what_if_table: gr.skip()}  # nothing scored yet: nothing to redraw
            labels = state["labels"]
            a, b = pair(state, a_label, b_label)
            out = views(state, weights, a, b, only=("pairwise", "what_if", "what_if_table"))
            return {**{view_outputs[k]: v for k, v in out.items()}, pair_title: pair_heading(labels, a, b),
                    pick_b: gr.update(choices=[x for x in labels if x != labels[a]], value=labels[b])}  # fmt: skip

        gr.on(
            [pick_a.change, pick_b.change, *[s.input for s in sliders]],  # drag, arrow keys, a typed value
            redraw,
            [analysis, pick_a, pick_b, *sliders],
            [pairwise, what_if, what_if_table, pair_title, pick_b],
            api_visibility="private",
            concurrency_limit=None,  # arithmetic on cached rewards: never waits for the model
            show_progress="hidden",
        )
        reset.click(lambda: [1.0] * len(sliders), None, sliders, api_visibility="private").then(
            redraw, [analysis, pick_a, pick_b, *sliders], [pairwise, what_if, what_if_table, pair_title, pick_b],
            api_visibility="private", concurrency_limit=None,
        )  # fmt: skip

        async def score(conversation: list[dict], candidates: list[str]) -> dict[str, Any]:
            """Score candidate responses to a conversation with ArmoRM.

            Args:
                conversation: messages [{"role": "system"|"user"|"assistant", "content": str}] ending with a user turn.
                candidates: the responses to score (1 to the configured maximum).
            Returns:
                scores (N), rewards (N x 19), gating_output (19), coefficients (19), reward_transform_matrix,
                objectives (19 names), ranks (N), and token counts.
            """
            result = await cancellable(scorer.score, conversation, candidates)
            return {
                **result.to_dict(),
                "objectives": [o.name for o in OBJECTIVES],
                "ranks": explain.ranks(result.scores).tolist(),
                "demo_checkpoint": scorer.is_demo,
            }

        gr.api(friendly(score), api_name="score", concurrency_id="model")

        @friendly
        async def segmented(state, letter, what):
            if not state:
                raise gr.Error("Score the candidates first.")
            k = state["labels"].index(letter) if letter in state["labels"] else 0
            found = await cancellable(attribute, scorer, state["messages"], state["responses"][k])
            found = found.to_dict()
            return {seg_state: found, **segment_views(found, what)}

        def segment_views(found, what) -> dict:
            if not found:
                return {seg_html: gr.skip()}  # no attribution yet
            i = LABELS.index(what) if what in LABELS else None
            effects = np.array(found["effects"] if i is None else [r[i] for r in found["reward_effects"]], dtype=float)
            name = "score" if i is None else f"{what} reward"
            return {
                seg_html: tables.shaded_html(found["segments"], effects, name),
                seg_plot: figures.segment_effects(found["segments"], effects, name),
                length_plot: figures.length_probe(np.array(found["trimmed_scores"], dtype=float),
                                                  np.array(found["trimmed_tokens"])),
            }  # fmt: skip

        seg_run.click(segmented, [analysis, seg_pick, seg_what], [seg_state, seg_html, seg_plot, length_plot],
                      api_visibility="private", concurrency_id="model")  # fmt: skip
        seg_what.change(segment_views, [seg_state, seg_what], [seg_html, seg_plot, length_plot],
                        api_visibility="private", concurrency_limit=None)  # fmt: skip

        async def attribute_api(conversation: list[dict], candidate: str) -> dict[str, Any]:
            """Which segments of one candidate drive its score: leave-one-out effects and the length probe.

            Args:
                conversation: messages [{"role", "content"}] ending with a user turn.
                candidate: the response to explain.
            Returns:
                segments, score, effects (score minus score without each segment), reward_effects (per objective),
                trimmed_scores and trimmed_tokens (the response cut to its first k segments).
            """
            found = await cancellable(attribute, scorer, conversation, candidate)
            return found.to_dict()

        gr.api(friendly(attribute_api), api_name="attribute", concurrency_id="model")
    return demo


__all__ = ["build_demo", "views", "analyse", "conversation_from_form", "candidates_from_form", "LABELS"]
