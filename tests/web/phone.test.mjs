// The dashboard on a 390x844 phone, against a real `fastbrain serve` training with the real
// worker on the bundled model: every section the bar below the header shows (training before
// and after a short run, data, scenarios, adapters with the Use panel, models, providers) fits
// the screen with nothing past its right edge, the skill's description keeps most of the width,
// and the tables' rows are cards whose cells name their column. At 1366x768 the bar is gone and
// every panel shows. Screenshots of each state go to FB_WEB_ARTIFACTS as phone-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { shots, requireParts, accessibilityProblems, showSection, startDashboard, apiCall } from './harness.mjs';

requireParts('phone');

const SKILL = 'electrician-assistant';
const [WIDTH, HEIGHT] = [390, 844];
const QUESTIONS = ['The lights flicker', 'A socket sparks', 'Can you fit a charger?', 'The fuse keeps tripping'];
const DATA = Array.from({ length: 24 }, (_, i) => JSON.stringify({ messages: [
  { role: 'user', content: `${QUESTIONS[i % QUESTIONS.length]} (call ${i})` },
  { role: 'assistant', content: `An electrician can look at that; slot ${(i % 5) + 1} is free.` }] })).join('\n') + '\n';

let dash, base, browser;

before(async () => {
  dash = await startDashboard('phone');
  ({ base, browser } = dash);
  // A short run on short examples; no scenarios, whose run after training would take minutes.
  await apiCall(base, 'PUT', `/api/skills/${SKILL}/data`, DATA);
  await apiCall(base, 'PUT', `/api/skills/${SKILL}/scenarios`, []);
});

after(() => dash && dash.close());

// What sticks out past the right edge of the screen (none of it may), and the page's width.
const overflow = (page) => page.evaluate(() => ({
  width: document.scrollingElement.scrollWidth,
  past: [...document.querySelectorAll('body *')]
    .filter((el) => el.getClientRects().length && el.getBoundingClientRect().right > innerWidth + 0.5)
    .map((el) => `${el.tagName.toLowerCase()}#${el.id}.${[...el.classList].join('.')} right=${Math.round(el.getBoundingClientRect().right)}`),
}));

// The page as it is fits the phone, every control is named, and it is photographed.
async function fits(page, name) {
  const { width, past } = await overflow(page);
  assert.deepEqual(past, [], `${name}: elements past the ${WIDTH} px screen`);
  assert.ok(width <= WIDTH, `${name}: the page scrolls sideways (${width} px)`);
  assert.deepEqual(await accessibilityProblems(page), [], name);
  await page.evaluate(() => window.scrollTo(0, 0));  // else the sticky bar lands mid-picture
  await page.screenshot({ path: join(shots, `phone-${name}.png`), fullPage: true });
}

// Show a section; the page's height then.
async function section(page, name) {
  await showSection(page, name);
  return page.evaluate(() => document.scrollingElement.scrollHeight);
}

// How each cell of `rows` is shown: [display of the row, [the label before each cell]].
const cardCells = (rows) => rows.evaluateAll((trs) => trs.map((tr) => [getComputedStyle(tr).display,
  [...tr.cells].map((td) => getComputedStyle(td, '::before').content)]));

test('phone', { timeout: 120000 }, async (t) => {
  const context = await browser.newContext({ viewport: { width: WIDTH, height: HEIGHT } });
  t.after(() => context.close());
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(m.text()); });
  await page.goto(`${base}/#/skill/${SKILL}`);
  await page.locator('#start').waitFor();
  const heights = {};

  await t.test('training, before a run: one section shown; the description keeps the width', async () => {
    assert.equal(await page.locator('.sections button[aria-pressed="true"]').textContent(), 'Training');
    for (const hidden of ['#data', '#scenarios', '#adapters', '#models', '#providers']) {
      assert.equal(await page.locator(hidden).isVisible(), false, `${hidden} is in another section`);
    }
    const desc = await page.locator('#skill-desc').boundingBox();
    assert.ok(desc.width >= 300, `the description is ${desc.width} px wide`);
    const actions = await page.locator('.skill-actions').boundingBox();
    assert.ok(actions.y >= desc.y + desc.height, 'Edit and Delete sit below the description');
    heights.training = await page.evaluate(() => document.scrollingElement.scrollHeight);
    await fits(page, 'training');
  });

  await t.test('data: the examples are cards', async () => {
    heights.data = await section(page, 'data');
    await page.locator('#examples tr td[data-label="Prompt"]').first().waitFor();
    const cards = await cardCells(page.locator('#examples tr'));
    assert.ok(cards.length > 1);
    for (const [display, labels] of cards) {
      assert.equal(display, 'block');
      assert.deepEqual(labels.slice(0, 3), ['"Line"', '"Prompt"', '"Answer"']);
      assert.equal(labels.length, 4, 'and the Edit/Delete buttons');
      assert.doesNotMatch(labels[3], /Edit/, 'a column of buttons has no name on its card');
    }
    await fits(page, 'data');
  });

  await t.test('scenarios, models, providers, adapters before a run', async () => {
    for (const name of ['scenarios', 'models', 'providers', 'adapters']) {
      heights[name] = await section(page, name);
      assert.equal(await page.locator(`#${name}`).isVisible(), true);
      assert.equal(await page.locator('#training').isVisible(), false);
      await fits(page, `${name}`);
    }
    const [[, labels]] = await cardCells(page.locator('#model-rows tr').first());
    assert.equal(labels[0], '"Model"', 'the models are cards too');
  });

  await t.test('a short run, then its adapter as a card with a working Use panel', async () => {
    await section(page, 'training');
    await page.fill('input[name="max_steps"]', '10');
    await page.fill('input[name="max_len"]', '64');
    await page.locator('#start').click();
    await page.locator('#training[data-confetti="1"]').waitFor({ timeout: 90000 });
    await fits(page, 'trained');
    await section(page, 'adapters');
    const row = page.locator(`tr[data-adapter^="${SKILL}/"]`);
    const [[display, labels]] = await cardCells(row);
    assert.equal(display, 'block', 'the adapter is a card');
    assert.deepEqual(labels.slice(0, 3), ['"Skill"', '"Version"', '"Examples"']);
    assert.equal(labels.at(-1), 'none', 'the buttons need no label');
    const box = await row.boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= WIDTH, `the card is within the screen (${box.x}+${box.width})`);
    await fits(page, 'adapters-trained');
    await row.getByRole('button', { name: /^Use / }).click();
    await page.locator('#use-dialog[open]').waitFor();
    await fits(page, 'use');
    await page.keyboard.press('Escape');
    await page.locator('#use-dialog:not([open])').waitFor({ state: 'attached' });
    t.diagnostic(`page height by section at ${WIDTH}x${HEIGHT}: ${JSON.stringify(heights)}`);
    assert.deepEqual(page.errors, []);
  });

  await t.test('desktop: no section bar, every panel and the tables as tables', async (t) => {
    const desk = await browser.newContext({ viewport: { width: 1366, height: 768 } });
    t.after(() => desk.close());
    const wide = await desk.newPage();
    await wide.goto(`${base}/#/skill/${SKILL}`);
    await wide.locator(`tr[data-adapter^="${SKILL}/"]`).waitFor();
    assert.equal(await wide.locator('.sections').isVisible(), false);
    for (const id of ['#training', '#data', '#scenarios', '#adapters', '#models', '#providers']) {
      assert.equal(await wide.locator(id).isVisible(), true, `${id} shows on a desktop`);
    }
    const [[display]] = await cardCells(wide.locator(`tr[data-adapter^="${SKILL}/"]`));
    assert.equal(display, 'table-row');
    await wide.screenshot({ path: join(shots, 'phone-desktop.png'), fullPage: true });
  });
});
