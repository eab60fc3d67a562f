"""The Annotate tab in headless Chromium, as an annotator works it: blind, by keyboard alone after signing in (a
tie and 'all bad' included), Previous showing the saved label, and a status line that covers nothing, at a desktop
and a phone width."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path

import pandas as pd
import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from playwright.sync_api import expect

from .browser import open_app
from .test_browser_tabs import made_key

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots-annotate")
N = 20
"""Items labelled by keyboard in one go, the last four with B, a tie, all bad, and A with a note."""

OVERLAPS_JS = """() => {
  const box = (el) => el.getBoundingClientRect();
  const status = document.getElementById("annotate-status");
  const s = box(status);
  const item = [...document.querySelectorAll("#annotate-prompt, [id^=annotate-] textarea, #annotate-choice")]
    .filter((el) => el.offsetParent !== null).map(box);
  const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const toasts = [...document.querySelectorAll(".toast-body, .toast-wrap > *")].filter((el) => el.offsetParent);
  return {overlaps: item.filter((b) => hit(s, b)).length, toasts: toasts.length, height: s.height};
}"""


MODEL_SHOWN_JS = "() => /\\d\\.\\d/.test(document.getElementById('annotate-model')?.textContent || '')"
"""The model's table holds scores (Gradio's table keeps its cells' text out of innerText while it sizes them)."""


def checked(page, label: str) -> bool:
    return page.locator("#annotate-choice").get_by_label(label, exact=True).is_checked()


def status_has(page, text: str) -> None:
    page.wait_for_selector(f"#annotate-status:has-text({text!r})")


@pytest.mark.parametrize("width,height", [(1440, 900), (390, 844)])
def test_label_by_keyboard_blind_and_review(browser, app_url, tmp_path, width, height):
    rows = [{"item_id": f"k{i}", "prompt": f"Question {i}?", "response_1": f"Answer {i}.", "response_2": "No idea."}
            for i in range(N)]  # fmt: skip
    items = tmp_path / f"keys-{width}.csv"
    pd.DataFrame(rows).to_csv(items, index=False)
    page = browser.new_page(viewport={"width": width, "height": height})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_app(page, app_url)
    page.get_by_role("tab", name="Annotate").click()
    made_key(page)
    page.fill("#annotator input, #annotator textarea", f"keys{width}")
    page.fill("#passcode input", "keyboard-passcode")
    page.set_input_files("#annotate-upload input[type=file]", str(items))
    status_has(page, f"Item 1 of {N}")
    # blind: the model's table is not on the page at all, not merely hidden
    assert page.locator("#annotate-model td").count() == 0 and not page.evaluate(MODEL_SHOWN_JS)
    assert page.locator("#annotate-legend kbd").count() >= 8  # the keys are on the page
    page.focus("#passcode input")
    page.keyboard.press("Escape")  # leave the text box; from here on, keys only
    for i in range(N - 4):  # the first items, one after another; each save waited for before the next key
        status_has(page, f"Item {i + 1} of {N}")
        page.keyboard.press(str(1 + i % 2))
        page.keyboard.press("Enter")
        status_has(page, f"Saved: {'AB'[i % 2]} for item k{i}")
    page.keyboard.press("2")
    assert checked(page, "B")
    page.keyboard.press("Enter")
    status_has(page, f"Saved: B for item k{N - 4}")
    status_has(page, f"Item {N - 2} of {N}")
    assert page.locator("#annotate-model td").count() == 0 and not page.evaluate(MODEL_SHOWN_JS)  # blind again
    page.keyboard.press("t")
    page.keyboard.press("Enter")
    status_has(page, f"Saved: Tie for item k{N - 3}")
    status_has(page, f"Item {N - 1} of {N}")
    page.keyboard.press("x")
    page.keyboard.press("Enter")
    status_has(page, f"Saved: All bad for item k{N - 2}")
    status_has(page, f"Item {N} of {N}")
    page.keyboard.press("1")
    assert checked(page, "A")
    geometry = page.evaluate(OVERLAPS_JS)
    assert geometry["overlaps"] == 0 and geometry["toasts"] == 0, geometry
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"annotate-{width}.png"), full_page=True)
    page.focus("#annotate-note input, #annotate-note textarea")
    page.keyboard.type("last one")
    page.keyboard.press("Enter")  # Enter in the note saves too
    status_has(page, f"Saved: A for item k{N - 1}")
    status_has(page, f"All {N} items labelled")
    assert page.input_value("#annotate-prompt textarea") == "" and page.locator("#annotate-A textarea").count() == 0
    page.keyboard.press("Escape")
    # back: each item shows its saved label (choice and note), and the model's view of it now that it is labelled
    page.keyboard.press("ArrowLeft")
    status_has(page, f"Item {N} of {N}")
    assert checked(page, "A") and page.input_value("#annotate-note input, #annotate-note textarea") == "last one"
    page.keyboard.press("ArrowLeft")
    status_has(page, f"Item {N - 1} of {N}")
    status_has(page, "your label: All bad")
    assert checked(page, "All bad")
    page.wait_for_function(MODEL_SHOWN_JS)  # labelled: the model's ranking of it is on the page now
    page.keyboard.press("k")
    status_has(page, f"Item {N - 2} of {N}")
    assert checked(page, "Tie")
    page.keyboard.press("j")
    status_has(page, f"Item {N - 1} of {N}")
    page.screenshot(path=str(SHOTS / f"annotate-{width}-review.png"), full_page=True)
    geometry = page.evaluate(OVERLAPS_JS)
    assert geometry["overlaps"] == 0 and geometry["toasts"] == 0, geometry
    assert errors == []


def remembered(page) -> list | None:
    """What the page keeps in this browser's local storage for a reload, decrypted as Gradio's BrowserState does it
    (crypto-js AES with a passphrase: OpenSSL's salted MD5 key derivation), or None while nothing is kept."""
    stored, secret = page.evaluate("""() => {
        const state = window.gradio_config.components.find((c) => c.props?.storage_key === 'armorm-annotate-who');
        const name = Object.keys(localStorage).find((k) => k.includes('armorm-annotate-who'));
        return [name ? localStorage.getItem(name) : null, state.props.secret]; }""")
    if not stored:
        return None
    raw = base64.b64decode(stored.split(":", 1)[1])  # "<iv>:" then OpenSSL's b"Salted__" + 8-byte salt + ciphertext
    salt, body = raw[8:16], raw[16:]
    password, derived, block = hashlib.sha256(secret.encode()).hexdigest().encode(), b"", b""
    while len(derived) < 48:  # a 32-byte key, then a 16-byte iv
        block = hashlib.md5(block + password + salt).digest()
        derived += block
    decryptor = Cipher(algorithms.AES(derived[:32]), modes.CBC(derived[32:48])).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return json.loads(unpadder.update(decryptor.update(body) + decryptor.finalize()) + unpadder.finalize())


def test_a_reload_keeps_the_key_and_name_not_the_passcode(browser, app_url):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    open_app(page, app_url)
    page.get_by_role("tab", name="Annotate").click()
    key = made_key(page)
    page.fill("#annotator input, #annotator textarea", "reloader")
    page.fill("#passcode input", "reload-passcode")  # the name box loses the focus: the name is kept
    deadline = time.monotonic() + 30
    while remembered(page) != [key, "reloader"]:  # the key's own save comes first, then the name's
        assert time.monotonic() < deadline, remembered(page)
        page.wait_for_timeout(100)
    stored = page.evaluate("() => Object.values(localStorage).join(' ')")
    assert key not in stored and "reloader" not in stored and "reload-passcode" not in stored  # kept encrypted
    page.reload()
    page.get_by_role("tab", name="Annotate").click()
    box = "#annotator input, #annotator textarea"
    page.wait_for_function(f"() => document.querySelector({box!r})?.value === 'reloader'")
    assert page.input_value("#project-key input, #project-key textarea") == key
    assert page.input_value("#passcode input") == ""
    expect(page.locator("#annotate-status")).to_contain_text("Enter your passcode")  # not the key and name again
