// The training view and the preview as a new user meets them, at desktop (1366x768) and phone
// (390x844) width, against a real `fastbrain serve` training with the real worker on the
// bundled model (share/models/tiny), runs of a few steps: the state before any run, field
// errors and warnings at their fields, the log tail (steps, evaluations, checkpoints, saving,
// cancel, resume), one smoothed training loss, a poor result said plainly, and a preview that
// belongs to the skill on screen. Screenshots of each state go to FB_WEB_ARTIFACTS
// (default build/test-output/web), named training-*.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { shots, requireParts, accessibilityProblems, apiCall, pause, startDashboard } from './harness.mjs';

requireParts('training');

const ex = (user, answer) => JSON.stringify({ messages: [{ role: 'user', content: user }, { role: 'assistant', content: answer }] });
const DATA = Array.from({ length: 40 }, (_, i) => ex(`Is slot ${i} free?`, `Yes, slot ${(i % 7) + 1} is free.`)).join('\n') + '\n';
// Short runs that still evaluate, checkpoint and sample: a few steps, each a tiny micro-batch.
const RUN = { micro_batch: 1, max_len: 128, eval: { interval: 3 }, checkpoint_interval: 3,
  samples: { prompts: ['Is slot 3 free?'], interval: 3, max_tokens: 8 } };
const DESKTOP = [1366, 768];
const PHONE = [390, 844];
const RUN_MS = 90000;
const PLUMBING = 'plumbing-receptionist';
const ELECTRICIAN = 'electrician-assistant';

let dash, base, browser;

const call = (method, path, body) => apiCall(base, method, path, body);

before(async () => {
  dash = await startDashboard('training');
  ({ base, browser } = dash);
  for (const id of [PLUMBING, ELECTRICIAN]) {
    const { skill } = await call('GET', `/api/skills/${id}`);
    const { id: _, examples: __, ...meta } = skill;
    await call('PUT', `/api/skills/${id}`, { ...meta, defaults: RUN });
    await call('PUT', `/api/skills/${id}/data`, DATA);
    await call('PUT', `/api/skills/${id}/scenarios`, []);
  }
  await call('POST', '/api/skills', { id: 'fresh', name: 'Fresh skill' });
});

after(() => dash && dash.close());

// A page of the dashboard at [width, height], closed with the subtest; page.errors collects
// console errors and uncaught exceptions (a 400 the form shows at its fields, and the estimate's
// for the same spec, are expected).
async function open(t, path, [width, height] = DESKTOP) {
  const context = await browser.newContext({ viewport: { width, height } });
  t.after(() => context.close());
  const page = await context.newPage();
  page.errors = [];
  page.on('console', (m) => {
    const refused = m.text().includes('status of 400') && /\/api\/(train-skill|training\/estimate)\//.test(m.location().url || '');
    if (m.type() === 'error' && !refused) {
      page.errors.push(m.text());
    }
  });
  page.on('pageerror', (e) => page.errors.push(e.message));
  await page.goto(base + path);
  await page.locator('#start').waitFor();
  return page;
}

const text = (page, sel) => page.locator(sel).textContent();
// The whole page, and the part under test on its own (readable at a glance).
async function shot(page, name, part = '#training') {
  await page.screenshot({ path: join(shots, `training-${name}.png`), fullPage: true });
  await page.locator(part).screenshot({ path: join(shots, `training-${name}-part.png`) });
}
// Nothing of the page is wider than its viewport (tables scroll in their own box).
const overflow = (page) => page.evaluate(() => [...document.querySelectorAll('body *')]
  .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5 && !el.closest('.table-wrap'))
  .map((el) => `${el.tagName}#${el.id}.${el.className}`));

// Record, from now on, the texts of the view's changing parts at every change.
function record(page) {
  return page.evaluate(() => {
    window.seen = [];
    const take = () => window.seen.push({
      button: document.querySelector('#start').textContent,
      bar: document.querySelector('.bar-label').textContent,
      eta: document.querySelector('.stat:nth-child(3) .stat-value').textContent,
      log: document.querySelector('#log').textContent,
    });
    new MutationObserver(take).observe(document.querySelector('#training'), { subtree: true, childList: true, characterData: true });
  });
}

async function finishedJob(skill) {
  for (const until = Date.now() + RUN_MS; Date.now() < until; await pause(100)) {
    const r = await fetch(`${base}/api/training/status/${skill}`);
    const st = r.ok ? await r.json() : null;
    if (st && !['queued', 'running'].includes(st.state)) return st;
  }
  throw new Error(`${skill}: the run did not end`);
}

test('training view and preview', { timeout: 240000 }, async (t) => {
  await t.test('before any run: what will appear and the one action, at both sizes', async (t) => {
    for (const [name, size] of [['desktop', DESKTOP], ['phone', PHONE]]) {
      const page = await open(t, `/#/skill/${PLUMBING}`, size);
      await page.locator('#train-empty', { hasText: 'press Start training' }).waitFor();
      assert.equal(await page.locator('#live').isHidden(), true, 'no empty cards, 0-1 chart or black log box');
      assert.doesNotMatch(await text(page, '#training'), /0 \/ 1/);
      assert.match(await text(page, '#train-empty'), /training loss.*chart.*answers.*log/s);
      assert.equal(await page.locator('#preview-none').isVisible(), true, 'the preview says there is no adapter yet');
      assert.equal(await page.locator('#preview-go').isHidden(), true);
      await page.locator('#estimate[data-state="ok"]').waitFor({ timeout: 60000 });
      assert.deepEqual(await overflow(page), []);
      assert.deepEqual(await accessibilityProblems(page), []);
      await shot(page, `01-empty-${name}`);
      assert.deepEqual(page.errors, []);
    }
    const page = await open(t, '/#/skill/fresh');
    await page.locator('#train-empty', { hasText: 'no examples yet: add some under Data' }).waitFor();
  });

  await t.test('field errors at their fields; warnings that do not refuse', async (t) => {
    for (const [name, size] of [['desktop', DESKTOP], ['phone', PHONE]]) {
      const page = await open(t, `/#/skill/${PLUMBING}`, size);
      await page.waitForFunction(() => document.querySelector('input[name="lr"]').value !== '');
      await page.fill('input[name="epochs"]', '0');
      await page.locator('#start').click();
      await page.locator('#note-epochs[data-kind="error"]', { hasText: 'must be an integer 1..10000' }).waitFor();
      assert.equal(await page.getAttribute('input[name="epochs"]', 'aria-invalid'), 'true');
      assert.equal(await page.evaluate(() => document.activeElement.name), 'epochs', 'focus on the field to fix');
      assert.match(await text(page, '#toast'), /fields marked below/);
      assert.equal((await call('GET', `/api/jobs?skill=${PLUMBING}`)).total, 0, 'nothing started');
      await page.fill('input[name="lr"]', '0.5');
      await page.locator('#note-lr[data-kind="warning"]', { hasText: 'Far above the usual' }).waitFor();
      await page.fill('input[name="max_len"]', '5000');
      await page.locator('#note-max_len[data-kind="warning"]', { hasText: 'context of 1024 tokens' }).waitFor();
      assert.deepEqual(await overflow(page), []);
      await shot(page, `02-field-notes-${name}`);
      await page.fill('input[name="epochs"]', '2');
      await page.locator('#note-epochs').waitFor({ state: 'hidden' });
      assert.equal(await page.getAttribute('input[name="epochs"]', 'aria-invalid'), null, 'a new value clears the error');
      await page.fill('input[name="lr"]', '0.0002');
      await page.locator('#note-lr').waitFor({ state: 'hidden' });
      assert.equal(await page.locator('#start').isEnabled(), true, 'a warning does not refuse');
      assert.deepEqual(page.errors, []);
    }
  });

  await t.test('a run: the log tail, saving, one training loss, a poor result said plainly', async (t) => {
    const page = await open(t, `/#/skill/${PLUMBING}`);
    await page.waitForFunction(() => document.querySelector('input[name="lr"]').value !== '');
    await page.fill('input[name="max_steps"]', '6');
    await record(page);
    await page.locator('#start').click();
    await page.locator('#training[data-finished="1"]').waitFor({ timeout: RUN_MS });
    const seen = await page.evaluate(() => window.seen);
    assert.ok(seen.some((v) => v.bar === 'Saving adapter…' && v.button === 'Saving adapter…'),
      'the bar and the button say the adapter is being saved');
    assert.ok(seen.filter((v) => v.eta !== '—').every((v) => /^(\d+ min )?\d+ s$/.test(v.eta)), 'time left as "1 min 20 s"');
    const log = await text(page, '#log');
    for (const re of [/^Started: 36 examples \(4 held out\), 6 steps\.$/m, /^Held-out loss before training \(the base model's\): \d\.\d{3}\.$/m,
      /^Step 3: held-out loss \d\.\d{3}\.$/m, /^Step 3: checkpoint saved/m, /^All steps done: saving the adapter…$/m,
      /^Adapter \S+ saved\.$/m, /^Finished\.$/m]) assert.match(log, re);
    assert.ok(seen.some((v) => /^Step \d of 6: training loss \d\.\d{3}, \d+ tokens\/s\.$/m.test(v.log)), 'steps as they happen');
    assert.doesNotMatch(log, /activations for|INFO/, 'not the worker\'s memory diagnostics');
    // One training loss: the card, the adapters table and the summary's smoothed loss agree.
    const st = await finishedJob(PLUMBING);
    const smoothed = st.summary.final_loss_smoothed.toFixed(3);
    assert.equal(await text(page, '.stat:nth-child(1) .stat-label'), 'Training loss (smoothed)');
    assert.equal(await text(page, '.stat:nth-child(1) .stat-value'), smoothed);
    const chartEnd = await page.evaluate(() => window.Chart.getChart(document.querySelector('#loss-chart')).data.datasets
      .map((d) => [d.label, d.data.at(-1) && d.data.at(-1).y.toFixed(3)]));
    assert.deepEqual(chartEnd[0], ['Training loss (smoothed)', smoothed], 'the chart\'s smoothed line ends at the card\'s number');
    assert.equal(await text(page, '.bar-label'), '100%', 'saved: no longer "Saving adapter…"');
    await page.locator(`tr[data-adapter^="${PLUMBING}/"]`).waitFor();
    assert.equal(await text(page, `tr[data-adapter^="${PLUMBING}/"] td:nth-child(4)`), smoothed);
    // Six steps leave a poor adapter: finished, said plainly with what helps, no confetti.
    assert.equal(st.badge, 'needs work');
    await page.locator('#train-result[data-verdict="poor"]', { hasText: 'needs work' }).waitFor();
    assert.match(await text(page, '#train-result'), /more examples \(it trained on 36\), more epochs, or a larger base model/);
    assert.equal(await page.getAttribute('#training', 'data-confetti'), null);
    await shot(page, '03-done-desktop');
    // A reload (or a phone) shows the same: the result and the log tail replayed.
    const phone = await open(t, `/#/skill/${PLUMBING}`, PHONE);
    await phone.locator('#train-result[data-verdict="poor"]').waitFor();
    await phone.locator('#log', { hasText: 'checkpoint saved' }).waitFor();
    assert.match(await text(phone, '#log'), /^Step 6 of 6: training loss \d\.\d{3}/m);
    assert.equal(await text(phone, '.stat:nth-child(1) .stat-value'), smoothed);
    assert.deepEqual(await overflow(phone), []);
    assert.deepEqual(await accessibilityProblems(phone), []);
    await shot(phone, '03-done-phone');
    assert.deepEqual([...page.errors, ...phone.errors], []);
  });

  await t.test('cancel and resume show in the log tail', async (t) => {
    const page = await open(t, `/#/skill/${ELECTRICIAN}`);
    await page.waitForFunction(() => document.querySelector('input[name="lr"]').value !== '');
    await page.fill('input[name="max_steps"]', '12');
    await page.locator('#start').click();
    // The worker waits (SIGSTOP) from its first step until the cancel is sent, however fast it is.
    const { jobs: [{ id: job }] } = await call('GET', `/api/jobs?skill=${ELECTRICIAN}`);
    let pid = 0;
    for (const until = Date.now() + RUN_MS; !pid && Date.now() < until; await pause(10)) {
      const { job: j } = await call('GET', `/api/jobs/${job}`);
      if (j.pid > 0 && j.progress && j.progress.step >= 1) pid = j.pid;
    }
    process.kill(pid, 'SIGSTOP');
    t.after(() => { try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ } });
    await page.locator('#cancel').click();
    process.kill(pid, 'SIGCONT');
    await page.locator('#resume').waitFor({ timeout: 30000 });
    await page.locator('#log', { hasText: /Cancelled.*Resume continues from the last checkpoint/ }).waitFor();
    const at = Number([...(await text(page, '#log')).matchAll(/^Step (\d+): checkpoint saved/gm)].at(-1)[1]);
    await shot(page, '04-cancelled-desktop');
    const phone = await open(t, `/#/skill/${ELECTRICIAN}`, PHONE);
    await phone.locator('#log', { hasText: 'Resume continues from the last checkpoint' }).waitFor();
    assert.equal(await text(phone, '.stat:nth-child(3) .stat-value'), '\u2014', 'no time left to a cancelled run');
    assert.deepEqual(await overflow(phone), []);
    await shot(phone, '04-cancelled-phone');
    assert.deepEqual(phone.errors, []);
    await page.locator('#resume').click();
    await page.locator('#log', { hasText: `Resumed from step ${at} of 12.` }).waitFor({ timeout: RUN_MS });
    await page.locator('#training[data-finished="1"]').waitFor({ timeout: RUN_MS });
    assert.deepEqual(page.errors, []);
  });

  await t.test('the preview belongs to the skill on screen and names its adapter', async (t) => {
    // A second, newer plumbing adapter: the preview defaults to the newest.
    await call('POST', `/api/train-skill/${PLUMBING}`, { max_steps: 2 });
    await finishedJob(PLUMBING);
    const { adapters } = await call('GET', '/api/adapters');
    const [newest, older] = adapters.filter((a) => a.skill === PLUMBING).map((a) => a.version);
    const electrician = adapters.find((a) => a.skill === ELECTRICIAN).version;
    assert.ok(newest && older && newest !== older);

    // The electrician's adapter was the last one picked; then the plumbing page.
    const page = await open(t, `/#/skill/${ELECTRICIAN}`);
    await page.locator(`tr[data-adapter="${ELECTRICIAN}/${electrician}"] button`, { hasText: 'Preview' }).click();
    await page.locator('#preview-target', { hasText: `${ELECTRICIAN} / ${electrician}` }).waitFor();
    await page.locator(`[data-skill="${PLUMBING}"]`).first().click();
    await page.locator('#skill-title', { hasText: 'Plumbing' }).waitFor();
    await page.locator('#preview-target', { hasText: `${PLUMBING} / ${newest}` }).waitFor();
    assert.equal(await page.inputValue('#preview-version'), newest);
    assert.equal(await text(page, '#preview-adapter-h'), `With ${PLUMBING} / ${newest}`);
    await page.fill('#preview-prompt', 'Is slot 3 free?');
    const asked = page.waitForRequest((r) => r.url().endsWith('/generate') && r.method() === 'POST');
    const answered = page.waitForResponse((r) => r.url().endsWith('/generate'), { timeout: 60000 });
    await page.locator('#preview-go').click();
    assert.equal(new URL((await asked).url()).pathname, `/api/adapters/${PLUMBING}/${newest}/generate`);
    assert.equal((await answered).status(), 200);
    await page.locator('#preview-go:enabled').waitFor();
    await shot(page, '05-preview-desktop', '#preview-panel');
    // Another version of the same skill, picked: asked, and named.
    await page.selectOption('#preview-version', older);
    await page.locator('#preview-target', { hasText: `${PLUMBING} / ${older}` }).waitFor();
    // A row of another skill: its page, its adapter.
    await page.locator(`tr[data-adapter="${ELECTRICIAN}/${electrician}"] button`, { hasText: 'Preview' }).click();
    await page.locator('#skill-title', { hasText: 'Electrician' }).waitFor();
    await page.locator('#preview-target', { hasText: `${ELECTRICIAN} / ${electrician}` }).waitFor();
    await page.waitForFunction(() => document.activeElement.id === 'preview-prompt');

    const phone = await open(t, `/#/skill/${PLUMBING}`, PHONE);
    await phone.locator('#preview-target', { hasText: `${PLUMBING} / ${newest}` }).waitFor();
    assert.deepEqual(await overflow(phone), []);
    await phone.locator('#preview-panel').scrollIntoViewIfNeeded();
    await shot(phone, '05-preview-phone', '#preview-panel');
    assert.deepEqual([...page.errors, ...phone.errors], []);
  });
});
