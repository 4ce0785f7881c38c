"""peft_logits.py: the logits PyTorch computes for a base model plus a PEFT adapter directory
(adapter_config.json + adapter_model.safetensors, as `fastbrain train` writes it), read with the
plain-torch reference ref_llama.py in float64:

  /usr/bin/python3 tests/parity/peft_logits.py MODEL_DIR ADAPTER_DIR IN.safetensors OUT.safetensors

IN holds `input_ids` (I32 [B, T]); OUT gets `input_ids` and `logits` (F32 [B, T, V]). Only the
adapter's own fields are used: r, lora_alpha, use_rslora and its tensors (every tensor must be
a PEFT LoRA matrix of the model, or this fails)."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ref_llama  # noqa: E402
import st_io  # noqa: E402


def load_adapter(cfg, adapter_dir):
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        ac = json.load(f)
    params, _ = st_io.read(os.path.join(adapter_dir, "adapter_model.safetensors"))
    known = {ref_llama.peft_key(layer, m, w) for layer in range(cfg.num_hidden_layers)
             for m in ref_llama.TARGETS for w in "AB"}
    stray = sorted(set(params) - known)
    if stray:
        sys.exit(f"{adapter_dir}: not a LoRA matrix of this model: {stray[0]}")
    scale = ref_llama.lora_scale(ac["lora_alpha"], ac["r"], ac.get("use_rslora", False))
    return {"params": {k: t.double() for k, t in params.items()}, "scale": scale}


def main(argv):
    if len(argv) != 5:
        sys.exit(__doc__)
    cfg, weights = ref_llama.load_model(argv[1])
    lora = load_adapter(cfg, argv[2])
    inp, _ = st_io.read(argv[3])
    ids = inp["input_ids"]
    logits = ref_llama.forward(cfg, weights, ids.long(), lora)
    st_io.write(argv[4], {"input_ids": ids, "logits": logits.float()})


if __name__ == "__main__":
    main(sys.argv)
