"""LoRA adapters and what PyTorch autograd (float64) computes with them, against which openelm's adapter
loading (src/formats/peft.ts) and LoRA gradients (src/train/lora.ts) are checked. The forward pass is
ref/trace_reference.py's, with each adapted Linear's weight W + (alpha/r)·B·A: what peft's LoRA layer
computes unmerged, x·Wᵀ + (alpha/r)·(x·Aᵀ)·Bᵀ, written as one product.

    /usr/bin/python3 ref/lora_reference.py --out ref/lora ref/oracle/elm-tiny-gqa ref/synthetic/relu-glu-mqa

For each model writes OUT/MODEL/adapter_config.json and adapter_model.safetensors (peft's layout: a seeded
random adapter, rank 4, alpha 8, on qkv_proj, out_proj, proj_1 and proj_2; B is not zero, so that the
adapter changes the logits) and OUT/MODEL/expected.safetensors: the logits [T, V] with the adapter, and the
gradient of the masked loss with respect to every lora_A and lora_B (peft's names), the ids, the mask and
the loss in its metadata. The loss is the mean cross-entropy of the targets ids[j] with mask[j] (j >= 1),
as a chat fine-tune counts only the assistant's tokens.
"""
import argparse
import json
import os

import torch

from trace_reference import forward, load_checkpoint, write_safetensors

IDS = [1] + [(37 * i + 11) % 250 + 3 for i in range(23)]
MASK = [False] * 8 + [True] * 7 + [False] * 3 + [True] * 6  # two "assistant turns"
RANK, ALPHA, TARGETS = 4, 8.0, ["qkv_proj", "out_proj", "proj_1", "proj_2"]


def adapter_for(weights, seed):
    g = torch.Generator().manual_seed(seed)
    pairs = {}
    for name, w in sorted(weights.items()):
        if any(name.endswith(f".{t}.weight") for t in TARGETS):
            out, inp = w.shape
            a = (torch.randn(RANK, inp, generator=g) / inp ** 0.5).to(torch.float32)
            b = (torch.randn(out, RANK, generator=g) * 0.05).to(torch.float32)
            pairs[name] = (a, b)
    return pairs


def peft_name(weight, which):
    return f"base_model.model.{weight[: -len('.weight')]}.lora_{which}.weight"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="checkpoint folders")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    for model_dir in a.models:
        name = os.path.basename(os.path.normpath(model_dir))
        out = os.path.join(a.out, name)
        os.makedirs(out, exist_ok=True)
        c = json.load(open(os.path.join(model_dir, "config.json")))
        base = {n: t.to(torch.float64) for n, t in load_checkpoint(model_dir).items()}
        pairs = adapter_for(base, seed=7)
        config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": model_dir, "r": RANK, "lora_alpha": ALPHA,
                  "lora_dropout": 0.0, "target_modules": TARGETS, "bias": "none", "fan_in_fan_out": False, "inference_mode": True}
        json.dump(config, open(os.path.join(out, "adapter_config.json"), "w"), indent=2)
        stored = {}
        for weight, (pa, pb) in pairs.items():
            stored[peft_name(weight, "A")], stored[peft_name(weight, "B")] = pa, pb
        write_safetensors(os.path.join(out, "adapter_model.safetensors"), stored, {"format": "pt"})

        lora = {n: t.to(torch.float64).requires_grad_() for n, t in stored.items()}
        with torch.enable_grad():
            w = dict(base)
            # x·Wᵀ + s·(x·Aᵀ)·Bᵀ = x·(W + s·B·A)ᵀ: the forward pass takes the effective weight
            for weight in pairs:
                w[weight] = base[weight] + (ALPHA / RANK) * lora[peft_name(weight, "B")] @ lora[peft_name(weight, "A")]
            logits, _ = forward.__wrapped__(c, w, IDS)
            targets = torch.tensor(IDS[1:])
            counted = torch.tensor(MASK[1:])
            losses = torch.nn.functional.cross_entropy(logits[:-1], targets, reduction="none")
            loss = losses[counted].mean()
            loss.backward()
        expected = {"logits": logits.detach()}
        expected.update({f"grad.{n}": t.grad for n, t in lora.items()})
        write_safetensors(os.path.join(out, "expected.safetensors"), expected, {
            "ids": ",".join(map(str, IDS)), "mask": "".join("1" if m else "0" for m in MASK), "loss": repr(loss.item()),
            "producer": "ref/lora_reference.py (PyTorch autograd, float64)"})
        print(f"{name}: {len(pairs)} adapted weights, masked loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
