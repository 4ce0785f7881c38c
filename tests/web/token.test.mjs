// The dashboard behind a token, in headless Chromium (playwright-core) against a real
// `fastbrain serve` that takes its token from FASTBRAIN_TOKEN. Without the cookie the page says
// how to get it; the link the server prints leaves the token out of the address bar, sets an
// HttpOnly, SameSite=Strict cookie, and from then on the page's own calls (API and event streams)
// pass. A screenshot goes to FB_WEB_ARTIFACTS (default build/test-output/web) as token-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { shots, CHROMIUM, FLAGS, requireParts, launch, stop, removeDir } from './harness.mjs';

requireParts('token');

const TOKEN = 'web-t0ken_' + process.pid;
let server, link, dataDir, browser;

before(async () => {
  const { chromium } = createRequire(import.meta.url)('playwright-core');
  mkdirSync(shots, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'fb-token-'));
  let seen;
  [server, seen] = launch(['serve', '--port', '0', '--data-dir', dataDir], { FASTBRAIN_TOKEN: TOKEN },
    /dashboard: (http:\/\/\S+)/, () => {});
  link = await seen;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
});

after(async () => {
  await browser?.close();
  await stop(server);
  removeDir(dataDir);
});

test('the printed link trades the token for a cookie the dashboard works with', async () => {
  const base = new URL(link).origin;
  assert.equal(new URL(link).searchParams.get('token'), TOKEN);
  const context = await browser.newContext();
  const page = await context.newPage();

  await page.goto(base + '/');  // no cookie yet: the page loads, its calls get 401 and it says why
  await page.waitForFunction(() => /needs its token: open the link/.test(document.querySelector('#toast')?.textContent || ''));
  assert.equal(await page.evaluate(async () => (await fetch('/api/health')).status), 401);

  const events = [];
  page.on('response', (r) => { if (r.url().includes('/api/')) events.push(r.status()); });
  await page.goto(link);
  assert.equal(page.url(), base + '/', 'the token is gone from the address bar');
  const [cookie] = await context.cookies();
  assert.equal(cookie.name, `fastbrain-${new URL(base).port}`);
  assert.equal(cookie.value, TOKEN);
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read it');
  assert.equal(await page.evaluate(async () => (await fetch('/api/skills')).status), 200);
  const streamed = await page.evaluate(() => new Promise((ok) => {  // an event stream passes too
    const es = new EventSource('/api/training/events/plumbing-receptionist');
    es.onopen = () => { es.close(); ok('open'); };
    es.onerror = () => { es.close(); ok('refused'); };
  }));
  assert.equal(streamed, 'open');
  await page.waitForSelector('text=plumbing', { timeout: 10000 });  // the bundled skills list
  assert.ok(!events.includes(401), `no API call got 401 after the link: ${events}`);
  await page.screenshot({ path: join(shots, 'token-dashboard.png') });

  const other = await browser.newContext();  // a wrong token: 401, and no cookie
  const res = await (await other.newPage()).goto(`${base}/?token=wrong`);
  assert.equal(res.status(), 401);
  assert.deepEqual(await other.cookies(), []);
  await context.close();
  await other.close();
});
