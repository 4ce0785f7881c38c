#!/usr/bin/python3
"""make_fixtures.py: write the PyTorch parity fixtures for `fastbrain lora-check` into
tests/parity/fixtures/<case>/ (model/config.json, model/model.safetensors, in.safetensors,
expected.safetensors), from ref_llama.py. Deterministic: seeded per case. Computes in float64,
stores F32. Run with Debian's torch: /usr/bin/python3 tests/parity/make_fixtures.py [CASE...]
(no case names: every case).

Layout (see the issue): in.safetensors holds input_ids, labels [B,T] I32 (-100 ignored),
lora_init.<peft key>, and __metadata__ rank, alpha, targets, lora_dropout, lr, beta1, beta2,
eps, weight_decay, rslora (and dropout_seed where lora_dropout > 0). expected.safetensors holds
logits [B,T,V], loss [1], lora_grad.<key>, lora_step1.<key>, adam_m.<key>, adam_v.<key>
(torch's exp_avg/exp_avg_sq after step 1), loss_step1 [1] (loss at the step-1 weights),
lora_step3.<key>, loss_step3 [1], lora_grad_step2.<key> and lora_grad_step3.<key> (the
gradients steps 2 and 3 took, so the optimizer can be checked over three steps on its own),
greedy_ids [P+8] I32 (prompt then 8 greedy tokens, base + initial LoRA), with __metadata__
greedy_prompt_len, greedy_new_tokens, greedy_min_margin."""

import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_llama as ref  # noqa: E402
import st_io  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")

BASE = {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
        "num_attention_heads": 4, "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2,
        "torch_dtype": "float32"}

# name, config overrides, LoRA settings
CASES = [
    ("llama_gqa_tied",
     {"architectures": ["LlamaForCausalLM"], "num_key_value_heads": 2, "tie_word_embeddings": True,
      "rope_scaling": None},
     {"rank": 4, "alpha": 8.0, "targets": list(ref.TARGETS), "rslora": False}),
    ("qwen2_bias_linear_rope",
     {"architectures": ["Qwen2ForCausalLM"], "num_key_value_heads": 2,
      "tie_word_embeddings": False, "rope_scaling": {"type": "linear", "factor": 2.0}},
     {"rank": 4, "alpha": 16.0, "targets": ["q_proj", "k_proj", "v_proj", "o_proj"],
      "rslora": True}),
    ("llama3_rope_mqa_untied",
     {"architectures": ["LlamaForCausalLM"], "num_key_value_heads": 1,
      "tie_word_embeddings": False,
      "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                       "high_freq_factor": 4.0, "original_max_position_embeddings": 64}},
     {"rank": 8, "alpha": 8.0, "targets": ["q_proj", "v_proj", "down_proj"], "rslora": False}),
    # a sliding window shorter than the rows (12) and the greedy continuation (13)
    ("mistral_mha_tied_window",
     {"architectures": ["MistralForCausalLM"], "num_key_value_heads": 4,
      "tie_word_embeddings": True, "sliding_window": 5, "rope_theta": 1000.0},
     {"rank": 2, "alpha": 4.0, "targets": ["o_proj", "gate_proj", "up_proj"], "rslora": False}),
    # the same shape with bf16 weights on disk (the engine converts at load; the reference
    # computes from the bf16 values)
    ("llama_gqa_bf16_weights",
     {"architectures": ["LlamaForCausalLM"], "num_key_value_heads": 2, "tie_word_embeddings": False,
      "rope_scaling": None, "torch_dtype": "bfloat16"},
     {"rank": 4, "alpha": 8.0, "targets": ["q_proj", "k_proj", "v_proj", "up_proj"],
      "rslora": False}),
    # LoRA dropout: the reference draws fastbrain's documented masks (ref_llama.dropout_mask)
    ("llama_gqa_dropout",
     {"architectures": ["LlamaForCausalLM"], "num_key_value_heads": 2, "tie_word_embeddings": True,
      "rope_scaling": None},
     {"rank": 4, "alpha": 8.0, "targets": list(ref.TARGETS), "rslora": False, "dropout": 0.2,
      "dropout_seed": 77}),
    # Qwen2's windows: use_sliding_window with max_window_layers 1 windows layers 1 and 2 and
    # leaves layer 0 full; the window is shorter than the rows and the greedy continuation
    ("qwen2_window_split",
     {"architectures": ["Qwen2ForCausalLM"], "num_hidden_layers": 3, "num_key_value_heads": 2,
      "tie_word_embeddings": True, "rope_scaling": None, "use_sliding_window": True,
      "sliding_window": 4, "max_window_layers": 1},
     {"rank": 4, "alpha": 8.0, "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
      "rslora": False}),
    # Qwen3: q_norm/k_norm on each head before RoPE (LoRA's q/k deltas go through them), an
    # explicit head_dim 16 where hidden / heads is 8, no biases, tied embeddings
    ("qwen3_qk_norm",
     {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "num_key_value_heads": 2,
      "head_dim": 16, "attention_bias": False, "tie_word_embeddings": True, "rope_scaling": None,
      "rope_theta": 1000000.0, "use_sliding_window": False, "sliding_window": None,
      "max_window_layers": 2},
     {"rank": 4, "alpha": 8.0, "targets": list(ref.TARGETS), "rslora": False}),
]

OPT = {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1}
BATCH, SEQ, PROMPT, NEW_TOKENS = 2, 12, 5, 8
MIN_GREEDY_MARGIN = 1e-3  # top-1 minus top-2 logit: far above f32 noise, so ties cannot flip
MIN_GRAD_RATIO = 1e-5     # smallest |grad| / largest per tensor: Adam's first step is sign-like


def make_weights(cfg, g):
    """Random HF-named weights, float64, scaled so activations stay O(1) and logits spread."""
    C, F, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    q, kv = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim

    def lin(out, inp):
        return torch.randn(out, inp, generator=g, dtype=torch.float64) / math.sqrt(inp)

    def norm(n):
        return 1.0 + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)

    # embeddings at 0.4 keep tied logits (hidden . embedding, hidden ~ unit RMS) near std 2
    w = {"model.embed_tokens.weight": 0.4 * torch.randn(V, C, generator=g, dtype=torch.float64)}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}"
        w[p + ".input_layernorm.weight"] = norm(C)
        w[p + ".post_attention_layernorm.weight"] = norm(C)
        shapes = {"q_proj": (q, C), "k_proj": (kv, C), "v_proj": (kv, C), "o_proj": (C, q),
                  "gate_proj": (F, C), "up_proj": (F, C), "down_proj": (C, F)}
        for m, (o, n) in shapes.items():
            w[ref.module_prefix(i, m) + ".weight"] = lin(o, n)
        if cfg.qkv_bias:
            for m in ("q_proj", "k_proj", "v_proj"):
                w[ref.module_prefix(i, m) + ".bias"] = 0.1 * torch.randn(
                    shapes[m][0], generator=g, dtype=torch.float64)
        if cfg.o_bias:
            w[ref.module_prefix(i, "o_proj") + ".bias"] = 0.1 * torch.randn(
                C, generator=g, dtype=torch.float64)
        if cfg.qk_norm:  # Qwen3: drawn last, so the other cases' draws stay as they were
            w[p + ".self_attn.q_norm.weight"] = norm(cfg.head_dim)
            w[p + ".self_attn.k_norm.weight"] = norm(cfg.head_dim)
    w["model.norm.weight"] = norm(C)
    if not cfg.tie_word_embeddings:
        w["lm_head.weight"] = lin(V, C) * 2.0
    # Round once to the stored dtype: the C side reads exactly these values.
    stored = torch.bfloat16 if cfg.torch_dtype == "bfloat16" else torch.float32
    return {k: t.to(stored).double() for k, t in w.items()}


def make_lora(cfg, weights, lora, g):
    """Initial LoRA A [r, in] (Kaiming-uniform-like) and a non-zero B [out, r]."""
    r, out = lora["rank"], {}
    for i in range(cfg.num_hidden_layers):
        for m in lora["targets"]:
            o, n = weights[ref.module_prefix(i, m) + ".weight"].shape
            bound = 1.0 / math.sqrt(n)
            out[ref.peft_key(i, m, "A")] = (torch.rand(r, n, generator=g, dtype=torch.float64)
                                            * 2 - 1) * bound
            out[ref.peft_key(i, m, "B")] = 0.3 * torch.randn(o, r, generator=g,
                                                             dtype=torch.float64) / math.sqrt(r)
    return {k: t.float().double() for k, t in out.items()}


def make_batch(cfg, g):
    """ids [B, T]; labels = ids with -100 over a prompt prefix and a padded tail."""
    ids = torch.randint(3, cfg.vocab_size, (BATCH, SEQ), generator=g)
    labels = ids.clone()
    labels[0, :3] = ref.IGNORE_INDEX            # prompt tokens of sequence 0
    labels[1, :2] = ref.IGNORE_INDEX            # prompt tokens of sequence 1
    labels[1, SEQ - 4:] = ref.IGNORE_INDEX      # "padding" at the end of sequence 1
    return ids, labels


def f32(t):
    return t.detach().to(torch.float32).contiguous()


def build(name, overrides, lora_cfg, seed):
    """Everything for one case, or None when the draw is too close to a tie for f32."""
    config = dict(BASE, **overrides)
    cfg = ref.Config(config)
    g = torch.Generator().manual_seed(seed)
    weights = make_weights(cfg, g)
    lora = make_lora(cfg, weights, lora_cfg, g)
    ids, labels = make_batch(cfg, g)
    meta_in = {"rank": lora_cfg["rank"], "alpha": repr(lora_cfg["alpha"]),
               "targets": ",".join(lora_cfg["targets"]), "lora_dropout": "0",
               "lr": repr(OPT["lr"]), "beta1": repr(OPT["beta1"]), "beta2": repr(OPT["beta2"]),
               "eps": repr(OPT["eps"]), "weight_decay": repr(OPT["weight_decay"]),
               "rslora": "1" if lora_cfg["rslora"] else "0"}
    if lora_cfg.get("dropout"):
        meta_in.update(lora_dropout=repr(lora_cfg["dropout"]),
                       dropout_seed=lora_cfg["dropout_seed"])
    meta_in = {k: str(v) for k, v in meta_in.items()}
    out, history = ref.lora_check(cfg, weights, ids, labels, lora, meta_in, steps=3)
    scale = ref.lora_scale(lora_cfg["alpha"], lora_cfg["rank"], lora_cfg["rslora"])
    greedy_ids, margin = ref.greedy(cfg, weights, ids[0, :PROMPT], NEW_TOKENS,
                                    {"params": lora, "scale": scale})
    ratios = [float(gr.abs().min() / gr.abs().max()) for gr in history[0]["grads"].values()]
    if margin < MIN_GREEDY_MARGIN or min(ratios) < MIN_GRAD_RATIO:
        return None
    inp = {"input_ids": ids.to(torch.int32), "labels": labels.to(torch.int32)}
    inp.update({"lora_init." + k: f32(t) for k, t in lora.items()})
    exp = {k: f32(t) for k, t in out.items()}
    exp.update({f"lora_grad_step{s + 1}.{k}": f32(history[s]["grads"][k])
                for s in (1, 2) for k in lora})
    exp["greedy_ids"] = greedy_ids.to(torch.int32)
    meta_exp = {"case": name, "seed": seed, "greedy_prompt_len": PROMPT,
                "greedy_new_tokens": NEW_TOKENS, "greedy_min_margin": f"{margin:.6g}",
                "min_grad_ratio": f"{min(ratios):.3g}", "torch": torch.__version__,
                "adam_state": "torch AdamW exp_avg / exp_avg_sq after step 1, no bias correction",
                "reference": "tests/parity/ref_llama.py in float64, stored as F32"}
    stored = torch.bfloat16 if cfg.torch_dtype == "bfloat16" else torch.float32
    model = {k: t.to(stored) for k, t in weights.items()}
    return config, model, inp, meta_in, exp, meta_exp


def main(only):
    for index, (name, overrides, lora_cfg) in enumerate(CASES):
        if only and name not in only:
            continue
        for attempt in range(50):
            seed = 1000 * (index + 1) + attempt
            made = build(name, overrides, lora_cfg, seed)
            if made:
                break
        else:
            sys.exit(f"{name}: no seed gave a clear greedy margin and gradient spread")
        config, model, inp, meta_in, exp, meta_exp = made
        d = os.path.join(OUT, name)
        os.makedirs(os.path.join(d, "model"), exist_ok=True)
        with open(os.path.join(d, "model", "config.json"), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write("\n")
        st_io.write(os.path.join(d, "model", "model.safetensors"), model, {"format": "pt"})
        st_io.write(os.path.join(d, "in.safetensors"), inp, meta_in)
        st_io.write(os.path.join(d, "expected.safetensors"), exp, meta_exp)
        print(f"{name}: seed {meta_exp['seed']}, loss {float(exp['loss']):.6f} -> "
              f"{float(exp['loss_step1']):.6f} -> {float(exp['loss_step3']):.6f}, "
              f"greedy {exp['greedy_ids'].tolist()} (margin {meta_exp['greedy_min_margin']})")


if __name__ == "__main__":
    main(sys.argv[1:])
