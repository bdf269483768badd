"""Per-layer head counts and FFN widths of the released OpenELM sizes, derived independently in Python
with numpy and Python's round, the way Hugging Face's OpenELMConfig.__post_init__ does. The values are
pinned in test/config.test.ts. Usage: /usr/bin/python3 ref/derive_config.py"""
import json
import numpy as np


def make_divisible(v, divisor=8, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def derive(layers, model_dim, head_dim, groups=4, qkv=(0.5, 1.0), ffn=(0.5, 4.0), divisor=256):
    qkv_m = [round(v.item(), 2) for v in np.linspace(qkv[0], qkv[1], num=layers, dtype=float)]
    q_dims = [int(make_divisible(model_dim * m, divisor=head_dim * groups)) for m in qkv_m]
    q_heads = [d // head_dim for d in q_dims]
    ffn_m = [round(v.item(), 2) for v in np.linspace(ffn[0], ffn[1], num=layers, dtype=float)]
    ffn_dims = [int(make_divisible(m * model_dim, divisor=divisor)) for m in ffn_m]
    vocab, kv_heads = 32000, [q // groups for q in q_heads]
    params = vocab * model_dim + model_dim + sum(  # tied embeddings, final norm, then each layer
        (q + 2 * kv) * head_dim * model_dim + q * head_dim * model_dim + 3 * f * model_dim + 2 * model_dim + 2 * head_dim
        for q, kv, f in zip(q_heads, kv_heads, ffn_dims))
    return {
        "parameters": params,
        "num_query_heads": q_heads,
        "num_kv_heads": kv_heads,
        "ffn_multipliers": ffn_m,
        "ffn_dims": ffn_dims,
    }


print(json.dumps({
    "270M": derive(16, 1280, 64),
    "450M": derive(20, 1536, 64),
    "1_1B": derive(28, 2048, 64),
    "3B": derive(36, 3072, 128),
}, indent=1))
