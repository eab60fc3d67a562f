"""A fake tokenizer and a fake backend with known outputs, for tests of everything around the model: no torch, no
transformers (the scorer, its cache and model slot, validation, the views).

- FakeTokenizer: what chat.ChatEncoder needs of Llama-3's tokenizer. Llama-3's special ids, the role names as one
  token each (assistant -> 78191), "\\n\\n" -> 271, and every other character one token of its own, so that ids
  decode back to text (`decode_ids`) and a test can read which candidates reached the backend.
- FakeBackend: base.Backend with outputs that are plain functions of the token ids (`fake_rewards`, `fake_gating`,
  `TRANSFORM`), so a test computes what to expect. It records its calls, polls `request.check()` as a real backend
  does between forward passes, can be paused inside a call (`pause` / `resume`) to test the model slot, counts the
  calls inside it at once, and can refuse a candidate as too large for the accelerator (CandidateTooLarge).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from armorm_ui.backend.base import Outputs, Request, TokenAttributions, TokenTarget, tokens_of
from armorm_ui.chat import EncodedConversation
from armorm_ui.errors import CandidateTooLarge
from armorm_ui.objectives import NUM_OBJECTIVES

# ------------------------------------------------------------------------------------------------------ tokenizer

SPECIALS = {
    "<|begin_of_text|>": 128000,
    "<|end_of_text|>": 128001,
    "<|start_header_id|>": 128006,
    "<|end_header_id|>": 128007,
    "<|eot_id|>": 128009,
}
"""Llama-3's special tokens the template uses, with Llama-3's ids."""
ADDED = {i: f"<|reserved_special_token_{i - 128000}|>" for i in range(128000, 128256)}
ADDED.update({v: k for k, v in SPECIALS.items()})
ADDED[128256] = "[PAD]"  # ArmoRM's pad token
"""id -> text of every added (special) token, as `added_tokens_decoder` has them."""
WORDS = {"\n\n": 271, "user": 882, "system": 9125, "assistant": 78191}
"""Llama-3's ids of the role names (each one token when it is the whole text) and of "\\n\\n" (anywhere)."""
CHAR_BASE = 10_000
"""Characters are ids from CHAR_BASE (above every WORDS id but assistant's) up, skipping 78191; code points from
LOSSY up share ids (they decode as U+FFFD)."""
LOSSY = 116_000


def char_id(ch: str) -> int:
    code = ord(ch)
    if code >= LOSSY:
        code = LOSSY + code % 1000
    i = CHAR_BASE + code
    return i + 1 if i >= WORDS["assistant"] else i  # every char id < 127_001, never a WORDS id


def id_text(i: int) -> str:
    """The text of one token id (special tokens as their names)."""
    if i in ADDED:
        return ADDED[i]
    for word, j in WORDS.items():
        if i == j:
            return word
    if i > WORDS["assistant"]:
        i -= 1
    code = i - CHAR_BASE
    return chr(code) if 0 <= code < LOSSY else "\ufffd"


def decode_ids(ids) -> str:
    return "".join(id_text(int(i)) for i in ids)


def candidate_text(ids: list[int]) -> str:
    """A candidate's text from its ids ("\\n\\n" + text + <|eot_id|>, as chat.ChatEncoder builds them)."""
    assert ids[0] == WORDS["\n\n"] and ids[-1] == SPECIALS["<|eot_id|>"]
    return decode_ids(ids[1:-1])


class FakeTokenizer:
    """The part of a Hugging Face tokenizer that chat.ChatEncoder uses, with Llama-3's special and role ids."""

    bos_token_id = SPECIALS["<|begin_of_text|>"]
    eos_token_id = SPECIALS["<|eot_id|>"]
    pad_token_id = 128256

    def __init__(self):
        self.added_tokens_decoder = dict(ADDED)
        self.all_special_ids = sorted(ADDED)

    def convert_tokens_to_ids(self, token):
        if isinstance(token, list):
            return [self.convert_tokens_to_ids(t) for t in token]
        if token in SPECIALS:
            return SPECIALS[token]
        if token in WORDS:
            return WORDS[token]
        if len(token) == 1:
            return char_id(token)
        raise KeyError(f"FakeTokenizer has no token {token!r}")

    def convert_ids_to_tokens(self, ids):
        return id_text(ids) if isinstance(ids, int) else [id_text(int(i)) for i in ids]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return decode_ids(i for i in ids if not (skip_special_tokens and int(i) in ADDED))

    def _tokenize(self, text: str, split_special_tokens: bool) -> tuple[list[int], list[tuple[int, int]]]:
        if text in WORDS:
            return [WORDS[text]], [(0, len(text))]
        ids, spans, i = [], [], 0
        while i < len(text):
            special = None if split_special_tokens else next((s for s in SPECIALS if text.startswith(s, i)), None)
            if special is not None:
                ids.append(SPECIALS[special])
                spans.append((i, i + len(special)))
                i += len(special)
            elif text.startswith("\n\n", i):
                ids.append(WORDS["\n\n"])
                spans.append((i, i + 2))
                i += 2
            else:
                ids.append(char_id(text[i]))
                spans.append((i, i + 1))
                i += 1
        return ids, spans

    def __call__(self, texts, add_special_tokens: bool = True, split_special_tokens: bool = False,
                 return_offsets_mapping: bool = False, **_ignored) -> dict:  # fmt: skip
        one = isinstance(texts, str)
        ids, offsets = [], []
        for text in [texts] if one else texts:
            found, spans = self._tokenize(text, split_special_tokens)
            if add_special_tokens:
                found, spans = [self.bos_token_id, *found], [(0, 0), *spans]
            ids.append(found)
            offsets.append(spans)
        out = {"input_ids": ids[0] if one else ids}
        if return_offsets_mapping:
            out["offset_mapping"] = offsets[0] if one else offsets
        return out


# -------------------------------------------------------------------------------------------------------- backend


def checksum(ids) -> int:
    """A position-weighted sum of the ids, mod a prime: changes when any id or the order changes (no hashing)."""
    return sum((i + 1) * int(t) for i, t in enumerate(ids)) % 1009


def fake_rewards(candidate_ids: list[int]) -> np.ndarray:
    """(19,) the fake rewards of one candidate: objective k is ((k+1) * length + checksum) / 1000 - 0.5 * (k % 3)."""
    k = np.arange(NUM_OBJECTIVES, dtype=np.float64)
    return ((k + 1) * len(candidate_ids) + checksum(candidate_ids)) / 1000.0 - 0.5 * (k % 3)


def fake_gating(prefix_ids: list[int], gate_position: int) -> np.ndarray:
    """(19,) the fake gating of a conversation: read (as the real gate is) from its ids up to the gate position;
    positive weights summing to 1."""
    c = checksum(prefix_ids[: gate_position + 1])
    w = 1.0 + (c + 7 * np.arange(NUM_OBJECTIVES)) % 19
    return w / w.sum()


TRANSFORM = np.eye(NUM_OBJECTIVES) + 0.1 * np.eye(NUM_OBJECTIVES, k=1) - 0.05 * np.eye(NUM_OBJECTIVES, k=-2)
"""(19, 19) a fixed transform, not the identity and not symmetric (so T and Tᵀ give different results)."""
TRANSFORM.flags.writeable = False


def fake_outputs(conversation: EncodedConversation) -> Outputs:
    rewards = np.array([fake_rewards(c) for c in conversation.candidate_ids]).reshape(-1, NUM_OBJECTIVES)
    return Outputs(rewards, fake_gating(conversation.prefix_ids, conversation.gate_position))


def fake_score(conversation: EncodedConversation, k: int = 0) -> float:
    """Candidate k's preference score: gating · (rewards @ T)."""
    out = fake_outputs(conversation)
    return float((out.rewards[k] @ TRANSFORM) @ out.gating_output)


@dataclass
class Call:
    """One call the backend received (copies of what it was given)."""

    method: str
    """"score", "score_variants" or "attribute_tokens"."""
    conversations: list[EncodedConversation]
    tokens: int = 0
    """Tokens those conversations compute (base.tokens_of)."""
    extra: dict = field(default_factory=dict)

    def texts(self) -> list[list[str]]:
        """Each conversation's candidates as text."""
        return [[candidate_text(c) for c in conv.candidate_ids] for conv in self.conversations]


class FakeBackend:
    """base.Backend with known outputs (module docstring); imports no torch."""

    def __init__(self, source: str = "fake", is_demo: bool = False, chunk_tokens: int | None = None,
                 max_candidate_tokens: int | None = None, pause_timeout: float = 60.0):  # fmt: skip
        self.source = source
        self.is_demo = is_demo
        self.device = "cpu"
        self.reward_transform_matrix = TRANSFORM.copy()
        if chunk_tokens is not None:  # optional, as on a real backend: the scorer reads it with getattr
            self.chunk_tokens = chunk_tokens
        self.max_candidate_tokens = max_candidate_tokens
        """A candidate longer than this (conversation + candidate, tokens) raises CandidateTooLarge, as the native
        backend does when one candidate alone runs out of GPU memory."""
        self.pause_timeout = pause_timeout
        self.calls: list[Call] = []
        self.entered = threading.Event()
        """Set when a call is inside the backend (cleared by `pause`)."""
        self.inside = 0
        self.peak_inside = 0
        """The most calls ever inside the backend at once: 1 if the scorer's model slot works."""
        self.finished = 0
        """Calls that returned their outputs."""
        self._gate: threading.Event | None = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------------------------------------------- control

    def pause(self) -> None:
        """Calls from now on wait inside the backend (after recording themselves) until `resume`."""
        self.entered.clear()
        self._gate = threading.Event()

    def resume(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.set()

    def texts(self, method: str = "score") -> list[list[str]]:
        """The candidates (as text) of every conversation the backend was given, call by call, flattened."""
        return [t for c in self.calls if c.method == method for t in c.texts()]

    # -------------------------------------------------------------------------------------------------- interface

    @contextmanager
    def _call(self, method: str, conversations: list[EncodedConversation], request: Request, **extra):
        """One call: recorded, counted inside, paused if asked, and the request checked as a first forward pass."""
        with self._lock:
            self.inside += 1
            self.peak_inside = max(self.peak_inside, self.inside)
            self.calls.append(Call(method, list(conversations), tokens_of(conversations), extra))
        try:
            gate = self._gate
            self.entered.set()
            if gate is not None and not gate.wait(self.pause_timeout):
                raise AssertionError(f"FakeBackend stayed paused for {self.pause_timeout} s: a test forgot resume()")
            request.check()
            yield
            self.finished += 1
        finally:
            with self._lock:
                self.inside -= 1

    def score(self, conversations: list[EncodedConversation], request: Request) -> list[Outputs]:
        with self._call("score", conversations, request):
            outputs = []
            for j, conv in enumerate(conversations):
                request.check()  # between "forward passes", as a real backend
                if self.max_candidate_tokens is not None:
                    for k, c in enumerate(conv.candidate_ids):
                        n = len(conv.prefix_ids) + len(c)
                        if n > self.max_candidate_tokens:
                            raise CandidateTooLarge(f"Out of memory scoring a candidate of {n} tokens alone.", j, k, n)
                outputs.append(fake_outputs(conv))
            return outputs

    def score_variants(self, conversation: EncodedConversation, request: Request) -> Outputs:
        with self._call("score_variants", [conversation], request):
            return fake_outputs(conversation)

    def attribute_tokens(self, conversation: EncodedConversation, target: TokenTarget, positions: list[int],
                         method: str, steps: int, request: Request) -> TokenAttributions:  # fmt: skip
        """Each token's attribution is ((id % 7) - 3) / 10; the baseline value is what makes them complete."""
        with self._call("attribute_tokens", [conversation], request, target=target, positions=list(positions),
                        how=method, steps=steps):  # fmt: skip
            out = fake_outputs(conversation)
            if target.kind == "score":
                value = fake_score(conversation)
            elif target.kind == "reward":
                value = float(out.rewards[0, target.objective])
            else:
                value = float((out.gating_output @ TRANSFORM.T)[target.objective])
            full = np.asarray(conversation.full_ids(0), dtype=np.int64)
            where = np.asarray(positions, dtype=np.int64)
            attributions = ((full[where] % 7) - 3) / 10.0
            return TokenAttributions(where, full[where], attributions, value, value - float(attributions.sum()),
                                     method, steps)  # fmt: skip
