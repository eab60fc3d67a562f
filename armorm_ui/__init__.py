"""ArmoRM Explorer: score candidate responses with ArmoRM and explain the scores objective by objective.

Nothing heavy happens at import: `load_scorer` imports torch and transformers when it is called.
"""

from .backend import zerogpu  # noqa: F401 - first: on ZeroGPU it imports `spaces` before torch
from .errors import ArmoRMError, CheckpointError, InputError, ScoringError
from .results import ScoreResult

__all__ = ["load_scorer", "ScoreResult", "ArmoRMError", "InputError", "CheckpointError", "ScoringError"]


def load_scorer(model: str, device: str | None = None, dtype: str | None = None, **kwargs):
    """Load an ArmoRM checkpoint (local folder or hub id) once; see armorm_ui.scoring.load_scorer."""
    from .scoring import load_scorer as _load

    return _load(model, device=device, dtype=dtype, **kwargs)
