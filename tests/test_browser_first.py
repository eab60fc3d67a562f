"""A visitor's first minute in a real headless Chromium: the first screen already answers, a share link reopens a
comparison in another browser, and the form says what it did (clamped weights, pasted conversations, Stop)."""

from __future__ import annotations

import json

import pytest

from .browser import ARTIFACTS, CLIPPED_JS, open_app, press_score, runs

pytestmark = pytest.mark.browser
SIZES = [(1440, 900), (390, 844)]
IN_VIEW_JS = """sel => { const r = document.querySelector(sel).getBoundingClientRect();
  return r.height > 0 && r.top >= 0 && r.bottom <= innerHeight && r.left >= 0 && r.right <= innerWidth; }"""
EMPTY_FRAMES_JS = """() => [...document.querySelectorAll('[id^=plot-]')]
  .filter(p => p.offsetParent !== null && !p.querySelector('.js-plotly-plot .main-svg')).map(p => p.id)"""


@pytest.mark.parametrize("size", SIZES, ids=["desktop", "phone"])
def test_first_screen_answers(browser, app_url, size):
    width, height = size
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(app_url)
    assert page.evaluate(EMPTY_FRAMES_JS) == []  # before the example is in: no chart frame at all
    page.wait_for_function("() => document.getElementById('results')?.dataset.runs")
    page.wait_for_selector("#plot-scores .js-plotly-plot .main-svg")
    summary = page.inner_text("#summary")
    assert "example" in summary and "beats" in summary, summary  # the verdict, marked as an example's
    assert page.evaluate(IN_VIEW_JS, "#summary"), "the verdict needs scrolling"
    assert page.evaluate(IN_VIEW_JS, "#score-button"), "the Score button is off screen"
    assert "random weights" in page.inner_text("#demo-banner")
    assert page.evaluate(EMPTY_FRAMES_JS) == []  # every chart shown has something in it
    assert page.locator("#share-token").is_hidden() and page.locator("#share-link").is_hidden()
    tabs = page.get_by_role("tab")
    assert tabs.all_inner_texts() == ["Compare", "Evaluate", "Probe", "Batch", "Annotate"]  # none behind "more"
    for name in ["Evaluate", "Probe", "Batch", "Annotate", "Compare"]:
        assert page.evaluate(IN_VIEW_JS, f"[role=tab][data-tab-id={name.lower()}]"), name
        page.get_by_role("tab", name=name).click()  # one tap
        page.wait_for_selector(f"#{name.lower()}-tab", state="visible")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"first-screen-{width}.png"))
    page.close()


def test_share_link_reopens_the_comparison(browser, app_url):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    open_app(page, app_url)
    page.fill("#candidate-C textarea", "Lovely, gorgeous, stunning — and, in Arabic, جميل.")
    press_score(page)
    box = page.locator("#weight-helpsteer-verbosity input[type=number]")
    box.fill("2.5")
    box.press("Enter")
    page.wait_for_function("() => document.querySelector('#what-if-table').innerText.length > 0")
    verdict = page.inner_text("#summary")
    page.click("#share-button")
    link_js = "document.querySelector('#share-link textarea, #share-link input')?.value || ''"
    page.wait_for_function(f"() => ({link_js}).includes('#share=')")
    link = page.evaluate(link_js)
    assert page.evaluate("location.href") == link  # the address bar holds it too

    other = browser.new_context(viewport={"width": 390, "height": 844})  # another visitor, on a phone
    opened = other.new_page()
    opened.set_default_timeout(120_000)
    opened.goto(link)
    opened.wait_for_function("() => document.getElementById('summary')?.innerText.startsWith('Shared comparison')")
    # read only now: the redraw for 2.5 went to the server before the link was opened, so it has landed by now
    what_if = page.evaluate("document.querySelector('#what-if-table').innerText")
    page.close()
    assert opened.inner_text("#summary").split(":", 1)[1].strip() == verdict.strip()
    assert opened.input_value("#candidate-C textarea").endswith("جميل.")
    assert opened.input_value("#weight-helpsteer-verbosity input[type=number]") == "2.5"
    opened.wait_for_function("w => document.querySelector('#what-if-table').innerText === w", arg=what_if)
    # a damaged link says so and shows the example instead
    opened.goto(link[:-40] + "#share=not-a-comparison")
    opened.reload()
    opened.wait_for_selector("#form-message:has-text('This share link could not be opened')")
    assert "example" in opened.inner_text("#summary")
    other.close()


def test_what_if_out_of_range_is_clamped_and_said(browser, app_url):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    open_app(page, app_url)
    chart_js = "JSON.stringify(document.querySelector('#plot-what-if .js-plotly-plot').calcdata[1].map(c => c.s))"
    box = page.locator("#weight-helpsteer-helpfulness input[type=number]")
    page.wait_for_selector("#plot-what-if .js-plotly-plot .main-svg")
    at_one = page.evaluate(chart_js)
    box.fill("2")
    box.press("Enter")
    page.wait_for_function(f"c => {chart_js} !== c", arg=at_one)
    at_two = page.evaluate(chart_js)
    box.fill("7")
    box.press("Enter")
    page.wait_for_selector("#weights-note:has-text('Weights go from 0 to 3')")
    assert "Helpfulness 7 → 3" in page.inner_text("#weights-note")
    page.wait_for_function("() => document.querySelector('#weight-helpsteer-helpfulness input[type=number]')"
                           ".value === '3'")  # fmt: skip
    page.wait_for_function(f"c => {chart_js} !== c", arg=at_two)
    at_seven = page.evaluate(chart_js)
    box.fill("2")  # back to 2, then 3 typed in range: the chart drawn for 7 is the chart for 3
    box.press("Enter")
    page.wait_for_function(f"c => {chart_js} === c", arg=at_two)
    box.fill("3")
    box.press("Enter")
    page.wait_for_function(f"c => {chart_js} === c", arg=at_seven)
    page.wait_for_function("() => !document.getElementById('weights-note').innerText.trim()")
    # one objective alone, then back to the model's weights
    page.locator("#only-objective input").click()
    page.get_by_role("option", name="Verbosity", exact=True).click()
    page.wait_for_function("() => [...document.querySelectorAll('[id^=weight-] input[type=number]')]"
                           ".map(b => b.value).filter(v => v === '1').length === 1")  # fmt: skip
    assert page.input_value("#weight-helpsteer-verbosity input[type=number]") == "1"
    page.click("#reset-weights")
    page.wait_for_function("() => [...document.querySelectorAll('[id^=weight-] input[type=number]')]"
                           ".every(b => b.value === '1')")  # fmt: skip
    assert not page.locator(".toast-body").count()  # nothing but the words beside the boxes


def test_pasted_conversation_fills_the_turns(browser, app_url):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    open_app(page, app_url)
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a prime."},
                {"role": "assistant", "content": "Seven."},
                {"role": "user", "content": "And an even one?"}]  # fmt: skip
    page.fill("#prompt textarea", json.dumps(messages))
    press_score(page)
    assert page.input_value("#prompt textarea") == "And an even one?"
    assert page.input_value("#system textarea") == "Answer briefly."
    cells = page.locator("#turns [role=gridcell]").all_inner_texts()
    assert [c.strip() for c in cells][:4] == ["user", "Name a prime.", "assistant", "Seven."]
    assert "JSON list of 4 messages" in page.inner_text("#form-message")
    assert page.evaluate(CLIPPED_JS, "#turns") == []  # whole turns: nothing hidden behind a scroll bar
    # a transcript is read the same way (into a form without earlier turns: the example's)
    page.get_by_label("Start from an example").click()
    page.get_by_role("option", name='Synonyms for "beautiful" (model card)', exact=True).click()
    page.wait_for_function("() => document.querySelector('#prompt textarea').value.startsWith('What are')")
    page.fill("#prompt textarea", "User: Name a prime.\nAssistant: Seven.\nUser: And an even one?")
    press_score(page)
    assert page.input_value("#prompt textarea") == "And an even one?"
    assert "transcript of 3 turns" in page.inner_text("#form-message")


def test_quick_clicks_stop_and_direction(browser, app_url):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    open_app(page, app_url)
    for _ in range(5):  # as fast as a mouse can: every click counts
        page.click("#add-candidate")
    page.wait_for_selector("#candidate-H textarea", state="visible")
    shown = page.evaluate("[...document.querySelectorAll('.candidate-box')].filter(e => e.offsetParent).length")
    assert shown == 8
    # Stop says what it did
    page.click("#stop-button")
    page.wait_for_selector("#form-message:has-text('Stopped')")
    assert runs(page) == 1
    # Arabic typed into a box reads right to left
    page.fill("#prompt textarea", "ما هي عاصمة أستراليا؟")
    assert page.get_attribute("#prompt textarea", "dir") == "auto"
    assert page.evaluate("getComputedStyle(document.querySelector('#prompt textarea')).direction") == "rtl"


def test_a_merged_attribution_says_so(browser, app_url):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    open_app(page, app_url)
    page.fill("#candidate-A textarea", " ".join(f"Point {i} is short." for i in range(60)))
    press_score(page)
    page.get_by_text("Which parts drive a score").click()
    page.click("#seg-pick input")
    page.get_by_role("option", name="A", exact=True).click()
    page.click("#seg-run")
    page.wait_for_selector("#seg-html .seg")
    assert "This answer has 60 parts" in page.inner_text("#seg-html .seg-merged")
