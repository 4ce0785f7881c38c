// llama-check.mjs: greedy decoding in the real llama.cpp (npm's node-llama-cpp, its prebuilt CPU
// binary), the other half of `fastbrain export`'s check and of tests/export/llama_cpp.sh.
//   node scripts/llama-check.mjs <REQUEST.json
// REQUEST (on stdin): {model: FILE.gguf, lora: FILE.gguf | null, prompts: [text...], max_tokens:
// N}; each prompt is one user message, rendered with the GGUF's own chat template (so the
// template is checked too) and tokenized by llama.cpp with special tokens. Prints one JSON line:
// {llama_cpp, node_llama_cpp, results: [{text, prompt_ids, ids, stopped}]}: ids are the new
// tokens before the end token (which stopped says was reached).
// Exit 3 (and a line on stderr) when node-llama-cpp is not installed: `make deps` installs it.
import {readFileSync} from "node:fs";
import {availableParallelism} from "node:os";

let nlc, Template;
try {
  nlc = await import("node-llama-cpp");
  ({Template} = await import("@huggingface/jinja")); // node-llama-cpp's own dependency
} catch (e) {
  process.stderr.write(`node-llama-cpp is not installed (${e.code || e.message})\n`);
  process.exit(3);
}
const req = JSON.parse(readFileSync(0, "utf8"));
// its package.json is not among its exports: found beside its entry point (dist/index.js)
const version = JSON.parse(readFileSync(new URL("../package.json",
  import.meta.resolve("node-llama-cpp")), "utf8")).version;

const llama = await nlc.getLlama({gpu: false, build: "never", logLevel: nlc.LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: req.model});
// F32 keys and values and no flash attention: the defaults (an F16 cache) flip rare near-ties
// against fastbrain's f32 decoding. A core left free: llama.cpp's threads spin at each barrier,
// and on a busy 2-core machine 2 threads took 38 s for 32 tokens of the bundled model, 1 took 0.1 s.
const context = await model.createContext({
  threads: Math.max(1, availableParallelism() - 1),
  contextSize: Math.min(model.trainContextSize, 2048), flashAttention: false,
  experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
  lora: req.lora ? {adapters: [{filePath: req.lora}]} : undefined,
});
const sequence = context.getSequence();
const template = model.fileInfo.metadata?.tokenizer?.chat_template;
if (typeof template !== "string") throw new Error(`${req.model}: no tokenizer.chat_template`);
const tokenText = (id) => id === undefined || id === null ? "" : model.detokenize([id], true);
const render = (content) => new Template(template).render({
  messages: [{role: "user", content}], add_generation_prompt: true,
  bos_token: tokenText(model.tokens.bos), eos_token: tokenText(model.tokens.eos),
});
const results = [];
for (const prompt of req.prompts) {
  const text = render(prompt);
  const prompt_ids = model.tokenize(text, true); // true: <|im_start|> and the like are one token
  const ids = [];
  let stopped = false;
  for await (const t of sequence.evaluate(prompt_ids, {temperature: 0, repeatPenalty: false,
                                                              yieldEogToken: true})) {
    if (model.isEogToken(t)) { stopped = true; break; }
    ids.push(t);
    if (ids.length >= req.max_tokens) break;
  }
  await sequence.clearHistory();
  results.push({text, prompt_ids, ids, stopped});
}
process.stdout.write(JSON.stringify({
  llama_cpp: llama.llamaCppRelease.release, node_llama_cpp: version,
  results,
}) + "\n");
await context.dispose();
await model.dispose();
await llama.dispose();
