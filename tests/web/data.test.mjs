// A skill's data as a new user meets it, in headless Chromium (playwright-core) against a real
// `fastbrain serve` started with no API keys, and the provider stand-ins (tests/web/
// providers.lua) behind Groq's and Anthropic's base URLs. The New skill dialog asks for the
// sample prompts and training defaults; with no examples Start is disabled; a template comes
// down, pasted JSONL goes in and the sidebar's count follows without a reload; the system
// prompt the data carries is offered (in the data view and the Edit dialog) and taken; an
// example is added, refused, edited and deleted in the chat editor; lengths are in the base
// model's tokens. The providers panel says
// why each provider is unusable and how to set keys; the key form saves both keys (the field is
// emptied); a generation then runs and its Cancel stops it. Screenshots of each state at
// desktop (1366x768) and phone (390x844) width go to FB_WEB_ARTIFACTS as data-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { shots, requireParts, launch, accessibilityProblems, stop, showSectionOf, startDashboard, apiCall } from './harness.mjs';

requireParts('data');

const KEYS = { GROQ_API_KEY: 'gsk_data_canary_9c41', ANTHROPIC_API_KEY: 'sk-ant-data-canary-3e07' };
const SKILL = 'bakery';
const SIZES = { desktop: { width: 1366, height: 768 }, phone: { width: 390, height: 844 } };

let dash, standins, base, dataDir, browser;
let standinLog = '';

const call = (method, path, body) => apiCall(base, method, path, body);

before(async () => {
  // No keys in the server's environment: the dashboard is where they come from.
  dash = await startDashboard('data', async (dir) => {
    let seen;
    [standins, seen] = launch(['run', 'tests/web/providers.lua', 'Are you open on Saturdays?', join(dir, 'gate'), '300'], KEYS,
      /stand-ins on (http:\/\/\S+)/, (s) => { standinLog += s; });
    const providers = await seen;
    return { GROQ_API_KEY: '', ANTHROPIC_API_KEY: '', FASTBRAIN_KEYS: '', GROQ_BASE_URL: `${providers}/openai/v1`,
             ANTHROPIC_BASE_URL: providers };
  });
  ({ base, dataDir, browser } = dash);
});

after(async () => {
  await stop(standins);
  writeFileSync(join(shots, 'data-standins.log'), standinLog);
  if (dash) await dash.close();
});

// Screenshots of `what` (a selector) at both sizes, named data-<name>-<size>.png.
async function shoot(page, name, what) {
  for (const [size, viewport] of Object.entries(SIZES)) {
    await page.setViewportSize(viewport);
    await showSectionOf(page, what);
    await page.locator(what).first().scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(shots, `data-${name}-${size}.png`) });
  }
  await page.setViewportSize(SIZES.desktop);
}

const text = (page, sel) => page.locator(sel).first().textContent();

test('a new skill gets its data in the browser: dialog, template, paste, editor, tokens', async () => {
  const page = await browser.newPage({ viewport: SIZES.desktop });
  page.on('dialog', (d) => d.accept());  // the confirm before a delete
  await page.goto(base + '/');
  await page.click('#new-skill');
  const f = page.locator('#skill-form');
  await f.locator('[name=id]').fill(SKILL);
  await f.locator('[name=name]').fill('Bakery');
  await f.locator('[name=description]').fill('Answers a bakery\u2019s customers.');
  await f.locator('[name=prompts]').fill('Do you have gluten-free bread?\n\nWhen do you open?');
  await f.locator('[name=epochs]').fill('4');
  await f.locator('[name=rank]').fill('8');
  await shoot(page, 'new-skill', '#skill-form');
  await f.locator('button[type=submit]').click();
  await page.waitForSelector(`#skill-list [data-skill="${SKILL}"][aria-current="true"]`);
  const { skill } = await call('GET', `/api/skills/${SKILL}`);
  assert.deepEqual(skill.sample_prompts, ['Do you have gluten-free bread?', 'When do you open?']);
  assert.deepEqual(skill.defaults, { epochs: 4, lora: { r: 8 } });
  assert.equal(skill.system, undefined);

  // No examples: Start is disabled and says why.
  await page.waitForFunction(() => document.querySelector('#start')?.disabled
    && /No examples yet/.test(document.querySelector('#few-examples').textContent));
  await shoot(page, 'empty', '#few-examples');

  // The template comes down as JSONL; pasted, it is two examples, and the sidebar counts them.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#data-template')]);
  assert.equal(download.suggestedFilename(), 'template.jsonl');
  const template = readFileSync(await download.path(), 'utf8');
  const lines = template.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  await page.click('#data summary');
  await page.fill('#paste-jsonl', template);
  await page.click('#paste-append');
  await page.waitForFunction((id) => /2 examples/.test(document.querySelector(`[data-skill="${id}"]`).textContent), SKILL);
  await page.waitForFunction(() => document.querySelector('#paste-jsonl').value === '');
  await page.waitForFunction(() => !document.querySelector('#start').disabled
    && /Only 2 examples: 20 or more/.test(document.querySelector('#few-examples').textContent));

  // The data's system prompt is offered to the skill that has none, and taken.
  await page.waitForSelector('#use-system');
  assert.match(await text(page, '#system-offer'), /Example Plumbing/);
  await shoot(page, 'system-offer', '#system-offer');
  await page.click('#use-system');
  await page.waitForFunction(() => !document.querySelector('#system-offer').children.length);
  assert.match((await call('GET', `/api/skills/${SKILL}`)).skill.system, /^You are the receptionist of Example Plumbing/);
  await page.click('#edit-skill');
  await page.waitForFunction(() => /Example Plumbing/.test(document.querySelector('#skill-system').value));
  assert.equal(await page.inputValue('#skill-form [name=epochs]'), '4');
  await page.click('#skill-cancel');
  // The Edit dialog offers it too, to a skill without one.
  await call('PATCH', `/api/skills/${SKILL}`, { system: null });
  await page.click('#edit-skill');
  await page.click('#use-found-system');
  assert.match(await page.inputValue('#skill-system'), /^You are the receptionist of Example Plumbing/);
  await shoot(page, 'dialog-system', '#skill-system');
  await page.click('#skill-form button[type=submit]');
  await page.waitForFunction(() => !document.querySelector('#skill-dialog').open);
  assert.match((await call('GET', `/api/skills/${SKILL}`)).skill.system, /^You are the receptionist of Example Plumbing/);

  // Lengths in the base model's tokens, cut where a run cuts them; the axis says so.
  await page.waitForFunction(() => /tokens of tiny/.test(document.querySelector('#counted').textContent));
  assert.match(await text(page, '[data-stat=truncated] dt'), /^Cut at \d+ tokens$/);
  await shoot(page, 'stats', '#counted');
  const stats = (await call('GET', `/api/skills/${SKILL}/stats`));
  assert.equal(stats.tokenizer, 'tiny');
  assert.equal(await text(page, '[data-stat=tokens] dd'), String(stats.stats.tokens));

  // The chat editor: a refused example says why; a good one is added, then edited and deleted.
  await page.click('#add-example');
  await page.locator('#example-turns textarea').nth(0).fill('Is the shop open on Sunday?');
  await page.locator('#example-turns .turn').nth(1).getByRole('button', { name: 'Remove this turn' }).click();
  await page.click('#example-save');
  await page.waitForFunction(() => /assistant/.test(document.querySelector('#example-error').textContent));
  await page.click('#add-turn');
  await page.locator('#example-turns textarea').nth(1).fill('Yes, from 8 to noon.');
  await shoot(page, 'editor', '#example-dialog');
  await page.click('#example-save');
  await page.waitForFunction((id) => /3 examples/.test(document.querySelector(`[data-skill="${id}"]`).textContent), SKILL);
  assert.match(await text(page, '#examples tr[data-line="3"]'), /Sunday.*8 to noon/);

  await page.click('#examples tr[data-line="1"] button:text("Edit")');
  const turns = page.locator('#example-turns .turn');
  assert.equal(await turns.count(), 3);
  assert.equal(await turns.nth(0).locator('select').inputValue(), 'system');
  await turns.nth(2).locator('textarea').fill('Yes, every Saturday from 9.');
  await page.click('#example-save');
  await page.waitForFunction(() => /every Saturday/.test(document.querySelector('#examples tr[data-line="1"]').textContent));
  let data = await call('GET', `/api/skills/${SKILL}/data`);
  assert.equal(data.examples[0].example.messages[2].content, 'Yes, every Saturday from 9.');

  await page.click('#examples tr[data-line="2"] button:text("Delete")');
  await page.waitForFunction((id) => /2 examples/.test(document.querySelector(`[data-skill="${id}"]`).textContent), SKILL);
  data = await call('GET', `/api/skills/${SKILL}/data`);
  assert.deepEqual(data.examples.map((e) => e.example.messages.at(-1).content), ['Yes, every Saturday from 9.', 'Yes, from 8 to noon.']);
  await shoot(page, 'examples', '#add-example');
  assert.deepEqual(await accessibilityProblems(page), []);
  await page.close();
});

test('providers say why they are unusable; keys from the form; a generation is cancelled', async () => {
  const page = await browser.newPage({ viewport: SIZES.desktop });
  await page.goto(`${base}/#/skill/${SKILL}`);
  const groq = page.locator('#provider-rows tr[data-provider="groq"]');
  await groq.locator('small.why').waitFor();
  assert.match(await groq.textContent(), /GROQ_API_KEY is not set/);
  assert.match(await text(page, '#provider-keys'), /chmod 600 .*\/keys/);
  await shoot(page, 'providers', '#providers-h');

  for (const [name, value] of Object.entries(KEYS)) {
    await page.selectOption('#key-name', name);
    await page.fill('#key-value', value);
    await page.click('#key-save');
    await page.waitForSelector(`#key-vars [data-var="${name}"] [data-source="file"]`);
    assert.equal(await page.inputValue('#key-value'), '', 'the field is emptied');
  }
  await page.waitForFunction(() => document.querySelector('#provider-rows tr[data-provider="anthropic"] .badge').textContent === 'ok');
  assert.ok(!(await page.content()).includes(KEYS.GROQ_API_KEY), 'the page never shows a key');

  // The stand-in's first answer keeps 5 (its duplicate of the template's question is dropped);
  // it holds every request after the first until the gate file exists.
  await page.fill('#gen-count', '6');
  await page.click('#gen-start');
  await page.waitForFunction(() => /Generating: [1-9]/.test(document.querySelector('#gen-state').textContent));
  await page.click('#gen-cancel');
  await page.waitForFunction(() => /Cancelling/.test(document.querySelector('#toast').textContent));
  writeFileSync(join(dataDir, 'gate'), '');
  await page.waitForFunction(() => /^Cancelled: \d+ of 6 kept and appended/.test(document.querySelector('#gen-state').textContent), null, { timeout: 15000 });
  assert.equal(await page.isHidden('#gen-cancel'), true);
  assert.equal(await page.isEnabled('#gen-start'), true);
  await shoot(page, 'cancelled', '#gen-h');
  assert.deepEqual(await accessibilityProblems(page), []);
  assert.ok(!dash.log().includes(KEYS.GROQ_API_KEY) && !dash.log().includes(KEYS.ANTHROPIC_API_KEY), 'no key in the log');
  await page.close();
});
