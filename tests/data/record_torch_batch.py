"""Records the book's modules with dropout on batches of identical inputs, for
tests/data/torch_batch.json (torch 2.13.0+cpu).

Run where torch is installed: python tests/data/record_torch_batch.py > tests/data/torch_batch.json
The classes are chapter 3's (rasbt/LLMs-from-scratch, ch03/01_main-chapter-code). Each case
seeds torch, builds the module, runs it in training mode on torch.stack of B copies of the
book's six tokens, and keeps the context vectors of every batch item and the dropped-out
attention weights of every item (as the module's dropout layer returned them). The tests
compare attn's numbers with these, without torch.
"""

import json
import sys

import torch
import torch.nn as nn


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer(
            "mask", torch.triu(torch.ones(context_length, context_length), diagonal=1)
        )

    def forward(self, x):
        _, num_tokens, _ = x.shape
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)
        attn_scores = queries @ keys.transpose(1, 2)
        attn_scores.masked_fill_(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)
        context_vec = attn_weights @ values
        return context_vec


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList(
            [
                CausalAttention(d_in, d_out, context_length, dropout, qkv_bias)
                for _ in range(num_heads)
            ]
        )

    def forward(self, x):
        return torch.cat([head(x) for head in self.heads], dim=-1)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer(
            "mask", torch.triu(torch.ones(context_length, context_length), diagonal=1)
        )

    def forward(self, x):
        b, num_tokens, _ = x.shape
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)
        keys = keys.view(b, num_tokens, self.num_heads, self.head_dim)
        values = values.view(b, num_tokens, self.num_heads, self.head_dim)
        queries = queries.view(b, num_tokens, self.num_heads, self.head_dim)
        keys = keys.transpose(1, 2)
        queries = queries.transpose(1, 2)
        values = values.transpose(1, 2)
        attn_scores = queries @ keys.transpose(2, 3)
        mask_bool = self.mask.bool()[:num_tokens, :num_tokens]
        attn_scores.masked_fill_(mask_bool, -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)
        context_vec = (attn_weights @ values).transpose(1, 2)
        context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)
        context_vec = self.out_proj(context_vec)
        return context_vec


inputs = torch.tensor(
    [
        [0.43, 0.15, 0.89],
        [0.55, 0.87, 0.66],
        [0.57, 0.85, 0.64],
        [0.22, 0.58, 0.33],
        [0.77, 0.25, 0.10],
        [0.05, 0.80, 0.55],
    ]
)

cases = []
for module_name, d_out, heads, dropout, batch in [
    ("CausalAttention", 2, 1, 0.5, 2),
    ("MultiHeadAttentionWrapper", 2, 2, 0.5, 1),
    ("MultiHeadAttentionWrapper", 2, 2, 0.5, 2),
    ("MultiHeadAttentionWrapper", 1, 3, 0.3, 3),
    ("MultiHeadAttention", 2, 2, 0.5, 2),
    ("MultiHeadAttention", 4, 2, 0.5, 2),
    ("MultiHeadAttention", 2, 2, 1.0, 2),
    ("MultiHeadAttentionWrapper", 2, 2, 1.0, 2),
]:
    torch.manual_seed(123)
    if module_name == "CausalAttention":
        module = CausalAttention(3, d_out, 6, dropout)
    elif module_name == "MultiHeadAttentionWrapper":
        module = MultiHeadAttentionWrapper(3, d_out, 6, dropout, num_heads=heads)
    else:
        module = MultiHeadAttention(3, d_out, 6, dropout, num_heads=heads)
    module.train()
    dropped = []  # each dropout layer's output, in the order they run
    for layer in module.modules():
        if isinstance(layer, nn.Dropout):
            layer.register_forward_hook(
                lambda _m, _i, out, dropped=dropped: dropped.append(out.detach())
            )
    with torch.no_grad():
        context_vecs = module(torch.stack([inputs] * batch))  # (B, T, d)
    if module_name == "MultiHeadAttention":
        attn_weights = dropped[0]  # (B, H, T, T)
    else:
        attn_weights = torch.stack(dropped, dim=1)  # H x (B, T, T) -> (B, H, T, T)
    cases.append(
        {
            "module": module_name,
            "d_in": 3,
            "d_out": d_out,
            "num_heads": heads,
            "dropout": dropout,
            "seed": 123,
            "batch": batch,
            "context_vecs": context_vecs.tolist(),
            "attn_weights": attn_weights.tolist(),
        }
    )

json.dump(
    {
        "source": f"torch {torch.__version__}",
        "script": "tests/data/record_torch_batch.py",
        "inputs": inputs.tolist(),
        "cases": cases,
    },
    sys.stdout,
    indent=1,
)
sys.stdout.write("\n")
