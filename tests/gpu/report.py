"""The table of the GPU benchmark: fastbrain beside HF + peft for each shape, from the JSON lines
of fb_gpu_check bench and hf_peft_bench.py, with MFU and the issue's floors (>= 1.5x the tokens/s,
<= 0.7x the peak memory). Usage: report.py BENCH.jsonl | report.py --selftest

MFU counts the useful FLOPs of a LoRA step with a frozen base: every base matrix product (each
projection and lm_head) forward and its input gradient (2 + 2 FLOPs per weight per token), the
adapters forward and both their gradients (6 per adapter weight), and causal attention (QK^T
and PV over on average T/2 keys, forward once and backward twice)."""
import json
import sys

H200_BF16_FLOPS = 989e12  # dense bf16, the H200 SXM datasheet (KINDS.md measured ~790e12)
TARGET_RANK = 16


def shape(cfg):
    c, f, L, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    nh = cfg["num_attention_heads"]
    hd = cfg.get("head_dim", c // nh)
    qd, kd = nh * hd, cfg.get("num_key_value_heads", nh) * hd
    projs = [(c, qd), (c, kd), (c, kd), (qd, c), (c, f), (c, f), (f, c)]  # (in, out)
    base = L * sum(i * o for i, o in projs) + v * c  # + lm_head
    lora = L * sum(TARGET_RANK * (i + o) for i, o in projs)
    return base, lora, L * qd


def flops_per_token(cfg, seq):
    base, lora, attn_width = shape(cfg)
    attention_fwd = 2 * 2 * (seq / 2) * attn_width  # two products, T/2 keys on average
    return 4 * base + 6 * lora + 3 * attention_fwd


def table(rows):
    by = {}
    for r in rows:
        by.setdefault(r["config"], {})[r["engine"]] = r
    lines = ["shape            engine      tokens/s   peak GiB   MFU     speed x   memory x  floors",
             "-" * 88]
    ok = True
    for config, engines in by.items():
        with open(config) as f:
            cfg = json.load(f)
        name = config.rsplit("/", 1)[-1].removesuffix(".json")
        hf = engines.get("hf+peft")
        for eng in ("fastbrain", "hf+peft"):
            r = engines.get(eng)
            if not r:
                lines.append(f"{name:16} {eng:10}  (no result)")
                ok = False
                continue
            mfu = r["tokens_per_s"] * flops_per_token(cfg, r["seq"]) / H200_BF16_FLOPS
            speed = mem = verdict = ""
            if eng == "fastbrain" and hf:
                s, m = r["tokens_per_s"] / hf["tokens_per_s"], r["peak_bytes"] / hf["peak_bytes"]
                passed = s >= 1.5 and m <= 0.7
                ok &= passed
                speed, mem, verdict = f"{s:.2f}", f"{m:.2f}", "pass" if passed else "FAIL"
            lines.append(f"{name:16} {eng:10} {r['tokens_per_s']:9.0f} {r['peak_bytes'] / 2**30:10.2f} "
                         f"{mfu * 100:6.1f}%  {speed:>8}  {mem:>8}  {verdict}")
    return "\n".join(lines), ok


def selftest():
    with open("tests/gpu/smollm2-135m.json") as f:
        smol = json.load(f)
    base, _, _ = shape(smol)
    # SmolLM2-135M has 134,515,008 parameters: the tied embedding (28,311,552), 35,136 norm
    # weights and the projections; lm_head counts again as a product.
    assert base == 134515008 - 28311552 - 35136 + 28311552, base
    rows = [{"engine": "fastbrain", "config": "tests/gpu/smollm2-135m.json", "seq": 1024,
             "tokens_per_s": 300000.0, "peak_bytes": 6 * 2**30},
            {"engine": "hf+peft", "config": "tests/gpu/smollm2-135m.json", "seq": 1024,
             "tokens_per_s": 100000.0, "peak_bytes": 10 * 2**30}]
    text, ok = table(rows)
    assert ok and "3.00" in text and "0.60" in text and "pass" in text, text
    rows[0]["peak_bytes"] = 8 * 2**30
    assert not table(rows)[1]
    print("report.py selftest: ok")


if __name__ == "__main__":
    if sys.argv[1:] == ["--selftest"]:
        selftest()
        sys.exit(0)
    with open(sys.argv[1]) as f:
        rows = [json.loads(line) for line in f if line.startswith("{")]
    text, ok = table(rows)
    print(text)
    print("floors (>= 1.5x tokens/s, <= 0.7x peak memory on both shapes):", "met" if ok else "NOT met")
