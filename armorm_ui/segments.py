"""Split a response into segments that can be left out one at a time: code blocks, list items and lines of code,
sentences. Segments always join back to the original text exactly.

Whitespace that separates two segments belongs to the start of the later one, so removing a segment removes its
own text and the separator before it, and the text before it is untouched: a leave-one-out variant then shares its
whole beginning with the full response, which is what lets the scorer compute that beginning once.
"""

from __future__ import annotations

import re

FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
SENTENCE_END = re.compile(r"(?<=[.!?。！？])(?=\s+\S)")


def _split_prose(text: str) -> list[str]:
    """Lines; a line that is not a list item is split further into sentences."""
    pieces = []
    for line in re.split(r"(?<=\n)(?=[^\n])", text):  # keep each line with its newline(s)
        if LIST_ITEM.match(line):
            pieces.append(line)
            continue
        pieces += [p for p in SENTENCE_END.split(line) if p]
    return pieces


def _split_code(block: str) -> list[str]:
    """A fenced block, line by line; the opening fence stays with the first line and the closing one with the last,
    so that leaving out any line keeps a well-formed block."""
    lines = re.split(r"(?<=\n)", block)
    lines = [x for x in lines if x]
    if len(lines) <= 3:
        return [block]
    return ["".join(lines[:2])] + lines[2:-2] + ["".join(lines[-2:])]


def segment(text: str) -> list[str]:
    """Segments of `text` (''.join(segments) == text), separators moved to the start of the next segment."""
    pieces: list[str] = []
    pos = 0
    for m in FENCE.finditer(text):
        pieces += _split_prose(text[pos : m.start()])
        pieces += _split_code(m.group(0))
        pos = m.end()
    pieces += _split_prose(text[pos:])
    pieces = [p for p in pieces if p]
    # move trailing whitespace of each piece to the front of the next
    out: list[str] = []
    carry = ""
    for p in pieces:
        body = p.rstrip()
        out.append(carry + body)
        carry = p[len(body) :]
    if out:
        out[-1] += carry
    elif carry:
        out = [carry]
    merged = [s for s in out if s]
    for i in range(len(merged) - 1, 0, -1):  # a segment of only whitespace joins the one before
        if not merged[i].strip():
            merged[i - 1] += merged.pop(i)
    if len(merged) > 1 and not merged[0].strip():  # leading whitespace alone joins the segment after it
        lead = merged.pop(0)
        merged[0] = lead + merged[0]
    return merged


def coarsen(segments: list[str], most: int) -> list[str]:
    """At most `most` segments: runs of neighbours joined, in groups of equal count (the text is unchanged)."""
    size = -(-len(segments) // most)  # ceil
    if size <= 1:
        return segments
    return ["".join(segments[i : i + size]) for i in range(0, len(segments), size)]


def without(segments: list[str], i: int) -> str:
    """The text with segment i left out."""
    return "".join(segments[:i] + segments[i + 1 :])


def first(segments: list[str], k: int) -> str:
    """The text trimmed to its first k segments."""
    return "".join(segments[:k])
