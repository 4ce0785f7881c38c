// The adapters table's Use panel end to end: headless Chromium (playwright-core) against a real
// `fastbrain serve`, with an adapter of the bundled plumbing skill trained by `fastbrain train`
// into the server's data directory. The panel opens from the row with focus in the chat and
// closes on Escape; the playground streams two turns from /v1/chat/completions, each equal to
// the non-streamed greedy answer to the same conversation; a GGUF export shows its progress, then
// llama.cpp's verdict and a download that is a GGUF; the snippets carry the page's own origin,
// copy, and the curl one answers when run. A version that passes fewer scenarios than the one
// before it is flagged in the table, and its export asks first. Screenshots at desktop and phone width go to
// FB_WEB_ARTIFACTS (default build/test-output/web) as use-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { root, bin, shots, CHROMIUM, FLAGS, requireParts, launch, accessibilityProblems, stop, removeDir, showSection }
  from './harness.mjs';

requireParts('use panel');

const SKILL = 'plumbing-receptionist';
const VERSION = '20261207-101500';
const MODEL = `${SKILL}@${VERSION}`;
const QUESTIONS = ['My sink is leaking', 'Do you work on Sundays?', 'How much for a new tap?', 'Can you come today?'];

let server, base, dataDir, browser;
let serverLog = '';

before(async () => {
  const { chromium } = createRequire(import.meta.url)('playwright-core');
  mkdirSync(shots, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'fb-use-'));
  let seen;
  [server, seen] = launch(['serve', '--port', '0', '--data-dir', dataDir],
    { FASTBRAIN_CACHE: join(dataDir, 'cache') }, /serving on (http:\/\/\S+)/, (s) => { serverLog += s; });
  base = await seen;
  // An adapter where the server keeps them (its bundled skills are installed by now).
  const data = join(dataDir, 'train.jsonl');
  writeFileSync(data, Array.from({ length: 24 }, (_, i) => JSON.stringify({ messages: [
    { role: 'user', content: QUESTIONS[i % QUESTIONS.length] },
    { role: 'assistant', content: `We can help; slot ${(i % 5) + 1} is free.` }] })).join('\n') + '\n');
  execFileSync(bin, ['train', '--model', join(root, 'share/models/tiny'), '--data', data, '--out',
    join(dataDir, 'adapters', SKILL, VERSION), '--max-steps', '30', '--lr', '0.005', '--max-len', '64',
    '--eval-fraction', '0', '--device', 'cpu'], { stdio: 'ignore' });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
});

after(async () => {
  if (browser) await browser.close();
  await stop(server);
  writeFileSync(join(shots, 'use-serve.log'), serverLog);
  removeDir(dataDir);
});

async function openPanel(t, width, height) {
  const context = await browser.newContext({ viewport: { width, height } });
  t.after(() => context.close());
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(m.text()); });
  await page.goto(base);
  await showSection(page, 'adapters');
  await page.locator(`tr[data-adapter="${SKILL}/${VERSION}"] button`, { hasText: 'Use' }).click();
  await page.locator('#use-dialog[open]').waitFor();
  return page;
}

// The answer /v1/chat/completions gives, not streamed, to the same greedy request.
async function plainAnswer(messages, maxTokens) {
  const r = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages, temperature: 0, max_tokens: maxTokens }) });
  assert.equal(r.status, 200);
  return (await r.json()).choices[0].message.content;
}

// Send a message in the playground; the reply once done, and how many times its text grew.
async function say(page, text) {
  const before = await page.locator('.msg[data-role="assistant"]').count();
  await page.evaluate(() => {  // count the streamed updates of the next reply
    window.updates = 0;
    new MutationObserver(() => { window.updates += 1; }).observe(document.querySelector('#chat-log'),
      { subtree: true, characterData: true, childList: true });
  });
  await page.fill('#chat-input', text);
  await page.keyboard.press('Enter');
  const reply = page.locator('.msg[data-role="assistant"]').nth(before);
  await page.locator(`.msg[data-role="assistant"]:nth-child(${2 * before + 2})[data-state="done"]`).waitFor({ timeout: 60000 });
  return { text: await reply.locator('p').textContent(), updates: await page.evaluate(() => window.updates) };
}

const shot = (page, name) => page.screenshot({ path: join(shots, `${name}.png`) });

test('use panel', { timeout: 240000 }, async (t) => {
  await t.test('desktop: chat two turns, export a GGUF, snippets', async (t) => {
    const page = await openPanel(t, 1280, 900);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'chat-input', 'focus moves to the chat');
    assert.equal(await page.locator('#use-title').textContent(), `Use ${SKILL} \u00b7 ${VERSION}`);

    // Two greedy turns, streamed; each equals the plain answer to the same conversation.
    await page.locator('#chat-temperature').fill('0');
    await page.fill('#chat-max-tokens', '40');
    const streamed = page.waitForResponse((r) => r.url().endsWith('/v1/chat/completions'));
    const first = await say(page, QUESTIONS[0]);
    assert.match((await streamed).headers()['content-type'], /^text\/event-stream/);
    const history = [{ role: 'user', content: QUESTIONS[0] }];
    assert.equal(first.text, await plainAnswer(history, 40));
    assert.ok(first.text.trim(), 'the adapter answered');
    assert.ok(first.updates >= 3, `the reply grew piece by piece (${first.updates} updates)`);
    history.push({ role: 'assistant', content: first.text }, { role: 'user', content: QUESTIONS[3] });
    const second = await say(page, QUESTIONS[3]);
    assert.equal(second.text, await plainAnswer(history, 40));
    assert.equal(await page.locator('.msg').count(), 4);

    // The export: progress while it runs, then llama.cpp's verdict and the download.
    await page.evaluate(() => {
      window.exportStates = [];
      const box = document.querySelector('#export-state');
      new MutationObserver(() => window.exportStates.push(box.textContent)).observe(box, { childList: true, characterData: true, subtree: true });
    });
    await page.selectOption('#export-to', 'gguf');
    await page.selectOption('#export-type', 'f32');
    await page.locator('#export-go').click();
    await page.locator('#export-download').waitFor({ timeout: 120000 });
    const states = await page.evaluate(() => window.exportStates);
    assert.ok(states.some((s) => /^(Writing the files|Checking with llama\.cpp)/.test(s)), `progress shown: ${states.join(' | ')}`);
    assert.match(await page.locator('#export-state').textContent(), /^Done in \d+ s\.$/);
    assert.match(await page.locator('#export-check').textContent(), /^verified with llama\.cpp \S+ \(node-llama-cpp [\d.]+\): 3 prompts x 32 tokens/);
    const [file] = await Promise.all([page.waitForEvent('download'), page.locator('#export-download').click()]);
    assert.equal(file.suggestedFilename(), `${SKILL}-${VERSION}-f32.gguf`);
    assert.equal(readFileSync(await file.path()).subarray(0, 4).toString(), 'GGUF');

    // Snippets: this page's origin and the adapter's model id; Copy copies; curl answers.
    const curl = await page.locator('[data-snippet="curl"] pre').textContent();
    assert.ok(curl.startsWith(`curl ${base}/v1/chat/completions \\`), curl);
    assert.ok(curl.includes(`"model": "${MODEL}"`) && curl.includes('Authorization: Bearer $FASTBRAIN_TOKEN'), curl);
    assert.ok((await page.locator('[data-snippet="python"] pre').textContent()).includes(`base_url="${base}/v1"`));
    await page.locator('[data-snippet="curl"] button.copy').click();
    await page.locator('[data-snippet="curl"] button.copy', { hasText: 'Copied' }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), curl);
    const answer = JSON.parse(execFileSync('sh', ['-c', curl], { env: { ...process.env, FASTBRAIN_TOKEN: '' } }));
    assert.equal(answer.model, MODEL);
    assert.equal(typeof answer.choices[0].message.content, 'string');

    assert.deepEqual(await accessibilityProblems(page), []);
    await shot(page, 'use-desktop');
    await page.locator('.use-side section:last-child').scrollIntoViewIfNeeded();
    await shot(page, 'use-desktop-snippets');
    // Escape closes it and gives focus back to the row's Use button.
    await page.keyboard.press('Escape');
    await page.locator('#use-dialog:not([open])').waitFor({ state: 'attached' });
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Use');
    assert.deepEqual(page.errors, []);
  });

  await t.test('phone: the panel stacks; the finished export shows again; Stop and Clear', async (t) => {
    const page = await openPanel(t, 390, 844);
    await page.locator('#export-download').waitFor();  // the earlier export, from the server
    const box = await page.locator('#use-dialog').boundingBox();
    assert.ok(box.width <= 390, `the panel fits the screen (${box.width}px)`);
    const chat = await page.locator('.use-chat').boundingBox();
    const side = await page.locator('.use-side').boundingBox();
    assert.ok(side.y >= chat.y + chat.height, 'the export and snippets come below the chat');
    await page.locator('#chat-temperature').fill('0');
    await page.fill('#chat-max-tokens', '40');
    await say(page, QUESTIONS[1]);
    await shot(page, 'use-phone');
    await page.locator('.use-side').scrollIntoViewIfNeeded();
    await shot(page, 'use-phone-export');
    // Stop: a long, random answer stopped while it streams keeps what came.
    await page.locator('#chat-temperature').fill('2');
    await page.fill('#chat-max-tokens', '1000');
    await page.fill('#chat-input', QUESTIONS[2]);
    await page.keyboard.press('Enter');
    await page.locator('#chat-stop:visible').click();
    await page.locator('.msg[data-role="assistant"]:last-child:is([data-state="stopped"], [data-state="done"])').waitFor();
    await page.locator('#chat-send:enabled').waitFor();
    await page.locator('#chat-clear').click();
    assert.equal(await page.locator('.msg').count(), 0);
    assert.deepEqual(await accessibilityProblems(page), []);
    assert.deepEqual(page.errors, []);
  });

  await t.test('a version passing fewer scenarios than the one before is flagged; export asks first', async (t) => {
    const adapters = join(dataDir, 'adapters', SKILL);
    const older = '20261201-090000';
    mkdirSync(join(adapters, older));
    writeFileSync(join(adapters, older, 'summary.json'), readFileSync(join(adapters, VERSION, 'summary.json')));
    writeFileSync(join(adapters, older, 'scenarios.json'), JSON.stringify({ run: 'r1', passed: 14, total: 15 }));
    writeFileSync(join(adapters, VERSION, 'scenarios.json'), JSON.stringify({ run: 'r2', passed: 9, total: 15 }));
    const page = await openPanel(t, 1280, 900);
    const row = page.locator(`tr[data-adapter="${SKILL}/${VERSION}"]`);
    assert.match(await row.innerText(), /9\/15 \u25BC fewer than 20261201-090000 \(14\/15\)/);
    assert.match(await page.locator(`tr[data-adapter="${SKILL}/${older}"]`).innerText(), /14\/15/);
    await page.locator('#export-go').click();
    await page.locator('#export-state[data-state="confirm"]').waitFor();
    assert.match(await page.locator('#export-state').innerText(), /fewer test scenarios \(9\/15\) than 20261201-090000 \(14\/15\)/);
    assert.equal(await page.locator('#export-go').innerText(), 'Export anyway');
    await shot(page, 'use-regressed');
    await page.locator('#export-go').click();
    await page.locator('#export-download').waitFor();
    assert.deepEqual(page.errors, []);
  });
});
