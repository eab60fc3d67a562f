"""The model behind the scorer, behind one small typed interface (base.py); the only package that imports torch.

- base.py        the interface: Backend, Request, Outputs, TokenTarget, TokenAttributions (no torch)
- native.py      NativeBackend: ArmoRM as torch modules in this process; `load` (hub id or folder)
- model.py       the checkpoint's module tree and safe loading (safetensors, every key checked)
- packing.py     layouts of N candidates for the backbone: packed row, prefix cache, variants
- gradients.py   token attribution: gradient x input and Integrated Gradients on the embeddings
- zerogpu.py     ZeroGPUBackend: the native backend inside Hugging Face ZeroGPU's @spaces.GPU calls
- demo_checkpoint.py  the tiny random checkpoint with the real layout

Importing this package imports no torch (base.py only); native.py and the rest import it when used.
"""

from .base import Backend, Method, Outputs, Request, TokenAttributions, TokenTarget, tokens_of

__all__ = ["Backend", "Method", "Outputs", "Request", "TokenAttributions", "TokenTarget", "tokens_of"]
