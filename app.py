"""ArmoRM Explorer: read the configuration, load the scorer once, build the UI, launch.

python app.py --help        every option, each also an environment variable (ARMORM_MODEL, GRADIO_SERVER_PORT...)
"""

from __future__ import annotations

from armorm_ui import demo_checkpoint, load_scorer
from armorm_ui.config import AppConfig
from armorm_ui.model import ScorerConfig
from armorm_ui.ui import ASSETS, build_demo


def main(argv: list[str] | None = None) -> None:
    config = AppConfig.parse(argv)
    model = config.model or str(demo_checkpoint.ensure())
    print(f"Loading {model} ...", flush=True)
    scorer = load_scorer(
        model,
        device=config.device or None,
        dtype=config.dtype or None,
        revision=config.revision or None,
        config=ScorerConfig(max_tokens=config.max_tokens),
    )
    demo = build_demo(scorer, config)
    demo.queue(max_size=config.queue_size, default_concurrency_limit=1)
    demo.launch(
        server_name=config.host,
        server_port=config.port,
        share=False,
        allowed_paths=[],
        show_error=True,
        footer_links=["api"],
        css_paths=[ASSETS / "style.css"],
    )


if __name__ == "__main__":
    main()
