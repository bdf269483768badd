"""Loss and gradients by PyTorch autograd (float64) for checkpoints in the Hugging Face layout, against which
openelm's backward pass (src/train/) is checked: the forward pass is ref/trace_reference.py's (our own,
written from the architecture), the loss the mean cross-entropy of predicting ids[1..] from ids[..T-1].

    /usr/bin/python3 ref/grad_reference.py --out ref/grads ref/oracle/elm-tiny-gqa ref/oracle/elm-tiny-untied-mha \
        ref/oracle/elm-tiny-fp16 ref/synthetic/gelu-plain-untied ref/synthetic/relu-glu-mqa

Writes OUT/MODEL.safetensors: the gradient of every weight (float32, Hugging Face names), with the ids and
the loss in its metadata. Needs only torch and numpy (Debian: apt-get install python3-torch).
"""
import argparse
import json
import os

import torch

from trace_reference import forward, load_checkpoint, write_safetensors

# 24 ids, the same for every model (every vocabulary here has at least 260 tokens); BOS first
IDS = [1] + [(37 * i + 11) % 250 + 3 for i in range(23)]


def gradients(model_dir, ids):
    c = json.load(open(os.path.join(model_dir, "config.json")))
    w = {name: t.to(torch.float64).requires_grad_() for name, t in load_checkpoint(model_dir).items()}
    with torch.enable_grad():
        logits, _ = forward.__wrapped__(c, w, ids)  # the tracing forward, without its no_grad
        loss = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]))
        loss.backward()
    return loss.item(), {name: t.grad for name, t in w.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="checkpoint folders")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for model_dir in a.models:
        name = os.path.basename(os.path.normpath(model_dir))
        loss, grads = gradients(model_dir, IDS)
        write_safetensors(os.path.join(a.out, f"{name}.safetensors"), grads, {"ids": ",".join(map(str, IDS)), "loss": repr(loss), "producer": "ref/grad_reference.py (PyTorch autograd, float64)"})
        print(f"{name}: {len(IDS)} tokens, loss {loss:.6f}, {len(grads)} gradients")


if __name__ == "__main__":
    main()
