"""The page's own handlers are not API: Gradio keeps handlers registered with api_visibility="private" out of the
API page and gradio_client, but its named routes (/gradio_api/run/NAME, /api/NAME, /call/NAME, /call/v2/NAME) still
run any handler by name (gradio-app/gradio#13051). This ASGI middleware answers 404 for a name that is not offered
(https://asgi.readthedocs.io/en/latest/specs/www.html); the page itself calls its handlers by number, through the
queue or /gradio_api/run/predict, and is not affected.
"""

from __future__ import annotations

import json
import re

NAMED = re.compile(r"^/gradio_api/(?:run|api|call/v2|call)/(?!predict/?$)([^/]+)/?")
"""A handler's route by name; /run/predict is the page's own route for its unqueued events (by number)."""


def offered(demo) -> set[str]:
    """The api names of the Blocks' handlers that are not private (the API page's, and the undocumented ones)."""
    return {f.api_name for f in demo.fns.values() if f.api_name and f.api_visibility != "private"}


class PrivateRoutes:
    def __init__(self, app, allowed: set[str]):
        self.app, self.allowed = app, frozenset(allowed)

    async def __call__(self, scope, receive, send):
        match = NAMED.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or match.group(1) in self.allowed:
            return await self.app(scope, receive, send)
        name = match.group(1)[:60]
        message = f"There is no API endpoint named {name}. The API is /score, /attribute, /attribute_tokens and /probe."
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": body})
