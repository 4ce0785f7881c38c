"""st_io.py: a small safetensors writer and reader (struct + json), so the fixtures need no
`safetensors` package. Writes tensors sorted by name, header padded with spaces to 8 bytes.
Handles F32, F16, BF16, I32 and I64 only."""

import json
import struct

import torch

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.int32: "I32", torch.int64: "I64"}
BY_NAME = {v: k for k, v in DTYPES.items()}


def write(path, tensors, metadata=None):
    """tensors: {name: torch tensor}; metadata: {str: str} or None."""
    header, blobs, at = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        # bytes through a uint8 view: works for every dtype, bf16 included
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read(path):
    """(tensors {name: tensor}, metadata {str: str})."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base, out = 8 + n, {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        buf = bytearray(data[base + b:base + end])
        dt = BY_NAME[e["dtype"]]
        flat = torch.frombuffer(buf, dtype=torch.uint8).view(dt) if buf else torch.empty(0, dtype=dt)
        out[name] = flat.reshape(e["shape"])
    return out, meta
