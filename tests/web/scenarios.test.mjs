// The skill's test scenarios, their runs and its training history in the dashboard, end to end:
// headless Chromium (playwright-core) against a real `fastbrain serve` with its model
// processes on the bundled model, an adapter trained by `fastbrain train` into its data
// directory, two short training jobs through the API, and the provider stand-ins
// (tests/web/providers.lua: Groq rate limited, Anthropic drafting scenarios and judging).
// Scenarios are uploaded (refused line by line first), added (the server's error shown by the
// field), edited and deleted; suggested drafts are kept, edited and dropped; the base model and
// the adapter are run with live progress, their results shown and compared (fail -> pass and
// pass -> fail marked); the two jobs' losses are overlaid and their differing settings listed.
// Screenshots at desktop and phone width go to FB_WEB_ARTIFACTS as scenarios-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { root, bin, shots, CHROMIUM, FLAGS, requireParts, launch, accessibilityProblems, stop, removeDir, showSection }
  from './harness.mjs';

requireParts('scenarios');

const KEYS = { GROQ_API_KEY: 'gsk_scen_canary_51a2', ANTHROPIC_API_KEY: 'sk-ant-scen-canary-77b3' };
const SKILL = 'front-desk';
const VERSION = '20261207-101500';
const PHONE = '555-0100';
const QUESTIONS = ['How do I reach you?', 'Phone?', 'Can I call you?', 'Number please', 'Contact?', 'How to call?'];
const DATA = Array.from({ length: 24 }, (_, i) => JSON.stringify({ messages: [
  { role: 'user', content: QUESTIONS[i % QUESTIONS.length] },
  { role: 'assistant', content: `Call us at ${PHONE}.` }] })).join('\n') + '\n';
// phone: the base fails, the adapter passes; quiet: the base passes, the adapter (which gives the
// number to everything) fails; kind: a rubric for the judge.
const SCENARIOS = [
  { id: 'phone', messages: [{ role: 'user', content: 'How do I reach you?' }], checks: { must_include: [PHONE] } },
  { id: 'quiet', messages: [{ role: 'user', content: 'Just browsing, thanks.' }], checks: { must_not_include: ['call us'] } },
  { id: 'kind', messages: [{ role: 'user', content: 'Can I call you?' }], rubric: 'Gives the number to call.' },
];
const jsonl = (list) => list.map((s) => JSON.stringify(s)).join('\n') + '\n';
const RUN_MS = 120000;

let server, standins, base, dataDir, browser;
let serverLog = '', standinLog = '';
let trainedJobs = [];  // the training history's jobs, whose checkpoints a run can take

async function call(method, path, body) {
  const r = await fetch(base + path, { method, headers: { 'Content-Type': typeof body === 'string' ? 'application/x-ndjson' : 'application/json' },
    body: typeof body === 'string' ? body : body && JSON.stringify(body) });
  assert.ok(r.ok, `${method} ${path}: ${r.status} ${await r.clone().text()}`);
  return r.json();
}
const pause = (ms) => new Promise((ok) => setTimeout(ok, ms));

before(async () => {
  const { chromium } = createRequire(import.meta.url)('playwright-core');
  mkdirSync(shots, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'fb-scen-'));
  writeFileSync(join(dataDir, 'gate'), '');  // data generation is not held here
  let seen;
  [standins, seen] = launch(['run', 'tests/web/providers.lua', QUESTIONS[0], join(dataDir, 'gate'), '700'], KEYS,
    /stand-ins on (http:\/\/\S+)/, (s) => { standinLog += s; });
  const providers = await seen;
  [server, seen] = launch(['serve', '--port', '0', '--data-dir', dataDir],
    { ...KEYS, GROQ_BASE_URL: `${providers}/openai/v1`, ANTHROPIC_BASE_URL: providers, FASTBRAIN_CACHE: join(dataDir, 'cache') },
    /serving on (http:\/\/\S+)/, (s) => { serverLog += s; });
  base = await seen;
  await call('POST', '/api/skills', { id: SKILL, name: 'Front desk', description: 'Answers the phone for a plumbing firm.', system: 'Answer briefly.' });
  await call('PUT', `/api/skills/${SKILL}/data`, DATA);
  const data = join(dataDir, 'train.jsonl');
  writeFileSync(data, DATA);
  execFileSync(bin, ['train', '--model', join(root, 'share/models/tiny'), '--data', data, '--out',
    join(dataDir, 'adapters', SKILL, VERSION), '--max-steps', '60', '--lr', '0.005', '--max-len', '64',
    '--eval-fraction', '0', '--device', 'cpu'], { stdio: 'ignore' });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
});

after(async () => {
  if (browser) await browser.close();
  await Promise.all([stop(server), stop(standins)]);
  writeFileSync(join(shots, 'scenarios-serve.log'), serverLog);
  writeFileSync(join(shots, 'scenarios-standins.log'), standinLog);
  removeDir(dataDir);
});

// A page of the skill; its console errors and exceptions in page.errors, but for the 4xx
// answers the view expects and shows (a refused upload or scenario).
async function open(t, width = 1280, height = 900) {
  const context = await browser.newContext({ viewport: { width, height } });
  t.after(() => context.close());
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  page.on('console', (m) => {
    const expected = /status of (400|409)/.test(m.text()) && (m.location().url || '').includes('/scenarios');
    if (m.type() === 'error' && !expected) page.errors.push(`${m.text()} (${m.location().url})`);
  });
  await page.goto(`${base}/#/skill/${SKILL}`);
  await showSection(page, 'scenarios');
  await page.locator('#sc-count:not(:empty)').waitFor();
  return page;
}

const shot = (page, name, target) => (target ? page.locator(target) : page)
  .screenshot({ path: join(shots, `scenarios-${name}.png`), ...(target ? {} : { fullPage: false }) });

// Nothing wider than the phone but inside a scrolling table box.
const overflow = (page, width) => page.evaluate((w) => [...document.querySelectorAll('body *')]
  .filter((el) => el.getBoundingClientRect().right > w + 1 && !el.closest('.table-wrap, dialog:not([open])'))
  .map((el) => `${el.tagName}#${el.id}.${el.className}`), width);

test('scenarios, runs and training history', { timeout: 280000 }, async (t) => {
  await t.test('upload refused by line, then saved; add with the server\'s error by its field; edit; delete', async (t) => {
    const page = await open(t);
    assert.match(await page.locator('#sc-count').textContent(), /No scenarios yet/);
    const bad = join(dataDir, 'bad.jsonl');
    writeFileSync(bad, `${JSON.stringify(SCENARIOS[0])}\n{"id": oops\n${JSON.stringify({ id: 'bare', messages: [{ role: 'user', content: 'Hi' }] })}\n`);
    await page.setInputFiles('#sc-file', bad);
    await page.locator('#sc-upload').click();
    await page.locator('#sc-upload-errors li', { hasText: 'line 3: checks or rubric: a scenario needs one' }).waitFor();
    assert.match(await page.locator('#sc-upload-errors').textContent(), /2 bad line\(s\).*line 2: not valid JSON/);
    await shot(page, 'upload-errors', '#scenarios');
    const good = join(dataDir, 'good.jsonl');
    writeFileSync(good, jsonl(SCENARIOS));
    await page.setInputFiles('#sc-file', good);
    await page.locator('#sc-upload').click();
    await page.locator('#sc-count', { hasText: '3 scenarios' }).waitFor();
    assert.equal(await page.locator('#sc-upload-errors li').count(), 0);
    assert.equal(await page.locator('[data-scenario="phone"] .chip').textContent(), `says all of: ${PHONE}`);
    assert.equal(await page.locator('[data-scenario="quiet"] .question').textContent(), 'Just browsing, thanks.');
    assert.match(await page.locator('[data-scenario="kind"] .rubric').textContent(), /Gives the number to call/);

    // Add: the last turn is not the customer's, then a bad pattern: each error by its field.
    await page.locator('#sc-add').click();
    await page.locator('#scenario-dialog[open]').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'sc-id');
    await page.fill('#sc-id', 'hours');
    await page.locator('#sc-turns textarea').fill('When are you open?');
    await page.locator('#sc-add-turn').click();
    await page.getByLabel('Turn 2: what is said').fill('We open at eight.');
    await page.fill('#sc-regex', '([0-9]');
    await page.fill('#sc-max_words', '60');
    await page.locator('#sc-save').click();
    await page.locator('#sc-turns-error', { hasText: 'the last turn must be the user\'s' }).waitFor();
    await page.getByRole('button', { name: 'Remove turn 2' }).click();
    await page.locator('#sc-save').click();
    await page.locator('#sc-regex-error', { hasText: 'not a valid regular expression' }).waitFor();
    assert.equal(await page.locator('#sc-turns-error').textContent(), '', 'the fixed error is gone');
    assert.deepEqual(await accessibilityProblems(page), []);
    await shot(page, 'form-error', '#scenario-dialog');
    await page.fill('#sc-regex', '[0-9]');
    await page.locator('#sc-save').click();
    await page.locator('#scenario-dialog:not([open])').waitFor({ state: 'attached' });
    await page.locator('#sc-count', { hasText: '4 scenarios' }).waitFor();
    assert.deepEqual(await page.locator('[data-scenario="hours"] .chip').allTextContents(), ['matches /[0-9]/', 'at most 60 words']);

    // Edit: the id is fixed, the form holds the scenario; a changed check is saved.
    await page.getByRole('button', { name: 'Edit hours' }).click();
    assert.equal(await page.locator('#sc-id').inputValue(), 'hours');
    assert.equal(await page.locator('#sc-id').getAttribute('readonly'), '');
    assert.equal(await page.locator('#sc-max_words').inputValue(), '60');
    await page.fill('#sc-max_words', '40');
    await page.selectOption('#sc-ends_with_question', 'false');
    await page.locator('#sc-save').click();
    await page.locator('[data-scenario="hours"] .chip', { hasText: 'at most 40 words' }).waitFor();
    await page.locator('[data-scenario="hours"] .chip', { hasText: 'does not end with a question' }).waitFor();
    const saved = (await call('GET', `/api/skills/${SKILL}/scenarios`)).scenarios.find((s) => s.id === 'hours');
    assert.deepEqual(saved.checks, { regex: '[0-9]', max_words: 40, ends_with_question: false });
    await shot(page, 'list', '#scenarios');

    page.once('dialog', (d) => d.accept());
    await page.getByRole('button', { name: 'Delete hours' }).click();
    await page.locator('#sc-count', { hasText: '3 scenarios' }).waitFor();
    assert.equal((await call('GET', `/api/skills/${SKILL}/scenarios`)).scenarios.length, 3);
    assert.deepEqual(await accessibilityProblems(page), []);
    assert.deepEqual(page.errors, []);
  });

  await t.test('suggest: live, Groq\'s fallback and the drops shown; a draft kept, one edited, one dropped', async (t) => {
    const page = await open(t);
    await page.fill('#sug-count', '3');
    await page.locator('#sug-start').click();
    await page.locator('#sug-state[data-state="running"]').waitFor();
    assert.equal(await page.locator('#sug-start').isDisabled(), true);
    await page.locator('#sug-state[data-state="succeeded"]').waitFor({ timeout: 20000 });
    assert.equal(await page.locator('#sug-state').textContent(), '3 drafts \u00b7 written by anthropic: keep, edit or drop each.');
    assert.match(await page.locator('#sug-fallbacks li[data-provider="groq"]').textContent(), /groq skipped: rate_limited: .*HTTP 429/);
    const dropped = await page.locator('#sug-dropped li').allTextContents();
    assert.ok(dropped.includes('Dropped 1: repeats a question'), dropped.join(', '));
    assert.ok(dropped.includes('Dropped 1: not a scenario: checks or rubric'), dropped.join(', '));
    assert.deepEqual(await page.locator('#sug-drafts > li').evaluateAll((ls) => ls.map((l) => l.dataset.scenario)),
      ['weekend-hours', 'quote-by-phone', 'angry-caller']);
    await shot(page, 'suggested', '#scenarios');
    assert.deepEqual(await accessibilityProblems(page), []);

    await page.getByRole('button', { name: 'Keep weekend-hours' }).click();
    await page.locator('#sc-list [data-scenario="weekend-hours"]').waitFor();
    await page.getByRole('button', { name: 'Edit quote-by-phone' }).click();
    assert.equal(await page.locator('#sc-id').inputValue(), 'quote-by-phone');
    assert.equal(await page.locator('#sc-max_words').inputValue(), '80');
    await page.fill('#sc-max_words', '50');
    await page.locator('#sc-save').click();
    await page.locator('#sc-list [data-scenario="quote-by-phone"] .chip', { hasText: 'at most 50 words' }).waitFor();
    await page.getByRole('button', { name: 'Drop angry-caller' }).click();
    assert.equal(await page.locator('#sug-drafts > li').count(), 0);
    // After a reload the task's drafts are back from the server, but not those kept or dropped.
    await page.reload();
    await page.locator('#sug-state[data-state="succeeded"]').waitFor();
    await page.locator('#sc-list [data-scenario="quote-by-phone"]').waitFor();
    assert.equal(await page.locator('#sug-drafts > li').count(), 0, 'the dropped draft stays dropped');
    const ids = (await call('GET', `/api/skills/${SKILL}/scenarios`)).scenarios.map((s) => s.id);
    assert.deepEqual(ids, ['phone', 'quiet', 'kind', 'weekend-hours', 'quote-by-phone']);
    // The runs below compare on the three scenarios they were written for.
    await call('PUT', `/api/skills/${SKILL}/scenarios`, jsonl(SCENARIOS));
    assert.deepEqual(page.errors, []);
  });

  await t.test('runs of the base and the adapter, live to the end; results; the comparison marks what changed', async (t) => {
    const page = await open(t);
    await page.locator(`#run-target option[value="${VERSION}"]`).waitFor({ state: 'attached' });
    await page.evaluate(() => {
      window.progress = [];
      new MutationObserver(() => {
        for (const row of document.querySelectorAll('#run-rows tr[data-run]')) {
          window.progress.push(`${row.dataset.run} ${row.querySelector('.run-progress').textContent.trim()}`);
        }
      }).observe(document.querySelector('#run-rows'), { subtree: true, childList: true, characterData: true, attributes: true });
    });
    const runs = [];
    for (const target of ['base', VERSION]) {
      await page.selectOption('#run-target', target);
      const started = page.waitForResponse((r) => r.url().endsWith('/scenario-runs') && r.request().method() === 'POST');
      await page.locator('#run-start').click();
      const { run } = await (await started).json();
      runs.push(run.id);
      await page.locator(`#run-rows tr[data-run="${run.id}"][data-state="succeeded"]`).waitFor({ timeout: RUN_MS });
      await page.locator(`#run-detail [data-run="${run.id}"] .result`).nth(2).waitFor();
    }
    const seen = await page.evaluate(() => window.progress);
    for (const id of runs) {
      const states = seen.filter((s) => s.startsWith(`${id} `));
      assert.ok(states.some((s) => / running [12] of 3$/.test(s)), `live progress of ${id}: ${[...new Set(states)].join(' | ')}`);
      assert.ok(states.at(-1).endsWith(' succeeded 3 of 3'), states.at(-1));
    }
    assert.equal(await page.locator('#runs').getAttribute('data-feed'), null, 'the stream closes once no run is live');
    // The adapter's results: each check with its detail, the judge's score and reason, the latency.
    const phone = page.locator('#run-detail .result[data-scenario="phone"]');
    assert.equal(await phone.getAttribute('data-status'), 'pass');
    assert.match(await phone.locator('.answer').textContent(), new RegExp(PHONE));
    assert.equal(await phone.locator('.verdict').textContent(), `\u2713passed: says all of: ${PHONE} \u2014 has all`);
    assert.match(await phone.locator('.result-head').textContent(), /answered in \d+\.\d s/);
    const kind = page.locator('#run-detail .result[data-scenario="kind"]');
    assert.match(await kind.locator('.judge').textContent(), /^Judge: 5\/5 Gives the number to call\. \(anthropic, claude-3-5-haiku-20241022, prompt v1\)$/);
    assert.match(await page.locator('#run-detail .hint').first().textContent(), /^2 of 3 passed \u00b7 3 answered \u00b7 succeeded \u00b7 started .* \u00b7 judge on \u00b7 model tiny$/);
    assert.match(await page.locator(`#run-rows tr[data-run="${runs[1]}"]`).textContent(), /version 20261207-101500.*succeeded.*2\/3 \(67%\)/);
    await shot(page, 'run-results', '#runs');
    assert.deepEqual(await accessibilityProblems(page), []);

    // A base run's results, the judge's low score a failure.
    await page.getByRole('button', { name: `Results of run ${runs[0]}` }).click();
    const baseKind = page.locator(`#run-detail [data-run="${runs[0]}"] .result[data-scenario="kind"]`);
    await baseKind.waitFor();
    assert.equal(await baseKind.getAttribute('data-status'), 'fail');
    assert.match(await baseKind.locator('.judge').textContent(), /^Judge: 2\/5 Never gives a number/);
    assert.match(await page.locator(`#run-detail .result[data-scenario="phone"] .verdict`).textContent(), /failed: .* missing '555-0100'/);

    // Compare: tick the two runs.
    assert.equal(await page.locator('#run-compare').isDisabled(), true);
    for (const id of runs) await page.getByLabel(`Compare run ${id}`).check();
    await page.locator('#run-compare').click();
    await page.locator('#run-detail .compare').waitFor();
    assert.equal(await page.locator('#compare-h').textContent(), `Compare: base model \u2192 version ${VERSION}`);
    const changes = Object.fromEntries(await page.locator('.cmp-row').evaluateAll((rows) => rows.map((r) => [r.dataset.scenario, r.dataset.change])));
    assert.deepEqual(changes, { phone: 'better', quiet: 'worse', kind: 'better' }, await page.locator('.cmp-rows').innerText());
    assert.equal(await page.locator('.cmp-row[data-scenario="quiet"] .change').textContent(), 'pass \u2192 fail');
    assert.equal(await page.locator('.cmp-row[data-scenario="phone"] .change').textContent(), 'fail \u2192 pass');
    assert.equal(await page.locator('.cmp-row[data-change="worse"]').evaluate((el) => getComputedStyle(el).borderLeftColor), 'rgb(220, 38, 38)', 'red');
    assert.equal(await page.locator('.cmp-row[data-change="better"]').first().evaluate((el) => getComputedStyle(el).borderLeftColor), 'rgb(5, 150, 105)', 'green');
    assert.match(await page.locator('.cmp-row[data-scenario="quiet"] .cmp-side').nth(1).textContent(), /failed: never says: call us \u2014 says 'call us'/);
    await shot(page, 'compare', '#runs');
    assert.deepEqual(await accessibilityProblems(page), []);
    assert.deepEqual(page.errors, []);
  });

  await t.test('a queued run cancelled from its row', async (t) => {
    const started = [];
    for (let i = 0; i < 6; i++) started.push((await call('POST', `/api/skills/${SKILL}/scenario-runs`, { target: 'base', judge: false })).run.id);
    const page = await open(t);
    const last = started.at(-1);
    const row = page.locator(`#run-rows tr[data-run="${last}"]`);
    await page.locator(`#run-rows tr[data-run="${last}"][data-state="queued"]`).waitFor();
    await page.getByRole('button', { name: `Cancel run ${last}` }).click();
    await page.locator(`#run-rows tr[data-run="${last}"][data-state="cancelled"]`).waitFor();
    assert.equal(await row.getByRole('button', { name: /^Cancel/ }).count(), 0, 'an ended run has no Cancel');
    const run = (await call('GET', `/api/skills/${SKILL}/scenario-runs/${last}`)).run;
    assert.deepEqual([run.state, run.answered], ['cancelled', 0]);
    assert.deepEqual(page.errors, []);
    // The others are not this test's: cancelled through the API, those that ended already left be.
    for (const id of started) await fetch(`${base}/api/skills/${SKILL}/scenario-runs/${id}/cancel`, { method: 'POST' });
  });

  await t.test('training history: two jobs, their losses overlaid, only the settings that differ', async (t) => {
    const small = { max_steps: 30, max_len: 64, micro_batch: 1, eval: { fraction: 0.1, interval: 10 }, samples: { interval: 0 } };
    // The second picks its weights by the skill's scenarios: its row says which step it published.
    const specs = [{ ...small, lr: 0.005 }, { ...small, lr: 0.002, lora: { r: 8 }, select: 'scenarios' }];
    const jobs = [];
    for (const spec of specs) {
      const { job } = await call('POST', `/api/train-skill/${SKILL}`, spec);
      jobs.push(job.id);
      for (let state = job.state; state === 'queued' || state === 'running'; await pause(200)) {
        state = (await call('GET', `/api/jobs/${job.id}`)).job.state;
        assert.notEqual(state, 'failed');
      }
    }
    // Each job's adapter is run on the scenarios after it: its pass rate shows in its row.
    const versions = await Promise.all(jobs.map(async (id) => (await call('GET', `/api/jobs/${id}`)).job.adapter.split('/').pop()));
    for (const until = Date.now() + RUN_MS; ;) {
      const { runs } = await call('GET', `/api/skills/${SKILL}/scenario-runs`);
      if (versions.every((v) => runs.some((r) => r.target.version === v && r.state === 'succeeded'))) break;
      assert.ok(Date.now() < until, 'the jobs\' adapters were run');
      await pause(300);
    }
    const page = await open(t);
    for (const id of jobs) await page.locator(`#history-rows tr[data-job="${id}"]`).waitFor();
    const row = await page.locator(`#history-rows tr[data-job="${jobs[1]}"] td`).allTextContents();
    assert.deepEqual([row[2], row[3], row[8], ...row.slice(10)], ['succeeded', '22', 'tiny', '0.002', '8']);
    assert.match(row[9], /^30published: step (10|20|30) \(\d\/2 pass\)$/, 'the steps, and the step published');
    assert.match(row.slice(4, 7).join(' '), /^\d+(\.\d)? s \d\.\d{3} \d\.\d{3}$/, 'time, final and held-out loss');
    assert.match(row[7], /^\d\/3$/, 'the adapter\'s pass rate');
    assert.equal(await page.locator('#history-compare').isHidden(), true);
    for (const id of jobs) await page.locator(`#history-rows tr[data-job="${id}"] input`).check();
    await page.locator('#history-diff table').waitFor();
    const datasets = await page.evaluate(() => window.Chart.getChart(document.querySelector('#history-chart')).data.datasets
      .map((d) => [d.label.replace(/^.* (loss|held-out)$/, '$1'), d.data.length]));
    assert.deepEqual(datasets.map(([kind]) => kind), ['loss', 'held-out', 'loss', 'held-out']);
    assert.ok(datasets.every(([kind, n]) => n >= (kind === 'loss' ? 30 : 3)), JSON.stringify(datasets));
    const settings = await page.locator('#history-diff tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.setting));
    assert.deepEqual(settings, ['lora.r', 'lr', 'select'], 'only what differs');
    assert.equal(await page.locator('#history-diff tr[data-setting="lr"] th').textContent(), 'Learning rate lr');
    assert.deepEqual(await page.locator('#history-diff tr[data-setting="lr"] td').allTextContents(), ['0.002', '0.005']);
    await shot(page, 'history', '#history');
    assert.deepEqual(await accessibilityProblems(page), []);
    assert.deepEqual(page.errors, []);
    trainedJobs = jobs;
  });

  await t.test('a training job\'s checkpoint picked and run', async (t) => {
    const page = await open(t);
    const value = `ckpt:${trainedJobs[0]}:30`;
    await page.locator(`#run-target optgroup[label="Checkpoints of training jobs"] option[value="${value}"]`).waitFor({ state: 'attached' });
    await page.selectOption('#run-target', value);
    const started = page.waitForResponse((r) => r.url().endsWith('/scenario-runs') && r.request().method() === 'POST');
    await page.locator('#run-start').click();
    const { run } = await (await started).json();
    assert.deepEqual(run.target, { kind: 'checkpoint', job: trainedJobs[0], step: 30 });
    await page.locator(`#run-rows tr[data-run="${run.id}"][data-state="succeeded"]`).waitFor({ timeout: RUN_MS });
    assert.match(await page.locator(`#run-rows tr[data-run="${run.id}"]`).textContent(), new RegExp(`^checkpoint of job ${trainedJobs[0]} at step 30`));
    await page.locator(`#run-detail [data-run="${run.id}"] .result`).nth(2).waitFor();
    await shot(page, 'checkpoint-run', '#runs');
    assert.deepEqual(page.errors, []);
  });

  await t.test('phone width: each view fits, every control named', async (t) => {
    const page = await open(t, 390, 844);
    await page.locator('#run-rows tr[data-run]').first().waitFor();
    for (const box of await page.locator('#run-rows input[type="checkbox"]').all()) {
      if ((await page.locator('#run-rows input:checked').count()) < 2) await box.check();
    }
    await page.locator('#run-compare').click();
    await page.locator('#run-detail .compare').waitFor();
    await showSection(page, 'training');
    for (const box of (await page.locator('#history-rows input').all()).slice(0, 2)) await box.check();
    await page.locator('#history-diff table').waitFor();
    for (const [section, views] of [['training', [['phone-history', '#history']]],
      ['scenarios', [['phone-list', '#scenarios'], ['phone-runs', '#runs']]]]) {
      await showSection(page, section);
      assert.deepEqual(await overflow(page, 390), [], `${section}: nothing wider than the phone`);
      assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'no horizontal scrolling');
      assert.deepEqual(await accessibilityProblems(page), []);
      for (const [name, sel] of views) await shot(page, name, sel);
    }
    await page.getByRole('button', { name: 'Edit phone' }).click();
    await page.locator('#scenario-dialog[open]').waitFor();
    await shot(page, 'phone-form');
    assert.deepEqual(page.errors, []);
  });
});
