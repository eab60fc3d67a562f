"""The tabs that take a file (Batch file, Evaluate, Probe) in headless Chromium: nothing on screen belongs to another
file (a new one takes the old results and downloads away at once, before any scoring), Batch previews what it
scored, Stop says what it stopped, and no chart or table frame shows before there is something in it."""

from __future__ import annotations

import json
import re
import uuid

import pandas as pd
import pytest

from .browser import ARTIFACTS, CLIPPED_JS

pytestmark = pytest.mark.browser

FRAMES = {  # tab: its run button, what shows only with a result (charts, tables), and its downloads
    "Evaluate": ("#eval-run", ["#eval-results", "#eval-table", "[id^=plot-eval-]"],
                 ["#eval-table-file", "#eval-report-file"]),
    "Probe": ("#probe-run", ["#probe-results", "#probe-table", "[id^=plot-probe-]"],
              ["#probe-table-file", "#probe-report-file"]),
    "Batch": ("#batch-run", ["#batch-preview"], ["#batch-download"]),
}  # fmt: skip
SHOWN_JS = """sel => [...document.querySelectorAll(sel)].filter(e => e.offsetParent !== null).map(e => e.id)"""


def message(page, elem_id: str) -> str:
    """The text of a tab's message (a Markdown block), without the timer of its progress tracker."""
    return page.evaluate("id => document.querySelector(`#${id} [data-testid=markdown]`)?.innerText.trim() ?? ''",
                         elem_id)  # fmt: skip


EMPTY_JS = "id => (document.querySelector(`#${id} [data-testid=markdown]`)?.innerText.trim() ?? '') === ''"


def uploaded(page, elem_id: str, name: str) -> None:
    page.wait_for_selector(f"#{elem_id} td.filename[aria-label={name!r}]")


def opened(browser, app_url, tab: str, width: int = 1440, height: int = 900):
    page = browser.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(app_url)
    page.get_by_role("tab", name=tab).click()
    return page


def nothing_shown(page, tab: str) -> None:
    """No chart, table or results area of the tab is on screen, and its downloads are disabled (or hidden)."""
    _, frames, downloads = FRAMES[tab]
    assert page.evaluate(SHOWN_JS, ", ".join(frames)) == [], tab
    for sel in downloads:
        for button in page.locator(sel).all():
            assert button.is_hidden() or button.is_disabled(), (tab, sel)


def test_no_empty_frames_before_a_run(browser, app_url):
    page = opened(browser, app_url, "Evaluate")
    for tab in FRAMES:
        page.get_by_role("tab", name=tab).click()
        page.wait_for_selector(FRAMES[tab][0], state="visible")
        nothing_shown(page, tab)
    assert message(page, "batch-summary") == "" and not page.errors, page.errors


def batch_file(path, n: int, tag: str = "", long: bool = False):
    """A wide batch file of n items (their texts carry `tag`: scores of another test's items are not cached)."""
    rows = [{"item_id": f"{tag}{i}", "prompt": f"Question {i} {tag}: <b>why</b> is the **sky** blue?",
             "response_1": f"Because of Rayleigh scattering, {tag} {i}. " * (12 if long else 1),
             "response_2": f"No idea {i}.", "response_3": "Blue light scatters more than red light does."}
            for i in range(n)]  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)
    return rows


def test_a_new_file_takes_the_old_results_away(browser, app_url, tmp_path):
    """Score a file, then choose another: the summary, preview and download go at once, before anything is scored;
    the new file refused, nothing of the old one comes back."""
    tag = uuid.uuid4().hex[:6]
    first, bad = tmp_path / "first.csv", tmp_path / "bad.csv"
    batch_file(first, 3, tag)
    bad.write_text("prompt,response_1\nq,\n", encoding="utf-8")
    page = opened(browser, app_url, "Batch")
    page.set_input_files("#batch-upload input[type=file]", str(first))
    page.click("#batch-run")
    page.wait_for_selector("#batch-summary:has-text('Scored 3 items')")
    page.wait_for_function("() => !document.querySelector('#batch-download').disabled")

    page.click("#batch-upload button[aria-label=Clear]")  # another file: the old one's results go at once
    page.wait_for_function(EMPTY_JS, arg="batch-summary")
    nothing_shown(page, "Batch")
    assert page.inner_text("#batch-download").strip() == "Download results"
    page.set_input_files("#batch-upload input[type=file]", str(bad))
    uploaded(page, "batch-upload", "bad.csv")
    nothing_shown(page, "Batch")
    page.click("#batch-run")
    page.wait_for_selector("text=line 2: no responses")  # refused, with the reason
    nothing_shown(page, "Batch")
    assert "Scored" not in message(page, "batch-summary") and not page.errors, page.errors


def test_batch_previews_what_it_scored(browser, app_url, tmp_path):
    """A scored file's summary (its name as typed), a preview of its first items (their text as typed, the best
    answer and every score, as in the download) and its download; in the screen at desktop and phone widths."""
    tag = uuid.uuid4().hex[:6]
    small = tmp_path / "small *one* <b>.csv"
    rows = batch_file(small, 12, tag)
    page = opened(browser, app_url, "Batch")
    page.set_input_files("#batch-upload input[type=file]", str(small))
    page.click("#batch-run")
    page.wait_for_selector("#batch-preview", state="visible")
    assert "Scored 12 items (36 candidates) from small *one* <b>.csv." in message(page, "batch-summary")
    assert page.locator("#batch-summary em, #batch-summary b").count() == 0  # the name as typed, not as markup
    label = page.get_attribute("#batch-preview [role=grid]", "aria-label")
    assert "The first 5 of 12 items" in label, label
    page.wait_for_selector("#batch-preview [role=row][data-index='4']")  # the table draws the rows in view
    cells = page.evaluate("""() => [...document.querySelectorAll('#batch-preview [role=row][data-index]')]
        .map(r => [...r.querySelectorAll('[role=gridcell]')].map(c => c.innerText.trim()))""")
    assert len(cells) == 5 and cells[0][0] == f"{tag}0", cells
    assert cells[0][1] == rows[0]["prompt"] and page.locator("#batch-preview tbody b").count() == 0  # as typed
    assert re.fullmatch(r"[ABC]: .+", cells[0][2]) and len(re.findall(r"[ABC]\s[+-]\d\.\d{4}", cells[0][3])) == 3
    assert page.inner_text("#batch-download").strip() == "Download small one b-scored.csv"  # as the file is saved
    with page.expect_download() as download:
        page.click("#batch-download")
    scored = pd.read_csv(download.value.path(), dtype={"item_id": str})  # "71e0920" stays text
    assert len(scored) == 36 and scored["item_id"].iloc[0] == f"{tag}0"
    best = scored[scored["item_id"] == f"{tag}0"].sort_values("rank").iloc[0]
    assert cells[0][2].startswith(best["candidate"] + ":") and f"{best['score']:+.4f}" in cells[0][3]
    page.wait_for_timeout(300)  # the table has sized its columns
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "files-batch-scored.png"), full_page=True)
    assert page.evaluate(CLIPPED_JS, "#batch-preview") == []
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(500)
    assert page.evaluate(CLIPPED_JS, "#batch-preview") == []
    box = page.locator("#batch-preview").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    page.screenshot(path=str(ARTIFACTS / "files-batch-scored-phone.png"), full_page=True)
    assert not page.errors, page.errors


def test_evaluate_and_probe_reports_go_with_their_file(browser, app_url, tmp_path):
    """A report, then the file removed: its charts, tables and downloads go at once; in Evaluate a data set named
    instead takes the report away too."""
    tag = uuid.uuid4().hex[:6]
    rows = [{"id": f"p{i}", "subset": ["chat", "math"][i % 2], "prompt": f"Question {i} {tag}?",
             "chosen": f"A careful answer to {i}. " * (1 + i % 3), "rejected": f"Maybe {i}."}
            for i in range(6)]  # fmt: skip
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    page = opened(browser, app_url, "Evaluate")
    page.set_input_files("#eval-upload input[type=file]", str(path))
    page.click("#eval-run")
    page.wait_for_selector("#plot-eval-subsets .js-plotly-plot .main-svg")
    assert "of 6 pairs in pairs.jsonl" in message(page, "eval-summary")
    assert page.locator("#plot-eval-length").is_visible()
    assert not page.get_by_role("button", name="Download per-pair table (CSV)").is_disabled()
    page.click("#eval-upload button[aria-label=Clear]")
    page.wait_for_selector("#plot-eval-subsets", state="hidden")
    assert message(page, "eval-summary") == ""
    nothing_shown(page, "Evaluate")
    page.set_input_files("#eval-upload input[type=file]", str(path))
    page.click("#eval-run")
    page.wait_for_selector("#plot-eval-subsets", state="visible")
    page.click("#eval-upload button[aria-label=Clear]")
    page.fill("#eval-dataset input, #eval-dataset textarea", "allenai/reward-bench")
    page.wait_for_selector("#plot-eval-subsets", state="hidden")

    page.get_by_role("tab", name="Probe").click()
    page.set_input_files("#probe-upload input[type=file]", str(path))
    page.click("#probe-run")
    page.wait_for_selector("#plot-probe-deltas .js-plotly-plot .main-svg")
    assert page.locator("#probe-table").is_visible() and not page.locator("#probe-table-file").is_disabled()
    page.click("#probe-upload button[aria-label=Clear]")
    page.wait_for_selector("#plot-probe-deltas", state="hidden")
    assert message(page, "probe-summary") == ""
    nothing_shown(page, "Probe")
    assert not page.errors, page.errors
