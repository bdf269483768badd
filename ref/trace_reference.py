"""An independent OpenELM forward pass in PyTorch (float32) that writes the same named taps as
`openelm trace`, for any checkpoint in the Hugging Face layout: a second implementation for port authors
to trace against. Our own code, written from the architecture (not Apple's source).

    /usr/bin/python3 ref/trace_reference.py MODEL_DIR --ids 1,5,9 --out trace.safetensors
    /usr/bin/python3 ref/trace_reference.py --oracle ref/oracle --traces ref/traces   # every oracle case
    /usr/bin/python3 ref/trace_reference.py --oracle ref/oracle --past-context ref/past-context

With --oracle it also prints the error of its logits against the stored CoreNet logits. With --past-context
it greedy-decodes, for every oracle model, 16 tokens after a prompt of max_context_length - 4 ids, so the
last 12 land at positions past the trained context (rotary positions are not capped; see ref/past-context).
Needs only torch and numpy (Debian: apt-get install python3-torch).
"""
import argparse
import json
import math
import os
import struct

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def read_safetensors(path):
    """name -> float32 tensor, for F32, F16 and BF16 files."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        begin, end = t["data_offsets"]
        raw = np.frombuffer(data[begin:end], dtype=DTYPES[t["dtype"]])
        if t["dtype"] == "BF16":
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        out[name] = torch.from_numpy(raw.astype(np.float32).reshape(t["shape"]).copy())
    return out


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        b = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_checkpoint(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        weights = {}
        for shard in sorted(set(json.load(open(index))["weight_map"].values())):
            weights.update(read_safetensors(os.path.join(model_dir, shard)))
        return weights
    return read_safetensors(os.path.join(model_dir, "model.safetensors"))


def make_divisible(v, divisor):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def layer_shapes(c):
    """Per-layer query heads, kv heads and FFN widths (derived as OpenELMConfig does when not listed)."""
    layers, groups = c["num_transformer_layers"], c.get("num_gqa_groups", 1)
    qkv = c.get("qkv_multipliers", 1.0)
    qkv = [qkv] * layers if isinstance(qkv, (int, float)) else [round(v.item(), 2) for v in np.linspace(qkv[0], qkv[1], layers)]
    q_heads = c.get("num_query_heads") or [make_divisible(c["model_dim"] * m, c["head_dim"] * groups) // c["head_dim"] for m in qkv]
    kv_heads = c.get("num_kv_heads") or [q // groups for q in q_heads]
    ffn = c.get("ffn_multipliers", 4.0)
    ffn = [ffn] * layers if isinstance(ffn, (int, float)) else ffn if len(ffn) == layers else [round(v.item(), 2) for v in np.linspace(ffn[0], ffn[1], layers)]
    return q_heads, kv_heads, [make_divisible(m * c["model_dim"], c.get("ffn_dim_divisor", 256)) for m in ffn]


def rms_norm(x, weight, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope(x, positions, base):
    """Rotate-half rotary embedding of x [T, heads, hd], float32 tables."""
    hd = x.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    theta = torch.outer(positions.to(torch.float32), inv_freq)
    cos, sin = torch.cat([theta, theta], -1).cos()[:, None, :], torch.cat([theta, theta], -1).sin()[:, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


ACT = {"swish": torch.nn.functional.silu, "gelu": lambda x: torch.nn.functional.gelu(x, approximate="none"), "relu": torch.relu}


@torch.no_grad()
def forward(c, w, ids):
    """Logits [T, V] and the taps, named as openelm names them."""
    taps = {}
    T, D, hd = len(ids), c["model_dim"], c["head_dim"]
    q_heads, kv_heads, ffn_dims = layer_shapes(c)
    act = ACT[c.get("activation_fn_name", "swish")]
    positions = torch.arange(T)  # no cap at max_context_length or rope_max_length: rope() takes any position
    x = w["transformer.token_embeddings.weight"][torch.tensor(ids)]
    taps["embed"] = x
    for l in range(c["num_transformer_layers"]):
        p, nq, nkv, F = f"transformer.layers.{l}.", q_heads[l], kv_heads[l], ffn_dims[l]
        t = lambda name, v: taps.__setitem__(f"layers.{l}.{name}", v)
        h = rms_norm(x, w[p + "attn_norm.weight"])
        t("attn_norm", h)
        qkv = (h @ w[p + "attn.qkv_proj.weight"].T).reshape(T, nq + 2 * nkv, hd)
        q, k, v = qkv[:, :nq], qkv[:, nq : nq + nkv], qkv[:, nq + nkv :]
        if c.get("normalize_qk_projections", False):
            q, k = rms_norm(q, w[p + "attn.q_norm.weight"]), rms_norm(k, w[p + "attn.k_norm.weight"])
        t("q", q), t("k", k), t("v", v)
        q, k = rope(q, positions, c.get("rope_freq_constant", 10000)), rope(k, positions, c.get("rope_freq_constant", 10000))
        t("q_rope", q), t("k_rope", k)
        # grouped-query attention: kv head j serves query heads j·g .. j·g + g - 1
        k, v = k.repeat_interleave(nq // nkv, dim=1), v.repeat_interleave(nq // nkv, dim=1)
        scores = torch.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
        scores = scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
        attn = torch.einsum("hts,shd->thd", scores.softmax(-1), v).reshape(T, nq * hd)
        t("attn", attn)
        out = attn @ w[p + "attn.out_proj.weight"].T
        t("attn_out", out)
        x = x + out
        t("resid_attn", x)
        h = rms_norm(x, w[p + "ffn_norm.weight"])
        t("ffn_norm", h)
        y = h @ w[p + "ffn.proj_1.weight"].T
        if c.get("ffn_with_glu", True):
            gate, up = y[:, :F], y[:, F:]
            t("ffn_gate", gate), t("ffn_up", up)
            y = act(gate) * up
        else:
            t("ffn_up", y)
            y = act(y)
        t("ffn_act", y)
        out = y @ w[p + "ffn.proj_2.weight"].T
        t("ffn_out", out)
        x = x + out
        t("resid_ffn", x)
    x = rms_norm(x, w["transformer.norm.weight"])
    taps["norm"] = x
    head = w["transformer.token_embeddings.weight"] if c.get("share_input_output_layers", False) else w["lm_head.weight"]
    logits = x @ head.T
    taps["logits"] = logits
    return logits, taps


def trace_to(model_dir, ids, out):
    c = json.load(open(os.path.join(model_dir, "config.json")))
    logits, taps = forward(c, load_checkpoint(model_dir), ids)
    write_safetensors(out, taps, {"ids": ",".join(map(str, ids)), "producer": "ref/trace_reference.py (PyTorch float32)"})
    return logits


def top2_gap(row):
    top = torch.topk(row, 2).values
    return float(top[0] - top[1])


def past_context(model_dir, out_dir, new_tokens=16, margin=4, seed=0):
    """Greedy-decode new_tokens after a random prompt of max_context_length - margin ids (BOS first, then ids
    in [3, vocab) so no BOS/EOS inside), running the whole sequence through forward() at every step (no KV
    cache). Positions simply continue past max_context_length. Writes NAME.json and NAME-logits.npy."""
    name = os.path.basename(os.path.normpath(model_dir))
    c, w = json.load(open(os.path.join(model_dir, "config.json"))), load_checkpoint(model_dir)
    L, V = c["max_context_length"], c["vocab_size"]
    prompt = [1] + np.random.default_rng(seed).integers(3, V, size=L - margin - 1).tolist()
    seq, greedy, gaps, step_rows = list(prompt), [], [], []
    for _ in range(new_tokens):
        logits, _ = forward(c, w, seq)
        row = logits[-1]
        step_rows.append(row)
        greedy.append(int(row.argmax()))
        gaps.append(round(top2_gap(row), 6))
        seq.append(greedy[-1])
    # the final full pass covered prompt + greedy[:-1]; its last new_tokens rows predict greedy[0..]
    final = logits[-new_tokens:].numpy().astype(np.float32)
    first = len(prompt) - 1  # position of final row 0
    np.save(os.path.join(out_dir, f"{name}-logits.npy"), final)
    json.dump({
        "source": "ref/trace_reference.py --past-context (independent PyTorch float32 reference, greedy, "
                  f"full forward per step, no KV cache), torch {torch.__version__}",
        "max_context_length": L,
        "seed": seed,
        "prompt": prompt,
        "greedy": greedy,
        "greedy_top2_gap": gaps,
        "logits": f"{name}-logits.npy",
        "logits_first_position": first,
    }, open(os.path.join(out_dir, f"{name}.json"), "w"), indent=1)

    # cross-check 1: steps whose whole pass fits in the trained context against one ordinary forward of L tokens
    inside = [i for i in range(new_tokens) if len(prompt) + i <= L]
    ordinary, _ = forward(c, w, seq[:L])
    agree = sum(int(ordinary[first + i].argmax()) == greedy[i] for i in inside)
    diff = max(float((ordinary[first + i] - step_rows[i]).abs().max() / step_rows[i].abs().max()) for i in inside)
    # cross-check 2: the saved rows of the final pass against the per-step rows, and their argmax against greedy
    steps = torch.stack(step_rows)
    final_diff = float((torch.from_numpy(final) - steps).abs().max() / steps.abs().max())
    final_agree = int((torch.from_numpy(final).argmax(-1) == torch.tensor(greedy)).sum())
    past = sum(len(prompt) + i >= L for i in range(new_tokens))
    ties = sum(g < 1e-3 for g in gaps)
    print(f"{name}: max_context_length {L}, prompt {len(prompt)} ids, new tokens at positions {len(prompt)}..{len(prompt) + new_tokens - 1}: "
          f"{past} of {new_tokens} past the trained length (positions >= {L}), {new_tokens - len(inside)} predicted by passes reaching past it; "
          f"in-context steps vs ordinary {L}-token forward: {agree}/{len(inside)} argmax agree, max|diff|/max|ref| = {diff:.2e}; "
          f"saved final-pass rows vs per-step rows: {final_agree}/{new_tokens} argmax agree, max|diff|/max|ref| = {final_diff:.2e}; "
          f"near ties (gap < 1e-3): {ties}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?")
    ap.add_argument("--ids")
    ap.add_argument("--out")
    ap.add_argument("--oracle", help="trace every case of every model in this folder")
    ap.add_argument("--traces", help="with --oracle: write MODEL/trace-K.safetensors here")
    ap.add_argument("--past-context", help="with --oracle: write MODEL.json and MODEL-logits.npy (greedy past max_context_length) here")
    a = ap.parse_args()
    if a.oracle and not (a.traces or a.past_context):
        ap.error("with --oracle give --traces DIR and/or --past-context DIR")
    if a.oracle and a.past_context:
        os.makedirs(a.past_context, exist_ok=True)
        for name in sorted(d for d in os.listdir(a.oracle) if os.path.isdir(os.path.join(a.oracle, d))):
            past_context(os.path.join(a.oracle, name), a.past_context)
        if not a.traces:
            return
    if a.oracle:
        for name in sorted(d for d in os.listdir(a.oracle) if os.path.isdir(os.path.join(a.oracle, d))):
            model_dir = os.path.join(a.oracle, name)
            os.makedirs(os.path.join(a.traces, name), exist_ok=True)
            for k, case in enumerate(json.load(open(os.path.join(model_dir, "cases.json")))["cases"]):
                logits = trace_to(model_dir, case["ids"], os.path.join(a.traces, name, f"trace-{k}.safetensors")).numpy()
                ref = np.load(os.path.join(model_dir, case["logits"]))
                print(f"{name} case {k}: {len(case['ids'])} tokens, logits vs CoreNet: max|diff|/max|ref| = {np.abs(logits - ref).max() / np.abs(ref).max():.2e}")
        return
    if not (a.model and a.ids and a.out):
        ap.error("give MODEL_DIR --ids 1,5,9 --out FILE.safetensors, or --oracle DIR --traces DIR and/or --past-context DIR")
    trace_to(a.model, [int(i) for i in a.ids.split(",")], a.out)


if __name__ == "__main__":
    main()
