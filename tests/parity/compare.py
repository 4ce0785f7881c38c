#!/usr/bin/python3
"""compare.py: compare two lora-check outputs (e.g. fixtures/<case>/expected.safetensors against
what `fastbrain lora-check` wrote), tensor by tensor: max absolute difference, the difference
relative to the largest expected magnitude, and the first differing values. An expected
lora-check output missing from the actual file is an error; the fixtures' extras (lora_step3.*,
loss_step3, greedy_ids) are compared only when present. Exit status 1 when any error is over its tolerance (logits and loss
1e-5, gradients 1e-4, optimizer state and steps 1e-6, as the issue sets them).

  /usr/bin/python3 tests/parity/compare.py EXPECTED.safetensors ACTUAL.safetensors
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

EXTRAS = ("lora_step3.", "loss_step3", "lora_grad_step", "greedy_ids")
TOLERANCES = (("logits", 1e-5), ("loss", 1e-5), ("lora_grad.", 1e-4), ("lora_step", 1e-6),
              ("adam_", 1e-6))


def tolerance(name):
    for prefix, tol in TOLERANCES:
        if name.startswith(prefix):
            return tol
    return 0.0  # integers (greedy_ids): exact


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__.strip().split("\n")[-1].strip())
    exp, _ = st_io.read(argv[1])
    act, _ = st_io.read(argv[2])
    bad = 0
    for name in sorted(set(exp) | set(act)):
        if name not in exp:
            print(f"{name}: not expected")
            bad += 1
            continue
        if name not in act:
            if not name.startswith(EXTRAS):
                print(f"{name}: missing")
                bad += 1
            continue
        e, a = exp[name].double(), act[name].double()
        if e.shape != a.shape:
            print(f"{name}: shape {list(a.shape)}, expected {list(e.shape)}")
            bad += 1
            continue
        diff = (a - e).abs()
        scale = max(float(e.abs().max()) if e.numel() else 0.0, 1e-30)
        rel = float(diff.max()) / scale if diff.numel() else 0.0
        tol = tolerance(name)
        over = rel > tol
        line = f"{name}: max abs {float(diff.max()) if diff.numel() else 0:.3g}, rel {rel:.3g} (tol {tol:g})"
        if over:
            idx = torch.nonzero(diff.reshape(-1) > tol * scale)[:3].reshape(-1).tolist()
            firsts = ", ".join(f"[{i}] {float(a.reshape(-1)[i]):.9g} vs {float(e.reshape(-1)[i]):.9g}"
                               for i in idx)
            line += f"  OVER: {firsts}"
            bad += 1
        print(line)
    print(f"{bad} tensor(s) over tolerance" if bad else "all within tolerance")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main(sys.argv)
