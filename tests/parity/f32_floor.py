#!/usr/bin/python3
"""f32_floor.py: how close to the float64 reference any engine that holds its activations and
gradients in float32 can get on these fixtures. It runs ref_llama.py with exact float64
arithmetic but rounds every intermediate an engine keeps in memory (and every gradient flowing
back through it) to float32, then prints, per case, the worst relative error of each kind of
lora-check output against expected.safetensors (relative = max abs difference / max |expected|
per tensor, as the C tests define it). An fp32 engine cannot be expected to do better than
these numbers, whatever its reductions accumulate in.

  /usr/bin/python3 tests/parity/f32_floor.py
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_llama as ref  # noqa: E402
import st_io  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
KINDS = ("logits", "loss", "lora_grad.", "lora_step1.", "adam_m.", "adam_v.", "lora_step3.")


class ToF32(torch.autograd.Function):
    """Identity that rounds its value, and the gradient passing back, to float32."""

    @staticmethod
    def forward(ctx, t):
        return t.float().double()

    @staticmethod
    def backward(ctx, g):
        return g.float().double()


def floor_of(case):
    d = os.path.join(FIXTURES, case)
    cfg, weights = ref.load_model(os.path.join(d, "model"))
    inp, meta = st_io.read(os.path.join(d, "in.safetensors"))
    expected, _ = st_io.read(os.path.join(d, "expected.safetensors"))
    lora = {k[len("lora_init."):]: t.double() for k, t in inp.items()
            if k.startswith("lora_init.")}
    exact = ref.forward
    ref.forward = lambda *a, **kw: exact(*a, **kw, store=ToF32.apply)
    try:
        out, _ = ref.lora_check(cfg, weights, inp["input_ids"].long(), inp["labels"].long(), lora,
                                meta, steps=3)
    finally:
        ref.forward = exact
    worst = dict.fromkeys(KINDS, 0.0)
    for name, t in out.items():
        kind = next((k for k in KINDS if name == k or name.startswith(k) and k.endswith(".")),
                    None)
        if kind:
            e = expected[name].double()
            rel = float((t.detach().float().double() - e).abs().max() / e.abs().max())
            worst[kind] = max(worst[kind], rel)
    return worst


def main():
    for case in sorted(os.listdir(FIXTURES)):
        worst = floor_of(case)
        print(f"{case}: " + " ".join(f"{k.rstrip('.')} {v:.2g}" for k, v in worst.items()))


if __name__ == "__main__":
    main()
