"""The tables of the GPU benchmark: fastbrain beside HF + peft for each shape, from the JSON lines
of gpu_bench and hf_peft_bench.py, with MFU against the card's bf16 peak and the issue's floors
(>= 1.5x the tokens/s, <= 0.7x the peak memory); and one layer's attention, forward and backward,
beside torch's SDPA (gpu_bench --attention, sdpa_bench.py).
Usage: report.py BENCH.jsonl [GPU_NAME] | report.py --selftest

MFU counts the useful FLOPs of a LoRA step with a frozen base: every base matrix product (each
projection and lm_head) forward and its input gradient (2 + 2 FLOPs per weight per token), the
adapters forward and both their gradients (6 per adapter weight), and causal attention (QK^T
and PV over on average T/2 keys, forward once and backward twice)."""
import json
import sys

# Dense bf16 peaks from NVIDIA's datasheets, by the name nvidia-smi gives (KINDS.md measured
# ~790e12 in an 8192^3 product on both SXM cards).
BF16_PEAKS = [("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12)]


def bf16_peak(gpu):
    for name, flops in BF16_PEAKS:
        if name in gpu:
            return flops
    return BF16_PEAKS[0][1]
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


def by_config(rows, what):
    """{config: {engine: row}} of the rows of one kind (None: training throughput)."""
    by = {}
    for r in rows:
        if r.get("what") == what:
            by.setdefault(r["config"], {})[r["engine"]] = r
    return by


def shape_name(config):
    return config.rsplit("/", 1)[-1].removesuffix(".json")


def table(rows, gpu="H200"):
    peak = bf16_peak(gpu)
    by = by_config(rows, None)
    lines = ["shape            engine      tokens/s   peak GiB   MFU     speed x   memory x  floors",
             "-" * 88]
    ok = True
    for config, engines in by.items():
        with open(config) as f:
            cfg = json.load(f)
        name = shape_name(config)
        hf = engines.get("hf+peft")
        for eng in ("fastbrain", "hf+peft"):
            r = engines.get(eng)
            if not r:
                lines.append(f"{name:16} {eng:10}  (no result)")
                ok = False
                continue
            mfu = r["tokens_per_s"] * flops_per_token(cfg, r["seq"]) / peak
            speed = mem = verdict = ""
            if eng == "fastbrain" and hf:
                s, m = r["tokens_per_s"] / hf["tokens_per_s"], r["peak_bytes"] / hf["peak_bytes"]
                passed = s >= 1.5 and m <= 0.7
                ok &= passed
                speed, mem, verdict = f"{s:.2f}", f"{m:.2f}", "pass" if passed else "FAIL"
            lines.append(f"{name:16} {eng:10} {r['tokens_per_s']:9.0f} {r['peak_bytes'] / 2**30:10.2f} "
                         f"{mfu * 100:6.1f}%  {speed:>8}  {mem:>8}  {verdict}")
    return "\n".join(lines), ok


def profile_table(rows):
    """Where a step's time goes (gpu_bench --profile): each phase's milliseconds and share."""
    lines = []
    for r in rows:
        if r.get("what") != "profile":
            continue
        name = shape_name(r["config"])
        total = sum(r["phase_ms"].values())
        parts = "  ".join(f"{k} {ms:.2f} ({ms / total * 100:.0f}%)" for k, ms in r["phase_ms"].items())
        lines.append(f"{name}: {r['step_ms']:.2f} ms a step: {parts}")
    return "\n".join(lines)


def attention_table(rows):
    """One layer's causal attention, forward and backward: fastbrain's time beside torch SDPA's."""
    by = by_config(rows, "attention")
    lines = ["attention        engine      shape (B T NH/NKV HD)   fwd+bwd ms   TFLOP/s   time x sdpa",
             "-" * 88]
    for config, engines in by.items():
        name = shape_name(config)
        sdpa = engines.get("torch sdpa")
        for eng in ("fastbrain", "torch sdpa"):
            r = engines.get(eng)
            if not r:
                lines.append(f"{name:16} {eng:10}  (no result)")
                continue
            ratio = f"{r['fwd_bwd_ms'] / sdpa['fwd_bwd_ms']:.2f}" if sdpa and eng == "fastbrain" else ""
            dims = f"{r['batch']} {r['seq']} {r['heads']}/{r['kv_heads']} {r['head_dim']}"
            lines.append(f"{name:16} {eng:10}  {dims:22} {r['fwd_bwd_ms']:11.3f} {r['tflops']:9.1f}  {ratio:>11}")
    return "\n".join(lines)


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
    assert "20.4%" in text and "26.7%" in table(rows, "NVIDIA H100 PCIe")[0]  # the card's own peak
    rows[0]["peak_bytes"] = 8 * 2**30
    assert not table(rows)[1]
    att = {"what": "attention", "config": "tests/gpu/smollm2-135m.json", "batch": 8, "seq": 1024,
           "heads": 9, "kv_heads": 3, "head_dim": 64}
    text = attention_table(rows + [dict(att, engine="fastbrain", fwd_bwd_ms=3.0, tflops=100.0),
                                   dict(att, engine="torch sdpa", fwd_bwd_ms=2.0, tflops=150.0)])
    assert "1.50" in text and "8 1024 9/3 64" in text, text
    prof = dict(att, what="profile", engine="fastbrain", step_ms=10.0,
                phase_ms={"base_gemm": 6.0, "lora": 1.0, "attention_fwd": 0.5, "attention_bwd": 0.4,
                          "attention_dkdv": 0.6, "loss": 1.0, "elementwise": 0.4, "optimizer": 0.1})
    text = profile_table([prof])
    assert "base_gemm 6.00 (60%)" in text and "10.00 ms a step" in text, text
    print("report.py selftest: ok")


if __name__ == "__main__":
    if sys.argv[1:] == ["--selftest"]:
        selftest()
        sys.exit(0)
    with open(sys.argv[1]) as f:
        rows = [json.loads(line) for line in f if line.startswith("{")]
    text, ok = table(rows, sys.argv[2] if len(sys.argv) > 2 else "H200")
    print(text)
    print()
    print(attention_table(rows))
    print()
    print(profile_table(rows))
    print()
    print("floors (>= 1.5x tokens/s, <= 0.7x peak memory on both shapes):", "met" if ok else "NOT met")
