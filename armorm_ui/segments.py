"""Split a response into segments that can be left out one at a time: code blocks, list items and lines of code,
sentences. Segments always join back to the original text exactly.

Whitespace that separates two segments belongs to the start of the later one, so removing a segment removes its
own text and the separator before it, and the text before it is untouched: a leave-one-out variant then shares its
whole beginning with the full response, which is what lets the scorer compute that beginning once.

Sentences are found by pysbd (rule-based, so "e.g.", "Dr.", 3.14, version numbers, ellipses and quoted sentences
stay inside their sentence); URLs and inline code are masked from it first. Only the places where pysbd starts a
sentence are used, to cut the original text: where its spans do not match the text exactly, the line falls back to a
plain split after sentence punctuation.
"""

from __future__ import annotations

import re

import pysbd

FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
SENTENCE_END = re.compile(r"(?<=[.!?。！？])(?=\s+\S)")  # the fallback
URL = re.compile(r"\b(?:(?:https?|ftp)://|www\.)\S+", re.I)
URL_TAIL = re.compile(r"[.,;:!?'\")\]}>]+$")  # punctuation after a URL ends the sentence, not the URL
INLINE_CODE = re.compile(r"`[^`\n]+`")


def _masked(line: str) -> str:
    """`line` with URLs and the inside of inline code replaced by as many letters, so pysbd sees no full stops
    there and its offsets still index `line`."""

    def hide(a: int, b: int) -> None:
        chars[a:b] = "x" * (b - a)

    chars = list(line)
    for m in URL.finditer(line):
        hide(m.start(), m.start() + len(URL_TAIL.sub("", m.group(0))))
    for m in INLINE_CODE.finditer(line):
        hide(m.start() + 1, m.end() - 1)
    return "".join(chars)


def _sentence_starts(line: str) -> list[int] | None:
    """Where pysbd starts each sentence after the first; None where its spans do not tile `line` exactly (pysbd
    can drop or rewrite characters on odd input), so the caller falls back."""
    masked = _masked(line)
    # a Segmenter is cheap (no set-up) but keeps the text of its current call on itself: one per call, so that
    # concurrent requests never share one
    spans = pysbd.Segmenter(language="en", clean=False, char_span=True).segment(masked)
    pos = 0
    for s in spans:
        if s.start < pos or masked[s.start : s.end] != s.sent or masked[pos : s.start].strip():
            return None
        pos = s.end
    if not spans or masked[pos:].strip():
        return None
    return [s.start for s in spans[1:]]


def _split_sentences(line: str) -> list[str]:
    """One line of prose, cut where its sentences start."""
    if not line.strip():
        return [line]
    try:
        starts = _sentence_starts(line)
    except Exception:  # pysbd is rule-based regex code; whatever it trips on, the plain split still holds
        starts = None
    if starts is None:
        return [p for p in SENTENCE_END.split(line) if p]
    cuts = [0, *starts, len(line)]
    return [line[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]


def _split_prose(text: str) -> list[str]:
    """Lines; a line that is not a list item is split further into sentences."""
    pieces = []
    for line in re.split(r"(?<=\n)(?=[^\n])", text):  # keep each line with its newline(s)
        if LIST_ITEM.match(line):
            pieces.append(line)
            continue
        pieces += _split_sentences(line)
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
