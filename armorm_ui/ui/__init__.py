"""The web app: build_demo(scorer, config) -> gr.Blocks, one tab per module and the API beside them.

    compare.py   the Compare tab (form, verdict, charts, attribution, what-if)
    evaluate.py  the Evaluate tab: preference pairs in, agreement report out
    probe.py     the Probe tab: candidates or pairs in, how far each style edit moves the score, and why
    views.py     what Compare shows, as pure functions of plain data
    batch.py     the Batch tab (a file of conversations and candidates)
    annotate.py  the Annotate tab: sign-in, a file's items, labels by key or button
    review.py    its review queue, the owner's settings, and agreement with the model
    annotate_views.py, annotate_db.py  what the tab shows (pure), and the label database as its handlers reach it
    api.py       /score and /attribute
    handlers.py  what every handler goes through: refusals as messages, cancellable model calls

The scorer is shared and only reached through the queue's one model slot; per-visitor data lives in gr.State.
"""

from __future__ import annotations

import gradio as gr

from ..label_store import LabelStore
from .annotate import build_annotate_tab
from .api import add_api
from .batch import build_batch_tab
from .compare import build_compare_tab
from .evaluate import build_evaluate_tab
from .probe import build_probe_tab
from .views import ASSETS, asset

THEME = gr.themes.Default(
    font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
)
"""System fonts: nothing is fetched from a font service (the app works offline), and bold text is a real bold
face of the same family rather than a fallback."""


def build_demo(scorer, config, store: LabelStore | None = None) -> gr.Blocks:
    with gr.Blocks(title="ArmoRM Explorer", delete_cache=(3600, 3600), analytics_enabled=False) as demo:
        gr.Markdown("# ArmoRM Explorer\nWhich response does ArmoRM prefer, and why, objective by objective.",
                    elem_id="page-title")  # fmt: skip
        if scorer.is_demo:  # its first sentence alone on a phone: the rest is a tap away
            gr.HTML(asset("demo_banner.html"), elem_classes="demo-banner", elem_id="demo-banner")
        with gr.Tabs() as tabs:
            with gr.Tab("Compare", id="compare", elem_id="compare-tab"):
                compare = build_compare_tab(scorer, config)
            with gr.Tab("Evaluate", id="evaluate", elem_id="evaluate-tab"):
                build_evaluate_tab(scorer, config, compare, tabs)
            with gr.Tab("Probe", id="probe", elem_id="probe-tab"):
                build_probe_tab(scorer, config)
            with gr.Tab("Batch", id="batch", elem_id="batch-tab"):
                build_batch_tab(scorer, config)
            with gr.Tab("Annotate", id="annotate", elem_id="annotate-tab"):
                build_annotate_tab(scorer, store or config.label_store(), config)
        add_api(scorer)
        compare.on_load(demo)
    return demo


def launch_options() -> dict:
    """Look and feel for demo.launch (Gradio 6 takes them there)."""
    return {"theme": THEME, "css_paths": [ASSETS / "style.css"], "js": asset("page.js")}


__all__ = ["ASSETS", "build_demo", "launch_options"]
