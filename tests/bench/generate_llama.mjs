// generate_llama.mjs: llama.cpp's half of `make bench-generate` (tests/bench/generate.lua runs
// it): npm's node-llama-cpp, its prebuilt CPU binary, greedy decoding from given prompt ids.
//   node tests/bench/generate_llama.mjs <REQUEST.json
// REQUEST (on stdin): {model: FILE.gguf, prompt_ids: [id...], tokens: N, reps: R, threads: T}.
// One warm-up run, then R timed runs, each from an empty KV cache: the prompt is evaluated and
// N tokens are picked greedily, end tokens included (so every run makes N tokens). Prints one
// JSON line: {llama_cpp, node_llama_cpp, threads, runs: [{ttft_ms, decode_ms, ids}]}: ttft_ms
// from the call to the first token, decode_ms from the first token to the Nth.
// Exit 3 (and a line on stderr) when node-llama-cpp is not installed: `make deps` installs it.
import {readFileSync} from "node:fs";
import {performance} from "node:perf_hooks";

let nlc;
try {
  nlc = await import("node-llama-cpp");
} catch (e) {
  process.stderr.write(`node-llama-cpp is not installed (${e.code || e.message})\n`);
  process.exit(3);
}
const req = JSON.parse(readFileSync(0, "utf8"));
const version = JSON.parse(readFileSync(new URL("../package.json",
  import.meta.resolve("node-llama-cpp")), "utf8")).version;

// maxThreads 0: no cap of the library's own, so `threads` below is exactly what it uses.
const llama = await nlc.getLlama({gpu: false, build: "never", maxThreads: 0,
                                  logLevel: nlc.LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: req.model});
const need = req.prompt_ids.length + req.tokens + 1;
// F32 keys and values, no flash attention: the same arithmetic as fastbrain's f32 KV cache, so
// both sides pick the same tokens (and the caller can check that they did).
const context = await model.createContext({
  threads: {ideal: req.threads, min: req.threads},
  contextSize: Math.max(256, Math.ceil(need / 256) * 256),
  batchSize: Math.max(512, req.prompt_ids.length),
  flashAttention: false,
  experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
});
const sequence = context.getSequence();

async function once() {
  await sequence.clearHistory();
  const ids = [];
  let first = 0, last = 0;
  const t0 = performance.now();
  for await (const t of sequence.evaluate(req.prompt_ids, {temperature: 0, repeatPenalty: false,
                                                            yieldEogToken: true})) {
    last = performance.now();
    if (ids.length === 0) first = last;
    ids.push(t);
    if (ids.length >= req.tokens) break;
  }
  return {ttft_ms: first - t0, decode_ms: last - first, ids};
}

await once(); // warm-up: thread pool, first-use allocations
const runs = [];
for (let r = 0; r < req.reps; r++) runs.push(await once());
process.stdout.write(JSON.stringify({
  llama_cpp: llama.llamaCppRelease.release, node_llama_cpp: version,
  threads: context.currentThreads, runs,
}) + "\n");
await context.dispose();
await model.dispose();
await llama.dispose();
