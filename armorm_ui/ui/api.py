"""The programmatic way in: /score and /attribute, typed and documented (gradio_client, the HTTP API).

Both run in the one model slot (concurrency_id "model") and stop when their caller goes away."""

from __future__ import annotations

from typing import Any

import gradio as gr

from .. import explain
from ..attribution import attribute
from ..objectives import OBJECTIVES
from .handlers import cancellable, friendly


def add_api(scorer) -> None:
    """Register the endpoints on the Blocks being built."""

    async def score(conversation: list[dict], candidates: list[str]) -> dict[str, Any]:
        """Score candidate responses to a conversation with ArmoRM.

        Args:
            conversation: messages [{"role": "system"|"user"|"assistant", "content": str}] ending with a user turn.
            candidates: the responses to score (1 to the configured maximum).
        Returns:
            scores (N), rewards (N x 19), gating_output (19), coefficients (19), reward_transform_matrix,
            objectives (19 names), ranks (N), and token counts.
        """
        result = await cancellable(scorer.score, conversation, candidates)
        return {
            **result.to_dict(),
            "objectives": [o.name for o in OBJECTIVES],
            "ranks": explain.ranks(result.scores).tolist(),
            "demo_checkpoint": scorer.is_demo,
        }

    async def attribute_api(conversation: list[dict], candidate: str) -> dict[str, Any]:
        """Which segments of one candidate drive its score: leave-one-out effects and the length probe.

        Args:
            conversation: messages [{"role", "content"}] ending with a user turn.
            candidate: the response to explain.
        Returns:
            segments, score, effects (score minus score without each segment), reward_effects (per objective),
            trimmed_scores and trimmed_tokens (the response cut to its first k segments).
        """
        found = await cancellable(attribute, scorer, conversation, candidate)
        return found.to_dict()

    gr.api(friendly(score), api_name="score", concurrency_id="model")
    gr.api(friendly(attribute_api), api_name="attribute", concurrency_id="model")
