"""ref_llama.py: Hugging Face Llama-family semantics written out on their own in plain torch,
as the independent reference fastbrain is checked against: embedding, RMSNorm, RoPE (HF
rotate_half; linear and llama3 scaling), GQA causal attention with Mistral's, Qwen2's and
Qwen3's sliding windows (per layer), Qwen3's q_norm/k_norm (RMSNorm over each head of the q and
k projections, LoRA included, before RoPE; head_dim 128 by default),
SwiGLU, tied or untied lm_head, q/k/v bias (Qwen2; Llama's and Qwen3's attention_bias also
biases o_proj),
LoRA y = Wx + s*B(A(dropout(x))), the HF shifted cross-entropy, and greedy decoding. No
transformers or peft import. LoRA dropout draws fastbrain's documented masks (dropout_mask), so
both sides drop the same elements.

Weights are a dict of HF tensor names to tensors; compute in whatever dtype they hold (the
fixtures use float64).

As a command it is the reference twin of `fastbrain lora-check`, in float64:
  /usr/bin/python3 tests/parity/ref_llama.py lora-check MODEL_DIR IN.safetensors OUT.safetensors
"""

import json
import math
import os
import sys

import torch

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ATTN_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
IGNORE_INDEX = -100


class Config:
    """The fields of an HF config.json this reference uses, with HF's defaults."""

    def __init__(self, d):
        self.architecture = d["architectures"][0]
        self.vocab_size = d["vocab_size"]
        self.hidden_size = d["hidden_size"]
        self.intermediate_size = d["intermediate_size"]
        self.num_hidden_layers = d["num_hidden_layers"]
        self.num_attention_heads = d["num_attention_heads"]
        self.num_key_value_heads = d.get("num_key_value_heads") or self.num_attention_heads
        qwen3 = self.architecture == "Qwen3ForCausalLM"
        # Qwen3Config defaults head_dim to 128; the others derive it
        self.head_dim = d.get("head_dim") or (
            128 if qwen3 else self.hidden_size // self.num_attention_heads)
        self.rms_norm_eps = d["rms_norm_eps"]
        self.rope_theta = d.get("rope_theta", 10000.0)
        self.rope_scaling = d.get("rope_scaling")
        self.tie_word_embeddings = d.get("tie_word_embeddings", False)
        self.torch_dtype = d.get("torch_dtype", "float32")
        qwen2 = self.architecture == "Qwen2ForCausalLM"
        self.layer_windows = layer_windows(d, self.architecture, self.num_hidden_layers)
        self.qkv_bias = qwen2 or d.get("attention_bias", False)
        self.o_bias = (not qwen2) and d.get("attention_bias", False)
        self.qk_norm = qwen3  # Qwen3Attention: q_norm(q_proj(h).view(..., head_dim)), k_norm alike


def layer_windows(d, architecture, n_layers):
    """Each layer's sliding window (None = full attention) as transformers sets it: Mistral's
    sliding_window (default 4096, null none) on every layer; Qwen2's and Qwen3's only with
    use_sliding_window, on the layers layer_types marks "sliding_attention", by default those
    from max_window_layers (default 28) on; Llama none."""
    if architecture == "MistralForCausalLM":
        return [d.get("sliding_window", 4096)] * n_layers
    if architecture not in ("Qwen2ForCausalLM", "Qwen3ForCausalLM"):
        return [None] * n_layers
    window = d.get("sliding_window", 4096) if d.get("use_sliding_window", False) else None
    types = d.get("layer_types") or [
        "sliding_attention" if window is not None and i >= d.get("max_window_layers", 28)
        else "full_attention" for i in range(n_layers)]
    return [window if t == "sliding_attention" else None for t in types]


def peft_key(layer, module, which):
    """PEFT's name for a LoRA matrix: which is "A" ([r, in]) or "B" ([out, r])."""
    part = "self_attn" if module in ATTN_MODULES else "mlp"
    return f"base_model.model.model.layers.{layer}.{part}.{module}.lora_{which}.weight"


def module_prefix(layer, module):
    part = "self_attn" if module in ATTN_MODULES else "mlp"
    return f"model.layers.{layer}.{part}.{module}"


def lora_scale(alpha, rank, rslora):
    return alpha / math.sqrt(rank) if rslora else alpha / rank


def rope_inv_freq(cfg, dtype=torch.float64):
    """Inverse frequencies [head_dim/2], with HF's linear or llama3 scaling applied."""
    hd = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=dtype) / hd))
    s = cfg.rope_scaling
    if not s:
        return inv
    kind = s.get("rope_type", s.get("type"))
    if kind == "default":
        return inv
    if kind == "linear":
        # HF divides the positions by factor; dividing the frequencies is the same product.
        return inv / s["factor"]
    if kind == "llama3":
        factor, lo, hi = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
        old = s["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / lo, old / hi
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        return torch.where(medium, smoothed, scaled)
    raise ValueError(f"rope_scaling type {kind!r} not implemented")


def rope_cos_sin(cfg, positions, dtype=torch.float64):
    """cos, sin [T, head_dim] for integer positions [T]; HF layout cat(freqs, freqs)."""
    freqs = positions.to(dtype)[:, None] * rope_inv_freq(cfg, dtype)[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


M64 = (1 << 64) - 1


def splitmix64(seed, i):
    """fastbrain's counter-based stream: element i of the stream seeded `seed`."""
    z = (seed + 0x9E3779B97F4A7C15 * (i + 1)) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def dropout_mask(p, seed, step, layer, module, n):
    """The LoRA dropout mask fastbrain draws (engine/lora.c mask_seed, engine/cpu_backend.c
    fb_op_dropout) for `module` of `layer` at optimizer step `step` (0 before the first update):
    element i of the module's input, row-major over [B*T, in], is kept when
    (splitmix64(s, i) >> 11) * 2^-53 >= p, s = seed ^ (step * 0x100000001B3 +
    (7 * layer + index of module in TARGETS) * 0x9E3779B97F4A7C15) mod 2^64."""
    s = seed ^ ((step * 0x100000001B3 + (7 * layer + TARGETS.index(module))
                 * 0x9E3779B97F4A7C15) & M64)
    return torch.tensor([(splitmix64(s, i) >> 11) * 2.0 ** -53 >= p for i in range(n)])


def keep(t):
    """The default `store`: intermediates kept as computed."""
    return t


def lora_linear(x, weights, prefix, bias, lora, key_of, store=keep, drop=keep):
    """x W^T (+ b) (+ s * (drop(x) A^T) B^T when lora has this module). key_of(which) names
    A/B."""
    y = x @ weights[prefix + ".weight"].T
    if bias:
        y = y + weights[prefix + ".bias"]
    if lora is not None:
        a, b = lora["params"].get(key_of("A")), lora["params"].get(key_of("B"))
        if a is not None:
            y = store(y) + store(lora["scale"] * (store(drop(x) @ a.T) @ b.T))
    return store(y)


def lora_dropout(lora, layer, module):
    """The dropout LoRA's A sees at this layer and module: inverted dropout with fastbrain's
    mask, or none."""
    d = lora and lora.get("dropout")
    if not d or d["p"] == 0:
        return keep

    def drop(x):
        mask = dropout_mask(d["p"], d["seed"], d["step"], layer, module, x.numel())
        return x * mask.view(x.shape).to(x.dtype) / (1 - d["p"])

    return drop


def forward(cfg, weights, ids, lora=None, store=keep):
    """Logits [B, T, V] for token ids [B, T]. lora: None or {"params": {peft key: tensor},
    "scale": s, optionally "dropout": {"p", "seed", "step"}}. store(t) is applied to every
    intermediate an engine would hold in memory (identity here; f32_floor.py rounds there to
    f32)."""
    B, T = ids.shape
    nh, nkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    x = store(weights["model.embed_tokens.weight"][ids])  # [B, T, C]
    cos, sin = map(store, rope_cos_sin(cfg, torch.arange(T), x.dtype))
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    for layer in range(cfg.num_hidden_layers):
        p = f"model.layers.{layer}"
        window = cfg.layer_windows[layer]
        causal = j <= i
        if window:
            causal = causal & (i - j < window)  # HF: key j is masked once i - j >= window

        def proj(inp, module, bias):
            return lora_linear(inp, weights, module_prefix(layer, module), bias, lora,
                               lambda which: peft_key(layer, module, which), store,
                               lora_dropout(lora, layer, module))

        h = store(rms_norm(x, weights[p + ".input_layernorm.weight"], cfg.rms_norm_eps))
        q = proj(h, "q_proj", cfg.qkv_bias).view(B, T, nh, hd).transpose(1, 2)
        k = proj(h, "k_proj", cfg.qkv_bias).view(B, T, nkv, hd).transpose(1, 2)
        v = proj(h, "v_proj", cfg.qkv_bias).view(B, T, nkv, hd).transpose(1, 2)
        if cfg.qk_norm:  # over head_dim, each head of each position, before RoPE
            q = store(rms_norm(q, weights[p + ".self_attn.q_norm.weight"], cfg.rms_norm_eps))
            k = store(rms_norm(k, weights[p + ".self_attn.k_norm.weight"], cfg.rms_norm_eps))
        q = store(q * cos + rotate_half(q) * sin)
        k = store(k * cos + rotate_half(k) * sin)
        # GQA: kv head j serves query heads j*g .. j*g+g-1 (HF repeat_kv)
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        att = store((q @ k.transpose(-1, -2)) / math.sqrt(hd))  # [B, nh, T, T]
        att = att.masked_fill(~causal, float("-inf"))
        att = store(torch.softmax(att, dim=-1))
        o = store(att @ v).transpose(1, 2).reshape(B, T, nh * hd)
        x = store(x + proj(o, "o_proj", cfg.o_bias))
        h = store(rms_norm(x, weights[p + ".post_attention_layernorm.weight"], cfg.rms_norm_eps))
        gate, up = proj(h, "gate_proj", False), proj(h, "up_proj", False)
        act = store(store(torch.nn.functional.silu(gate)) * up)
        x = store(x + proj(act, "down_proj", False))
    x = store(rms_norm(x, weights["model.norm.weight"], cfg.rms_norm_eps))
    head = weights["model.embed_tokens.weight" if cfg.tie_word_embeddings else "lm_head.weight"]
    return store(x @ head.T)


def causal_lm_loss(logits, labels):
    """HF's loss: predict labels[:, t+1] from position t, ignoring IGNORE_INDEX, mean over the
    counted tokens of the whole batch."""
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V),
                                             labels[:, 1:].reshape(-1),
                                             ignore_index=IGNORE_INDEX, reduction="mean")


def greedy(cfg, weights, prompt, n_new, lora=None):
    """prompt [P] -> (ids [P + n_new], smallest top-1 minus top-2 logit margin seen)."""
    ids = prompt.clone()
    margin = float("inf")
    with torch.no_grad():
        for _ in range(n_new):
            last = forward(cfg, weights, ids[None, :], lora)[0, -1]
            top = torch.topk(last, 2).values
            margin = min(margin, float(top[0] - top[1]))
            ids = torch.cat([ids, last.argmax().reshape(1)])
    return ids, margin


def adamw_steps(cfg, weights, ids, labels, lora_init, scale, opt, steps, dropout=None):
    """Run `steps` AdamW steps on the LoRA params (dict peft key -> tensor), same batch each
    step; dropout None or {"p", "seed"} (each step draws its own masks). Returns a dict per
    step: {"loss", "grads", "params", "m", "v"} (m, v are torch's exp_avg and exp_avg_sq,
    before bias correction), plus the loss after the last step (with step `steps`' masks)."""
    params = {k: t.clone().requires_grad_(True) for k, t in lora_init.items()}

    def lora_at(step):
        d = dropout and dict(dropout, step=step)
        return {"params": params, "scale": scale, "dropout": d}

    optim = torch.optim.AdamW(list(params.values()), lr=opt["lr"],
                              betas=(opt["beta1"], opt["beta2"]), eps=opt["eps"],
                              weight_decay=opt["weight_decay"])
    history = []
    for step in range(steps):
        optim.zero_grad()
        logits = forward(cfg, weights, ids, lora_at(step))
        loss = causal_lm_loss(logits, labels)
        loss.backward()
        grads = {k: p.grad.detach().clone() for k, p in params.items()}
        optim.step()
        history.append({
            "logits": logits.detach(), "loss": loss.detach(), "grads": grads,
            "params": {k: p.detach().clone() for k, p in params.items()},
            "m": {k: optim.state[p]["exp_avg"].clone() for k, p in params.items()},
            "v": {k: optim.state[p]["exp_avg_sq"].clone() for k, p in params.items()},
        })
    with torch.no_grad():
        final = causal_lm_loss(forward(cfg, weights, ids, lora_at(steps)), labels)
    return history, final


def optimizer_settings(meta):
    """AdamW settings from lora-check metadata (strings)."""
    return {k: float(meta[k]) for k in ("lr", "beta1", "beta2", "eps", "weight_decay")}


def lora_check(cfg, weights, ids, labels, lora_init, meta, steps=1):
    """The lora-check outputs (float64 tensors): logits, loss, lora_grad.<key>, and after one
    AdamW step lora_step1.<key>, adam_m.<key>, adam_v.<key>, loss_step1; with steps >= 3 also
    lora_step3.<key> and loss_step3. Returns (outputs, history)."""
    scale = lora_scale(float(meta["alpha"]), int(meta["rank"]), meta.get("rslora", "0") == "1")
    dropout = {"p": float(meta.get("lora_dropout", "0")),
               "seed": int(meta.get("dropout_seed", "0"))}
    history, final = adamw_steps(cfg, weights, ids, labels, lora_init, scale,
                                 optimizer_settings(meta), max(steps, 1), dropout)
    out = {"logits": history[0]["logits"], "loss": history[0]["loss"].reshape(1),
           "loss_step1": (history[1]["loss"] if steps > 1 else final).reshape(1)}
    for k in lora_init:
        out["lora_grad." + k] = history[0]["grads"][k]
        out["lora_step1." + k] = history[0]["params"][k]
        out["adam_m." + k] = history[0]["m"][k]
        out["adam_v." + k] = history[0]["v"][k]
        if steps >= 3:
            out["lora_step3." + k] = history[2]["params"][k]
    if steps >= 3:
        out["loss_step3"] = (history[3]["loss"] if steps > 3 else final).reshape(1)
    return out, history


def load_model(model_dir, dtype=torch.float64):
    """(Config, weights) from an HF directory: config.json and model.safetensors or shards."""
    import st_io

    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = Config(json.load(f))
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for name in files:
        weights.update(st_io.read(os.path.join(model_dir, name))[0])
    return cfg, {k: t.to(dtype) for k, t in weights.items()}


def main(argv):
    if len(argv) != 5 or argv[1] != "lora-check":
        sys.exit("usage: ref_llama.py lora-check MODEL_DIR IN.safetensors OUT.safetensors")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import st_io

    cfg, weights = load_model(argv[2])
    inp, meta = st_io.read(argv[3])
    lora = {k[len("lora_init."):]: t.double() for k, t in inp.items() if k.startswith("lora_init.")}
    out, _ = lora_check(cfg, weights, inp["input_ids"].long(), inp["labels"].long(), lora, meta)
    st_io.write(argv[4], {k: t.detach().float() for k, t in out.items()})


if __name__ == "__main__":
    main(sys.argv)
