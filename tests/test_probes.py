"""The probe library: each edit on ordinary text, on text with code blocks and lists, and where it must be skipped."""

from __future__ import annotations

import re

import pytest

from armorm_ui import probes
from armorm_ui.probes import PROBES, apply, by_names

USER = [{"role": "user", "content": "Why write unit tests?"}]
PLAIN = ("Unit tests catch regressions early, before users see them. They also document behaviour.\n\n"
         "Good tests are fast and independent. Run them on every change.")  # fmt: skip
MIXED = """Tests catch regressions early, before users see them. They document behaviour too.

```python
def test_add():
    assert add(1, 2) == 3.  # a full stop. inside code
```

- keep them *fast*
- keep them independent.

Call `pytest -x.` to stop early. See [the docs](https://docs.pytest.org/en/stable/) for more."""
FENCED = re.compile(r"```.*?```", re.S)
INLINE = re.compile(r"`[^`\n]+`")


def edit(name: str, answer: str, messages=USER):
    return apply(probes.BY_NAME[name], messages, answer)


def kept_markup(original: str, edited: str) -> None:
    """Code blocks, inline code, links and list items of `original` appear unchanged in `edited`."""
    for block in FENCED.findall(original):
        assert block in edited
    for span in INLINE.findall(FENCED.sub("", original)):
        assert span in edited
    for link in re.findall(r"\[[^\]]*\]\([^)]*\)", original):
        assert link in edited
    for line in original.splitlines():
        if line.startswith("- "):
            assert line in edited.splitlines()


ANSWER_SIDE = [p.name for p in PROBES if p.side == "answer"]


@pytest.mark.parametrize("name", ANSWER_SIDE)
def test_every_answer_probe_changes_plain_text_and_keeps_code_and_markdown(name):
    for text in (PLAIN, MIXED):
        e = edit(name, text)
        if name == "link" and text is MIXED:
            assert e.skipped == "the answer already has a link"
            continue
        assert e.skipped is None, (name, e.skipped)
        assert e.answer != text and e.messages == USER
        if name != "first_half":
            kept_markup(text, e.answer)
        else:
            assert text.startswith(e.answer) and e.answer.count("```") % 2 == 0
        assert apply(probes.BY_NAME[name], USER, text) == e  # deterministic


def test_the_edits_are_what_they_say():
    assert edit("bold", PLAIN).answer.startswith("**Unit tests catch regressions early**, before")
    assert "**Good tests are fast and independent**." in edit("bold", PLAIN).answer
    listed = edit("bullets", PLAIN).answer.splitlines()
    assert listed[:2] == ["- Unit tests catch regressions early, before users see them.", "- They also document "
                          "behaviour."]  # fmt: skip
    assert edit("header", PLAIN).answer == "## Overview\n\n" + PLAIN
    assert edit("emojis", PLAIN).answer.count("\u2728") == 1 and "\U0001f44d" in edit("emojis", PLAIN).answer
    ex = edit("exclamations", MIXED).answer
    assert "see them! They document behaviour too!" in ex and "== 3.  # a full stop. inside code" in ex
    assert "`pytest -x.`" in ex and "keep them independent." in ex  # list items are markdown: left alone
    assert edit("link", PLAIN).answer.endswith("[Wikipedia](https://en.wikipedia.org/).")
    assert edit("opener", PLAIN).answer == "Sure! Great question. " + PLAIN
    assert edit("disclaimer", PLAIN).answer.startswith("As an AI language model")
    assert edit("apology", PLAIN).answer.startswith("I'm sorry")
    assert edit("repeat", PLAIN).answer == PLAIN + "\n\n" + PLAIN
    assert edit("padding", PLAIN).answer == PLAIN + "\n\n" + probes.PADDING
    half = edit("first_half", PLAIN).answer
    assert PLAIN.startswith(half) and 0 < len(half) <= len(PLAIN) / 2


def test_first_half_never_cuts_inside_a_code_block():
    text = "Intro sentence here.\n\n```python\n" + "".join(f"x{i} = {i}\n" for i in range(30)) + "```\n\nThe end."
    half = edit("first_half", text).answer
    assert half.count("```") % 2 == 0 and text.startswith(half)


@pytest.mark.parametrize(
    ("name", "answer", "reason"),
    [
        ("bold", "Some **bold** text here.", "already has bold"),
        ("bold", "Yes.", "no paragraph opens"),
        ("bullets", "Just one sentence here.", "two or more sentences"),
        ("bullets", "- a list item. Another.\n- second item.", "two or more sentences"),
        ("header", "# Title\n\nText.", "already starts with a header"),
        ("emojis", "Great work \U0001f680", "already has emojis"),
        ("emojis", "```\ncode only\n```", "no paragraph"),
        ("exclamations", "No full stop here", "no sentence"),
        ("exclamations", "```\nx = 1.\n```", "no sentence"),
        ("link", "See https://example.org for more.", "already has a link"),
        ("opener", "Sure, here it is.", "already opens affirmatively"),
        ("disclaimer", "As an AI, I cannot know.", "already has an 'as an AI'"),
        ("apology", "Sorry, I cannot.", "already opens with an apology"),
        ("padding", "Text.\n\n" + probes.PADDING, "already ends with this padding"),
        ("first_half", "One sentence only.", "no half to keep"),
        ("first_half", "```\nonly code\nmore code\n```", "no half to keep"),
    ],
)
def test_a_probe_that_cannot_apply_is_skipped_with_its_reason(name, answer, reason):
    e = edit(name, answer)
    assert e.skipped is not None and reason in e.skipped
    assert e.answer == answer and e.messages == USER


def test_conversation_probes_edit_the_conversation_and_keep_the_answer():
    agree = edit("user_agrees", PLAIN)
    assert agree.answer == PLAIN
    said = (
        'I think the answer is "Unit tests catch regressions early, before users see them", but I\'m really not sure.'
    )
    assert agree.messages[-1]["content"] == USER[0]["content"] + "\n\n" + said
    assert "I don't think the answer is" in edit("user_disagrees", PLAIN).messages[-1]["content"]
    assert USER == [{"role": "user", "content": "Why write unit tests?"}]  # the caller's list is not changed
    brief = edit("brevity_system", PLAIN)
    assert brief.messages == [{"role": "system", "content": probes.BREVITY}, *USER]
    with_system = [{"role": "system", "content": "Be kind."}, *USER]
    assert edit("brevity_system", PLAIN, with_system).messages[0]["content"] == "Be kind.\n\n" + probes.BREVITY
    again = [{"role": "system", "content": probes.BREVITY}, *USER]
    assert "already asks for brevity" in edit("brevity_system", PLAIN, again).skipped
    turns = [*USER, {"role": "assistant", "content": "Because."}, {"role": "user", "content": "Tell me more."}]
    edited = edit("user_agrees", PLAIN, turns).messages
    assert edited[:2] == turns[:2] and edited[2]["content"].startswith("Tell me more.\n\nI think")  # the last turn
    assert "no opening sentence" in edit("user_agrees", "```\ncode\n```").skipped


def test_probes_by_name():
    assert by_names(None) == PROBES == by_names("all") == by_names("")
    assert [p.name for p in by_names("opener,bold")] == ["bold", "opener"]  # library order
    with pytest.raises(ValueError, match="unknown probe.*'shout'.*choose from bold"):
        by_names(["bold", "shout"])


def test_every_probe_says_what_it_changes_and_cites_a_source():
    assert len({p.name for p in PROBES}) == len(PROBES) == 15
    for p in PROBES:
        assert p.label and p.changes and re.search(r"arXiv \d{4}\.\d{4,5}", p.source), p.name
        assert p.side in ("answer", "conversation") and p.group in ("Formatting", "Tone", "Length", "Conversation")
        assert p.edit.__doc__
