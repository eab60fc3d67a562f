"""Gradio handlers raise gr.Error with the project's own messages: what was wrong and how to fix it, no trace."""

from __future__ import annotations

import asyncio
import functools
import threading

import gradio as gr

from .errors import ArmoRMError


def friendly(fn):
    """Turn the project's own errors into gr.Error with their message (no stack trace reaches the user)."""

    if asyncio.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args, **kwargs):
            try:
                return await fn(*args, **kwargs)
            except ArmoRMError as e:
                raise gr.Error(str(e), print_exception=False) from e

        return async_wrapper

    @functools.wraps(fn)  # keeps the signature: gr.api reads the typed parameters from it
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ArmoRMError as e:
            raise gr.Error(str(e), print_exception=False) from e

    return wrapper


async def cancellable(fn, *args):
    """Run fn(*args, should_stop=...) in a worker thread. When Gradio cancels the event (a Stop button, a closed
    tab), the awaiting task is cancelled: the flag is raised, and the scorer stops at its next forward pass instead
    of holding the model for a result nobody will see."""
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(None, lambda: fn(*args, should_stop=stop.is_set))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        raise
