"""The anchor of the GPU benchmark: the same LoRA training step in Hugging Face transformers +
peft on the same GPU, for one config.json shape with random weights (bf16 base weights, fp32
adapters as peft keeps them, SDPA attention, AdamW, clipping at 1.0). Prints one JSON line in
fb_gpu_check bench's format. Usage: hf_peft_bench.py CONFIG.json BATCH SEQ STEPS"""
import json
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

CONFIGS = {"llama": LlamaConfig, "qwen2": Qwen2Config}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main():
    path, batch, seq, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    with open(path) as f:
        spec = json.load(f)
    config = CONFIGS[spec.pop("model_type")](**spec)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    model.to(device="cuda", dtype=torch.bfloat16)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                             target_modules=TARGETS, task_type="CAUSAL_LM"))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(0, config.vocab_size, (batch, seq), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    loss = None
    for step in range(-2, steps):  # two warm-up steps
        if step == 0:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(json.dumps({"engine": "hf+peft", "config": path, "batch": batch, "seq": seq,
                      "steps": steps, "tokens_per_s": round(batch * seq * steps / dt, 1),
                      "step_ms": round(dt / steps * 1e3, 2),
                      "peak_bytes": torch.cuda.max_memory_allocated(),
                      "loss": round(loss.item(), 4),
                      "adapter_dtype": str(params[0].dtype)}), flush=True)


if __name__ == "__main__":
    main()
