#!/usr/bin/python3
"""torch_lora_step.py: the PyTorch side of the LoRA training benchmark. One LoRA step (rank 16,
alpha 32, all seven targets, random fp32 weights, frozen base, AdamW) using the parity
reference's forward (tests/parity/ref_llama.py), timed for
  (a) vocab 256, hidden 256, 4 layers, 4 heads, 4 kv heads, ffn 688, seq 256, batch 4;
  (b) SmolLM2-135M: vocab 49152, hidden 576, 30 layers, 9 heads, 3 kv heads, ffn 1536, tied,
      seq 512, batch 1.
Each shape runs in its own process (so peak RSS is that shape's) and prints one JSON line:
{shape, tokens_per_s (mean over the timed steps), tokens_per_s_best_step (the fastest step: less
sensitive to other load on a shared machine), peak_rss_mb, torch_blas, loadavg_1m, ...}.

BLAS: Debian's torch calls whatever libblas.so.3 the dynamic linker finds. --blas openblas or
netlib selects one for this run only (a private LD_LIBRARY_PATH link, no change to the system
alternatives); --coretype sets OPENBLAS_CORETYPE (OpenBLAS 0.3.21 does not know newer Xeons and
falls back to slow kernels; SkylakeX is the fast, verified choice on them). The JSON says which
library and OpenBLAS core actually ran.

  /usr/bin/python3 tests/bench/torch_lora_step.py --shape all --blas openblas --coretype SkylakeX
"""

import argparse
import ctypes
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LIBDIR = "/usr/lib/x86_64-linux-gnu"
BLAS_LIBS = {"openblas": f"{LIBDIR}/openblas-pthread/libblas.so.3",
             "netlib": f"{LIBDIR}/blas/libblas.so.3"}

SHAPES = {
    "a": {"config": {"vocab_size": 256, "hidden_size": 256, "num_hidden_layers": 4,
                     "num_attention_heads": 4, "num_key_value_heads": 4,
                     "intermediate_size": 688, "tie_word_embeddings": False},
          "seq": 256, "batch": 4},
    "b": {"config": {"vocab_size": 49152, "hidden_size": 576, "num_hidden_layers": 30,
                     "num_attention_heads": 9, "num_key_value_heads": 3,
                     "intermediate_size": 1536, "tie_word_embeddings": True},
          "seq": 512, "batch": 1},
}
RANK, ALPHA = 16, 32.0


class DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def blas_in_use(torch):
    """(BLAS name, path of the library whose sgemm_ torch's CPU library binds to, OpenBLAS core
    or None): dlsym from libtorch_cpu's own handle, then dladdr on the address."""
    libtorch = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    handle = ctypes.CDLL(libtorch, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    info = DlInfo()
    dladdr = ctypes.CDLL(None).dladdr
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
    if not dladdr(ctypes.cast(handle.sgemm_, ctypes.c_void_p), ctypes.byref(info)):
        return "unknown", "unknown", None
    lib = os.path.realpath(info.dli_fname.decode())
    try:
        so = ctypes.CDLL(lib)
        corename, config = so.openblas_get_corename, so.openblas_get_config
    except AttributeError:
        return ("netlib reference BLAS" if "/blas/" in lib else os.path.basename(lib)), lib, None
    corename.restype = config.restype = ctypes.c_char_p
    return config().decode(), lib, corename().decode()


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def run_shape(name, steps, warmup, threads):
    import torch

    sys.path.insert(0, os.path.join(HERE, "..", "parity"))
    import ref_llama as ref

    torch.set_num_threads(threads)
    shape = SHAPES[name]
    d = dict(shape["config"], architectures=["LlamaForCausalLM"], rms_norm_eps=1e-5,
             max_position_embeddings=4096, rope_theta=10000.0)
    cfg = ref.Config(d)
    g = torch.Generator().manual_seed(0)
    C, V = cfg.hidden_size, cfg.vocab_size
    w = {"model.embed_tokens.weight": torch.randn(V, C, generator=g) * 0.02,
         "model.norm.weight": torch.ones(C)}
    if not cfg.tie_word_embeddings:
        w["lm_head.weight"] = torch.randn(V, C, generator=g) * 0.02
    lora = {}
    for i in range(cfg.num_hidden_layers):
        w[f"model.layers.{i}.input_layernorm.weight"] = torch.ones(C)
        w[f"model.layers.{i}.post_attention_layernorm.weight"] = torch.ones(C)
        q, kv, F = (cfg.num_attention_heads * cfg.head_dim,
                    cfg.num_key_value_heads * cfg.head_dim, cfg.intermediate_size)
        for m, (o, n) in {"q_proj": (q, C), "k_proj": (kv, C), "v_proj": (kv, C),
                          "o_proj": (C, q), "gate_proj": (F, C), "up_proj": (F, C),
                          "down_proj": (C, F)}.items():
            w[ref.module_prefix(i, m) + ".weight"] = torch.randn(o, n, generator=g) * 0.02
            lora[ref.peft_key(i, m, "A")] = (torch.rand(RANK, n, generator=g) * 2 - 1) / n ** 0.5
            lora[ref.peft_key(i, m, "B")] = torch.zeros(o, RANK)  # PEFT's initialisation
    params = {k: t.requires_grad_(True) for k, t in lora.items()}
    opt = torch.optim.AdamW(list(params.values()), lr=1e-4, weight_decay=0.01)
    B, T = shape["batch"], shape["seq"]
    ids = torch.randint(0, V, (B, T), generator=g)
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        loss = ref.causal_lm_loss(ref.forward(cfg, w, ids, {"params": params, "scale": ALPHA / RANK}),
                                  ids)
        loss.backward()
        opt.step()
        losses.append(float(loss))

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    secs = sum(times)
    blas, lib, core = blas_in_use(torch)
    return {"shape": name, "tokens_per_s": round(B * T * steps / secs, 2),
            "tokens_per_s_best_step": round(B * T / min(times), 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "torch_blas": blas, "torch_blas_path": lib, "openblas_core": core,
            "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
            "threads": threads, "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "batch": B, "seq": T, "steps": steps, "warmup": warmup,
            "seconds_per_step": round(secs / steps, 4), "loss_first": round(losses[0], 4),
            "loss_last": round(losses[-1], 4), "torch": torch.__version__,
            "cpu": cpu_model(), "loadavg_1m": round(os.getloadavg()[0], 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=["a", "b", "all"], default="all")
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: a 10, b 3)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blas", choices=["system", "openblas", "netlib"], default="system")
    ap.add_argument("--coretype", default=None, help="OPENBLAS_CORETYPE for this run")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        steps = a.steps or (10 if a.shape == "a" else 3)
        print(json.dumps(run_shape(a.shape, steps, a.warmup, a.threads)), flush=True)
        return
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
    if a.coretype:
        env["OPENBLAS_CORETYPE"] = a.coretype
    with tempfile.TemporaryDirectory() as shim:
        if a.blas != "system":
            os.symlink(BLAS_LIBS[a.blas], os.path.join(shim, "libblas.so.3"))
            env["LD_LIBRARY_PATH"] = shim + ":" + env.get("LD_LIBRARY_PATH", "")
        rc = 0
        for s in (["a", "b"] if a.shape == "all" else [a.shape]):
            cmd = [sys.executable, os.path.abspath(__file__), "--child", "--shape", s,
                   "--steps", str(a.steps), "--warmup", str(a.warmup), "--threads", str(a.threads)]
            rc |= subprocess.run(cmd, env=env).returncode
    sys.exit(rc)


if __name__ == "__main__":
    main()
