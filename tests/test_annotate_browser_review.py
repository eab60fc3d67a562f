"""The Annotate tab's project settings and review queue in headless Chromium: a project its owner made blind sends
no score to a member who asked for them, guidelines show beside the item with their HTML as text, and an item two
members labelled differently reaches the owner's review queue, where its gold label is set."""

from __future__ import annotations

import pandas as pd
import pytest
from playwright.sync_api import expect

from .browser import open_app
from .test_browser_annotate import MODEL_SHOWN_JS, status_has
from .test_browser_tabs import made_key

pytestmark = pytest.mark.browser


def signed_in(page, name: str, key: str | None = None) -> str:
    """Fill in the Annotate tab's key (a new project when none is given), name and passcode; returns the key."""
    page.get_by_role("tab", name="Annotate").click()
    if key is None:
        key = made_key(page)
    else:
        page.fill("#project-key input, #project-key textarea", key)
    page.fill("#annotator input, #annotator textarea", name)
    page.fill("#passcode input", f"{name}-passcode")
    return key


def test_a_blind_project_its_guidelines_and_the_review_queue(browser, app_url, tmp_path):
    items = tmp_path / "review.csv"
    pd.DataFrame([{"item_id": f"r{i}", "prompt": f"Question {i}?", "response_1": f"Answer {i}.",
                   "response_2": "No idea."} for i in range(3)]).to_csv(items, index=False)  # fmt: skip
    owner = browser.new_page(viewport={"width": 1440, "height": 900})
    errors = []
    owner.on("pageerror", lambda e: errors.append(str(e)))
    open_app(owner, app_url)
    key = signed_in(owner, "olga")
    owner.set_input_files("#annotate-upload input[type=file]", str(items))
    status_has(owner, "Item 1 of 3")
    owner.click("#annotate-settings .label-wrap")
    owner.wait_for_selector("#settings-status:has-text('Owner: olga')")
    owner.fill("#settings-overlap input", "2")
    owner.locator("#settings-scores").get_by_label("Hidden until the item is labelled, for everyone").check()
    owner.fill("#settings-guidelines textarea", "Prefer **correct** answers. <script>window.pwned = 1</script>")
    owner.click("#settings-save")
    owner.wait_for_selector("#settings-status:has-text('Settings saved')")
    owner.wait_for_selector("#annotate-guidelines strong:has-text('correct')")
    owner.keyboard.press("Escape")
    owner.locator("#annotate-choice").get_by_label("A", exact=True).check()
    owner.click("#annotate-save")
    status_has(owner, "Saved: A for item r0")

    member = browser.new_page(viewport={"width": 390, "height": 844})
    member.on("pageerror", lambda e: errors.append(str(e)))
    open_app(member, app_url)
    signed_in(member, "max", key)
    member.locator("#annotate-blind input").uncheck()  # max asks for the scores from the start
    member.set_input_files("#annotate-upload input[type=file]", str(items))
    status_has(member, "Item 1 of 3")  # r0 needs a second annotator
    # the project is blind: nothing of the model's is in the page, and there is no box to untick
    assert member.locator("#annotate-model td").count() == 0 and not member.evaluate(MODEL_SHOWN_JS)
    expect(member.locator("#annotate-blind input")).to_be_hidden()  # drawn with the item, maybe a frame later
    guidelines = member.locator("#annotate-guidelines")
    expect(guidelines).to_contain_text("<script>window.pwned = 1</script>")  # shown as text
    assert guidelines.locator("script").count() == 0 and member.evaluate("() => window.pwned") is None
    member.locator("#annotate-choice").get_by_label("B", exact=True).check()
    member.click("#annotate-save")
    status_has(member, "Saved: B for item r0")

    owner.click("#annotate-review .label-wrap")
    owner.click("#review-refresh")
    owner.wait_for_selector("#review-labels:has-text('1 item where annotators disagree, 1 without a gold label')")
    owner.click("#review-queue input")
    owner.get_by_role("option", name="1. r0 — max: B, olga: A · no gold yet").click()
    owner.wait_for_selector("#review-labels:has-text('is open above')")
    status_has(owner, "Item 1 of 3")
    owner.locator("#review-gold").get_by_label("B", exact=True).check()
    owner.click("#review-save")
    owner.wait_for_selector("#review-labels:has-text('Gold label set: B for item r0')")
    owner.get_by_text("Agreement with the model, and export").click()
    owner.click("#agreement-button")
    owner.wait_for_selector("#agreement-table:has-text('accuracy vs gold')")
    assert errors == []
