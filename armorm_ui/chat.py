"""Conversation + candidate responses -> token ids, with the chat template's invariants checked.

The template is Llama-3-Instruct's (the checkpoint's tokenizer_config.json): <|begin_of_text|> once, then for each
message <|start_header_id|>{role}<|end_header_id|>\\n\\n{content stripped}<|eot_id|>. We build the ids ourselves
instead of tokenising a templated string, so that:
- there is exactly one BOS (tokenising a templated string with special tokens added gives two);
- text a user typed can never become a special token: content is tokenised with `split_special_tokens=True`, so a
  response holding the literal text "<|eot_id|><|start_header_id|>assistant<|end_header_id|>" or "[PAD]" is plain
  text and cannot move the gating or reward positions;
- the gating position (the <|eot_id|> closing the last user turn) and the reward position (the last token) are known
  from lengths, never searched for.

The shared part (`prefix_ids`) ends with the assistant header; each candidate contributes "\\n\\n{response}<|eot_id|>".
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError
from .explain import candidate_label

ROLES = ("system", "user", "assistant")
GATING_PATTERN = (128009, 128006, 78191, 128007, 271)
"""<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n: the published code gates at its last occurrence."""


@dataclass(frozen=True)
class EncodedConversation:
    prefix_ids: list[int]
    """BOS ... <|eot_id|> of the last user turn, <|start_header_id|>assistant<|end_header_id|>."""
    gate_position: int
    """Index in prefix_ids of the <|eot_id|> that closes the last user turn."""
    candidate_ids: list[list[int]]
    """For each candidate: '\\n\\n' + response tokens + <|eot_id|>."""

    def full_ids(self, k: int) -> list[int]:
        """The whole conversation for candidate k, as the model card's pipeline would feed it."""
        return self.prefix_ids + self.candidate_ids[k]


def validate_messages(messages) -> list[dict]:
    """Check the conversation's shape; return it as a list of {'role', 'content'} dicts. Plain text is a one-turn
    conversation: the user's prompt."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if not isinstance(messages, (list, tuple)) or not messages:
        raise InputError("The conversation is empty: give at least one user message (the prompt).")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise InputError(f"Message {i + 1} must be a dict with 'role' and 'content', got {m!r:.80}.")
        role, content = m["role"], m["content"]
        if role not in ROLES:
            raise InputError(f"Message {i + 1} has role {role!r}; use one of {', '.join(ROLES)}.")
        if not isinstance(content, str):
            raise InputError(f"Message {i + 1} ({role}) content must be text, got {type(content).__name__}.")
        if role == "system" and i != 0:
            raise InputError(f"A system message may only come first; message {i + 1} is a system message.")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user":
        raise InputError(
            f"The conversation must end with a user turn (the prompt the candidates answer); "
            f"it ends with a message from the {out[-1]['role']}."
        )
    return out


class ChatEncoder:
    """Turns (messages, candidates) into token ids for one ArmoRM tokenizer."""

    def __init__(self, tokenizer, max_tokens: int = 4096):
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        ids = tokenizer.convert_tokens_to_ids
        self.bos = ids("<|begin_of_text|>")
        self.start_header = ids("<|start_header_id|>")
        self.end_header = ids("<|end_header_id|>")
        self.eot = ids("<|eot_id|>")
        self.special_ids = frozenset(tokenizer.added_tokens_decoder)
        self.role_ids = {r: self._text(r) for r in ROLES}
        if self.role_ids["assistant"] != [GATING_PATTERN[2]] or self.eot != GATING_PATTERN[0]:
            raise InputError("This tokenizer is not Llama-3's: the assistant header does not match ArmoRM's pattern.")

    def _texts(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        enc = self.tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        for ids in enc:  # the guarantee this module exists for; cheap to keep checking
            if self.special_ids.intersection(ids):
                raise AssertionError("user text produced a special token")
        return enc

    def _text(self, text: str) -> list[int]:
        return self._texts([text])[0]

    def _turn_body(self, text: str) -> str:
        return "\n\n" + text.strip()

    def encode(self, messages, candidates: list[str]) -> EncodedConversation:
        messages = validate_messages(messages)
        bodies = self._texts([self._turn_body(m["content"]) for m in messages])
        prefix = [self.bos]
        gate = -1
        for m, body in zip(messages, bodies):
            prefix += [self.start_header, *self.role_ids[m["role"]], self.end_header, *body, self.eot]
            if m["role"] == "user":
                gate = len(prefix) - 1
        prefix += [self.start_header, *self.role_ids["assistant"], self.end_header]
        cands = [ids + [self.eot] for ids in self._texts([self._turn_body(c) for c in candidates])]
        enc = EncodedConversation(prefix, gate, cands)
        self._check(enc)
        return enc

    def candidate_lengths(self, candidates: list[str]) -> list[int]:
        """Tokens each candidate takes after the assistant header ("\\n\\n" + text + <|eot_id|>), as `encode`
        counts them against the limit; nothing is checked."""
        return [len(ids) + 1 for ids in self._texts([self._turn_body(c) for c in candidates])]

    def _spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans in `text` of the tokens of its turn body ("\\n\\n" + text stripped): one per token,
        (start, end) into `text`; the leading "\\n\\n" token gets an empty span at the start of the content."""
        body = self._turn_body(text)
        lead = len(text) - len(text.lstrip())  # the template strips the content: offsets shift by what it cut
        out = self.tokenizer(body, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True)
        return [(max(a - 2, 0) + lead, max(b - 2, 0) + lead) for a, b in out["offset_mapping"]]

    def response_tokens(self, enc: EncodedConversation, response: str) -> list[tuple[int, int, int]]:
        """(position in the full ids, start, end in `response`) of each token of candidate 0's content: what a
        token attribution of the response explains (the "\\n\\n" after the header and the closing <|eot_id|> are
        the template's, not the response's)."""
        p = len(enc.prefix_ids)
        spans = self._spans(response)
        if len(spans) != len(enc.candidate_ids[0]) - 1:
            raise AssertionError("token spans do not match the encoded response")
        return [(p + i, a, b) for i, (a, b) in enumerate(spans) if i > 0 and b > a]

    def conversation_tokens(self, enc: EncodedConversation, messages: list[dict]) -> list[tuple[int, int, int, int]]:
        """(position in the prefix, message index, start, end in that message's content) of each content token of
        the conversation: what a token attribution of the gate explains."""
        out, pos = [], 1  # after <|begin_of_text|>
        for m_index, m in enumerate(messages):
            pos += 1 + len(self.role_ids[m["role"]]) + 1  # <|start_header_id|> role <|end_header_id|>
            spans = self._spans(m["content"])
            out += [(pos + i, m_index, a, b) for i, (a, b) in enumerate(spans) if i > 0 and b > a]
            pos += len(spans) + 1  # body, <|eot_id|>
        if pos + len(self.role_ids["assistant"]) + 2 != len(enc.prefix_ids):
            raise AssertionError("token spans do not match the encoded conversation")
        return out

    def _check(self, enc: EncodedConversation) -> None:
        p = len(enc.prefix_ids)
        for k, ids in enumerate(enc.candidate_ids):
            total = p + len(ids)
            if total > self.max_tokens:
                raise InputError(
                    f"Candidate {candidate_label(k)} makes the conversation {total} tokens long "
                    f"(conversation {p} + response {len(ids)}); the limit is {self.max_tokens}. "
                    "Shorten the prompt or the response; nothing is truncated silently."
                )
            # Template invariants (Llama-3-Instruct): one BOS, the gate pattern where we say it is, eot last.
            assert ids[0] == GATING_PATTERN[4] and ids[-1] == self.eot
        if p + 1 > self.max_tokens:
            raise InputError(f"The conversation is {p} tokens long; the limit is {self.max_tokens}.")
        assert enc.prefix_ids.count(self.bos) == 1 and enc.prefix_ids[0] == self.bos
        assert tuple(enc.prefix_ids[enc.gate_position : enc.gate_position + 4]) == GATING_PATTERN[:4]
