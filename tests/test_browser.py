"""The Compare tab end to end in a real headless Chromium (Debian's), driven by Playwright: type, score, see every
chart; nothing clipped at desktop and phone widths. The other tabs: test_browser_tabs.py."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from gradio_client import Client
from playwright.sync_api import expect

from .browser import (
    ARTIFACTS,
    CLIPPED_JS,
    OVERFLOW_JS,
    PLOTS,
    card_scored,
    example_scored,
    open_app,
    plot_data,
    press_score,
    screenshot_between,
)
from .conftest import CARD_PROMPT, CARD_RESPONSES

pytestmark = pytest.mark.browser


def test_score_the_card_example(browser, app_url):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_app(page, app_url)
    assert "random weights" in page.inner_text("#demo-banner")
    page.fill("#prompt textarea", CARD_PROMPT)
    for letter, text in zip("ABC", CARD_RESPONSES):
        page.fill(f"#candidate-{letter} textarea", text)
    press_score(page)
    for elem_id in PLOTS:
        page.wait_for_selector(f"#{elem_id} .js-plotly-plot .main-svg")
    for elem_id, (n_traces, n_points) in PLOTS.items():
        sizes = plot_data(page, elem_id)
        assert sizes is not None and len(sizes) == n_traces, (elem_id, sizes)
        assert sizes[0] == n_points, (elem_id, sizes)
    # bars really drawn as SVG: 3 score bars, 19 gating + 19 coefficient bars
    assert page.locator("#plot-scores g.point").count() == 3
    assert page.locator("#plot-gating g.point").count() == 38
    assert page.locator("#plot-heatmap g.hm image").count() == 1  # heatmap cells are drawn as one image
    # the ranking table shows the API's scores in the API's order
    api = Client(app_url, verbose=False).predict(
        [{"role": "user", "content": CARD_PROMPT}], CARD_RESPONSES, api_name="/score"
    )
    rows = page.evaluate(
        """() => [...document.querySelectorAll('#ranking [role=row]')]
                 .map(r => [...r.querySelectorAll('[role=gridcell]')].map(c => c.innerText.trim()))"""
    )
    rows = [r for r in rows if r]
    order = np.argsort(-np.asarray(api["scores"]), kind="stable")
    assert [r[0] for r in rows] == ["ABC"[k] for k in order], rows
    np.testing.assert_allclose([float(r[1]) for r in rows], np.asarray(api["scores"])[order], atol=6e-6)
    # chart toolbars stay out of the way until the chart is hovered
    toolbar = page.locator("#plot-heatmap .modebar-container")
    page.mouse.move(0, 0)
    expect(toolbar).to_have_css("opacity", "0")
    page.hover("#plot-heatmap .js-plotly-plot")
    expect(toolbar).to_have_css("opacity", "1")
    # the pairwise view starts at winner vs runner-up; its heading follows the selection, never A over A
    abc = ["ABC"[k] for k in order]
    assert page.inner_text("#pair-title").strip() == f"Why {abc[0]} over {abc[1]}?"
    page.click("#pick-a input")
    page.get_by_role("option", name=abc[2], exact=True).click()
    page.wait_for_selector(f"#pair-title:has-text('Why {abc[2]} over {abc[1]}?')")
    page.click("#pick-b input")
    offered = page.locator("#pick-b").get_by_role("option")  # B's own list, not A's closing one
    expect(offered).to_have_count(2)
    expect(offered.filter(has_text=re.compile(f"^{abc[2]}$"))).to_have_count(0)  # not offered against itself
    page.keyboard.press("Escape")
    page.screenshot(path=str(ARTIFACTS / "app-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(500)
    page.evaluate("window.scrollTo(0, 0)")  # the verdict, then the form
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "app-phone.png"), full_page=False)  # (README's: first-screen-390.png)
    assert not errors, errors


def test_buttons_before_there_is_anything_to_act_on(browser, app_url):
    """Reset weights, 'Effect on', Previous and Skip pressed on a fresh page: nothing breaks, nothing is claimed."""
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    open_app(page, app_url)
    page.click("#reset-weights")
    page.get_by_text("Which parts drive a score").click()
    page.click("#seg-what input")
    page.get_by_role("option", name="Correctness").first.click()
    page.get_by_role("tab", name="Annotate").click()
    page.click("#annotate-skip")
    page.wait_for_selector("#annotate-status:has-text('Open a file first')")
    page.click("#annotate-prev")
    page.wait_for_timeout(1500)
    body = page.inner_text("body")
    assert "didn't return enough output values" not in body and "Error" not in body, body[:2000]


def test_bad_input_keeps_what_was_typed(browser, app_url):
    page = browser.new_page()
    open_app(page, app_url)
    page.fill("#prompt textarea", "A prompt I spent time on")
    page.fill("#candidate-A textarea", "first answer")
    for letter in "BC":  # the first screen's example filled them
        page.fill(f"#candidate-{letter} textarea", "")
    page.click("#score-button")  # B and C are empty
    page.wait_for_selector("#form-message:has-text('Fill in at least two candidates')")
    assert page.input_value("#prompt textarea") == "A prompt I spent time on"
    assert page.input_value("#candidate-A textarea") == "first answer"
    page.fill("#candidate-B textarea", "second answer")  # C stays empty: two filled boxes are scored
    press_score(page)
    expect(page.locator("#plot-scores g.point")).to_have_count(2)  # A and B, no empty C
    assert "stale" not in page.get_attribute("#results", "class")
    page.fill("#prompt textarea", "A prompt I changed")  # an edit marks the results stale
    page.wait_for_selector("#results.stale")
    page.fill("#candidate-B textarea", "")
    page.click("#score-button")  # a refusal: one message by the form, the old results stay on screen
    page.wait_for_selector("#form-message:has-text('Not scored')")
    assert page.locator("#plot-scores g.point").count() == 2 and page.locator("#results.stale").count() == 1
    assert page.locator("#results .error").count() == 0 and page.locator(".toast-body").count() == 0
    page.fill("#candidate-B textarea", "second answer")
    press_score(page)
    assert "stale" not in page.get_attribute("#results", "class")
    assert page.inner_text("#form-message").strip() == ""


def test_shaded_segments_render(browser, app_url):
    from armorm_ui.segments import segment

    responses = [CARD_RESPONSES[1], CARD_RESPONSES[0], CARD_RESPONSES[2]]  # A has 20 segments
    page = card_scored(browser, app_url, responses=responses)
    page.wait_for_selector("#plot-scores .js-plotly-plot .main-svg")
    page.get_by_text("Which parts drive a score").click()
    page.locator("#seg-html").scroll_into_view_if_needed()
    api = Client(app_url, verbose=False).predict(
        [{"role": "user", "content": CARD_PROMPT}], responses, api_name="/score"
    )
    winner = "ABC"[int(np.argmax(api["scores"]))]
    assert page.input_value("#seg-pick input") == winner  # attribution starts with the winner
    page.click("#seg-pick input")
    page.get_by_role("option", name="A", exact=True).click()
    page.click("#seg-run")
    page.wait_for_selector("#seg-html .seg")
    spans = page.locator("#seg-html .seg")
    assert spans.count() == len(segment(responses[0])) > 10
    assert "score" in spans.first.get_attribute("title") and "leaving this out" in spans.first.get_attribute("title")
    assert "rgba(" in spans.first.get_attribute("style")  # shaded
    assert page.inner_text("#seg-html .shaded-response").split() == responses[0].split()  # numbers are not text
    numbers = spans.evaluate_all("els => els.map(e => getComputedStyle(e, '::before').content)")
    assert numbers == [f'"{i + 1}"' for i in range(spans.count())]  # each segment shows its number
    assert "raises the score" in page.inner_text("#seg-html .seg-key")  # and the colours have a key
    page.wait_for_selector("#plot-segments .js-plotly-plot .main-svg")
    labels = page.evaluate("() => [...document.querySelector('#plot-segments .js-plotly-plot').data[0].y]")
    assert labels and all(re.match(r"\[\d+\] \S", x) for x in labels), labels  # "[7] 5. Pretty": number, start
    page.wait_for_selector("#plot-length .js-plotly-plot .main-svg")
    top, bottom = page.locator("#seg-pick").bounding_box(), page.locator("#plot-length").bounding_box()
    height = bottom["y"] + bottom["height"] - top["y"] + 40
    page.screenshot(path=str(ARTIFACTS / "segments.png"), full_page=True,
                    clip={"x": 0, "y": top["y"] - 20 + page.evaluate("window.scrollY"), "width": 1300,
                          "height": height})  # fmt: skip


@pytest.mark.parametrize("width", [1440, 390])
def test_token_words_render(browser, app_url, width):
    """Which words drive the score: the answer's words shaded, the summary with the completeness gap and the
    agreement with leave-one-out; a coefficient shaded on the conversation's words instead."""
    page = card_scored(browser, app_url, width=width, height=900 if width > 400 else 844,
                       responses=[CARD_RESPONSES[1], CARD_RESPONSES[0], CARD_RESPONSES[2]])  # fmt: skip
    page.wait_for_selector("#plot-scores .js-plotly-plot .main-svg")
    page.get_by_text("Which words drive a score").click()
    page.click("#tok-pick input")
    page.get_by_role("option", name="A", exact=True).click()
    page.click("#tok-run")
    page.wait_for_selector("#tok-html .tok")
    words = page.locator("#tok-html .tok")
    assert words.count() == len(CARD_RESPONSES[1].split())
    titles = words.evaluate_all("els => els.map(e => e.title)")
    values = [float(v) for v in words.evaluate_all("els => els.map(e => e.dataset.attribution)")]
    for title, value in zip(titles, values):  # the tooltip says the direction of the number it carries
        assert ("raises the score" in title) == (value > 0) and ("lowers the score" in title) == (value < 0), title
    assert page.inner_text("#tok-html .shaded-response").split() == CARD_RESPONSES[1].split()
    summary = page.inner_text("#tok-summary")
    assert "completeness gap" in summary and "Spearman" in summary
    page.wait_for_selector("#plot-tok-agreement .js-plotly-plot .main-svg")
    assert page.evaluate(CLIPPED_JS, "#tok-summary") == [] and page.evaluate(CLIPPED_JS, "#plot-tok-agreement") == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing wider than the screen
    top = page.locator("#tok-pick").bounding_box()
    bottom = page.locator("#plot-tok-agreement").bounding_box()
    page.screenshot(path=str(ARTIFACTS / f"tokens-{width}.png"), full_page=True,
                    clip={"x": 0, "y": top["y"] - 20 + page.evaluate("window.scrollY"), "width": width,
                          "height": bottom["y"] + bottom["height"] - top["y"] + 40})  # fmt: skip
    page.click("#tok-target input")
    page.get_by_role("option", name="Safe coefficient (the conversation's words)").click()
    page.click("#tok-run")
    page.wait_for_selector("#tok-html .tok-message")
    assert page.inner_text("#tok-html .tok-message").split()[1:] == CARD_PROMPT.split()  # role, then the prompt
    assert "Safe coefficient" in page.inner_text("#tok-summary")
    page.wait_for_selector("#plot-tok-agreement", state="hidden")  # no leave-one-out comparison for the gate
    page.close()


def test_example_and_candidate_boxes(browser, app_url):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    open_app(page, app_url)
    page.get_by_label("Start from an example").click()
    page.get_by_role("option", name="Reverse a list in Python (code)").click()
    page.wait_for_function("document.querySelector('#prompt textarea').value.includes('reverse a list')")
    expect(page.locator("#candidate-D textarea")).to_be_visible()  # the example has four candidates
    expect(page.locator("#candidate-A textarea")).to_have_value(re.compile(re.escape("[::-1]")))
    page.get_by_role("button", name="− Remove last").click()
    page.wait_for_selector("#candidate-D", state="hidden")
    for _ in range(3):
        page.get_by_role("button", name="− Remove last").click()
    page.wait_for_selector("#candidate-C", state="hidden")
    assert page.locator("#candidate-B textarea").is_visible()  # never fewer than two boxes
    page.get_by_role("button", name="+ Add candidate").click()
    expect(page.locator("#candidate-C textarea")).to_have_value(re.compile("^Python lists cannot"))  # kept its text
    # a multi-turn example shows its earlier turns
    page.get_by_label("Start from an example").click()
    page.get_by_role("option", name="Follow-up question (multi-turn)").click()
    page.wait_for_selector("text=Capital of Australia?", state="visible")


def test_what_if_updates_on_keys_and_enter(browser, app_url):
    page = card_scored(browser, app_url)
    page.wait_for_selector("#plot-what-if .js-plotly-plot .main-svg")

    yours_js = "JSON.stringify(document.querySelector('#plot-what-if .js-plotly-plot').calcdata[1].map(c => c.s))"

    def yours():  # the "your score" bars of the re-ranking chart, as plotly.js drew them
        return page.evaluate(yours_js)

    before = yours()
    number = page.locator("#weight-helpsteer-verbosity input[type=number]")
    number.fill("3")
    number.press("Enter")
    page.wait_for_function(f"{yours_js} !== {json.dumps(before)}")
    after_enter = yours()
    page.locator("#weight-helpsteer-correctness input[type=range]").focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"{yours_js} !== {json.dumps(after_enter)}")


@pytest.mark.parametrize("width", [1440, 390])
def test_no_table_cell_or_title_is_clipped(browser, app_url, width):
    page = card_scored(browser, app_url, width, 900)
    for elem_id in PLOTS:
        page.wait_for_selector(f"#{elem_id} .js-plotly-plot .main-svg")
    for table in ("ranking", "helpsteer-table", "what-if-table", "top-table"):  # the four tables, with their rows
        page.wait_for_selector(f"#{table} [role=gridcell]")
    page.wait_for_timeout(500)
    assert page.evaluate(CLIPPED_JS, "#results") == []


def test_what_if_sliders_are_grouped_by_data_set_and_rank_changes_are_marked(browser, app_url):
    from armorm_ui.objectives import OBJECTIVES

    page = card_scored(browser, app_url)
    groups = page.evaluate(
        """() => [...document.querySelectorAll('.weight-group')]
                  .filter(g => !g.parentElement.closest('.weight-group'))
                  .map(g => [g.querySelector('.weight-group-title').innerText,
                             [...new Set([...g.querySelectorAll('[id^=weight-]')].map(s => s.id.slice(7)))]])"""
    )
    assert [names for _, names in groups for names in names] == [o.name for o in OBJECTIVES]
    for title, names in groups:
        members = [o for o in OBJECTIVES if o.name in names]
        assert {o.group for o in members} == {title.split(" · ")[0]}
        assert all(o.source in title for o in members)
    page.wait_for_selector("#plot-what-if .js-plotly-plot .main-svg")
    table_js = """() => [...document.querySelectorAll('#what-if-table [role=row]')]
                  .map(r => [...r.querySelectorAll('[role=gridcell]')].map(c => c.innerText.trim()))
                  .filter(r => r.length)"""
    assert all(r[2].endswith("=") for r in page.evaluate(table_js))  # the model's own weights move nothing
    # only the objective on which the last candidate gains most counts: it now wins
    client = Client(app_url, verbose=False)
    api = client.predict([{"role": "user", "content": CARD_PROMPT}], CARD_RESPONSES, api_name="/score")
    scores, rewards, coefs = (np.asarray(api[k]) for k in ("scores", "rewards", "coefficients"))
    winner, last = int(np.argmax(scores)), int(np.argmin(scores))
    best = int(np.argmax((rewards[last] - rewards[winner]) * coefs))
    for o in OBJECTIVES:
        box = page.locator(f"#weight-{o.name} input[type=number]")
        box.fill("3" if o.index == best else "0")
        box.press("Enter")
    mine = rewards @ (coefs * np.where(np.arange(19) == best, 3.0, 0.0))
    expected_first = "ABC"[int(np.argmax(mine))]
    page.wait_for_function(f"({table_js})()[0][0] === '{expected_first}' && ({table_js})()[0][2] !== '1 ='")
    model_rank = {"ABC"[k]: r for k, r in enumerate(np.argsort(np.argsort(-scores)) + 1)}
    for candidate, rank, yours in page.evaluate(table_js):
        new = int(yours.split()[0])
        moved = model_rank[candidate] - new
        assert int(rank) == model_rank[candidate]
        assert yours == f"{new} " + ("=" if moved == 0 else f"▲ {moved}" if moved > 0 else f"▼ {-moved}")
    assert "change" in page.text_content("#plot-what-if .gtitle")


@pytest.mark.parametrize("width", [1440, 390])
def test_probe_an_answer(browser, app_url, scorer, width):
    """Does style move it: on the card example, one bar per probe that applies (as probe_answer finds them), the
    skipped ones listed with their reasons, and an edit shown beside the original; nothing wider than the screen."""
    from armorm_ui.explain import rank_change
    from armorm_ui.probing import probe_answer

    page, example = example_scored(browser, app_url, width, 900 if width > 400 else 844)
    messages = [{"role": "user", "content": example["prompt"]}]
    direct = probe_answer(scorer, messages, example["candidates"], 2)  # C: the refusal, last of the three
    applied = sorted(direct.applied, key=lambda o: -o.delta)
    page.get_by_text("Does style move it?").click()
    page.click("#compare-probe-pick input")
    page.get_by_role("option", name="C", exact=True).click()
    page.click("#compare-probe-run")
    page.wait_for_selector("#plot-compare-probes .js-plotly-plot .main-svg")
    page.wait_for_selector("#compare-probe-summary .probe-sentences li")
    bars = page.evaluate("""() => document.querySelector('#plot-compare-probes .js-plotly-plot').calcdata
                              .filter(c => c[0].trace.type === 'bar').map(c => c.length)""")  # fmt: skip
    assert len(bars) == 19 and set(bars) == {len(applied)}  # every objective's part, one bar per applied probe
    names = page.evaluate("""() => [...document.querySelectorAll('#plot-compare-probes .annotation-text')]
                               .map(t => [t.getBoundingClientRect().top, t.textContent])
                               .sort((a, b) => a[0] - b[0]).map(t => t[1])""")  # each bar's name, top to bottom
    assert [n.split("Δ")[0].strip() for n in names] == [o.probe.label for o in applied]
    for name, o in zip(names, applied):  # the rank change marked where there is one
        moved = rank_change(o.rank_before, o.rank_after)
        assert (moved in name) if moved != "=" else ("▲" not in name and "▼" not in name), name
    assert page.locator("#compare-probe-summary .probe-sentences li").count() == len(applied)
    skipped = page.locator("#compare-probe-summary .probe-skipped li").all_inner_texts()
    assert skipped == [f"{o.probe.label}: {o.skipped}." for o in direct.skipped] and skipped
    # the edit viewer starts at the largest change; choosing another shows both of its texts
    assert page.input_value("#compare-probe-edit input") == applied[0].probe.label
    emojis = next(o for o in applied if o.probe.name == "emojis")
    page.click("#compare-probe-edit input")
    page.get_by_role("option", name=emojis.probe.label, exact=True).click()
    expect(page.locator("#compare-probe-diff .seg-key")).to_contain_text(emojis.probe.label)
    before, after = page.locator("#compare-probe-diff .probe-before"), page.locator("#compare-probe-diff .probe-after")
    assert before.inner_text() == example["candidates"][2] and after.inner_text() == emojis.answer
    assert page.locator("#compare-probe-diff .probe-after ins").count() >= 1
    a, b = before.bounding_box(), after.bounding_box()
    assert (b["y"] >= a["y"] + a["height"]) if width < 640 else (b["y"] == a["y"] and b["x"] > a["x"])
    assert page.evaluate(OVERFLOW_JS, "#compare-probe") == [] and page.evaluate(CLIPPED_JS, "#compare-probe") == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    name = "probe.png" if width > 400 else "probe-phone.png"
    screenshot_between(page, "#compare-probe", "#compare-probe-diff", ARTIFACTS / name, width)
    # a conversation-side probe: the message it adds, against none
    brevity = next(o for o in applied if o.probe.name == "brevity_system")
    page.click("#compare-probe-edit input")
    page.get_by_role("option", name=brevity.probe.label, exact=True).click()
    expect(page.locator("#compare-probe-diff .probe-title")).to_have_text("System message (added)")
    assert page.locator("#compare-probe-diff .probe-after").inner_text() == brevity.messages[0]["content"]
    page.close()
