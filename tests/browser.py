"""What the headless-Chromium tests share: where the browser is, the Compare tab's charts, a scored page, and the
clipping check."""

from __future__ import annotations

import shutil
import time
from collections import deque
from pathlib import Path

from playwright.sync_api import expect

from .conftest import CARD_PROMPT, CARD_RESPONSES

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
PLOTS = {  # elem_id: (trace count, points in the first trace)
    "plot-scores": (1, 3),
    "plot-heatmap": (1, 19),
    "plot-gating": (2, 19),
    "plot-contributions": (3, 19),
    "plot-helpsteer": (3, 5),
    "plot-pairwise": (1, 19),
    "plot-what-if": (2, 3),
    "plot-bars": (3, 19),
    "plot-transform": (1, 19),
}


# Every wait is for a condition, with a deadline that holds on a busy machine (a page's first render took over 30 s,
# Playwright's default, with two other processes keeping both cores busy); a passing wait returns at once.
WAIT_MS = 120_000
expect.set_options(timeout=60_000)


class PatientBrowser:
    """The launched browser, whose new pages wait up to WAIT_MS for what a test waits on. It keeps its pages' last
    console lines and failed requests (`said`), which a failed test's report shows (conftest.py)."""

    def __init__(self, browser):
        self._browser = browser
        self.said: deque[str] = deque(maxlen=60)

    def new_page(self, **options):
        page = self._browser.new_page(**options)
        page.set_default_timeout(WAIT_MS)
        note = lambda text: self.said.append(f"{time.strftime('%T')} {text[:300]}")  # noqa: E731
        page.on("console", lambda m: note(f"console {m.type}: {m.text}"))
        page.on("pageerror", lambda e: note(f"page error: {e}"))
        page.on("requestfailed", lambda r: note(f"{r.failure}: {r.method} {r.url}"))
        return page

    def __getattr__(self, name):
        return getattr(self._browser, name)


def plot_data(page, elem_id: str):
    return page.evaluate(
        # points per trace as plotly.js computed them (rows for a heatmap); arrays arrive base64-encoded
        """id => { const g = document.querySelector('#' + id + ' .js-plotly-plot');
                   return g ? g.calcdata.map(c => c[0].z ? c[0].z.length : c.length) : null; }""",
        elem_id,
    )


def open_app(page, app_url: str) -> None:
    """Open the app and wait for its first screen (the example, scored when the page opens) to be filled in: typing
    before that would race the page's own filling of the form."""
    page.goto(app_url)
    page.wait_for_function("() => document.getElementById('results')?.dataset.runs")


def runs(page) -> int:
    """How many times the Compare tab's results have been filled (the first screen counts one)."""
    return int(page.evaluate("document.getElementById('results')?.dataset.runs || 0"))


def press_score(page, before: int | None = None) -> None:
    """Press Score candidates and wait until the results answer it (not the ones on screen already)."""
    before = runs(page) if before is None else before
    page.click("#score-button")
    page.wait_for_function("n => Number(document.getElementById('results').dataset.runs) > n", arg=before)


def card_scored(browser, app_url, width: int = 1300, height: int = 1000, responses=CARD_RESPONSES):
    """A new page at this size with the model card's example typed in and Score pressed (and answered)."""
    page = browser.new_page(viewport={"width": width, "height": height})
    open_app(page, app_url)
    page.fill("#prompt textarea", CARD_PROMPT)
    for letter, text in zip("ABC", responses):
        page.fill(f"#candidate-{letter} textarea", text)
    press_score(page)
    return page


CLIPPED_JS = """root => {
  const out = [], name = el => (el.closest('[id]') || {}).id;
  // shown: laid out and visible (Gradio's table keeps invisible sizing rows)
  const shown = el => el.offsetParent !== null && getComputedStyle(el).visibility === 'visible';
  // a table, a cell or a title whose content is wider than its box (hidden or behind a scroll bar)
  for (const el of document.querySelectorAll(root + ' *')) {
    const titled = 'table, .table-wrap, [data-testid=block-label], [data-testid=block-info], .label-wrap';
    if (!shown(el) || !el.closest(titled)) continue;
    const ox = getComputedStyle(el).overflowX;
    if (ox !== 'visible' && el.scrollWidth > el.clientWidth + 1)
      out.push(['hidden', name(el), el.className.toString()]);
  }
  // text that spills out of its table cell
  for (const cell of document.querySelectorAll(root + ' td, ' + root + ' th')) {
    if (!shown(cell)) continue;
    const box = cell.getBoundingClientRect();
    for (const t of cell.querySelectorAll('span, div')) {
      const r = t.getBoundingClientRect();
      if (r.width && (r.right > box.right + 1 || r.left < box.left - 1)) out.push(['spills', name(cell), t.innerText]);
    }
  }
  // chart titles, axis labels and legends outside their chart
  for (const plot of document.querySelectorAll(root + ' .js-plotly-plot')) {
    if (!shown(plot)) continue;
    const box = plot.querySelector('.main-svg').getBoundingClientRect();
    const texts = '.gtitle, .xtick text, .ytick text, .legendtext, .g-xtitle text, .g-ytitle text';
    for (const t of plot.querySelectorAll(texts)) {
      const r = t.getBoundingClientRect();
      const outside = r.left < box.left - 1 || r.right > box.right + 1
        || r.top < box.top - 1 || r.bottom > box.bottom + 1;
      if (r.width && outside)
        out.push(['outside chart', name(plot), t.textContent]);
    }
  }
  return out;
}"""


def example_scored(browser, app_url, width: int, height: int, name: str | None = None):
    """A new page at this size with an example of assets/examples.json (the first, the model card's, by default)
    picked from the "Start from an example" menu and Score pressed; returns (page, example) once scored."""
    import json

    examples = json.loads((Path(__file__).resolve().parent.parent / "assets" / "examples.json").read_text("utf-8"))
    example = next(e for e in examples if e["name"] == name) if name else examples[0]
    page = browser.new_page(viewport={"width": width, "height": height})
    open_app(page, app_url)
    page.get_by_label("Start from an example").click()
    page.get_by_role("option", name=example["name"], exact=True).click()
    page.wait_for_function("t => document.querySelector('#prompt textarea').value === t", arg=example["prompt"])
    press_score(page)
    return page, example


def screenshot_between(page, top: str, bottom: str, path: Path, width: int) -> None:
    """A full-width screenshot from the top of `top` to the bottom of `bottom` (CSS selectors), 20 px around."""
    a, b = page.locator(top).bounding_box(), page.locator(bottom).bounding_box()
    page.screenshot(path=str(path), full_page=True,
                    clip={"x": 0, "y": a["y"] - 20 + page.evaluate("window.scrollY"), "width": width,
                          "height": b["y"] + b["height"] - a["y"] + 40})  # fmt: skip


OVERFLOW_JS = """root => {
  // shown elements under root that reach past the right edge of the screen, or whose text is wider than their box
  const out = [], name = el => (el.closest('[id]') || {}).id;
  for (const el of document.querySelectorAll(root + ' *')) {
    if (el.offsetParent === null || el.closest('.js-plotly-plot, ul.options')) continue;
    const r = el.getBoundingClientRect();
    if (r.width && r.right > window.innerWidth + 1) out.push(['past the screen', name(el), el.className.toString()]);
    else if (el.clientWidth && el.scrollWidth > el.clientWidth + 1)
      out.push(['wider than its box', name(el), el.className.toString()]);
  }
  return out;
}"""
