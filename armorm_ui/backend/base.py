"""The interface between the scorer and the model: plain data in, typed outputs out, no torch.

The scorer (scoring.py) keeps the life of a request: validation, tokenising, the result cache, the one model slot,
chunks of batch work. A backend only runs the model on token ids it is given:

    score(conversations)            -> Outputs per conversation: rewards of each of its candidates and its gating
    score_variants(conversation)    -> Outputs: candidate 0 is a response, the others variants of it (cut from it)
    attribute_tokens(conversation, target, positions, method, steps) -> TokenAttributions

Conversations are `chat.EncodedConversation`s (token ids and the gating position), so a backend needs no tokenizer
and its arguments pickle across a process boundary (ZeroGPU, zerogpu.py). Every method polls `request.check()`
between forward passes, so a cancelled request or one past its deadline stops there.

Backends: `native.NativeBackend` (torch and transformers, in this process), `zerogpu.ZeroGPUBackend` (the native
one inside Hugging Face ZeroGPU's @spaces.GPU calls), and the tests' fake (known outputs, no torch).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from ..chat import EncodedConversation
from ..errors import ScoringError


@dataclass
class Request:
    """What belongs to one scoring call: polled between forward passes by the code that runs the model."""

    should_stop: Callable[[], bool] | None = None
    """Returns True once the caller has gone (cancelled event, closed tab, Ctrl-C): scoring stops."""
    deadline: float = 120.0
    """Seconds the call may run once it holds the model."""
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return self.deadline - (time.monotonic() - self.started)

    def check(self) -> None:
        """Between forward passes: stop a cancelled request, and one past its deadline."""
        if self.should_stop is not None and self.should_stop():
            raise ScoringError("The request was cancelled; scoring stopped.")
        elapsed = time.monotonic() - self.started
        if elapsed > self.deadline:
            raise ScoringError(f"Scoring took {elapsed:.0f} s, over the {self.deadline:.0f} s limit per "
                               "request; it was stopped. Send fewer or shorter candidates.")  # fmt: skip


@dataclass(frozen=True)
class Outputs:
    """The model's outputs for the candidates of one conversation (names follow the model card)."""

    rewards: np.ndarray
    """(N, 19) float64 objective rewards, one row per candidate, in the conversation's order."""
    gating_output: np.ndarray
    """(19,) float64 gating weights, read at the end of the conversation: shared by every candidate."""

    def __post_init__(self):
        if not (np.isfinite(self.rewards).all() and np.isfinite(self.gating_output).all()):
            raise ScoringError("The model returned non-finite values (NaN or inf); the checkpoint may be damaged.")


TargetKind = Literal["score", "reward", "coefficient"]
Method = Literal["gradient_x_input", "integrated_gradients"]


@dataclass(frozen=True)
class TokenTarget:
    """What a token attribution explains.

    - "score": the preference score of candidate 0;
    - "reward": objective `objective`'s reward of candidate 0;
    - "coefficient": objective `objective`'s coefficient (gating @ Tᵀ); it depends on the conversation only (the
      gate reads the end of the last user turn), so it is attributed to the conversation's tokens.
    """

    kind: TargetKind = "score"
    objective: int | None = None
    """Head index of the objective (objectives.OBJECTIVES) for "reward" and "coefficient"."""

    def __post_init__(self):
        if self.kind not in ("score", "reward", "coefficient"):
            raise ValueError(f"target kind {self.kind!r} is not one of score, reward, coefficient")
        if (self.kind == "score") != (self.objective is None):
            raise ValueError("an objective is given for 'reward' and 'coefficient' targets, and only for them")


@dataclass(frozen=True)
class TokenAttributions:
    """Per-token attributions of one target for one candidate (candidate 0 of the conversation given)."""

    positions: np.ndarray
    """(T,) indices into the full ids (conversation + candidate) of the tokens attributed."""
    token_ids: np.ndarray
    """(T,) those tokens' ids."""
    attributions: np.ndarray
    """(T,) float64: each token's share of the target (Integrated Gradients), or gradient · embedding."""
    value: float
    """The target at the input."""
    baseline_value: float
    """The target with the attributed tokens' embeddings replaced by the baseline (zeros)."""
    method: Method
    steps: int
    """Integrated Gradients steps (1 for gradient x input)."""

    @property
    def completeness_gap(self) -> float:
        """|sum of attributions - (value - baseline value)| relative to |value - baseline value|: Integrated
        Gradients' completeness axiom (Sundararajan et al. 2017) says it tends to 0 as the steps grow."""
        delta = self.value - self.baseline_value
        return float(abs(self.attributions.sum() - delta) / max(abs(delta), 1e-12))


class Backend(Protocol):
    """What the scorer needs of a model. Implementations: native.NativeBackend, zerogpu.ZeroGPUBackend, and the
    tests' FakeBackend."""

    source: str
    """What was loaded: a hub id or a folder."""
    is_demo: bool
    """The built-in demo checkpoint (random weights): its scores mean nothing."""
    device: str
    """Where the model runs: "cpu", "cuda:0"..."""
    reward_transform_matrix: np.ndarray
    """(19, 19) float64: the checkpoint's transform (score = gating · (rewards @ T))."""

    def score(self, conversations: list[EncodedConversation], request: Request) -> list[Outputs]:
        """Rewards of every candidate of each conversation, and each conversation's gating."""
        ...

    def score_variants(self, conversation: EncodedConversation, request: Request) -> Outputs:
        """Candidate 0 is a response and the others variants of it: each variant computes only the tokens after
        the beginning it shares with candidate 0."""
        ...

    def attribute_tokens(self, conversation: EncodedConversation, target: TokenTarget, positions: list[int],
                         method: Method, steps: int, request: Request) -> TokenAttributions:  # fmt: skip
        """Attribute `target` to the tokens at `positions` of the full ids (conversation + candidate 0): their
        embeddings are the input; every other token (the template's, those not asked for) stays as it is. The
        baseline puts zeros in place of the attributed embeddings."""
        ...


def tokens_of(conversations: list[EncodedConversation]) -> int:
    """Tokens a forward pass of these conversations computes: each conversation once plus its candidates."""
    return sum(len(c.prefix_ids) + sum(len(x) for x in c.candidate_ids) for c in conversations)
