"""The project's own errors. Each message says what was wrong, with the actual values, and what to do."""


class ArmoRMError(Exception):
    """Base class: every refusal the project makes on purpose is one of these."""


class InputError(ArmoRMError, ValueError):
    """The user's conversation, candidates or file cannot be scored as given."""


class CheckpointError(ArmoRMError):
    """A checkpoint does not have the ArmoRM layout (missing, unexpected or misshapen tensors, bad config)."""


class ScoringError(ArmoRMError):
    """The model could not score a request (out of memory even alone, non-finite outputs)."""


class CandidateTooLarge(ScoringError):
    """One candidate alone does not fit in the accelerator's memory: candidate `index` of conversation
    `conversation` of those the backend was given. The scorer names it by its place in the request."""

    def __init__(self, message: str, conversation: int = 0, index: int = 0, tokens: int = 0):
        super().__init__(message, conversation, index, tokens)
        self.conversation, self.index, self.tokens = conversation, index, tokens

    def __str__(self) -> str:
        return self.args[0]
