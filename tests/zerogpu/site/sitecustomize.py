"""Test shim, imported by every Python started with this folder on PYTHONPATH: lets the real `spaces` package run
its ZeroGPU path (SPACES_ZERO_GPU=true) on a machine whose torch is a CPU build.

`spaces` runs as shipped: its patched torch in the main process (the model's `.to("cuda")` gives fake cuda
tensors), its `@spaces.GPU` wrapper, the device API calls, the forked worker and its queues, its error handling.
What a CPU build lacks is supplied here:
- in the main process, before `spaces` reads them: `torch.version.cuda` (a CUDA wheel's), `torch._C._cuda_init`
  (raising, as a CUDA build without a GPU does) and a picklable `torch.cuda._is_in_bad_fork`;
- in the worker, the three steps that need a GPU (`spaces.zero.torch`): `pack` (offloading the weights to disk at
  launch) keeps them in memory, `init` (CUDA initialisation) only records the worker, and `move` (copying the
  weights to the lent GPU) gives every fake cuda tensor its CPU original back, so the model runs on the CPU there.

Switches for the tests (environment):
- ZEROGPU_SHIM_MEMORY_TOKENS=N: the emulated GPU runs out of memory (torch.cuda.OutOfMemoryError) on any forward
  pass holding a candidate longer than N tokens, as a GPU too small for it would;
- every model call in the worker prints one line, `zerogpu-shim: worker PID METHOD -> OUTCOME`, to stdout (the
  app's log), so a test can tell where a refusal was raised.
"""

import importlib.abc
import importlib.util
import os
import sys

ACTIVE = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


def _not_in_bad_fork() -> bool:
    """torch.cuda._is_in_bad_fork of a CPU build is a lambda, which `spaces` cannot send to the process it forks
    to ask (spaces/zero/torch/patching.py is_in_bad_fork): a named function pickles by reference."""
    return False


def _cuda_init() -> None:
    raise AssertionError("Torch not compiled with CUDA enabled")


def _before_patching() -> None:
    import torch

    if not hasattr(torch._C, "_cuda_init"):
        torch._C._cuda_init = _cuda_init
    if getattr(torch.cuda._is_in_bad_fork, "__name__", "") == "<lambda>":
        torch.cuda._is_in_bad_fork = _not_in_bad_fork


def _after_torch_version(module) -> None:
    if module.cuda is None:
        module.cuda = "12.8"  # spaces/zero/torch/static.py reads the CUDA version of the wheel


def _after_spaces_torch(zt) -> None:
    from spaces.zero.torch import patching

    def pack():
        return patching._total_unpacked_size()

    def init(nvidia_uuid: str) -> None:
        os.environ["CUDA_VISIBLE_DEVICES"] = nvidia_uuid
        print(f"zerogpu-shim: worker {os.getpid()} init", flush=True)
        _observe_model_calls()
        _limit_memory()

    def move(callback=None) -> None:
        for fake, original in list(patching.cuda_aliases.items()):
            if original is not None:
                fake.data = original

    zt.pack, zt.init, zt.move = pack, init, move


class _Logged:
    """The worker's backend, printing the outcome of every call made on it."""

    def __init__(self, native):
        self._native = native

    def __getattr__(self, name):
        fn = getattr(self._native, name)
        if not callable(fn):
            return fn

        def call(*args, **kwargs):
            try:
                out = fn(*args, **kwargs)
            except Exception as e:
                print(f"zerogpu-shim: worker {os.getpid()} {name} -> {type(e).__name__}: {e}", flush=True)
                raise
            print(f"zerogpu-shim: worker {os.getpid()} {name} -> done", flush=True)
            return out

        return call


def _observe_model_calls() -> None:
    from armorm_ui.backend import zerogpu

    if zerogpu._native is not None and not isinstance(zerogpu._native, _Logged):
        zerogpu._native = _Logged(zerogpu._native)


def _limit_memory() -> None:
    limit = os.environ.get("ZEROGPU_SHIM_MEMORY_TOKENS")
    if not limit:
        return
    import torch

    from armorm_ui.backend import native

    real = native.NativeBackend._forward

    def _forward(self, enc, ks, strategy, request):
        longest = max(len(enc.candidate_ids[k]) for k in ks)
        if longest > int(limit):
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (emulated: a candidate of {longest} tokens)")
        return real(self, enc, ks, strategy, request)

    real_many = native.NativeBackend._forward_many

    def _forward_many(self, encs, request):  # a row of several conversations: the same limit per candidate
        longest = max(len(c) for e in encs for c in e.candidate_ids)
        if longest > int(limit):
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (emulated: a candidate of {longest} tokens)")
        return real_many(self, encs, request)

    native.NativeBackend._forward = _forward
    native.NativeBackend._forward_many = _forward_many


class _Hooks(importlib.abc.MetaPathFinder):
    """Runs a function before or after a module is executed."""

    BEFORE = {"spaces.zero.torch.patching": _before_patching}
    AFTER = {"torch.version": _after_torch_version, "spaces.zero.torch": _after_spaces_torch}

    def find_spec(self, name, path=None, target=None):
        if name not in self.BEFORE and name not in self.AFTER:
            return None
        sys.meta_path.remove(self)  # find the real spec, then wrap its loader
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        real = spec.loader.exec_module

        def exec_module(module):
            if name in self.BEFORE:
                self.BEFORE[name]()
            real(module)
            if name in self.AFTER:
                self.AFTER[name](module)

        spec.loader.exec_module = exec_module
        return spec


if ACTIVE:
    sys.meta_path.insert(0, _Hooks())
