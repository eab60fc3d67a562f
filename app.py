"""ArmoRM Explorer: read the configuration, load the scorer once, build the UI, launch.

python app.py --help        every option, each also an environment variable (ARMORM_MODEL, GRADIO_SERVER_PORT...)
"""

from __future__ import annotations

from starlette.middleware import Middleware

from armorm_ui.backend import zerogpu
from armorm_ui.body_limit import BodyLimit
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
    demo.queue(max_size=config.queue_size, default_concurrency_limit=1)
    return scorer, demo


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
                Middleware(PrivateRoutes, allowed=offered(demo)),
            ]
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
