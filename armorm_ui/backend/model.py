"""ArmoRM, natively: the checkpoint's layout as torch modules, and safe loading (native.py runs it).

Sources: the authors' `modeling_custom.py` (LlamaForRewardModelWithGating, on the model's hub page) and the
checkpoint's config.json and safetensors index; the published modeling code needs trust_remote_code and no longer
loads on transformers >= 4.56.

Forward (per conversation, N candidates):
    h       = LlamaModel(ids)[last hidden state]             # after the final RMSNorm
    rewards = regression_layer(h[reward_pos])                 # (N, 19), reward_pos = each candidate's last token
    gating  = softmax(MLP(h[gate_pos]) / T) * logit_scale     # (19,), gate_pos = <|eot_id|> ending the last user turn
    score   = sum_j gating_j * (rewards @ reward_transform_matrix)_j
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn
from transformers import LlamaConfig, LlamaModel

from ..errors import CheckpointError
from ..objectives import NUM_OBJECTIVES

HEAD_MODULES = ("regression_layer", "gating", "reward_transform_matrix")
"""Stored in float32 in the checkpoint and kept in float32 here, whatever the backbone's dtype."""


class GatingNetwork(nn.Module):
    """The prompt-conditioned gate: MLP with ReLU, then softmax(x / temperature) * logit_scale (`GatingNetwork` in
    the authors' `modeling_custom.py`)."""

    def __init__(self, in_features: int, out_features: int, hidden_dim: int, n_hidden: int, temperature: float):
        super().__init__()
        dims = [in_features] + [hidden_dim] * n_hidden
        self.layers = nn.ModuleList(
            [nn.Linear(a, b) for a, b in zip(dims, dims[1:])] + [nn.Linear(dims[-1], out_features)]
        )
        self.logit_scale = nn.Parameter(torch.ones(1))
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d) -> (B, 19)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return F.softmax(x / self.temperature, dim=-1) * self.logit_scale


class ArmoRM(nn.Module):
    """Module tree whose state-dict keys are exactly the checkpoint's (the published model.safetensors.index.json)."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        k = config.num_objectives
        self.model = LlamaModel(config)
        self.regression_layer = nn.Linear(config.hidden_size, k, bias=False)
        self.gating = GatingNetwork(
            config.hidden_size, k, config.gating_hidden_dim, config.gating_n_hidden, config.gating_temperature
        )
        self.reward_transform_matrix = nn.Parameter(torch.eye(k), requires_grad=False)

    def head(self, h_gate: torch.Tensor, h_reward: torch.Tensor):
        """fp32 head on hidden states. h_gate (d,), h_reward (N, d) -> rewards (N, k), gating (k,), scores (N,)."""
        dev = self.regression_layer.weight.device  # with device_map the head may sit on another GPU
        h_gate, h_reward = h_gate.to(dev, torch.float32), h_reward.to(dev, torch.float32)
        rewards = self.regression_layer(h_reward)  # (N, k)
        gating = self.gating(h_gate[None])[0]  # (k,)
        scores = (rewards @ self.reward_transform_matrix) @ gating  # (N,)
        return rewards, gating, scores


# ----------------------------------------------------------------------------------------------------------- loading


def resolve_checkpoint(model: str, revision: str | None = None) -> Path:
    """A local folder as is; otherwise a hub id, downloading only json/safetensors/tokenizer files (never pickles)."""
    if os.path.isdir(model):
        return Path(model)
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(
            model, revision=revision, allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.jinja"]
        )
    except Exception as e:  # offline, gated, misspelt: say which and how to fix
        raise CheckpointError(
            f"Could not get {model!r} (revision {revision or 'main'}) from the Hugging Face hub: {e}. "
            "Give a local folder instead (ARMORM_MODEL=/path/to/checkpoint)."
        ) from e
    return Path(path)


def weights_file(folder: Path) -> Path:
    """The safetensors index or single file. Pickled .bin weights are refused: they can run code when loaded."""
    for name in ("model.safetensors.index.json", "model.safetensors"):
        if (folder / name).is_file():
            return folder / name
    found = sorted(p.name for p in folder.iterdir())
    raise CheckpointError(
        f"No safetensors weights in {folder} (found: {', '.join(found) or 'nothing'}). "
        "Only model.safetensors or model.safetensors.index.json are loaded; .bin/.pt pickles are never loaded."
    )


def shard_paths(weights: Path) -> list[Path]:
    if weights.name.endswith(".index.json"):
        files = sorted(set(json.loads(weights.read_text())["weight_map"].values()))
        return [weights.parent / f for f in files]
    return [weights]


def checkpoint_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, read from the safetensors headers only."""
    shapes = {}
    for p in shard_paths(weights):
        with safe_open(p, framework="pt") as f:
            for key in f.keys():
                shapes[key] = tuple(f.get_slice(key).get_shape())
    return shapes


def read_config(folder: Path) -> LlamaConfig:
    config = LlamaConfig.from_pretrained(folder)
    k = getattr(config, "num_objectives", None)
    if k != NUM_OBJECTIVES:
        raise CheckpointError(f"{folder}/config.json: expected num_objectives {NUM_OBJECTIVES}, got {k}.")
    for key in ("gating_temperature", "gating_hidden_dim", "gating_n_hidden"):
        if not hasattr(config, key):
            raise CheckpointError(f"{folder}/config.json lacks {key!r}: this is not an ArmoRM checkpoint.")
    return config


def check_keys(model: nn.Module, shapes: dict[str, tuple[int, ...]], where: Path) -> None:
    """Every checkpoint tensor is used and every parameter is loaded, with the right shape; else a clear error."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = sorted(
        f"{k} {shapes[k]} (expected {expected[k]})" for k in set(shapes) & set(expected) if shapes[k] != expected[k]
    )
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {', '.join(missing[:8])}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {', '.join(unexpected[:8])}")
        if wrong:
            parts.append(f"{len(wrong)} misshapen: {', '.join(wrong[:8])}")
        raise CheckpointError(f"{where} does not have the ArmoRM layout: " + "; ".join(parts) + ".")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def device_map_for(device: str):
    """One device -> {'': device}; 'auto' (or 'cuda' with several GPUs) -> accelerate's balanced split."""
    if device == "auto" or (device == "cuda" and torch.cuda.device_count() > 1):
        return "auto"
    if device == "cuda":
        device = "cuda:0"
    return {"": device}


def load_model(folder: Path, device: str, dtype: torch.dtype) -> ArmoRM:
    from accelerate import dispatch_model, infer_auto_device_map, init_empty_weights
    from accelerate.utils import load_checkpoint_in_model

    config = read_config(folder)
    config._attn_implementation = "sdpa"
    weights = weights_file(folder)
    with init_empty_weights():
        model = ArmoRM(config)
    check_keys(model, checkpoint_shapes(weights), folder)
    device_map = device_map_for(device)
    if device_map == "auto":
        device_map = infer_auto_device_map(model, no_split_module_classes=["LlamaDecoderLayer"], dtype=dtype)
    load_checkpoint_in_model(model, str(weights), device_map=device_map, dtype=dtype, strict=True)
    reload_head_fp32(model, weights)
    model = dispatch_model(model, device_map=device_map)
    return model.eval()


def reload_head_fp32(model: ArmoRM, weights: Path) -> None:
    """Put the head back in float32 as stored (accelerate casts every tensor to the backbone's dtype)."""
    params = dict(model.named_parameters())
    for path in shard_paths(weights):
        with safe_open(path, framework="pt") as f:
            for key in f.keys():
                if key.split(".")[0] in HEAD_MODULES:
                    p = params[key]
                    p.data = f.get_tensor(key).to(p.device, torch.float32)
