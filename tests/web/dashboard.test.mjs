// The dashboard end to end: headless Chromium (playwright-core) against a real `fastbrain
// serve` on a free port with a temporary data directory and tests/web/worker.lua as the
// worker. FASTBRAIN_BIN names the binary (default build/fastbrain); screenshots go to
// FB_WEB_ARTIFACTS (default build/test-output/web). Skipped, saying why, when Chromium,
// playwright-core or web/vendor/ (scripts/vendor-web.sh) is missing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';

const root = resolve(import.meta.dirname, '../..');
const bin = resolve(process.env.FASTBRAIN_BIN || join(root, 'build/fastbrain'));
const shots = resolve(process.env.FB_WEB_ARTIFACTS || join(root, 'build/test-output/web'));
const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run'];

const missing = [
  [CHROMIUM, 'Chromium (apt-get install chromium)'],
  [join(root, 'node_modules/playwright-core'), 'playwright-core (npm ci)'],
  [join(root, 'web/vendor/chart.umd.min.js'), 'web/vendor (scripts/vendor-web.sh)'],
  [bin, `the fastbrain binary (${bin})`],
].filter(([path]) => !existsSync(path)).map(([, what]) => what);
// A missing part fails the suite (run `make deps`): a skipped browser test would hide it.
if (missing.length) throw new Error(`dashboard test: missing ${missing.join(', ')}; run make deps`);

let server, base, dataDir, browser, serverLog = '';

before(async () => {
  const { chromium } = createRequire(import.meta.url)('playwright-core');
  mkdirSync(shots, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'fb-web-'));
  server = spawn(bin, ['serve', '--port', '0', '--data-dir', dataDir,
    '--worker', `${bin} run ${join(root, 'tests/web/worker.lua')}`],
  { cwd: root, env: { ...process.env, FASTBRAIN_TIP_MS: '400', FB_WEB_STEP_MS: '120' } });
  base = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`serve did not start:\n${serverLog}`)), 10000);
    const read = (chunk) => {
      serverLog += chunk;
      const m = serverLog.match(/serving on (http:\/\/[^\s]+)/);
      if (m) { clearTimeout(timer); ok(m[1]); }
    };
    server.stdout.on('data', read);
    server.stderr.on('data', read);
    server.on('exit', (code) => fail(new Error(`serve exited ${code}:\n${serverLog}`)));
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.kill('SIGTERM');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

// Record a page's console errors and uncaught exceptions in page.errors. The browser logs
// every 4xx answer as an error: those the dashboard expects and shows (a 409 it attaches
// through, an upload's 400 with its lines, a preview the server cannot answer) are exempt for
// their URLs, as is every message about a URL in `blocked`.
const EXPECTED = [[409, '/api/train-skill/'], [400, '/data'], [422, '/generate'], [503, '/generate']];
function watch(page, blocked = null) {
  page.errors = [];
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const url = m.location().url || '';
    if (blocked && url.includes(blocked)) return;
    if (EXPECTED.some(([code, part]) => m.text().includes(`status of ${code}`) && url.includes(part))) return;
    page.errors.push(`${m.text()} (${url})`);
  });
  page.on('pageerror', (e) => page.errors.push(e.message));
  return page;
}

async function open(context, path, blocked) {
  const page = watch(await context.newPage(), blocked);
  await page.goto(base + path);
  await page.locator('#start').waitFor();
  return page;
}

const text = (page, sel) => page.locator(sel).textContent();
const shot = (page, name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const chartPoints = (page) => page.evaluate(() => window.Chart.getChart(document.querySelector('#loss-chart')).data.datasets[0].data.length);
const api = async (path) => (await fetch(base + path)).json();
const count = (re) => (serverLog.match(re) || []).length;

test('dashboard', { timeout: 90000 }, async (t) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const skill = 'plumbing-receptionist';

  await t.test('double-click: one POST; a second tab attaches through the 409; live view; tips; reload; completion', async () => {
    const page = await open(context, `/#/skill/${skill}`);
    assert.equal(await page.locator('#start').isEnabled(), true);
    await shot(page, '1-idle');
    // The second tab does not hear of the job until its POST has answered 409.
    let release;
    const held = new Promise((ok) => { release = ok; });
    const tab2 = watch(await context.newPage());
    await tab2.route('**/api/training/events/**', async (route) => { await held; await route.continue(); });
    await tab2.goto(`${base}/#/skill/${skill}`);
    await tab2.locator('#start:enabled').waitFor();

    await page.fill('input[name="max_steps"]', '80');
    await page.locator('#start').dblclick();
    assert.equal(await page.locator('#start').isDisabled(), true);
    await page.locator('#start', { hasText: 'Training…' }).waitFor();
    const jobs = await api(`/api/jobs?skill=${skill}`);
    assert.equal(jobs.total, 1, 'exactly one job');
    assert.equal(count(new RegExp(`POST /api/train-skill/${skill} `, 'g')), 1, 'exactly one POST');

    await tab2.locator('#start').click();
    await tab2.locator('#start', { hasText: 'Training…' }).waitFor();
    assert.equal(count(new RegExp(`POST /api/train-skill/${skill} 409`, 'g')), 1);
    release();
    const job = jobs.jobs[0].id;
    await tab2.locator('#train-state', { hasText: job }).waitFor();
    await page.locator('#train-state', { hasText: `${job}: running` }).waitFor();

    // Live: stat cards, progress bar and chart move; tips rotate.
    await page.waitForFunction(() => Number(document.querySelector('[role=progressbar]').getAttribute('aria-valuenow')) > 0);
    const before = { steps: await text(page, '.stat:nth-child(2) .stat-value'), pct: await page.locator('[role=progressbar]').getAttribute('aria-valuenow'), points: await chartPoints(page), tip: await text(page, '#tip') };
    await page.waitForTimeout(900);
    assert.notEqual(await text(page, '.stat:nth-child(2) .stat-value'), before.steps);
    assert.ok(Number(await page.locator('[role=progressbar]').getAttribute('aria-valuenow')) > Number(before.pct));
    assert.ok(await chartPoints(page) > before.points);
    assert.match(await text(page, '.stat:nth-child(1) .stat-value'), /^\d+\.\d{3}$/);
    assert.notEqual(await text(page, '#tip'), before.tip, 'tips rotate');
    assert.match(await text(page, '#tip'), /\w/);
    await shot(page, '2-running');
    await shot(tab2, '2-running-second-tab');

    // Reload mid-run: the view comes back attached to the same job.
    await page.reload();
    await page.locator('#start', { hasText: 'Training…' }).waitFor();
    await page.locator('#train-state', { hasText: job }).waitFor();
    await page.waitForFunction(() => window.Chart.getChart(document.querySelector('#loss-chart')).data.datasets[0].data.length > 5);
    await shot(page, '3-reloaded');

    // Completion: confetti, Start enabled again, the adapters table lists the adapter.
    await page.locator('#training[data-confetti="1"]').waitFor({ timeout: 20000 });
    await page.locator('#start:enabled', { hasText: 'Start training' }).waitFor();
    await page.locator(`tr[data-adapter^="${skill}/"]`).waitFor();
    await tab2.locator('#start:enabled').waitFor();
    assert.equal(await text(page, '.stat:nth-child(2) .stat-value'), '80 / 80');
    assert.equal(await page.locator('[role=progressbar]').getAttribute('aria-valuenow'), '100');
    await shot(page, '4-done');

    // The test worker writes a summary but no adapter weights: the preview shows the server's
    // reason instead of an answer.
    await page.locator(`tr[data-adapter^="${skill}/"] button`).click();
    await page.fill('#preview-prompt', 'My sink is leaking');
    await page.locator('#preview-go').click();
    await page.locator('#preview-adapter', { hasText: /cannot (load|answer)/ }).waitFor();
    assert.deepEqual([...page.errors, ...tab2.errors], []);
    await tab2.close();
    await page.close();
  });

  await t.test('SSE blocked: polling the status keeps the view updating', async () => {
    const page = await open(context, '/#/skill/electrician-assistant', '/api/training/events/');
    await page.route('**/api/training/events/**', (route) => route.abort());
    await page.reload();
    await page.locator('#training[data-feed="polling"]').waitFor();
    await page.fill('input[name="max_steps"]', '60');
    await page.locator('#start').click();
    await page.locator('#start', { hasText: 'Training…' }).waitFor();
    const steps = await text(page, '.stat:nth-child(2) .stat-value');
    await page.waitForFunction((s) => document.querySelector('.stat:nth-child(2) .stat-value').textContent !== s && !document.querySelector('.stat:nth-child(2) .stat-value').textContent.startsWith('0 '), steps, { timeout: 8000 });
    await shot(page, '6-polling');
    await page.locator('#start:enabled', { hasText: 'Start training' }).waitFor({ timeout: 15000 });
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  await t.test('cancel, then resume to the end', async () => {
    const page = await open(context, '/#/skill/monday-expert');
    await page.fill('input[name="max_steps"]', '30');
    await page.locator('#start').click();
    await page.locator('#cancel').waitFor();
    await page.waitForFunction(() => Number(document.querySelector('[role=progressbar]').getAttribute('aria-valuenow')) > 0);
    await page.locator('#cancel').click();
    await page.locator('#resume').waitFor();
    await page.locator('#start:enabled').waitFor();
    assert.match(await text(page, '#train-state'), /cancelled/);
    await shot(page, '5-cancelled');
    await page.locator('#resume').click();
    await page.locator('#start', { hasText: 'Training…' }).waitFor();
    await page.locator('#training[data-confetti="1"]').waitFor({ timeout: 15000 });
    assert.equal(await text(page, '.stat:nth-child(2) .stat-value'), '30 / 30');
    assert.equal((await api('/api/jobs?skill=monday-expert')).total, 1, 'resumed, not restarted');
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  await t.test('create a skill, upload data (errors by line), a failing job shows its error and re-enables Start', async () => {
    const page = await open(context, '/');
    await page.locator('#new-skill').click();
    await page.fill('#skill-form input[name="id"]', 'broken');
    await page.fill('#skill-form input[name="name"]', 'Broken data');
    await page.fill('#skill-form input[name="emoji"]', '🧪');
    await page.locator('#skill-form button[type="submit"]').click();
    await page.locator('#skill-title', { hasText: 'Broken data' }).waitFor();
    await page.locator('#edit-skill').click();
    await page.fill('#skill-form textarea[name="description"]', 'Its data makes the worker fail.');
    await page.locator('#skill-form button[type="submit"]').click();
    await page.locator('#skill-desc', { hasText: 'worker fail' }).waitFor();
    await page.locator('[data-skill="broken"]', { hasText: 'worker fail' }).waitFor();
    const ex = (answer) => JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: answer }] });
    const bad = join(dataDir, 'bad.jsonl');
    writeFileSync(bad, `${ex('fine')}\n{"messages": oops\n`);
    await page.setInputFiles('#upload-file', bad);
    await page.locator('#upload-replace').click();
    await page.locator('#upload-errors', { hasText: 'line 2' }).waitFor();
    await shot(page, '7-upload-errors');
    const rejected = join(dataDir, 'rejected.jsonl');
    writeFileSync(rejected, `${ex('fine')}\n${ex('REJECT this one')}\n`);
    await page.setInputFiles('#upload-file', rejected);
    await page.locator('#upload-replace').click();
    await page.locator('#pager', { hasText: '2 examples' }).waitFor();
    await page.locator('#start').click();
    await page.locator('#failure', { hasText: 'data.jsonl:2' }).waitFor({ timeout: 10000 });
    await page.locator('#start:enabled').waitFor();
    assert.match(await text(page, '#failure pre'), /step \d+\/30/);
    await shot(page, '8-failed');
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  await t.test('phone width: no horizontal scrolling', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await open(phone, `/#/skill/${skill}`);
    await page.locator(`tr[data-adapter^="${skill}/"]`).waitFor();
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'no wider than the phone');
    await shot(page, '9-phone');
    assert.deepEqual(page.errors, []);
    await phone.close();
  });
  await context.close();
});
