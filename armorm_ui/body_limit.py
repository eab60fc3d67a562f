"""A size cap on every request body, read before the body is: Gradio caps uploaded files (launch's max_file_size)
but parses any other body (an API call's JSON, an MCP message) whole, whatever its size.

An ASGI middleware (https://asgi.readthedocs.io/en/latest/specs/www.html): a declared Content-Length over the cap is
refused with 413 before a byte is read; a body sent without one (chunked) is counted as it arrives and refused as
soon as it passes the cap (the app's answer to the body it could not finish reading, a 400, is replaced by the
413). Uploads keep Gradio's own limit, which counts their bytes the same way.

`UploadBudget` caps the uploads kept at once, all visitors together.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

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


def folder_bytes(root: Path) -> int:
    """Bytes of the regular files under `root` (links not followed; a file removed while counting is skipped)."""
    total, folders = 0, [root]
    while folders:
        try:
            entries = list(os.scandir(folders.pop()))
        except OSError:  # removed meanwhile, or not there yet
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


class UploadBudget:
    """A cap on the bytes of uploaded files the server keeps at once: an upload (Gradio's /gradio_api/upload) that
    would take the folder of Gradio's files past `max_bytes`, counting the uploads still arriving, is refused with
    503 before it is read, with a message the page shows ("HTTP 503: ..."). Handlers delete an upload once they
    have read it (ui/handlers.py, `upload`); an upload nobody uses stays until Gradio's hourly clean-up."""

    def __init__(self, app, max_bytes: int, max_file_bytes: int, folder: Path | None = None,
                 paths: tuple[str, ...] = UPLOADS):  # fmt: skip
        self.app, self.max_bytes, self.max_file_bytes, self.paths = app, max_bytes, max_file_bytes, paths
        self.folder = folder
        self.arriving = 0  # bytes of uploads being received now, as declared (or the largest allowed)

    def kept(self) -> int:
        """Bytes in Gradio's file folder now."""
        if self.folder is None:
            from gradio.utils import get_upload_folder

            self.folder = Path(get_upload_folder())
        return folder_bytes(self.folder)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].rstrip("/").endswith(self.paths):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        size = min(int(declared), self.max_file_bytes) if declared.isdigit() else self.max_file_bytes
        kept = await asyncio.to_thread(self.kept)
        if kept + self.arriving + size > self.max_bytes:
            return await self.refuse(send, kept + self.arriving)
        self.arriving += size
        try:
            await self.app(scope, receive, send)
        finally:
            self.arriving -= size

    async def refuse(self, send, held: int):
        text = (f"The server holds {held / 2**20:,.0f} MB of uploaded files right now and takes at most "
                f"{self.max_bytes / 2**20:,.0f} MB at once. Try again in a few minutes.")  # fmt: skip
        body = text.encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                   (b"retry-after", b"120"), (b"connection", b"close")]  # fmt: skip
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
