"""Plotly figures of an evaluation report (the Evaluate tab, and annotation labels taken as preference pairs).

Built from the report's plain data (evaluation.report) and the per-pair table; same look as figures.py.
"""

from __future__ import annotations

import plotly.graph_objects as go

from .figures import GROUP_COLOURS, base_figure
from .objectives import LABELS, OBJECTIVES

RIGHT, WRONG = "#2f9e5b", "#d1495b"


def _interval(stats: list[dict]) -> dict:
    return {
        "type": "data",
        "symmetric": False,
        "color": "#475569",
        "array": [s["high"] - s["accuracy"] for s in stats],
        "arrayminus": [s["accuracy"] - s["low"] for s in stats],
    }


def subset_accuracy(report: dict) -> go.Figure:
    """Accuracy overall and per subset, with 95% Wilson intervals, worst subset last."""
    rows = [("all pairs", report["overall"])] + sorted(report["subsets"].items(), key=lambda kv: -kv[1]["accuracy"])
    stats = [s for _, s in rows]
    bar = go.Bar(
        y=[name for name, _ in rows],
        x=[s["accuracy"] for s in stats],
        orientation="h",
        error_x=_interval(stats),
        marker_color=["#2f6fdb"] + ["#8c96a8"] * (len(rows) - 1),
        customdata=[[s["right"], s["n"]] for s in stats],
        hovertemplate="%{y}: %{x:.1%} (%{customdata[0]} of %{customdata[1]})<extra></extra>",
    )
    return base_figure(
        [bar],
        "Picks the chosen response",
        max(240, 90 + 28 * len(rows)),
        xaxis={"range": [0, 1], "tickformat": ".0%"},
        yaxis={"autorange": "reversed", "type": "category"},
        showlegend=False,
    )


def margins(frame) -> go.Figure:
    """How far the model's score margin (chosen - rejected) is from a tie, for its right and wrong decisions."""
    right = frame["right"].astype(bool)
    traces = [
        go.Histogram(x=frame.loc[mask, "margin"], name=name, marker_color=c, opacity=0.75, nbinsx=40)
        for name, mask, c in (("right", right, RIGHT), ("wrong", ~right, WRONG))
    ]
    return base_figure(
        traces,
        "Score margin, chosen minus rejected",
        340,
        barmode="overlay",
        xaxis={"title": {"text": "margin"}},
        yaxis={"title": {"text": "pairs"}},
    )


def objective_agreement(report: dict) -> go.Figure:
    """Per objective, how often it alone would pick the chosen response (a higher reward), most often first."""
    rows = sorted(report["objectives"], key=lambda o: -o["alone_right"])
    bar = go.Bar(
        y=[o["label"] for o in rows],
        x=[o["alone_right"] for o in rows],
        orientation="h",
        marker_color=[GROUP_COLOURS[OBJECTIVES[LABELS.index(o["label"])].group] for o in rows],
        hovertemplate="%{y}: %{x:.1%} of pairs<extra></extra>",
    )
    model = report["overall"]["accuracy"]
    return base_figure(
        [bar],
        f"Each objective alone (the model: {model:.0%})",
        560,
        xaxis={"range": [0, 1], "tickformat": ".0%"},
        yaxis={"autorange": "reversed", "type": "category"},
        showlegend=False,
        shapes=[
            {
                "type": "line",
                "x0": model,
                "x1": model,
                "y0": 0,
                "y1": 1,
                "yref": "paper",
                "line": {"dash": "dot", "color": "#2f6fdb"},
            }
        ],
    )


def objective_decisions(report: dict) -> go.Figure:
    """What each objective added on average to the margin of right and of wrong decisions."""
    rows = sorted(report["objectives"], key=lambda o: -abs(o["contribution_when_right"] or 0))
    y = [o["label"] for o in rows]
    traces = [
        go.Bar(
            y=y,
            x=[o[key] for o in rows],
            name=name,
            orientation="h",
            marker_color=c,
            hovertemplate="%{y}: %{x:+.5f}<extra>%{fullData.name}</extra>",
        )
        for name, key, c in (
            ("right decisions", "contribution_when_right", RIGHT),
            ("wrong decisions", "contribution_when_wrong", WRONG),
        )
    ]
    return base_figure(
        traces,
        "Mean contribution to the margin",
        560,
        barmode="group",
        yaxis={"autorange": "reversed", "type": "category"},
    )


def length_effect(report: dict, frame) -> go.Figure:
    """Score margin against the length difference (tokens, chosen - rejected), right and wrong decisions apart."""
    right = frame["right"].astype(bool)
    diff = frame["tokens_chosen"] - frame["tokens_rejected"]
    traces = [
        go.Scatter(
            x=diff[mask],
            y=frame.loc[mask, "margin"],
            mode="markers",
            name=name,
            marker_color=c,
            customdata=frame.loc[mask, "pair_id"],
            hovertemplate="%{customdata}: %{x:+d} tokens, margin %{y:+.4f}<extra></extra>",
        )
        for name, mask, c in (("right", right, RIGHT), ("wrong", ~right, WRONG))
    ]
    rho = report["length"]["margin_vs_length"]
    title = "Margin vs. length" + (f" (Spearman {rho['spearman']:+.2f})" if rho else "")
    return base_figure(
        traces, title, 360, xaxis={"title": {"text": "tokens, chosen − rejected"}}, yaxis={"title": {"text": "margin"}}
    )
