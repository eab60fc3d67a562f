"""One server-side validation layer for everything users send: the UI, the /score API and batch files.

Gradio enforces little on the server (a text box's max length only in the browser), so every request is checked here
before tokenising. Every refusal is an InputError that names the field, what is wrong, the limit and the actual value.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from .errors import InputError
from .explain import candidate_labels

BIDI_CONTROLS = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"}
"""Embedding/override/isolate controls: they make text display in an order other than the one the model reads."""
ALLOWED_CONTROLS = {"\t", "\n", "\r"}


@dataclass(frozen=True)
class Limits:
    max_candidates: int = 16
    """Candidates per request (the UI shows at most 8 boxes; the API takes up to this)."""
    max_chars: int = 32_000
    """Characters per field (message or candidate), checked before tokenising."""
    max_request_chars: int = 200_000
    """Characters in one request, all fields together."""
    max_messages: int = 64
    """Messages in a conversation."""


def field_name(role: str, index: int, total: int) -> str:
    return "The prompt" if role == "user" and index == total - 1 else f"Message {index + 1} ({role})"


def check_text(text, name: str, limits: Limits) -> None:
    """Refuse text that cannot be scored as the user sees it."""
    if not isinstance(text, str):
        raise InputError(f"{name} must be text, got {type(text).__name__}.")
    if len(text) > limits.max_chars:
        raise InputError(f"{name} is {len(text):,} characters long; the limit is {limits.max_chars:,}. Shorten it.")
    visible = False
    for i, ch in enumerate(text):
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            raise InputError(f"{name} contains an unpaired surrogate (U+{code:04X}) at character {i + 1}: "
                             "the text is not valid Unicode. Re-encode it as UTF-8.")  # fmt: skip
        if ch in BIDI_CONTROLS:
            raise InputError(f"{name} contains the bidirectional control U+{code:04X} at character {i + 1}, which "
                             "makes the text display differently from what the model reads. Remove it.")  # fmt: skip
        cat = unicodedata.category(ch)
        if cat == "Cc" and ch not in ALLOWED_CONTROLS:
            what = "a NUL character" if code == 0 else f"the control character U+{code:04X}"
            raise InputError(f"{name} contains {what} at character {i + 1}. Remove it.")
        if not visible and not ch.isspace() and cat not in ("Cf", "Zs", "Zl", "Zp", "Mn", "Me", "Cc"):
            visible = True
    if not visible:
        raise InputError(f"{name} is empty or holds only spaces or invisible characters. Write some text.")


def check_request(messages, candidates, limits: Limits) -> None:
    """The conversation's shape is checked by chat.validate_messages; here: sizes and every text's content."""
    if isinstance(candidates, str) or not isinstance(candidates, (list, tuple)):
        raise InputError("Candidates must be a list of response strings.")
    if not candidates:
        raise InputError("Give at least one candidate response.")
    if len(candidates) > limits.max_candidates:
        raise InputError(f"{len(candidates)} candidates; the limit is {limits.max_candidates} per request.")
    if isinstance(messages, (list, tuple)):
        if len(messages) > limits.max_messages:
            raise InputError(f"The conversation has {len(messages)} messages; the limit is {limits.max_messages}.")
        for i, m in enumerate(messages):
            if isinstance(m, dict) and "content" in m:
                check_text(m["content"], field_name(str(m.get("role")), i, len(messages)), limits)
    for label, c in zip(candidate_labels(len(candidates)), candidates):
        check_text(c, f"Candidate {label}", limits)
    total = sum(len(c) for c in candidates) + sum(
        len(m["content"]) for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str)
    )
    if total > limits.max_request_chars:
        raise InputError(f"The request is {total:,} characters long; the limit is {limits.max_request_chars:,}.")


def duplicates(candidates: list[str]) -> list[tuple[int, int]]:
    """Pairs (first, later) of identical candidates: scored once, worth telling the user."""
    seen, pairs = {}, []
    for k, c in enumerate(candidates):
        if c in seen:
            pairs.append((seen[c], k))
        else:
            seen[c] = k
    return pairs
