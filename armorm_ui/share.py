"""Share links: a comparison's inputs packed into the link itself, and pasted conversations read into turns.

A link is the page's address with `#share=TOKEN`, TOKEN the conversation, the candidates and the what-if weights as
JSON, zlib-compressed and base64url-encoded. The part after `#` never reaches a server (RFC 3986, section 3.5), so
nothing is stored, nothing expires, and nobody can list or guess other people's links: opening one scores its inputs
again, which gives the same verdict on the same model. The token is untrusted input: decoded within a size budget,
checked field by field, then scored through the same checks as anything typed.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zlib

from .errors import InputError
from .objectives import NUM_OBJECTIVES

VERSION = 1
MAX_TOKEN_CHARS = 400_000
"""Longest token read (browsers take links of 2 MB; chat apps and mail cut far shorter ones)."""
MAX_JSON_BYTES = 4 * 2**20
"""Most bytes a token may inflate to (a zip bomb stops here)."""
WEIGHT_RANGE = (0.0, 3.0)
"""The what-if multipliers' range (the sliders')."""


def encode(messages: list[dict], candidates: list[str], weights=None) -> str:
    """The token of a comparison: weights are kept only where they differ from the model's (all 1)."""
    data = {"v": VERSION, "messages": messages, "candidates": candidates}
    if weights is not None and any(float(w) != 1.0 for w in weights):
        data["weights"] = [float(w) for w in weights]
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode("ascii").rstrip("=")


def decode(token: str) -> dict:
    """{"messages", "candidates", "weights"} of a token, or InputError saying what is wrong with the link."""
    if not isinstance(token, str) or not token.strip():
        raise InputError("The share link carries no comparison.")
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS:
        raise InputError(f"The share link is {len(token):,} characters long; the most read is {MAX_TOKEN_CHARS:,}.")
    try:
        packed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        inflate = zlib.decompressobj()
        raw = inflate.decompress(packed, MAX_JSON_BYTES)
        if inflate.unconsumed_tail:
            raise InputError("The share link unpacks to more than 4 MB; it was not made by this app.")
        data = json.loads(raw.decode("utf-8"))
    except (binascii.Error, zlib.error, UnicodeDecodeError, ValueError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError("The share link is damaged (was it cut short when it was copied?).") from None
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise InputError("The share link was not made by this version of the app.")
    messages, candidates = data.get("messages"), data.get("candidates")
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages
    ):
        raise InputError("The share link's conversation is not a list of messages with a role and a content.")
    if not isinstance(candidates, list) or not all(isinstance(c, str) for c in candidates):
        raise InputError("The share link's candidates are not a list of texts.")
    return {"messages": messages, "candidates": candidates, "weights": weights_of(data.get("weights"))}


def weights_of(weights) -> list[float]:
    """The link's what-if weights, each within the sliders' range (all 1 when absent)."""
    if weights is None:
        return [1.0] * NUM_OBJECTIVES
    if (
        not isinstance(weights, list)
        or len(weights) != NUM_OBJECTIVES
        or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in weights)
    ):
        raise InputError(f"The share link's what-if weights are not {NUM_OBJECTIVES} numbers.")
    low, high = WEIGHT_RANGE
    return [min(max(float(w), low), high) for w in weights]


# ------------------------------------------------------------------------------------------------ pasted turns

ROLE_NAMES = {"user": "user", "human": "user", "assistant": "assistant", "ai": "assistant", "gpt": "assistant",
              "bot": "assistant", "system": "system"}  # fmt: skip
SPEAKER = re.compile(r"^[ \t]*(user|human|assistant|ai|gpt|bot|system)[ \t]*:[ \t]?", re.IGNORECASE | re.MULTILINE)


def pasted_conversation(text: str) -> tuple[list[dict], str] | None:
    """A prompt box's text read as a whole conversation, with how it was read: a JSON message list
    (`[{"role": ..., "content": ...}, ...]`, or `{"messages": [...]}`), or a transcript whose lines start
    "User:" / "Human:" and "Assistant:" / "AI:" (with both speakers present). None for anything else: a prompt that
    merely mentions a speaker stays one prompt."""
    if not isinstance(text, str) or not text.strip():
        return None
    stripped = text.strip()
    if stripped[0] in "[{":
        try:
            data = json.loads(stripped)
        except ValueError:
            return None
        if isinstance(data, dict):
            data = data.get("messages")
        if isinstance(data, list) and data and all(isinstance(m, dict) and "role" in m and "content" in m
                                                   for m in data):  # fmt: skip
            messages = [{"role": str(m["role"]).strip().lower(), "content": m["content"]} for m in data]
            return messages, f"a JSON list of {len(messages)} messages"
        return None
    marks = list(SPEAKER.finditer(text))
    if not marks or text[: marks[0].start()].strip():
        return None  # a transcript starts with its first speaker
    roles = [ROLE_NAMES[m.group(1).lower()] for m in marks]
    if "user" not in roles or "assistant" not in roles:
        return None
    messages = []
    for m, role, end in zip(marks, roles, [*(m.start() for m in marks[1:]), len(text)]):
        messages.append({"role": role, "content": text[m.end() : end].strip()})
    speakers = ", ".join(dict.fromkeys(m.group(1) + ":" for m in marks))  # as typed
    return messages, f"a transcript of {len(messages)} turns (lines starting {speakers})"


def split_conversation(messages: list[dict]) -> tuple[str, list[dict], str]:
    """(system, earlier turns, prompt) of a conversation whose last message is the user's: what the form holds."""
    if not messages:
        raise InputError("The conversation is empty.")
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    rest = messages[1:] if system or messages[0]["role"] == "system" else messages
    if not rest or rest[-1]["role"] != "user":
        last = rest[-1]["role"] if rest else "system"
        raise InputError(f"The conversation ends with a {last} message; it must end with the user's turn, which the "
                         "candidates answer. Move a final answer into a candidate box.")  # fmt: skip
    return system, rest[:-1], rest[-1]["content"]
