#!/usr/bin/env python3
"""Train the bundled base model's byte-level BPE tokenizer from the texts the project ships.

    python3 scripts/train-tokenizer.py --out DIR/tokenizer.json [--vocab 2048] FILE...

FILEs are plain text (*.txt) or chat data (*.jsonl with "messages"; every message's role and
content count). The result is a Hugging Face tokenizer.json in GPT-2's byte-level shape: ids
0-255 are the 256 bytes, then the merged tokens in the order they were learnt, then the chatml
specials <|im_start|> and <|im_end|>. Words are split with GPT-2's pre-tokenizer pattern (letters,
digits and other characters each with an optional leading space), the split the engine applies
when it encodes. Only the standard library is used; the same input gives the same file.
"""
import argparse
import collections
import json
import os
import re
import sys

# GPT-2's pattern with Python's classes: [^\W\d_] is a letter, \d a digit.
SPLIT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")
SPECIALS = ["<|im_start|>", "<|im_end|>"]


def byte_chars():
    """GPT-2's byte-to-character map: printable bytes stand for themselves, the rest 256 + n."""
    keep = [b for b in range(256) if 33 <= b <= 126 or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF]
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return chars


def texts(path):
    with open(path, encoding="utf-8") as f:
        if not path.endswith(".jsonl"):
            yield f.read()
            return
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                messages = json.loads(line)["messages"]
            except (ValueError, KeyError, TypeError) as e:
                sys.exit(f"train-tokenizer: {path}:{line_no}: not a messages example ({e})")
            for m in messages:
                yield m["role"] + "\n" + m["content"] + "\n"


def word_counts(paths):
    chars = byte_chars()
    counts = collections.Counter()
    for path in paths:
        for text in texts(path):
            for word in SPLIT.findall(text):
                counts["".join(chars[b] for b in word.encode("utf-8"))] += 1
    return counts


def learn_merges(counts, n_merges):
    """Classic BPE: repeatedly merge the most frequent adjacent pair (ties: the smaller pair),
    keeping pair counts and the words each pair occurs in up to date incrementally."""
    words = [list(w) for w in counts]
    freq = [counts[w] for w in counts]
    pairs = collections.Counter()
    where = collections.defaultdict(set)
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pairs[a, b] += freq[i]
            where[a, b].add(i)
    merges = []
    while len(merges) < n_merges and pairs:
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        if pairs[best] < 2:
            break
        merges.append(best)
        joined = best[0] + best[1]
        for i in list(where[best]):
            w, f = words[i], freq[i]
            for a, b in zip(w, w[1:]):
                pairs[a, b] -= f
                if pairs[a, b] <= 0:
                    del pairs[a, b]
            out, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == best[0] and w[j + 1] == best[1]:
                    out.append(joined)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for a, b in zip(out, out[1:]):
                pairs[a, b] += f
                where[a, b].add(i)
        del where[best]
    return merges


def tokenizer_json(merges):
    chars = byte_chars()
    vocab = {chars[b]: b for b in range(256)}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    specials = [{"id": len(vocab) + k, "content": s, "single_word": False, "lstrip": False,
                 "rstrip": False, "normalized": False, "special": True} for k, s in enumerate(SPECIALS)]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": specials,
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                              "use_regex": True},
            "post_processor": None, "decoder": {"type": "ByteLevel"},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False,
                      "byte_fallback": False, "vocab": vocab, "merges": [a + " " + b for a, b in merges]}}


def main():
    ap = argparse.ArgumentParser(description="train a byte-level BPE tokenizer.json")
    ap.add_argument("--out", required=True, help="the tokenizer.json to write")
    ap.add_argument("--vocab", type=int, default=2048, help="ids before the specials (>= 256)")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    if args.vocab < 256:
        sys.exit("train-tokenizer: --vocab must be at least 256")
    merges = learn_merges(word_counts(args.files), args.vocab - 256)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(merges), f, ensure_ascii=False, indent=1)
        f.write("\n")
    os.replace(tmp, args.out)
    print(f"train-tokenizer: {256 + len(merges)} tokens + {len(SPECIALS)} specials -> {args.out}")


if __name__ == "__main__":
    main()
