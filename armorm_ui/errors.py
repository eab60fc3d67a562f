"""The project's own errors. Each message says what was wrong, with the actual values, and what to do."""


class ArmoRMError(Exception):
    """Base class: every refusal the project makes on purpose is one of these."""


class InputError(ArmoRMError, ValueError):
    """The user's conversation, candidates or file cannot be scored as given."""


class CheckpointError(ArmoRMError):
    """A checkpoint does not have the ArmoRM layout (missing, unexpected or misshapen tensors, bad config)."""


class ScoringError(ArmoRMError):
    """The model could not score a request (out of memory even alone, non-finite outputs)."""
