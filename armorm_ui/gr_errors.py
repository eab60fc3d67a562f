"""Gradio handlers raise gr.Error with the project's own messages: what was wrong and how to fix it, no trace."""

from __future__ import annotations

import functools

import gradio as gr

from .errors import ArmoRMError


def friendly(fn):
    """Turn the project's own errors into gr.Error with their message (no stack trace reaches the user)."""

    @functools.wraps(fn)  # keeps the signature: gr.api reads the typed parameters from it
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ArmoRMError as e:
            raise gr.Error(str(e), print_exception=False) from e

    return wrapper
