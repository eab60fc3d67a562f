"""Plotly figures of an evaluation report (the Evaluate tab, and annotation labels taken as preference pairs), and of
a probe report (the Probe tab: probing.probe_report).

Built from the reports' plain data (evaluation.report, probing.probe_report) and the per-pair table; same look as
figures.py. Text from a user's file (its name, subset names, pair ids) goes in through figures.literal: shown as typed,
never as markup.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figures import GRID, GROUP_COLOURS, base_figure, literal, short
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


def axis_labels(names: list[str], chars: int = 28) -> list[str]:
    """Category labels that fit beside a chart: each name cut to `chars` (in full in the hover text), shown as
    typed, and still one category per name (a cut that repeats an earlier label gets its place number)."""
    labels, seen = [], set()
    for k, name in enumerate(names):
        label = short(str(name), chars)
        label = label if label not in seen else f"{label} ({k + 1})"
        seen.add(label)
        labels.append(label)
    return labels


def subset_accuracy(report: dict) -> go.Figure:
    """Accuracy overall and per subset with 95% Wilson intervals, worst subset last, each subset's n in its label,
    and beside each bar the accuracy of the rule "pick the longer answer" (a diamond)."""
    overall = {**report["overall"], **report["baselines"]}
    rows = [("all pairs", overall)] + sorted(report["subsets"].items(), key=lambda kv: -kv[1]["accuracy"])
    stats = [s for _, s in rows]
    labels = [f"{label} (n={s['n']})" for label, s in zip(axis_labels([name for name, _ in rows]), stats)]
    bar = go.Bar(
        y=labels,
        x=[s["accuracy"] for s in stats],
        orientation="h",
        name="the model",
        error_x=_interval(stats),
        marker_color=["#2f6fdb"] + ["#8c96a8"] * (len(rows) - 1),
        customdata=[[s["right"], s["n"], literal(name)] for (name, _), s in zip(rows, stats)],
        hovertemplate="%{customdata[2]}: %{x:.1%} (%{customdata[0]} of %{customdata[1]})<extra></extra>",
    )
    length = go.Scatter(
        y=labels,
        x=[s["length_only"]["accuracy"] for s in stats],
        mode="markers",
        name="pick the longer answer",
        marker={"symbol": "diamond", "size": 10, "color": "#b45309", "line": {"width": 1, "color": "white"}},
        hovertemplate="pick the longer answer: %{x:.1%}<extra></extra>",
    )
    return base_figure(
        [bar, length],
        "Picks the chosen response",
        max(260, 110 + 28 * len(rows)),
        xaxis={"range": [0, 1.03], "tickvals": [0, 0.2, 0.4, 0.6, 0.8, 1], "tickformat": ".0%"},
        yaxis={"autorange": "reversed", "type": "category"},
    )


MAX_HISTOGRAMS = 6
"""Subsets drawn in their own margin histogram; the others share the last one."""


def margins(frame) -> go.Figure:
    """How far the model's margin (chosen - rejected) is from a tie, per subset (the largest first, the rest
    together), right and wrong decisions in their colours; the wrong side (margin <= 0) shaded."""
    counts = frame["subset"].value_counts()
    named = list(counts.index[: MAX_HISTOGRAMS - 1]) if len(counts) > MAX_HISTOGRAMS else list(counts.index)
    groups = [(name, frame["subset"] == name) for name in named]
    if len(counts) > len(named):
        groups.append((f"{len(counts) - len(named)} other subsets", ~frame["subset"].isin(named)))
    right = frame["right"].astype(bool)
    titles = [f"{short(str(name), 28)} (n={int(mask.sum())})" for name, mask in groups]
    fig = make_subplots(rows=len(groups), cols=1, subplot_titles=titles, shared_xaxes=True,
                        vertical_spacing=min(0.12, 0.5 / max(1, len(groups))))  # fmt: skip
    for row, (_, mask) in enumerate(groups, start=1):
        for name, side, c in (("right", right, RIGHT), ("wrong", ~right, WRONG)):
            fig.add_trace(go.Histogram(x=frame.loc[mask & side, "margin"], name=name, marker_color=c, opacity=0.8,
                                       nbinsx=30, legendgroup=name, showlegend=row == 1,
                                       hovertemplate="margin %{x}: %{y} pairs<extra>" + name + "</extra>"),
                          row=row, col=1)  # fmt: skip
    lowest = float(min(frame["margin"].min(), 0))
    fig.update_layout(base_figure([], "Margins by subset", 190 + 150 * len(groups), barmode="overlay").layout)
    # the legend under the last axis and its title, clear of the subplot titles: about 60 px below the plot area
    fig.update_layout(legend={"yanchor": "top", "y": -60 / (150 * len(groups))}, margin={"b": 84})
    fig.update_xaxes(title_text="chosen minus rejected score", row=len(groups), col=1)
    fig.update_xaxes(GRID)
    fig.update_yaxes(GRID)
    fig.add_vrect(x0=lowest, x1=0, fillcolor=WRONG, opacity=0.07, line_width=0)
    fig.update_annotations(font_size=11)
    return fig


def reliability(report: dict) -> go.Figure:
    """The reliability diagram: in 10 bins of the model's preference probability, how often the answer it favours
    was the one people chose (each pair counted in both orders); the diagonal is perfect calibration."""
    cal = report["calibration"]
    bins = [b for b in cal["bins"] if b["count"]]
    diagonal = go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="calibrated", line={"dash": "dot",
                          "color": "#8c96a8"}, hoverinfo="skip")  # fmt: skip
    largest = max([b["count"] for b in bins] or [1])
    points = go.Scatter(
        x=[b["mean_probability"] for b in bins],
        y=[b["frequency"] for b in bins],
        mode="lines+markers",
        name="the model",
        marker={"size": [6 + 14 * (b["count"] / largest) ** 0.5 for b in bins], "color": "#2f6fdb"},
        customdata=[b["count"] for b in bins],
        hovertemplate="said %{x:.2f}, was right %{y:.1%} (%{customdata} judgements)<extra></extra>",
    )
    return base_figure(
        [diagonal, points],
        f"Calibration: ECE {report['ece']:.3f}, Brier {report['brier']:.3f}",
        360,
        xaxis={"range": [0, 1], "title": {"text": "model's probability, sigmoid(margin)"}},
        yaxis={"range": [0, 1], "title": {"text": "how often it was right"}, "tickformat": ".0%"},
    )


def rm_bench_matrix(report: dict) -> go.Figure:
    """RM-Bench's 3x3 accuracy matrix: chosen answer's style (rows) against the rejected answer's (columns); below
    the diagonal is Easy, the diagonal Normal, above it Hard."""
    rm = report["prompts"]["rm_bench"]
    styles = list(rm["styles"])
    z = rm["matrix"]
    carried = [[", ".join(cell) or "none" for cell in row] for row in rm["wrong_objectives"]]
    short = [STYLE_NAMES.get(s, s) for s in styles]
    heat = go.Heatmap(z=z, x=short, y=short, zmin=0, zmax=1, colorscale="RdYlGn", showscale=False,
                      text=[[f"{v:.0%}" for v in row] for row in z], texttemplate="%{text}", customdata=carried,
                      hovertemplate="chosen %{y}, rejected %{x}: %{z:.1%} right<br>wrong decisions carried by: "
                                    "%{customdata}<extra></extra>")  # fmt: skip
    return base_figure(
        [heat],
        "RM-Bench: accuracy by style",
        360,
        xaxis={"title": {"text": "rejected answer's style"}, "side": "bottom", "showgrid": False},
        yaxis={"title": {"text": "chosen answer's style"}, "autorange": "reversed", "showgrid": False},
    )


STYLE_NAMES = {"concise": "concise", "detailed plain": "plain", "detailed markdown": "markdown"}
"""RM-Bench's styles as the matrix labels them (concise, detailed plain text, detailed markdown)."""


def fitted_weights(report: dict) -> go.Figure:
    """Per objective, the weight fitted to the labels beside the model's own mean coefficient, on one scale."""
    rows = report["fit"]["objectives"]
    y = [r["label"] for r in rows]
    traces = [
        go.Bar(y=y, x=[r[key] for r in rows], name=name, orientation="h", marker_color=c,
               hovertemplate="%{y}: %{x:+.3f}<extra>%{fullData.name}</extra>")
        for name, key, c in (("fitted to the labels", "fitted", "#b45309"), ("the model (mean)", "model", "#2f6fdb"))
    ]  # fmt: skip
    return base_figure(traces, "Weights: the labels' vs. the model's", 560, barmode="group",
                       yaxis={"autorange": "reversed", "type": "category"})  # fmt: skip


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
            customdata=[literal(i) for i in frame.loc[mask, "pair_id"]],
            hovertemplate="%{customdata}: %{x:+d} tokens, margin %{y:+.4f}<extra></extra>",
        )
        for name, mask, c in (("right", right, RIGHT), ("wrong", ~right, WRONG))
    ]
    rho = report["length"]["margin_vs_length"]
    title = "Margin vs. length" + (f" (Spearman {rho['spearman']:+.2f})" if rho else "")
    return base_figure(
        traces, title, 360, xaxis={"title": {"text": "tokens, chosen − rejected"}}, yaxis={"title": {"text": "margin"}}
    )


# ------------------------------------------------------------------------------------------------ probe reports

PROBE_GROUP_COLOURS = {"Formatting": "#2f6fdb", "Tone": "#b45309", "Length": "#7c3aed", "Conversation": "#047857"}
"""One colour per probe group (probes.Probe.group), in every probe chart."""
FLIP, RESCUE = "#d1495b", "#2f9e5b"


def _titled(title: str, name: str, note: str = "") -> str:
    """The title, and under it a note and the file's name (as typed)."""
    below = " · ".join(x for x in (note, literal(name)) if x)
    return f"{title}<br><sub>{below}</sub>" if below else title


def _error(values: list, low: list, high: list) -> dict:
    """Asymmetric error bars from bounds; none where a bound is missing (None or NaN)."""

    def gap(a, b):
        return None if a is None or b is None or a != a or b != b else a - b

    return {"type": "data", "symmetric": False, "color": "#475569", "thickness": 1.5,
            "array": [gap(h, v) for v, h in zip(values, high)],
            "arrayminus": [gap(v, lo) for v, lo in zip(values, low)]}  # fmt: skip


def probe_deltas(report: dict, name: str = "") -> go.Figure:
    """Mean Δscore per applied probe with its 95% t-interval, coloured by group, in library order."""
    rows = [e for e in report["probes"] if e["applied"]]
    means = [e["mean_delta"] for e in rows]
    bar = go.Bar(
        y=[literal(e["label"]) for e in rows],
        x=means,
        orientation="h",
        error_x=_error(means, [e["low"] for e in rows], [e["high"] for e in rows]),
        marker_color=[PROBE_GROUP_COLOURS.get(e["group"], "#8c96a8") for e in rows],
        customdata=[[e["applied"], literal(e["group"])] for e in rows],
        hovertemplate="%{y} (%{customdata[1]}): mean Δscore %{x:+.5f} over %{customdata[0]} answers<extra></extra>",
    )
    key = " · ".join(f'<span style="color:{c}">{g}</span>' for g, c in PROBE_GROUP_COLOURS.items())
    return base_figure(
        [bar],
        _titled(f"Mean Δscore, 95% interval<br><sub>{key}</sub>", name),
        max(260, 130 + 26 * len(rows)),
        xaxis={"title": {"text": "Δscore (edited − original)"}, "zeroline": True},
        yaxis={"autorange": "reversed", "type": "category"},
        showlegend=False,
    )


def probe_parts(report: dict, name: str = "") -> go.Figure:
    """Probes (rows, library order) × the 19 objectives: each objective's mean part of Δscore (the parts of one
    probe add up to its mean Δscore); a probe that never applied is an empty row."""
    rows = report["probes"]
    z = [e.get("mean_parts") or [None] * len(LABELS) for e in rows]
    ticks = [f'<span style="color:{GROUP_COLOURS.get(o.group, "#334155")}">{o.label}</span>' for o in OBJECTIVES]
    names = [literal(e["label"]) + ("" if e["applied"] else " (not applied)") for e in rows]
    finite = [abs(v) for r in z for v in r if v is not None]
    top = max(finite, default=0.0) or 1.0
    heat = go.Heatmap(
        z=z,
        x=ticks,
        y=names,
        customdata=[[o.label for o in OBJECTIVES]] * len(rows),
        colorscale="RdBu",
        zmin=-top,
        zmax=top,
        zmid=0,
        xgap=1,
        ygap=1,
        colorbar={"thickness": 8, "nticks": 5, "tickformat": "+.2~g", "xpad": 2},  # narrow: the cells get the width
        hovertemplate="%{y}<br>%{customdata}: %{z:+.5f}<extra></extra>",
    )
    key = " · ".join(f'<span style="color:{c}">{g}</span>' for g, c in GROUP_COLOURS.items())
    return base_figure(
        [heat],
        _titled(f"Mean part of Δscore by objective<br><sub>{key}</sub>", name, "blue raises, red lowers"),
        max(320, 230 + 26 * len(rows)),
        xaxis={"type": "category", "tickangle": -60, "showgrid": False},
        yaxis={"autorange": "reversed", "type": "category", "showgrid": False},
    )


def probe_flips(report: dict, name: str = "") -> go.Figure:
    """On preference pairs, per probe: the flip rate (its edit of the rejected answer of a pair the model got right
    makes it win) and the rescue rate (its edit of the chosen answer of a pair the model got wrong makes it win),
    as dots with 95% Wilson intervals (the counts on hover, and in the summary table); no dot where no pair
    qualified."""
    rows = report["probes"]
    traces = []
    for key, label, c in (("flip", "flips: edited rejected now wins", FLIP),
                          ("rescue", "rescues: edited chosen now wins", RESCUE)):  # fmt: skip
        stats = [e[key] for e in rows]
        rates = [s["rate"] for s in stats]
        traces.append(
            go.Scatter(
                y=[literal(e["label"]) for e in rows],
                x=rates,
                name=label,
                orientation="h",  # scattermode "group" then sets the two apart along y, as grouped bars
                mode="markers",
                marker={"color": c, "size": 9},
                error_x={**_error(rates, [s["low"] for s in stats], [s["high"] for s in stats]), "color": c},
                customdata=[[s["k"], s["n"]] for s in stats],
                hovertemplate="%{y}: %{x:.0%} (%{customdata[0]} of %{customdata[1]} pairs)"
                f"<extra>{key}s</extra>",
            )
        )
    return base_figure(
        traces,
        _titled("Pairs turned around, 95% interval", name),
        max(300, 150 + 34 * len(rows)),
        xaxis={"range": [-0.03, 1.03], "tickformat": ".0%"},
        yaxis={"autorange": "reversed", "type": "category"},
        scattermode="group",
        scattergap=0.5,
        legend={"orientation": "h", "yanchor": "top", "y": -0.06, "x": 0, "font": {"size": 10}},
    )
