// The dashboard end to end: headless Chromium (playwright-core) against a real `fastbrain
// serve` on a free port with a temporary data directory, training with the real `fastbrain
// worker` on the bundled model (share/models/tiny), and generating data through the provider
// chain against local stand-ins of the Groq and Anthropic APIs (tests/web/providers.lua: Groq
// rate-limited, Anthropic answering). FASTBRAIN_BIN names the binary (default build/fastbrain);
// screenshots of each state, the server's log and every API answer and SSE message the pages
// saw go to FB_WEB_ARTIFACTS (default build/test-output/web). Fails, saying what to install,
// when Chromium, playwright-core or web/vendor/ (scripts/vendor-web.sh) is missing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { root, bin, shots, CHROMIUM, FLAGS, requireParts, launch, accessibilityProblems, stop, removeDir, showSection }
  from './harness.mjs';

// The keys the stand-ins require; ctest sets canary values, which must show up nowhere.
const KEYS = {
  GROQ_API_KEY: process.env.GROQ_API_KEY || 'gsk_web_canary_0c1d',
  ANTHROPIC_API_KEY: process.env.ANTHROPIC_API_KEY || 'sk-ant-web-canary-9e2f',
};
requireParts('dashboard');

// The bundled skills' examples carry a 600-byte system prompt: with the bundled byte-level
// model every step would be ~1000 tokens. The runs here train on short examples of the same
// skill instead (uploaded through the API like any user's data), with one micro-batch, a
// small max_len and short samples, so the whole suite stays within its time budget.
const QUESTIONS = ['My sink is leaking', 'Do you work on Sundays?', 'How much for a new tap?',
  'The toilet keeps running', 'Can you come today?', 'The water heater is cold',
  'A pipe burst in the basement', 'Do you fix dishwashers?'];
const ex = (user, answer) => JSON.stringify({ messages: [{ role: 'user', content: user }, { role: 'assistant', content: answer }] });
const SHORT_DATA = Array.from({ length: 40 }, (_, i) =>
  ex(`${QUESTIONS[i % QUESTIONS.length]} (call ${i})`, `We can help with that; slot ${(i % 7) + 1} is free.`)).join('\n') + '\n';
const SMALL_RUN = { micro_batch: 1, eval: { interval: 25 }, samples: { prompts: ['My sink is leaking'], interval: 50, max_tokens: 12 } };
const MAX_LEN = '128';
// Steps of the three runs: seconds each on an idle machine (20-40 ms a step), about a minute
// on a loaded one (~400 ms). The first must outlast a second tab's attach and a reload on the
// fastest machine.
const [MAIN_STEPS, POLL_STEPS, CANCEL_STEPS] = [200, 100, 100];
const RUN_MS = 120000;  // the longest a run may take here
const DUPLICATE = `${QUESTIONS[0]} (call 0)`;  // the stand-in sends it back once per request
const COMMIT = '0123456789abcdef0123456789abcdef01234567';  // of the cached model

let server, standins, hub, base, dataDir, browser;
let serverLog = '', standinLog = '', hubLog = '';
const traffic = [];  // every API answer and SSE message the pages saw

async function call(method, path, body, type = 'application/json') {
  const r = await fetch(base + path, { method, headers: { 'Content-Type': type },
    body: typeof body === 'string' ? body : body && JSON.stringify(body) });
  assert.ok(r.ok, `${method} ${path}: ${r.status} ${await r.clone().text()}`);
  return r.json();
}

before(async () => {
  const { chromium } = createRequire(import.meta.url)('playwright-core');
  mkdirSync(shots, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'fb-web-'));
  let seen;
  [standins, seen] = launch(['run', 'tests/web/providers.lua', DUPLICATE, join(dataDir, 'gate'), '600'], KEYS,
    /stand-ins on (http:\/\/\S+)/, (s) => { standinLog += s; });
  const providers = await seen;
  // The Hub stand-in (slow, so that a pull's progress shows), for the pull from the dashboard.
  const hubEndpoint = join(dataDir, 'hub-endpoint');
  hub = spawn(bin, ['run', 'tests/hub/standin_server.lua', hubEndpoint, 'slow'], { cwd: root });
  hub.stdout.on('data', (c) => { hubLog += c; });
  hub.stderr.on('data', (c) => { hubLog += c; });
  for (const until = Date.now() + 10000; !existsSync(hubEndpoint) && Date.now() < until;) await pause(50);
  const hubUrl = readFileSync(hubEndpoint, 'utf8');
  // A second base model in the server's own Hugging Face cache: the bundled one's files.
  const repo = join(dataDir, 'hf', 'models--acme--tiny-chat');
  cpSync(join(root, 'share/models/tiny'), join(repo, 'snapshots', COMMIT), { recursive: true });
  mkdirSync(join(repo, 'refs'));
  writeFileSync(join(repo, 'refs', 'main'), COMMIT);
  [server, seen] = launch(['serve', '--port', '0', '--data-dir', dataDir],
    { ...KEYS, FASTBRAIN_TIP_MS: '400', GROQ_BASE_URL: `${providers}/openai/v1`, ANTHROPIC_BASE_URL: providers,
      HF_HUB_CACHE: join(dataDir, 'hf'), FASTBRAIN_CACHE: join(dataDir, 'cache'), HF_ENDPOINT: hubUrl },
    /serving on (http:\/\/\S+)/, (s) => { serverLog += s; });
  base = await seen;
  for (const id of ['plumbing-receptionist', 'electrician-assistant', 'monday-expert']) {
    const { skill } = await call('GET', `/api/skills/${id}`);
    const { id: _, examples: __, ...meta } = skill;
    await call('PUT', `/api/skills/${id}`, { ...meta, defaults: SMALL_RUN });
    await call('PUT', `/api/skills/${id}/data`, SHORT_DATA, 'application/x-ndjson');
    // No scenarios: a finished job's scenario run would judge through the stand-ins and take
    // the answers these tests queue for data generation.
    await call('PUT', `/api/skills/${id}/scenarios`, []);
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
});

after(async () => {
  if (browser) await browser.close();
  await Promise.all([stop(server), stop(standins), stop(hub)]);
  writeFileSync(join(shots, 'serve.log'), serverLog);
  writeFileSync(join(shots, 'traffic.log'), traffic.join('\n'));
  writeFileSync(join(shots, 'hub.log'), hubLog);
  removeDir(dataDir);
});

// Record a page's console errors and uncaught exceptions in page.errors, and its API answers
// and SSE messages in `traffic`. The browser logs every 4xx answer as an error: those the
// dashboard expects and shows (a 409 it attaches through, an upload's 400 with its lines, no
// estimate for a skill without examples) are exempt for their URLs, as is every message about
// a URL in `blocked`.
const EXPECTED = [[409, '/api/train-skill/'], [400, '/data'], [409, '/api/models/'], [422, '/api/training/estimate/']];
function watch(page, blocked = null) {
  page.errors = [];
  page.on('console', (m) => {
    if (m.type() === 'debug' && m.text().startsWith('sse ')) { traffic.push(m.text()); return; }
    if (m.type() !== 'error') return;
    const url = m.location().url || '';
    if (blocked && url.includes(blocked)) return;
    if (EXPECTED.some(([code, part]) => m.text().includes(`status of ${code}`) && url.includes(part))) return;
    page.errors.push(`${m.text()} (${url})`);
  });
  page.on('pageerror', (e) => page.errors.push(e.message));
  page.on('response', async (r) => {
    if (!r.url().includes('/api/') || (r.headers()['content-type'] || '').includes('event-stream')) return;
    traffic.push(`${r.status()} ${r.request().method()} ${r.url()} ${await r.text().catch(() => '')}`);
  });
  // Every SSE message, as the page received it, into the console (and so into `traffic`).
  page.addInitScript(() => {
    const Native = window.EventSource;
    window.EventSource = class extends Native {
      addEventListener(type, fn, ...rest) {
        super.addEventListener(type, (e) => { if (e.data !== undefined) console.debug(`sse ${this.url} ${type} ${e.data}`); fn(e); }, ...rest);
      }
    };
  });
  return page;
}

// A page of the dashboard; with `blocked` (part of a URL), every request to such a URL fails,
// as when a proxy drops event streams.
async function open(context, path, blocked) {
  const page = watch(await context.newPage(), blocked);
  if (blocked) await page.route((url) => url.pathname.includes(blocked), (route) => route.abort());
  await page.goto(base + path);
  await page.locator('#start').waitFor();
  return page;
}

const text = (page, sel) => page.locator(sel).textContent();
const shot = (page, name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const chartPoints = (page) => page.evaluate(() => window.Chart.getChart(document.querySelector('#loss-chart')).data.datasets[0].data.length);
const api = async (path) => (await fetch(base + path)).json();
const count = (re) => (serverLog.match(re) || []).length;
const pause = (ms) => new Promise((ok) => setTimeout(ok, ms));
// The server's log reaches this process through a pipe, so a line may land after the browser
// has seen the answer it records: wait for `n` matches, then a little longer so that an extra
// one (what these checks look for) would be counted too.
async function logged(re, n, message) {
  for (const until = Date.now() + 5000; count(re) < n && Date.now() < until;) await pause(50);
  await pause(300);
  assert.equal(count(re), n, message);
}
const steps = (page) => text(page, '.stat:nth-child(2) .stat-value');

// The pid of job's worker once it has reported its first step.
async function firstStep(job) {
  for (const until = Date.now() + RUN_MS; Date.now() < until; await pause(10)) {
    const { job: j } = await api(`/api/jobs/${job}`);
    if (j.pid > 0 && j.progress && j.progress.step >= 1) return j.pid;
  }
  throw new Error(`job ${job} reported no step`);
}

async function settings(page, maxSteps) {
  await page.fill('input[name="max_steps"]', String(maxSteps));
  await page.fill('input[name="max_len"]', MAX_LEN);
}

// A browser context for one subtest, closed (with its pages and their streams) when it ends,
// passed or not: a browser opens at most six connections to a server.
async function contextFor(t, width = 1280, height = 900) {
  const context = await browser.newContext({ viewport: { width, height } });
  t.after(() => context.close());
  return context;
}

test('dashboard', { timeout: 280000 }, async (t) => {
  const skill = 'plumbing-receptionist';

  await t.test('double-click: one POST; a second tab attaches through the 409; live view; tips; reload; completion; preview', async (t) => {
    const context = await contextFor(t);
    const page = await open(context, `/#/skill/${skill}`);
    assert.equal(await page.locator('#start').isEnabled(), true);
    await page.locator('#tip:not(:empty)').waitFor();
    await shot(page, '01-idle');
    assert.deepEqual(await accessibilityProblems(page), []);
    // The second tab does not hear of the job until its POST has answered 409.
    let release;
    const held = new Promise((ok) => { release = ok; });
    const tab2 = watch(await context.newPage());
    await tab2.route('**/api/training/events/**', async (route) => { await held; await route.continue(); });
    await tab2.goto(`${base}/#/skill/${skill}`);
    await tab2.locator('#start:enabled').waitFor();

    await page.waitForFunction(() => document.querySelector('input[name="lr"]').value !== '');
    await settings(page, MAIN_STEPS);
    assert.equal(await page.inputValue('select[name="device"]'), 'auto');
    await page.selectOption('select[name="device"]', 'cpu');
    await page.locator('#start').dblclick();
    assert.equal(await page.locator('#start').isDisabled(), true);
    await page.locator('#start', { hasText: 'Training…' }).waitFor();
    const jobs = await api(`/api/jobs?skill=${skill}`);
    assert.equal(jobs.total, 1, 'exactly one job');
    await logged(new RegExp(`POST /api/train-skill/${skill} `, 'g'), 1, 'exactly one POST');
    assert.equal(await page.inputValue('input[name="lr"]'), '0.005', 'the form shows the small model\'s learning rate');
    assert.equal(jobs.jobs[0].spec.lr, undefined, 'a field the user left alone is not sent');
    assert.equal(jobs.jobs[0].spec.max_steps, MAIN_STEPS, 'a changed one is');
    assert.equal(jobs.jobs[0].spec.device, 'cpu', 'the device chosen in the form');
    // The worker is paused (SIGSTOP) from its first step until the reloaded page records below,
    // so the second tab's attach and the reload happen mid-run however fast this machine trains.
    const job = jobs.jobs[0].id;
    const worker = await firstStep(job);
    process.kill(worker, 'SIGSTOP');
    t.after(() => { try { process.kill(worker, 'SIGCONT'); } catch { /* already gone */ } });

    await tab2.locator('#start').click();
    await tab2.locator('#start', { hasText: 'Training…' }).waitFor();
    await logged(new RegExp(`POST /api/train-skill/${skill} 409`, 'g'), 1, 'the second tab\'s POST got 409');
    release();
    await tab2.locator('#train-state', { hasText: job }).waitFor();
    await page.locator('#train-state', { hasText: `${job}: running on the CPU` }).waitFor();

    // Reload mid-run: the view comes back attached to the job.
    await page.waitForFunction(() => Number(document.querySelector('[role=progressbar]').getAttribute('aria-valuenow')) > 0);
    await page.reload();
    await page.locator('#start', { hasText: 'Training…' }).waitFor();
    await page.locator('#train-state', { hasText: job }).waitFor();
    // From here the page records what the view shows at each change, so the live updates are
    // judged after the run, whatever the machine's speed made of its length.
    await page.evaluate(() => {
      window.seen = [];
      const chart = window.Chart.getChart(document.querySelector('#loss-chart'));
      const take = () => window.seen.push({
        live: document.querySelector('#start').textContent === 'Training…',
        loss: document.querySelector('.stat:nth-child(1) .stat-value').textContent,
        steps: document.querySelector('.stat:nth-child(2) .stat-value').textContent,
        eta: document.querySelector('.stat:nth-child(3) .stat-value').textContent,
        epoch: document.querySelector('.stat:nth-child(4) .stat-value').textContent,
        pct: Number(document.querySelector('[role=progressbar]').getAttribute('aria-valuenow')),
        points: chart.data.datasets[0].data.length,
        log: document.querySelector('#log').textContent,
        tip: document.querySelector('#tip').textContent,
      });
      new MutationObserver(take).observe(document.querySelector('#training'), { subtree: true, childList: true, characterData: true, attributes: true });
    });
    await shot(page, '02-running-reloaded');
    await shot(tab2, '03-running-second-tab');
    process.kill(worker, 'SIGCONT');

    // Completion: celebrated (confetti unless the adapter needs work), Start enabled again, the
    // adapters table lists the adapter.
    await page.locator('#training[data-finished="1"]').waitFor({ timeout: RUN_MS });
    await page.locator('#start:enabled', { hasText: 'Start training' }).waitFor();
    await page.locator(`tr[data-adapter^="${skill}/"]`).waitFor();
    await tab2.locator('#start:enabled').waitFor();
    assert.equal(await steps(page), `${MAIN_STEPS} / ${MAIN_STEPS}`);
    assert.equal(await page.locator('[role=progressbar]').getAttribute('aria-valuenow'), '100');
    assert.ok(await page.locator('#samples li').count() > 0, 'the worker\'s samples are shown');
    const row = await page.locator(`tr[data-adapter^="${skill}/"] td`).allTextContents();
    assert.equal(row[2], '36', 'examples trained on (40, less the held-out share)');
    assert.match(row.slice(3, 6).join(' '), /^\d\.\d{3} \d\.\d{3} \(base \d\.\d{3}\) (\d+ min )?\d+ s$/, 'final loss, eval loss (the base model\'s), time');
    assert.equal(row[6], '\u2014', 'no scenarios, so no pass rate');
    assert.match(row[7], /^(excellent|good|fair|needs work)$/);
    const download = page.locator(`tr[data-adapter^="${skill}/"] a`, { hasText: 'Download' });
    const [file] = await Promise.all([page.waitForEvent('download'), download.click()]);
    assert.match(file.suggestedFilename(), new RegExp(`^${skill}-\\d{8}-\\d{6}(-\\d+)?\\.tar\\.gz$`));
    assert.equal(readFileSync(await file.path()).subarray(0, 2).toString('hex'), '1f8b', 'a gzip file');
    await shot(page, '04-done');
    // While it ran: stat cards, progress bar and chart changed, tips rotated.
    const live = (await page.evaluate(() => window.seen)).filter((v) => v.live);
    const distinct = (key) => new Set(live.map((v) => v[key])).size;
    assert.ok(distinct('steps') >= 3, `steps shown while running: ${distinct('steps')}`);
    assert.ok(distinct('loss') >= 3 && distinct('epoch') >= 2 && distinct('tip') >= 2);
    assert.ok(live.every((v, i) => i === 0 || v.pct >= live[i - 1].pct) && distinct('pct') >= 2, 'the bar moves forward');
    assert.ok(live.at(-1).points > live[0].points, 'the chart grows');
    for (const v of live.slice(-3)) {
      assert.match(v.loss, /^\d+\.\d{3}$/);
      assert.match(v.steps, /^\d+ \/ \d+$/);
      assert.match(v.eta, /^(\d+ min )?\d+ s$/, 'time left as "1 min 20 s"');
      assert.match(v.epoch, /^\d+\.\d \/ \d+(\.\d)?$/);
      assert.match(v.log, /\S/, 'the log tail');
    }
    // The tips quoted the run's own numbers: its trained fraction and its measured speed.
    const tips = traffic.filter((l) => l.includes(`/api/training/events/${skill} tip `)).join('\n');
    assert.match(tips, /This run trains \d+\.\d+% of the base model/);
    assert.match(tips, /running at \d+ tokens per second/);

    // The preview: the new adapter's answer beside the base model's.
    await page.locator(`tr[data-adapter^="${skill}/"] button`, { hasText: 'Preview' }).click();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'preview-prompt', 'focus moves to the prompt');
    await page.keyboard.type('My sink is leaking');
    const answered = page.waitForResponse((r) => r.url().endsWith('/generate') && r.request().method() === 'POST', { timeout: 60000 });
    await page.locator('#preview-go').click();
    const preview = await (await answered).json();
    assert.equal(typeof preview.adapter, 'string');
    assert.equal(typeof preview.base, 'string');
    await page.locator('#preview-go:enabled').waitFor();
    assert.equal(await text(page, '#preview-adapter'), preview.adapter);
    assert.equal(await text(page, '#preview-base'), preview.base);
    assert.ok(preview.adapter.trim() && preview.base.trim(), 'both models answered');
    await shot(page, '05-preview');
    assert.deepEqual([...page.errors, ...tab2.errors], []);
  });

  await t.test('SSE blocked: polling the status keeps the view updating', async (t) => {
    const context = await contextFor(t);
    const page = await open(context, '/#/skill/electrician-assistant', '/api/training/events/');
    await page.locator('#training[data-feed="polling"]').waitFor();
    await settings(page, POLL_STEPS);
    await page.locator('#start').click();
    await page.locator('#start', { hasText: 'Training…' }).waitFor();
    const first = await steps(page);
    await page.waitForFunction((s) => { const v = document.querySelector('.stat:nth-child(2) .stat-value').textContent; return v !== s && !v.startsWith('0 '); }, first, { timeout: RUN_MS });
    await shot(page, '06-polling');
    await page.locator('#start:enabled', { hasText: 'Start training' }).waitFor({ timeout: RUN_MS });
    assert.equal(await steps(page), `${POLL_STEPS} / ${POLL_STEPS}`);
    assert.deepEqual(page.errors, []);
  });

  await t.test('cancel, then resume to the end', async (t) => {
    const context = await contextFor(t);
    const page = await open(context, '/#/skill/monday-expert');
    await settings(page, CANCEL_STEPS);
    await page.locator('#start').click();
    await page.locator('#cancel').waitFor();
    await page.waitForFunction(() => Number(document.querySelector('[role=progressbar]').getAttribute('aria-valuenow')) > 0);
    await page.locator('#cancel').click();
    await page.locator('#resume').waitFor({ timeout: 20000 });
    await page.locator('#start:enabled').waitFor();
    assert.match(await text(page, '#train-state'), /cancelled/);
    const stopped = Number((await steps(page)).split(' / ')[0]);
    assert.ok(stopped > 0 && stopped < CANCEL_STEPS, `stopped at ${stopped}`);
    await shot(page, '07-cancelled');
    await page.locator('#resume').click();
    await page.locator('#start', { hasText: 'Training…' }).waitFor();
    await page.locator('#training[data-finished="1"]').waitFor({ timeout: RUN_MS });
    assert.equal(await steps(page), `${CANCEL_STEPS} / ${CANCEL_STEPS}`);
    assert.equal((await api('/api/jobs?skill=monday-expert')).total, 1, 'resumed, not restarted');
    assert.deepEqual(page.errors, []);
  });

  await t.test('create a skill, upload data (errors by line); a dataset the worker rejects fails the job, started from the keyboard', async (t) => {
    const context = await contextFor(t);
    const page = await open(context, '/');
    await page.locator('#new-skill').click();
    await page.fill('#skill-form input[name="id"]', 'broken');
    await page.fill('#skill-form input[name="name"]', 'Broken data');
    await page.fill('#skill-form input[name="emoji"]', '🧪');
    await page.locator('#skill-form button[type="submit"]').click();
    await page.locator('#skill-title', { hasText: 'Broken data' }).waitFor();
    await page.locator('#edit-skill').click();
    await page.fill('#skill-form textarea[name="description"]', 'Its data makes the worker fail.');
    await page.fill('#skill-form input[name="color"]', '#aa3300');
    await page.locator('#skill-form button[type="submit"]').click();
    await page.locator('#skill-desc', { hasText: 'worker fail' }).waitFor();
    await page.locator('[data-skill="broken"]', { hasText: 'worker fail' }).waitFor();
    assert.equal(await page.locator('[data-skill="broken"] .avatar').evaluate((el) => el.style.background), 'rgb(170, 51, 0)');
    assert.equal(await text(page, '[data-skill="broken"] .avatar'), '🧪');
    const bad = join(dataDir, 'bad.jsonl');
    writeFileSync(bad, `${ex('hi', 'fine')}\n{"messages": oops\n`);
    await page.setInputFiles('#upload-file', bad);
    await page.locator('#upload-replace').click();
    await page.locator('#upload-errors', { hasText: 'line 2' }).waitFor();
    await shot(page, '08-upload-errors');
    // Valid JSONL the upload accepts, but every prompt is longer than max_len, so no answer
    // token is left to train on: the worker refuses the dataset.
    const rejected = join(dataDir, 'rejected.jsonl');
    writeFileSync(rejected, `${ex('Why is the water brown? '.repeat(150), 'fine')}\n`);
    await page.setInputFiles('#upload-file', rejected);
    await page.locator('#upload-replace').click();
    await page.locator('#pager', { hasText: '1 examples' }).waitFor();
    writeFileSync(rejected, `${ex('How do I stop a leak? '.repeat(150), 'also fine')}\n`);
    await page.setInputFiles('#upload-file', rejected);
    await page.locator('#upload-append').click();
    await page.locator('#pager', { hasText: '2 examples' }).waitFor();
    // The data-quality view counts them and draws their lengths.
    await page.locator('#quality div', { hasText: /^Examples2$/ }).waitFor();
    const quality = Object.fromEntries(await page.locator('#quality div').evaluateAll((ds) => ds.map((d) => [d.querySelector('dt').textContent, d.querySelector('dd').textContent])));
    assert.equal(quality.Examples, '2');
    assert.ok(Number(quality.Longest) > 512, `longest ${quality.Longest} tokens`);
    assert.equal(await page.evaluate(() => window.Chart.getChart(document.querySelector('#histogram')).data.datasets[0].data.reduce((a, b) => a + b, 0)), 2);
    // Keyboard only, from a fresh load: the skip link first, then Tab to Start (its focus
    // ring shows), Enter.
    await page.reload();
    await page.locator('#pager', { hasText: '2 examples' }).waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.className), 'skip');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
    for (let i = 0; i < 40 && await page.evaluate(() => document.activeElement.id) !== 'start'; i++) await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'start', 'Start is reachable by Tab');
    assert.equal(await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle), 'solid', 'focus is visible');
    await shot(page, '09-keyboard-focus');
    await page.keyboard.press('Enter');
    await page.locator('#failure', { hasText: 'no training example has an answer token left' }).waitFor({ timeout: 30000 });
    await page.locator('#start:enabled').waitFor();
    const maxLen = await page.inputValue('input[name="max_len"]');
    assert.match(await text(page, '#failure'), new RegExp(`max_len ${maxLen} tokens`), 'the max_len the form showed');
    assert.match(await text(page, '#failure pre'), /model: \w+ForCausalLM/, 'the last log lines');
    await shot(page, '10-failed');
    // Delete the skill (after the browser's confirmation).
    page.once('dialog', (d) => d.accept());
    await page.locator('#delete-skill').click();
    await page.locator('[data-skill="broken"]').waitFor({ state: 'detached' });
    assert.deepEqual(page.errors, []);
  });

  await t.test('generate examples: Groq is rate limited, Anthropic answers; the fallback, drops and new rows show live', async (t) => {
    const context = await contextFor(t);
    const page = await open(context, `/#/skill/${skill}`);
    await page.locator('#pager', { hasText: '40 examples' }).waitFor();
    await page.locator('tr[data-provider="groq"] .badge', { hasText: 'ok' }).waitFor();
    await shot(page, '11-providers-ok');
    await page.fill('#gen-count', '6');
    await page.locator('#gen-start').dblclick();
    assert.equal(await page.locator('#gen-start').isDisabled(), true);
    // Live: after the first answer (of two: five per request) the provider in use and Groq's
    // fallback show while the task still runs (the stand-in holds the second answer until
    // the gate file exists); a second tab attaches to the same task.
    await page.locator('#gen-state[data-state="running"]', { hasText: 'provider: anthropic' }).waitFor({ timeout: 20000 });
    assert.match(await text(page, '#gen-state'), /Generating: 5 of 6 kept/);
    assert.match(await text(page, '#gen-fallbacks li[data-provider="groq"]'), /groq skipped: rate_limited: .*HTTP 429.*try again in 120s/);
    const tab2 = await open(context, `/#/skill/${skill}`);
    await tab2.locator('#gen-state[data-state="running"]').waitFor();
    assert.equal(await tab2.locator('#gen-start').isDisabled(), true);
    const again = await fetch(`${base}/api/skills/${skill}/generate`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"count":1}' });
    assert.equal(again.status, 409, 'one generation per skill at a time');
    await shot(page, '12-generating');
    writeFileSync(join(dataDir, 'gate'), '');
    await page.locator('#gen-state[data-state="succeeded"]').waitFor({ timeout: 20000 });
    await logged(/POST \/api\/skills\/plumbing-receptionist\/generate /g, 2, 'the double-click\'s one POST, and the 409 above');
    const result = await page.locator('#gen-result div').allTextContents();
    assert.ok(result.includes('Kept6'), result.join(', '));
    assert.ok(result.includes('From anthropic6'), result.join(', '));
    assert.ok(result.includes('Dropped: exact duplicate2'), result.join(', '));
    assert.ok(result.includes('Dropped: messages[1].content: empty2'), result.join(', '));
    // The second request skipped Groq for its cooldown, without asking it again.
    assert.match(await page.locator('#gen-fallbacks li').nth(1).textContent(), /groq skipped: cooling down: rate limited/);
    // The appended examples are in the data view; the providers panel shows the cooldown.
    await page.locator('#pager', { hasText: '46 examples' }).waitFor();
    for (let n = 2; n <= 5; n++) {
      await page.locator('#pager button', { hasText: 'Next' }).click();
      await page.locator('#pager', { hasText: `Page ${n} of 5` }).waitFor();
    }
    await page.locator('#examples td', { hasText: 'Do you install water softeners?' }).waitFor();
    await page.locator('tr[data-provider="groq"] .badge', { hasText: 'cooling down' }).waitFor();
    assert.notEqual(await page.locator('tr[data-provider="groq"] td[data-until]').getAttribute('data-until'), '');
    assert.match(await text(page, 'tr[data-provider="groq"] .last-error'), /HTTP 429/);
    assert.equal(await text(page, 'tr[data-provider="anthropic"] .badge'), 'ok');
    assert.equal(await text(page, 'tr[data-provider="anthropic"] td:nth-of-type(4)'), '2', 'two requests today');
    await tab2.locator('#gen-state[data-state="succeeded"]').waitFor();
    await shot(page, '13-generated');
    assert.deepEqual(await accessibilityProblems(page), []);
    assert.deepEqual([...page.errors, ...tab2.errors], []);
  });

  await t.test('generate examples with SSE blocked: polling shows the task to its end', async (t) => {
    const context = await contextFor(t);
    const page = await open(context, '/#/skill/electrician-assistant', '/generate/events');
    await page.fill('#gen-count', '3');
    await page.locator('#gen-start').click();
    await page.locator('#generate[data-feed="polling"]').waitFor();
    await page.locator('#gen-state[data-state="succeeded"]').waitFor({ timeout: 20000 });
    assert.match(await text(page, '#gen-fallbacks'), /groq skipped: cooling down: rate limited/);
    await page.locator('#pager', { hasText: '43 examples' }).waitFor();
    await shot(page, '14-generated-polling');
    assert.deepEqual(page.errors, []);
  });

  await t.test('base model: the picker with sizes, the estimate following the form, removal guarded', async (t) => {
    const page = await open(await contextFor(t), `/#/skill/${skill}`);
    const picker = page.locator('#base-model');
    await page.locator('#base-model option[value="acme/tiny-chat"]').waitFor({ state: 'attached' });
    assert.deepEqual(await picker.locator('option').allTextContents(),
      ['tiny: 4.2M parameters, 16 MB', 'acme/tiny-chat: 4.2M parameters, 16 MB']);
    assert.equal(await picker.inputValue(), 'tiny');
    // The first estimate measures the model's shape on this machine; later ones are cached.
    const estimate = page.locator('#estimate[data-state="ok"]');
    await estimate.waitFor({ timeout: 90000 });
    assert.match(await estimate.textContent(), /^\d+ examples to train on and \d+ held out, [\d,]+ tokens an epoch: [\d,]+ steps\./);
    assert.match(await estimate.textContent(), /CPU: about (\d+ min )?\d+ s and \d+ MB of memory at its peak of [\d.]+ GB free$/);
    // It follows the form: a run cut to 7 steps, then the run as it was.
    const [, steps] = (await estimate.textContent()).match(/: ([\d,]+) steps\./);
    const maxSteps = await page.inputValue('input[name="max_steps"]');
    await page.fill('input[name="max_steps"]', '7');
    await page.locator('#estimate[data-state="ok"]', { hasText: ': 7 steps.' }).waitFor();
    await page.fill('input[name="max_steps"]', maxSteps);
    await page.locator('#estimate[data-state="ok"]', { hasText: `: ${steps} steps.` }).waitFor();
    await shot(page, '15-estimate');

    await picker.selectOption('acme/tiny-chat');
    await page.locator('#toast', { hasText: `${skill} now trains on acme/tiny-chat` }).waitFor();
    assert.equal((await api(`/api/skills/${skill}`)).skill.base_model, 'acme/tiny-chat');
    const row = page.locator('tr[data-model="acme/tiny-chat"]');
    await row.locator('td', { hasText: skill }).waitFor();
    page.once('dialog', (d) => d.accept());
    await row.getByRole('button', { name: 'Remove acme/tiny-chat' }).click();
    await page.locator('#toast[data-kind="error"]', { hasText: `the base model of ${skill}` }).waitFor();
    assert.equal(await row.count(), 1, 'a model a skill trains on stays');

    await picker.selectOption('tiny');
    await page.locator('#toast', { hasText: `${skill} now trains on tiny` }).waitFor();
    assert.equal((await api(`/api/skills/${skill}`)).skill.base_model, undefined, 'back to the default');
    page.once('dialog', (d) => d.accept());
    await row.getByRole('button', { name: 'Remove acme/tiny-chat' }).click();
    await page.locator('#toast', { hasText: 'Removed acme/tiny-chat.' }).waitFor();
    await row.waitFor({ state: 'detached' });
    await page.locator('#base-model option[value="acme/tiny-chat"]').waitFor({ state: 'detached' });

    // A pull from the Hub (the stand-in): progress, then the model in the table and the picker.
    await page.fill('#pull-model', 'org/gated');
    await page.click('#pull-go');
    await page.locator('#pull-form[data-state="failed"]', { hasText: 'HF_TOKEN' }).waitFor();
    await page.fill('#pull-model', 'org/tiny');
    await page.click('#pull-go');
    await page.locator('#pull-state', { hasText: /Pulling org\/tiny: [\d.]+ MB of 16 MB, [\d.]+ MB\/s/ }).waitFor();
    assert.equal(await page.locator('#pull-progress').isVisible(), true);
    assert.equal(await page.locator('#pull-go').isDisabled(), true);
    await shot(page, '16-pulling');
    await page.locator('#pull-state', { hasText: 'Pulled org/tiny (commit 5e5e5e5e5e5e)' }).waitFor({ timeout: 60000 });
    await page.locator('tr[data-model="org/tiny"]', { hasText: 'LlamaForCausalLM' }).waitFor();
    await page.locator('#base-model option[value="org/tiny"]').waitFor({ state: 'attached' });
    assert.deepEqual(await accessibilityProblems(page), []);
    await shot(page, '17-models');
    assert.deepEqual(page.errors, []);
  });

  await t.test('phone width: no horizontal scrolling, every control named', async (t) => {
    const page = await open(await contextFor(t, 390, 844), `/#/skill/${skill}`);
    await showSection(page, 'adapters');
    await page.locator(`tr[data-adapter^="${skill}/"]`).waitFor();
    await showSection(page, 'data');
    await page.locator('#gen-state[data-state="succeeded"]').waitFor();
    const wide = await page.evaluate(() => [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > 390 && !el.closest('.table-wrap'))
      .map((el) => `${el.tagName}#${el.id}.${el.className}: ${Math.round(el.getBoundingClientRect().right)}`));
    assert.deepEqual(wide, [], 'nothing wider than the phone (tables scroll in their own box)');
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'no horizontal scrolling');
    assert.deepEqual(await accessibilityProblems(page), []);
    await shot(page, '18-phone');
    assert.deepEqual(page.errors, []);
  });

  await t.test('no key appears in the server log, any API answer or any SSE message', async () => {
    assert.ok(traffic.some((l) => l.includes('/api/providers')), 'the providers answers were seen');
    // A generation stream's first message as the server sends it (a page may have followed
    // the task by polling, as a browser out of connections to the server does).
    const stream = new AbortController();
    const r = await fetch(`${base}/api/skills/${skill}/generate/events`, { signal: stream.signal });
    const reader = r.body.getReader();
    let first = '';
    while (!first.includes('\n\n')) first += new TextDecoder().decode((await reader.read()).value);
    stream.abort();
    traffic.push(`sse direct ${first}`);
    assert.match(first, /^event: snapshot\n/m, 'a generation stream was read');
    for (const key of Object.values(KEYS)) {
      for (const [name, output] of [['server log', serverLog], ['stand-ins', standinLog], ['pages', traffic.join('\n')]]) {
        assert.ok(!output.includes(key), `a key appears in the ${name}`);
      }
    }
  });
});
