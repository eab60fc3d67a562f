"""Test oracle: a literal re-implementation of the published ArmoRM forward pass (the authors' modeling_custom.py).

Deliberately independent of armorm_ui.model and armorm_ui.scoring: the template comes from the tokenizer's own chat
template, the backbone from transformers' stock LlamaModel.from_pretrained, the head tensors straight from the
safetensors files, and the positions are found the way the published code finds them: the first pad token (id
128256) minus one for the reward, a backwards search for
<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n for the gate. Rows are padded on the right with the
pad id, as the published code requires. Everything in float32.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from transformers import AutoTokenizer, LlamaModel

TOKEN_PATTERN = [128009, 128006, 78191, 128007, 271]


def find_token_for_gating(lst: list[int]) -> int:
    for j in range(len(lst) - len(TOKEN_PATTERN), -1, -1):
        if lst[j : j + len(TOKEN_PATTERN)] == TOKEN_PATTERN:
            return j
    raise ValueError("Token pattern not found in the list.")


class PublishedArmoRM:
    def __init__(self, folder: Path):
        folder = Path(folder)
        self.config = json.loads((folder / "config.json").read_text())
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.backbone = LlamaModel.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
        self.head = {}
        index = json.loads((folder / "model.safetensors.index.json").read_text())
        for shard in set(index["weight_map"].values()):
            with safe_open(folder / shard, framework="pt") as f:
                for k in f.keys():
                    if not k.startswith("model."):
                        self.head[k] = f.get_tensor(k).float()

    def gating(self, x):
        n = self.config["gating_n_hidden"] + 1
        for i in range(n):
            x = F.linear(x, self.head[f"gating.layers.{i}.weight"], self.head[f"gating.layers.{i}.bias"])
            if i < n - 1:
                x = F.relu(x)
        x = F.softmax(x / self.config["gating_temperature"], dim=1)
        return x * self.head["gating.logit_scale"][0]

    @torch.no_grad()
    def __call__(self, messages: list[dict], candidates: list[str]) -> dict:
        pad = self.config["pad_token_id"]
        rows = [
            self.tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": c}], tokenize=True)
            for c in candidates
        ]
        rows = [r["input_ids"] if isinstance(r, dict) or hasattr(r, "keys") else r for r in rows]
        width = max(len(r) for r in rows)
        input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        out = self.backbone(input_ids=input_ids, attention_mask=(input_ids != pad).long())
        hidden = out.last_hidden_state
        it = torch.arange(input_ids.shape[0])
        sequence_lengths = (torch.eq(input_ids, pad).int().argmax(-1) - 1) % input_ids.shape[-1]
        rewards = F.linear(hidden[it, sequence_lengths], self.head["regression_layer.weight"])
        gate_pos = [find_token_for_gating(ids.tolist()) for ids in input_ids]
        gating_output = self.gating(hidden[it, gate_pos])
        T = self.head["reward_transform_matrix"]
        score = torch.sum(gating_output * (rewards @ T), dim=1)
        return {"rewards": rewards, "gating_output": gating_output, "score": score, "input_ids": rows}
