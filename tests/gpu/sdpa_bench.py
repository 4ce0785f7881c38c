"""The anchor of the attention benchmark: torch's scaled_dot_product_attention (causal, grouped
query heads, bf16 inputs), forward and backward, at one config.json's heads, as gpu_bench
--attention times fastbrain's. Prints one JSON line in its format.
Usage: sdpa_bench.py CONFIG.json BATCH SEQ STEPS"""
import json
import sys
import time

import torch
import torch.nn.functional as F


def main():
    path, batch, seq, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    with open(path) as f:
        cfg = json.load(f)
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim", cfg["hidden_size"] // nh)
    torch.manual_seed(0)

    def tensor(heads):
        return torch.randn(batch, heads, seq, hd, device="cuda", dtype=torch.bfloat16, requires_grad=True)

    q, k, v = tensor(nh), tensor(nkv), tensor(nkv)
    dout = torch.randn(batch, nh, seq, hd, device="cuda", dtype=torch.bfloat16)
    for step in range(-2, steps):  # two warm-ups
        if step == 0:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=nkv != nh)
        out.backward(dout)
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    flops = 3 * 2 * 2 * batch * nh * seq * (seq / 2) * hd
    print(json.dumps({"engine": "torch sdpa", "what": "attention", "device": torch.cuda.get_device_name(),
                      "config": path, "batch": batch, "seq": seq, "heads": nh, "kv_heads": nkv,
                      "head_dim": hd, "fwd_bwd_ms": round(dt * 1e3, 3),
                      "tflops": round(flops / dt / 1e12, 1)}), flush=True)


if __name__ == "__main__":
    main()
