"""A size cap on every request body, read before the body is: Gradio caps uploaded files (launch's max_file_size)
but parses any other body (an API call's JSON, an MCP message) whole, whatever its size.

An ASGI middleware (https://asgi.readthedocs.io/en/latest/specs/www.html): a declared Content-Length over the cap is
refused with 413 before a byte is read; a body sent without one (chunked) is counted as it arrives and refused as
soon as it passes the cap (the app's answer to the body it could not finish reading, a 400, is replaced by the
413). Uploads keep Gradio's own limit, which counts their bytes the same way.
"""

from __future__ import annotations

import json

UPLOADS = ("/gradio_api/upload",)
"""Paths whose bodies are files, capped by max_file_size instead."""


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app, max_bytes: int, exempt: tuple[str, ...] = UPLOADS):
        self.app, self.max_bytes, self.exempt = app, max_bytes, exempt

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].rstrip("/").endswith(self.exempt):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self.refuse(send)
        seen, over, started = 0, False, False

        async def counted():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    raise BodyTooLarge  # the app never gets the whole body
            return message

        async def answered(message):  # the app's own answer to a body it could not read becomes the 413
            nonlocal started
            if over:
                if not started:
                    started = True
                    await self.refuse(send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, answered)
        except BodyTooLarge:
            if not started:
                await self.refuse(send)

    async def refuse(self, send):
        mb = self.max_bytes / 2**20
        detail = (f"The request is larger than {mb:g} MB, the limit for one call. Send less text at once, or put "
                  "many items in a file and upload it.")  # fmt: skip
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]  # fmt: skip
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
