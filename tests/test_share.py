"""Share links and pasted conversations: what a link carries, what a damaged or hostile one gets, how a pasted
conversation is read."""

from __future__ import annotations

import base64
import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from armorm_ui import share
from armorm_ui.errors import InputError
from armorm_ui.ui.compare import clamp_weights, has_turns, weights_note

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "جميل? <b>2+2</b>"}]  # fmt: skip


def token_of(data) -> str:
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw)).decode().rstrip("=")


@given(st.lists(st.text(min_size=1), min_size=1, max_size=5), st.lists(st.floats(0, 3), min_size=19, max_size=19))
def test_round_trip(candidates, weights):
    token = share.encode(MESSAGES, candidates, weights)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")  # URL-safe as is
    back = share.decode(token)
    assert back["messages"] == MESSAGES and back["candidates"] == candidates
    assert back["weights"] == pytest.approx(weights)


def test_default_weights_are_left_out():
    assert b"weights" not in zlib.decompress(base64.urlsafe_b64decode(share.encode(MESSAGES, ["a"], [1.0] * 19) + "=="))
    assert share.decode(share.encode(MESSAGES, ["a"], [1.0] * 19))["weights"] == [1.0] * 19


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("", "carries no comparison"),
        ("not a token!", "damaged"),
        (share.encode(MESSAGES, ["a"])[:-9], "damaged"),  # cut short when copied
        (token_of({"v": 2, "messages": [], "candidates": []}), "not made by this version"),
        (token_of([1, 2]), "not made by this version"),
        (token_of({"v": 1, "messages": [{"role": "user"}], "candidates": ["a"]}), "role and a content"),
        (token_of({"v": 1, "messages": MESSAGES, "candidates": "ab"}), "not a list of texts"),
        (token_of({"v": 1, "messages": MESSAGES, "candidates": ["a"], "weights": [1] * 18}), "not 19 numbers"),
        (token_of({"v": 1, "messages": MESSAGES, "candidates": ["a"], "weights": [True] * 19}), "not 19 numbers"),
        ("A" * (share.MAX_TOKEN_CHARS + 1), "the most read is"),
    ],
)
def test_bad_links_say_what_is_wrong(token, says):
    with pytest.raises(InputError, match=says):
        share.decode(token)


def test_a_zip_bomb_stops_at_the_budget():
    bomb = base64.urlsafe_b64encode(zlib.compress(b"[" + b" " * (64 * 2**20) + b"]", 9)).decode()
    assert len(bomb) < share.MAX_TOKEN_CHARS  # small enough to be read...
    with pytest.raises(InputError, match="more than 4 MB"):  # ...and never inflated past the budget
        share.decode(bomb)


def test_weights_are_kept_in_the_sliders_range():
    token = token_of({"v": 1, "messages": MESSAGES, "candidates": ["a"], "weights": [7] + [-1] + [0.5] * 17})
    assert share.decode(token)["weights"][:3] == [3.0, 0.0, 0.5]


@pytest.mark.parametrize(
    ("text", "roles", "how"),
    [
        (json.dumps(MESSAGES), ["system", "user", "assistant", "user"], "JSON list of 4 messages"),
        (json.dumps({"messages": MESSAGES[1:]}), ["user", "assistant", "user"], "JSON list of 3 messages"),
        ("User: Hi\nAssistant: Hello!\nUser: And now?", ["user", "assistant", "user"], "transcript of 3 turns"),
        ("Human: Hi\n\nAI: Hello!\n\nHuman: And now?", ["user", "assistant", "user"], "Human:, AI:"),
        ("  system: Be brief.\nuser: Hi\nassistant: Hi!\nuser: Go", ["system", "user", "assistant", "user"], "4"),
    ],
)
def test_pasted_conversations_are_read(text, roles, how):
    messages, said = share.pasted_conversation(text)
    assert [m["role"] for m in messages] == roles and how in said
    assert messages[-1]["content"] in ("And now?", "Go", "جميل? <b>2+2</b>")


@pytest.mark.parametrize(
    "text",
    [
        "What does the user: field of this form mean?",  # a speaker that does not start the text
        "User: only one speaker here",
        "[1, 2, 3]",
        '{"role": "user"}',
        "[not json",
        "",
    ],
)
def test_ordinary_prompts_stay_prompts(text):
    assert share.pasted_conversation(text) is None


def test_split_conversation():
    assert share.split_conversation(MESSAGES) == ("Be brief.", MESSAGES[1:3], MESSAGES[3]["content"])
    with pytest.raises(InputError, match="ends with a assistant message"):
        share.split_conversation(MESSAGES[:3])
    with pytest.raises(InputError, match="empty"):
        share.split_conversation([])


def test_clamped_weights_and_their_note():
    raw = [7, -2, None, "", 1.5, "x", float("nan")] + [1] * 12
    used, moved = clamp_weights(raw)
    assert moved and used[:7] == [3.0, 0.0, 1.0, 1.0, 1.5, 1.0, 1.0]
    note = weights_note(raw, used)
    assert "Helpfulness 7 → 3" in note and "Correctness \\-2 → 0" in note and "Complexity" not in note
    assert clamp_weights([1.0] * 19) == ([1.0] * 19, False)


def test_has_turns():
    assert not has_turns([["", ""]]) and not has_turns({"headers": [], "data": [["", None]]}) and not has_turns(None)
    assert has_turns({"data": [["user", "hi"]]}) and has_turns([["", "text"]])
