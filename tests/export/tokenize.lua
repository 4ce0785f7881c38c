-- tokenize.lua DIR CORPUS.jsonl: fastbrain's tokenizer (DIR's tokenizer.json, special tokens
-- parsed) over the "text" of every row of CORPUS, printed as one JSON array of id arrays, for
-- tests/export/llama_cpp.test.mjs to hold llama.cpp's tokenization of a GGUF to.
local fb = require "fastbrain"
local dir, corpus = ...
local tok = assert(require("fastbrain.tokenizer").load(dir))
local out = {}
for line in io.lines(corpus) do
  local r = fb.json.decode(line)
  if r.text then out[#out + 1] = {text = r.text, ids = tok:encode(r.text, {special = true})} end
end
io.write(fb.json.encode(out))
