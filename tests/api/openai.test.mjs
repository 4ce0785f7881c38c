// /v1/chat/completions and /v1/models through the official `openai` npm client (pinned in
// package.json) against the real `fastbrain serve` with --token, on the bundled model and an
// adapter trained here for the bundled plumbing-receptionist skill: the skill's name serves its
// newest adapter with its system prompt, and the greedy answer is exactly `fastbrain generate`'s
// with that adapter and prompt; streaming gives the same text in pieces, then the usage;
// stop strings, seeds, multi-turn, OpenAI's errors and a client that aborts a stream.
// FASTBRAIN_BIN names the binary (default build/fastbrain).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');
const bin = resolve(process.env.FASTBRAIN_BIN || join(root, 'build/fastbrain'));
const MODEL = join(root, 'share/models/tiny');
if (!existsSync(join(root, 'node_modules/openai'))) throw new Error('openai test: the openai client is missing; run make deps');
const { default: OpenAI } = await import('openai');

const SKILL = 'plumbing-receptionist';
const VERSION = '20261207-000000';
const TOKEN = 'test-token-6f1c';
const SYSTEM = JSON.parse(readFileSync(join(root, 'share/skills', SKILL, 'skill.json'), 'utf8')).system;
const PROMPT = 'My kitchen sink is leaking, can you come today?';

let tmp, server, client, base;
const fastbrain = (...args) => execFileSync(bin, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'fb-openai-'));
  const data = Array.from({ length: 12 }, (_, i) => JSON.stringify({ messages: [
    { role: 'user', content: `Can you come on day ${i}?` }, { role: 'assistant', content: `Yes, a plumber can come on day ${i} at 2pm.` }] }));
  writeFileSync(join(tmp, 'data.jsonl'), data.join('\n') + '\n');
  fastbrain('train', '--model', MODEL, '--data', join(tmp, 'data.jsonl'), '--out',
    join(tmp, 'data/adapters', SKILL, VERSION), '--max-steps', '20', '--lr', '0.003',
    '--eval-fraction', '0', '--max-len', '64', '--device', 'cpu');
  server = spawn(bin, ['serve', '--port', '0', '--data-dir', join(tmp, 'data'), '--token', TOKEN],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  base = await new Promise((ok, fail) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/serving on (http:\/\/\S+) /);
      if (m) ok(m[1]);
    });
    server.on('exit', (code) => fail(new Error(`fastbrain serve exited with ${code}`)));
  });
  client = new OpenAI({ baseURL: `${base}/v1`, apiKey: TOKEN, maxRetries: 0 });
});
after(() => {
  server?.kill('SIGTERM');
  rmSync(tmp, { recursive: true, force: true });
});

const health = async () => (await (await fetch(`${base}/api/health`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json());

test('models lists the skill, its version and the base models', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  for (const want of [SKILL, `${SKILL}@${VERSION}`, 'tiny']) assert.ok(ids.includes(want), `${want} in ${ids}`);
});

test('the skill answers as fastbrain generate does with its adapter and system prompt', async () => {
  const want = fastbrain('generate', '--model', MODEL, '--adapter', join(tmp, 'data/adapters', SKILL, VERSION),
    '--system', SYSTEM, '--prompt', PROMPT, '--max-tokens', '24', '--temperature', '0').replace(/\n$/, '');
  const r = await client.chat.completions.create({ model: SKILL, messages: [{ role: 'user', content: PROMPT }],
    max_tokens: 24, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, SKILL);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, want);
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 50, 'the system prompt is part of the prompt');
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 24);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  const pinned = await client.chat.completions.create({ model: `${SKILL}@${VERSION}`,
    messages: [{ role: 'user', content: PROMPT }], max_tokens: 24, temperature: 0 });
  assert.equal(pinned.choices[0].message.content, want);
  const own = await client.chat.completions.create({ model: SKILL, max_tokens: 24, temperature: 0,
    messages: [{ role: 'system', content: 'Answer in one word.' }, { role: 'user', content: PROMPT }] });
  assert.ok(own.usage.prompt_tokens < r.usage.prompt_tokens, 'a system message of the request replaces the skill\'s');
});

test('a streamed answer is the same text in pieces, then the finish reason and the usage', async () => {
  const req = { model: SKILL, messages: [{ role: 'user', content: PROMPT }], max_tokens: 40, temperature: 0 };
  const whole = await client.chat.completions.create(req);
  const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  const pieces = [];
  let finish = null, usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    if (choice.delta.content) pieces.push(choice.delta.content);
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  assert.ok(pieces.length > 3, `several pieces: ${pieces.length}`);
  assert.equal(pieces.join(''), whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
});

test('a stop string ends the answer before it; seeds repeat sampled answers; multi-turn; ignore_eos', async () => {
  const msgs = [{ role: 'user', content: PROMPT }];
  const full = (await client.chat.completions.create({ model: SKILL, messages: msgs, max_tokens: 40, temperature: 0 }))
    .choices[0].message.content;
  const cut = full.slice(8, 11);
  const stopped = await client.chat.completions.create({ model: SKILL, messages: msgs, max_tokens: 40, temperature: 0, stop: [cut] });
  assert.equal(stopped.choices[0].message.content, full.slice(0, full.indexOf(cut)));
  assert.equal(stopped.choices[0].finish_reason, 'stop');
  const sampled = () => client.chat.completions.create({ model: 'tiny', messages: msgs, max_tokens: 24, temperature: 1, seed: 7 });
  assert.equal((await sampled()).choices[0].message.content, (await sampled()).choices[0].message.content);
  const turns = await client.chat.completions.create({ model: SKILL, max_tokens: 16, temperature: 0, messages: [
    ...msgs, { role: 'assistant', content: full }, { role: 'user', content: 'And tomorrow?' }] });
  assert.ok(turns.usage.prompt_tokens > stopped.usage.prompt_tokens + 10);
  assert.ok(turns.choices[0].message.content.length > 0);
  const long = await client.chat.completions.create({ model: SKILL, messages: msgs, max_tokens: 64, temperature: 0, ignore_eos: true });
  assert.equal(long.usage.completion_tokens, 64);
  assert.equal(long.choices[0].finish_reason, 'length');
});

test('errors come in OpenAI\'s shape: a wrong key, an unknown model, a bad setting', async () => {
  const stranger = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(stranger.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
  await assert.rejects(client.chat.completions.create({ model: 'no-such-skill', messages: [{ role: 'user', content: 'hi' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found' && e.param === 'model');
  await assert.rejects(client.chat.completions.create({ model: SKILL, messages: [{ role: 'user', content: 'hi' }], temperature: 3 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature' && e.type === 'invalid_request_error');
  await assert.rejects(client.chat.completions.create({ model: SKILL, messages: [] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages');
  await assert.rejects(client.chat.completions.create({ model: SKILL, messages: [{ role: 'user', content: 'x '.repeat(4000) }] }),
    (e) => e instanceof OpenAI.BadRequestError && /context/.test(e.message));
});

test('a client that aborts a stream stops its answer in the model process', async () => {
  const before = (await health()).models.find((m) => m.model.endsWith('share/models/tiny'));
  const ac = new AbortController();
  const stream = await client.chat.completions.create({ model: SKILL, messages: [{ role: 'user', content: PROMPT }],
    max_tokens: 400, ignore_eos: true, stream: true }, { signal: ac.signal });
  let pieces = 0;
  try {  // the client ends the iteration quietly or with its abort error
    for await (const chunk of stream) if (chunk.choices[0]?.delta.content && ++pieces === 2) ac.abort();
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIUserAbortError, String(e));
  }
  assert.equal(pieces, 2);
  let now;
  for (let i = 0; i < 100; i++) {
    now = (await health()).models.find((m) => m.model === before.model);
    if (now.cancelled > before.cancelled) {
      assert.equal(now.answered, before.answered);
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`the answer was not cancelled: ${JSON.stringify([before, now])}`);
});
