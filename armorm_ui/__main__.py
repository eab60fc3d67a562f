"""`python -m armorm_ui`: the command line (cli.py)."""

from __future__ import annotations

import gc
import sys

from .cli import main

code = main()
# Everything is written by now. Exiting, the interpreter would walk every object the model's libraries made in its
# last collections (about 2 s after torch and transformers); frozen, they are skipped. atexit handlers still run.
gc.freeze()
sys.exit(code)
