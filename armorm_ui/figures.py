"""Plotly figures from scored results. Knows nothing of Gradio or torch.

Every figure names candidates by letter (A, B, C...) with one colour per letter, never by response text, and keeps
to a height and legend placement that stay readable from a phone-width window up. Figures are built in one
constructor call from plain dicts: plotly's update_* helpers and named templates cost tens of milliseconds each.
Every string from a user (candidate labels, annotator names, text of a response) goes in through `literal`.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from . import explain
from .objectives import HELPSTEER, LABELS, OBJECTIVES
from .results import ScoreResult

if TYPE_CHECKING:  # the type only: probing imports nothing from here
    from .probing import ProbeOutcome

PALETTE = qualitative.Plotly + qualitative.D3[:6]  # 16 distinct colours, one per candidate letter
FONT = {"family": "Inter, system-ui, sans-serif", "size": 12}
GRID = {"gridcolor": "#e5e9f0", "zerolinecolor": "#b8c0cc", "linecolor": "#b8c0cc", "automargin": True}


def literal(text) -> str:
    """`text` shown as typed in a chart. plotly.js draws every string (titles, ticks, legend, hover, annotations)
    through its own HTML subset (src/lib/svg_text_utils.js, convertToTspans): `<a href>` becomes a live link,
    `<b>` or `<span style>` restyles. It decodes &amp; &lt; &gt; for display after reading the tags, so escaping
    these three shows the characters and no tag. Not quotes: plotly.js would show html.escape's &quot; as typed."""
    return html.escape(str(text), quote=False)


def literals(texts) -> list[str]:
    return [literal(t) for t in texts]


def colour(k: int) -> str:
    return PALETTE[k % len(PALETTE)]


def base_figure(traces: list, title: str, height: int = 380, xaxis=None, yaxis=None, **layout) -> go.Figure:
    """The project's chart: title, height, margins, font, horizontal legend, light grid (one constructor call)."""
    return go.Figure(
        data=traces,
        layout={
            "title": {"text": title, "x": 0.01, "font": {"size": 14}},
            "height": height,
            "margin": {"l": 10, "r": 10, "t": 72, "b": 10},
            "font": FONT,
            "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0, "font": {"size": 10}},
            "paper_bgcolor": "white",
            "plot_bgcolor": "white",
            "xaxis": {**GRID, **(xaxis or {})},
            "yaxis": {**GRID, **(yaxis or {})},
            **layout,
        },
    )


def scores(result: ScoreResult, labels: list[str]) -> go.Figure:
    """Preference scores, best first, winner marked with its margin over the runner-up. Scores are often all
    negative, so bars start below the lowest score rather than at 0, where the winner would get the shortest bar."""
    order = np.argsort(-result.scores, kind="stable")
    text = [f"{result.scores[k]:+.4f}" for k in order]
    if result.n > 1:
        text[0] += f"  ★ winner, +{explain.margin(result.scores):.4f}"
    lo, hi = float(result.scores.min()), float(result.scores.max())
    base = lo - 0.25 * ((hi - lo) or abs(lo) or 1.0)  # bars grow from just below the lowest score: longest wins
    bar = go.Bar(
        x=result.scores[order] - base,
        base=base,
        y=[literal(labels[k]) for k in order],
        orientation="h",
        marker_color=[colour(k) for k in order],
        text=text,
        textposition="auto",
        customdata=result.scores[order],
        hovertemplate="Candidate %{y}<br>score %{customdata:.5f}<extra></extra>",
        name="score",
    )
    return base_figure(
        [bar], "Preference score (ranked)", max(220, 60 + 36 * result.n),
        yaxis={"autorange": "reversed", "type": "category"}, showlegend=False,
    )  # fmt: skip


def rewards_heatmap(result: ScoreResult, labels: list[str]) -> go.Figure:
    """19 objectives (rows, grouped by source dataset) x candidates (columns); raw and native values on hover."""
    nat = explain.native(result.rewards)
    scale = np.array([[o.scale_text + ("" if o.confirmed else ", inferred") for o in OBJECTIVES]] * result.n)
    flag = np.where(nat.outside, " (outside the scale)", "")
    custom = np.dstack([nat.shown.round(2).astype(str), scale, flag]).transpose(1, 0, 2)  # (19, N, 3)
    heat = go.Heatmap(
        z=result.rewards.T,  # (19, N)
        x=literals(labels),
        y=[[o.group for o in OBJECTIVES], [o.label for o in OBJECTIVES]],
        customdata=custom,
        colorscale="RdBu",
        zmid=float(np.median(result.rewards)),
        colorbar={"title": {"text": "reward"}, "thickness": 10},
        hovertemplate="Candidate %{x}<br>%{y}<br>reward %{z:.4f}<br>native %{customdata[0]} "
        "on %{customdata[1]}%{customdata[2]}<extra></extra>",
    )
    return base_figure(
        [heat], "Objective rewards (columns: candidates)", 620,
        xaxis={"type": "category", "side": "top"}, yaxis={"autorange": "reversed"},
    )  # fmt: skip


def rewards_bars(result: ScoreResult, labels: list[str]) -> go.Figure:
    """The same rewards as grouped bars, one colour per candidate."""
    nat = explain.native(result.rewards)
    bars = [
        go.Bar(
            x=list(LABELS),
            y=result.rewards[k],
            name=literal(name),
            marker_color=colour(k),
            customdata=nat.shown[k],
            hovertemplate=f"Candidate {literal(name)}<br>%{{x}}<br>reward %{{y:.4f}}"
            "<br>native %{customdata:.2f}<extra></extra>",
        )
        for k, name in enumerate(labels)
    ]
    return base_figure(bars, "Objective rewards by candidate", 420, xaxis={"tickangle": -45}, barmode="group")


def gating(result: ScoreResult) -> go.Figure:
    """Gating weights (one set for the prompt) beside the transformed coefficients that the score uses."""
    hover = "%{x}<br>%{y:.5f}<extra>%{fullData.name}</extra>"
    bars = [
        go.Bar(x=list(LABELS), y=result.gating_output, name="gating weight (prompt only)", marker_color="#8c96a8",
               hovertemplate=hover),
        go.Bar(x=list(LABELS), y=result.coefficients, name="coefficient = gating @ Tᵀ", marker_color="#2f6fdb",
               hovertemplate=hover),
    ]  # fmt: skip
    return base_figure(
        bars, "Gating and coefficients, per prompt", 420,
        xaxis={"tickangle": -45}, barmode="group",
    )  # fmt: skip


GROUP_COLOURS = {"HelpSteer": "#1d4ed8", "UltraFeedback": "#7c3aed", "Safety": "#b91c1c", "Judges": "#b45309",
                 "Code": "#047857"}  # fmt: skip
"""Tick-label colours that tell the objective groups apart in charts with one bar colour per candidate."""


def contributions(result: ScoreResult, labels: list[str]) -> go.Figure:
    """Each score split into rewards * coefficients, as diverging bars: one colour per candidate (best first), the
    objectives sorted by what they give the winner, their labels coloured by group. Each candidate's bars add up to
    its score (in the legend)."""
    contrib = explain.contributions(result)
    ranked = np.argsort(-result.scores, kind="stable")
    rows = np.argsort(-contrib[ranked[0]], kind="stable")  # largest gain for the winner on top
    ticks = [f'<span style="color:{GROUP_COLOURS.get(OBJECTIVES[i].group, "#334155")}">{OBJECTIVES[i].label}</span>'
             for i in rows]  # fmt: skip
    key = " · ".join(f'<span style="color:{c}">{g}</span>' for g, c in GROUP_COLOURS.items())
    title = f"Each objective's contribution to each score<br><sub>label colours: {key}</sub>"
    traces = [
        go.Bar(
            y=ticks,
            x=contrib[k, rows],
            name=f"{literal(labels[k])} (score {result.scores[k]:+.4f})",
            orientation="h",
            marker_color=colour(k),
            customdata=[OBJECTIVES[i].label for i in rows],
            hovertemplate=f"Candidate {literal(labels[k])}<br>%{{customdata}}: %{{x:+.5f}}<extra></extra>",
        )
        for k in ranked
    ]
    return base_figure(
        traces, title, max(420, 120 + 19 * (10 + 6 * min(result.n, 6))),
        yaxis={"autorange": "reversed", "type": "category"}, barmode="group",
        legend={"orientation": "h", "yanchor": "top", "y": -0.05, "x": 0, "font": {"size": 11}},
    )  # fmt: skip


def helpsteer(result: ScoreResult, labels: list[str]) -> go.Figure:
    """The five HelpSteer objectives on their 0-4 scale (rewards * 5 - 0.5, as on the model card)."""
    values = explain.helpsteer(result.rewards)
    bars = [
        go.Bar(
            x=[o.label for o in HELPSTEER],
            y=values[k],
            name=literal(name),
            marker_color=colour(k),
            hovertemplate=f"Candidate {literal(name)}<br>%{{x}}: %{{y:.2f}} / 4<extra></extra>",
        )
        for k, name in enumerate(labels)
    ]
    lo, hi = min(-0.5, float(values.min()) - 0.2), max(4.5, float(values.max()) + 0.2)
    band = {"type": "rect", "xref": "paper", "x0": 0, "x1": 1, "y0": 0, "y1": 4, "fillcolor": "#2f6fdb",
            "opacity": 0.05, "line": {"width": 0}, "layer": "below"}  # fmt: skip
    return base_figure(
        bars, "HelpSteer scale (0-4)", 380, yaxis={"range": [lo, hi], "dtick": 1}, barmode="group", shapes=[band]
    )


def pairwise(result: ScoreResult, a: int, b: int, labels: list[str]) -> go.Figure:
    """Why A over B: the score difference split by objective, largest first."""
    delta = explain.pairwise(result, a, b)
    order = np.argsort(-np.abs(delta), kind="stable")
    bar = go.Bar(
        x=delta[order],
        y=[LABELS[i] for i in order],
        orientation="h",
        marker_color=[colour(a) if d >= 0 else colour(b) for d in delta[order]],
        hovertemplate="%{y}: %{x:+.5f}<extra></extra>",
    )
    delta_score = result.scores[a] - result.scores[b]
    title = f"{literal(labels[a])} − {literal(labels[b])} = {delta_score:+.5f}, split by objective"
    return base_figure([bar], title, 520, yaxis={"autorange": "reversed", "type": "category"}, showlegend=False)


def what_if(result: ScoreResult, weighted: np.ndarray, labels: list[str]) -> go.Figure:
    """The model's scores beside the scores under the user's weights; a candidate whose rank changed is marked
    (▲ 1: one place up) above its bar."""
    model_rank, your_rank = explain.ranks(result.scores), explain.ranks(weighted)
    moved = [explain.rank_change(a, b) for a, b in zip(model_rank, your_rank)]
    bars = [
        go.Bar(x=literals(labels), y=result.scores, name="model's score", marker_color="#8c96a8"),
        go.Bar(x=literals(labels), y=weighted, name="your weights", marker_color=[colour(k) for k in range(result.n)],
               text=[f"#{r} {m}" if m != "=" else f"#{r}" for r, m in zip(your_rank, moved)],
               textposition="outside", cliponaxis=False, customdata=moved,
               hovertemplate="%{x}: %{y:.5f}, rank %{text}<extra>your weights</extra>"),
    ]  # fmt: skip
    changed = sum(m != "=" for m in moved)
    title = f"Your weights change {changed} of {result.n} ranks" if changed else "Your weights keep the model's ranking"
    return base_figure(bars, title, 360, xaxis={"type": "category"}, barmode="group")


def transform(result: ScoreResult) -> go.Figure:
    """The 19x19 reward_transform_matrix (identity except the verbosity row)."""
    heat = go.Heatmap(
        z=result.reward_transform_matrix,
        x=list(LABELS),
        y=list(LABELS),
        colorscale="RdBu",
        zmid=0,
        colorbar={"thickness": 10},
        hovertemplate="row %{y}<br>column %{x}<br>%{z:.5f}<extra></extra>",
    )
    return base_figure(
        [heat], "reward_transform_matrix T", 560, xaxis={"tickangle": -45}, yaxis={"autorange": "reversed"}
    )


def agreement(summary: dict) -> go.Figure:
    """Per annotator, how often each objective's highest-reward candidate is the one they chose."""
    bars = [
        go.Bar(x=list(LABELS), y=list(s["objective_agreement"].values()),
               name=f"{literal(name)} (model {s['model_top_agreement']:.0%})", marker_color=colour(k),
               hovertemplate="%{x}: %{y:.0%}<extra>%{fullData.name}</extra>")
        for k, (name, s) in enumerate(summary.items())
    ]  # fmt: skip
    return base_figure(bars, "Objectives that predict each annotator's choice", 420,
                   xaxis={"tickangle": -45}, yaxis={"range": [0, 1], "tickformat": ".0%"}, barmode="group")  # fmt: skip


def short(text: str, chars: int = 28) -> str:
    """The start of a segment for an axis label, on one line (cut before it is escaped: no half an entity)."""
    flat = " ".join(text.split())
    return literal(flat if len(flat) <= chars else flat[: chars - 1] + "…")


def segment_effects(segments: list[str], effects: np.ndarray, what: str, top: int = 12) -> go.Figure:
    """The segments that move `what` (the score, or one objective's reward) most when left out."""
    finite = np.where(np.isfinite(effects), effects, 0.0)
    order = np.argsort(-np.abs(finite), kind="stable")[:top]
    what = literal(what)
    snippet = [literal(" ".join(segments[i].split())[:80]) for i in order]
    words = [f"leaving it out {'lowers' if v > 0 else 'raises' if v < 0 else 'does not change'} the {what}"
             for v in finite[order]]  # fmt: skip
    bar = go.Bar(
        x=finite[order],
        y=[f"[{i + 1}] {short(segments[i])}" for i in order],  # the number in the shaded text, and how it starts
        orientation="h",
        customdata=np.stack([snippet, words], axis=-1) if len(order) else None,
        marker_color=["#2f9e5b" if v >= 0 else "#d1495b" for v in finite[order]],
        hovertemplate="%{y}: %{x:+.5f} (%{customdata[1]})<br>%{customdata[0]}<extra></extra>",
    )
    return base_figure([bar], f"Segments that move the {what} most (with − without)",
                       max(260, 80 + 26 * len(order)),
                   yaxis={"autorange": "reversed", "type": "category"}, showlegend=False)  # fmt: skip


def length_probe(scores: np.ndarray, tokens: np.ndarray) -> go.Figure:
    """The score of the response trimmed to its first k segments, against its length."""
    line = go.Scatter(
        x=tokens,
        y=scores,
        mode="lines+markers",
        text=[f"first {k} segment(s)" for k in range(1, len(scores) + 1)],
        hovertemplate="%{text}<br>%{x} tokens<br>score %{y:+.5f}<extra></extra>",
        name="score",
    )
    return base_figure([line], "Score as the response grows, segment by segment", 320,
                   xaxis={"title": {"text": "response tokens"}}, showlegend=False)  # fmt: skip


def token_agreement(segments: list[dict], what: str) -> go.Figure:
    """Per segment of the response: the gradient attribution summed over its tokens against its leave-one-out
    effect. Points near a rising line mean the two methods agree."""
    shown = [s for s in segments if s.get("leave_one_out") is not None]
    dots = go.Scatter(
        x=[s["leave_one_out"] for s in shown],
        y=[s["attribution"] for s in shown],
        mode="markers+text",
        text=[str(i + 1) for i, s in enumerate(segments) if s.get("leave_one_out") is not None],
        textposition="top center",
        cliponaxis=False,
        customdata=[literal(" ".join(s["text"].split())[:80]) for s in shown],
        hovertemplate="segment %{text}: leave-one-out %{x:+.5f}, gradients %{y:+.5f}<br>%{customdata}<extra></extra>",
    )
    axes = {
        "xaxis": {"title": {"text": "with − without the segment"}, "zeroline": True},
        "yaxis": {"title": {"text": f"gradients ({literal(what)})"}, "zeroline": True},
    }
    return base_figure([dots], "Segments: gradients vs. leave-one-out", 340, showlegend=False, **axes)


def _tint(hex_colour: str, t: float) -> str:
    """`hex_colour` mixed with white: t = 0 is the colour itself, 1 is white."""
    rgb = [int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * t):02x}" for c in rgb)


def objective_colours() -> list[str]:
    """(19,) one colour per objective: its group's colour (as in the contributions chart), lighter for each later
    member of the group, so that neighbouring parts of a stacked bar stay apart."""
    out, seen = [], {}
    for o in OBJECTIVES:
        j = seen[o.group] = seen.get(o.group, -1) + 1
        out.append(_tint(GROUP_COLOURS.get(o.group, "#334155"), min(0.15 * j, 0.6)))
    return out


PROBE_ROW = 48
"""Pixels per probe in probe_effects: a bar and, above it, the line that names it."""


def probe_effects(outcomes: list[ProbeOutcome], label: str) -> go.Figure:
    """How each applied probe moves candidate `label`'s score: one horizontal bar per probe, stacked from its 19
    per-objective parts (they add up to its Δscore; positive parts right of 0, negative ones left), a diamond at
    the net Δ, probes sorted by Δ (largest rise on top). Each probe's name, Δ and rank change (▲ 1 / ▼ 1) sit above
    its bar rather than beside it, so that a phone-wide chart keeps its width for the bars. Skipped outcomes are
    left out."""
    done = sorted((o for o in outcomes if o.applied), key=lambda o: -o.delta)
    names = [literal(o.probe.label) for o in done]
    gap = 0.55  # of each row: the bar takes the rest, its label sits in the gap above it
    notes = []
    for o, name in zip(done, names):
        text = f"<b>{name}</b>  Δ {o.delta:+.3g}"
        moved = explain.rank_change(o.rank_before, o.rank_after) if len(o.scores_before) > 1 else "="
        if moved != "=":
            text += f'  <span style="color:{"#15803d" if moved.startswith("▲") else "#b91c1c"}">{moved}</span>'
        notes.append({"text": text, "x": 0, "xref": "paper", "xanchor": "left", "y": name, "yref": "y",
                      "yanchor": "bottom", "yshift": PROBE_ROW * (1 - gap) / 2 + 2, "showarrow": False,
                      "font": {"size": 11}})  # fmt: skip
    traces, shown = [], set()
    for o, tint in zip(OBJECTIVES, objective_colours()):
        traces.append(go.Bar(
            y=names, x=[p.parts[o.index] for p in done], orientation="h", name=o.group, legendgroup=o.group,
            showlegend=o.group not in shown, marker={"color": tint, "line": {"color": "white", "width": 0.5}},
            hovertemplate=f"%{{y}}<br>{o.label}: %{{x:+.4g}}<extra>{o.group}</extra>",
        ))  # fmt: skip
        shown.add(o.group)
    moves = [f"<br>rank {o.rank_before} → {o.rank_after}" if len(o.scores_before) > 1 else "" for o in done]
    traces.append(go.Scatter(
        y=names, x=[o.delta for o in done], mode="markers", name="net Δ", customdata=moves,
        marker={"symbol": "diamond", "size": 10, "color": "#0f172a", "line": {"color": "white", "width": 1}},
        hovertemplate="%{y}: Δscore %{x:+.5f}%{customdata}<extra></extra>",
    ))  # fmt: skip
    if not done:
        notes.append({"text": "No probe applies to this answer", "showarrow": False, "xref": "paper",
                      "yref": "paper", "x": 0.5, "y": 0.5})  # fmt: skip
    rows = max(len(done), 2)
    plot = PROBE_ROW * rows  # the plot area's height; the margins hold title, axis and legend
    bottom = 124  # tick labels, axis title and a legend of up to three rows (a phone's width)
    return base_figure(
        traces,
        f"How each edit moves {literal(label)}'s score<br><sub>bars: parts by objective group · ◆ net Δscore</sub>",
        72 + plot + bottom, margin={"l": 10, "r": 10, "t": 72, "b": bottom},
        xaxis={"title": {"text": "Δscore (edited − original)"}, "zeroline": True, "zerolinewidth": 2,
               "visible": bool(done)},
        yaxis={"range": [rows - 0.5, -0.5], "type": "category", "showticklabels": False},  # first on top
        barmode="relative", bargap=gap, annotations=notes, showlegend=bool(done),
        legend={"orientation": "h", "x": 0, "yanchor": "top", "y": -58 / plot, "font": {"size": 11},
                "traceorder": "normal"},
    )  # fmt: skip
