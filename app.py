"""ArmoRM Explorer: read the configuration, load the scorer once, build the UI, launch.

python app.py --help        every option, each also an environment variable (ARMORM_MODEL, GRADIO_SERVER_PORT...)
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from starlette.middleware import Middleware

from armorm_ui import mcp_gate, sessions
from armorm_ui.backend import zerogpu
from armorm_ui.body_limit import BodyLimit, UploadBudget
from armorm_ui.config import AppConfig
from armorm_ui.private_routes import PrivateRoutes, offered
from armorm_ui.ui import build_demo, launch_options


def create(config: AppConfig):
    """Load the scorer once (the demo checkpoint when no model is configured) and build the app around it."""
    print(f"Loading {config.model or 'the demo checkpoint'} ...", flush=True)
    scorer = config.load_scorer()
    if zerogpu.ACTIVE:  # ZeroGPU: GPU time is lent per call, none at start-up
        print("ZeroGPU: model work runs in @spaces.GPU calls; the start-up self-check is skipped", flush=True)
    else:
        print(scorer.self_check(), flush=True)  # every tensor loaded (checked while loading) and finite outputs
    demo = build_demo(scorer, config)
    # api_open=False: Gradio's /gradio_api/run/NAME and /api/NAME routes would run a queued handler directly, past
    # the queue's size and concurrency groups; every call goes through the queue (gradio_client, /call/NAME, MCP).
    demo.queue(max_size=config.queue_size, default_concurrency_limit=1, api_open=False)
    return scorer, demo


def lifespan(config: AppConfig):
    """What the server puts in place before its first request: sessions that keep nothing never push out a
    browser's (sessions.py), and MCP tool calls go to the queue a few at a time (mcp_gate.py)."""

    @asynccontextmanager
    async def started(app):
        sessions.install(app)
        sessions.bound_bookkeeping(app.get_blocks()._queue)
        mcp_gate.install(app.get_blocks(), waiting=config.queue_size)
        tidying = asyncio.create_task(sessions.tidy(app))
        try:
            yield
        finally:
            tidying.cancel()

    return started


def main(argv: list[str] | None = None) -> None:
    config = AppConfig.parse(argv)
    _, demo = create(config)
    demo.launch(
        server_name=config.host,
        server_port=config.port,
        share=False,
        allowed_paths=[],  # no file on this machine is served but the app's own outputs
        max_file_size=f"{config.max_upload_mb}mb",
        app_kwargs={
            "middleware": [
                Middleware(BodyLimit, max_bytes=config.max_request_mb * 2**20),
                Middleware(
                    UploadBudget, max_bytes=config.uploads_mb * 2**20, max_file_bytes=config.max_upload_mb * 2**20
                ),
                Middleware(PrivateRoutes, allowed=offered(demo)),
            ],
            "lifespan": lifespan(config),
        },  # fmt: skip
        show_error=True,  # messages of refusals only; gr.Error carries no stack trace
        footer_links=["api"],
        run_history=False,  # prompts and responses are not kept in the browser's run history
        state_session_capacity=config.sessions,  # bounds the memory that per-session state can take
        mcp_server=config.mcp,  # tools: the public API endpoints, /score and /attribute
        **launch_options(),
    )


if __name__ == "__main__":
    main()
