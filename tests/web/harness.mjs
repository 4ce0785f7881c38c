// harness.mjs: what the browser suites share: where the binary, the repository and the
// screenshots are; headless Chromium's path and flags; a check that every part is installed
// (a missing one fails the suite: a skipped browser test would hide it); starting a fastbrain
// process and waiting for its address (a suite's server and browser: startDashboard); and the
// accessibility checks run on each page.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import assert from 'node:assert/strict';

export const root = resolve(import.meta.dirname, '../..');
export const bin = resolve(process.env.FASTBRAIN_BIN || join(root, 'build/fastbrain'));
export const shots = resolve(process.env.FB_WEB_ARTIFACTS || join(root, 'build/test-output/web'));
export const CHROMIUM = '/usr/bin/chromium';
export const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run'];

// Throw, saying what to install, when a part the suite `name` needs is missing.
export function requireParts(name) {
  const missing = [
    [CHROMIUM, 'Chromium (apt-get install chromium)'],
    [join(root, 'node_modules/playwright-core'), 'playwright-core (npm ci)'],
    [join(root, 'web/vendor/chart.umd.min.js'), 'web/vendor (scripts/vendor-web.sh)'],
    [bin, `the fastbrain binary (${bin})`],
  ].filter(([path]) => !existsSync(path)).map(([, what]) => what);
  if (missing.length) throw new Error(`${name} test: missing ${missing.join(', ')}; run make deps`);
}

// Start `args` and resolve with the first match of `re` in its output (kept in log(chunk)).
export function launch(args, env, re, log) {
  const child = spawn(bin, args, { cwd: root, env: { ...process.env, ...env } });
  const seen = new Promise((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`${args[0]} did not start:\n${out}`)), 10000);
    const read = (chunk) => {
      out += chunk;
      log(String(chunk));
      const m = out.match(re);
      if (m) { clearTimeout(timer); ok(m[1]); }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => fail(new Error(`${args.join(' ')} exited ${code}:\n${out}`)));
  });
  return [child, seen];
}

// One suite's dashboard: `fastbrain serve` on a fresh data directory, with a Hugging Face cache
// of its own and the variables env(dataDir) gives (it may start what the server needs first),
// and headless Chromium. -> {base, dataDir, browser, log(), close()}: log() is what the server
// printed so far; close() stops both, keeps that as <shots>/<name>-serve.log and removes the
// directory.
export async function startDashboard(name, env = async () => ({})) {
  const { chromium } = createRequire(import.meta.url)('playwright-core');
  mkdirSync(shots, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), `fb-${name}-`));
  let log = '';
  const [server, seen] = launch(['serve', '--port', '0', '--data-dir', dataDir],
    { FASTBRAIN_CACHE: join(dataDir, 'cache'), ...(await env(dataDir)) }, /serving on (http:\/\/\S+)/,
    (s) => { log += s; });
  const base = await seen;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  return {
    base, dataDir, browser,
    log: () => log,
    async close() {
      await browser.close();
      await stop(server);
      writeFileSync(join(shots, `${name}-serve.log`), log);
      removeDir(dataDir);
    },
  };
}

// Accessibility checks on the page as it is: every control has a name, and visible text has
// WCAG AA contrast against the colour behind it (4.5:1, 3:1 for large text).
export function accessibilityProblems(page) {
  return page.evaluate(() => {
    const problems = [];
    const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
    for (const el of document.querySelectorAll('input, textarea, select, button, a[href], [tabindex]')) {
      if (!visible(el) || el.tabIndex < 0) continue;
      const name = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
        || (el.labels && [...el.labels].map((l) => l.textContent).join('').trim())
        || (['BUTTON', 'A'].includes(el.tagName) && el.textContent.trim()) || el.title;
      if (!name) problems.push(`no accessible name: ${el.outerHTML.slice(0, 80)}`);
    }
    const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
      .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const st = getComputedStyle(e);
        if (st.backgroundImage !== 'none') return null;  // a gradient: judged by eye
        const c = rgb(st.backgroundColor);
        if (c.length === 3 || c[3] === 1) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    for (const el of document.querySelectorAll('body *')) {
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      // Disabled controls are exempt (WCAG 1.4.3: inactive user interface components).
      if (!own || !visible(el) || el.closest('[aria-hidden="true"], .sr-only, canvas, :disabled')) continue;
      const st = getComputedStyle(el);
      const bg = background(el);
      if (!bg) continue;
      const fg = rgb(st.color);
      const opacity = [...function* up(e) { for (; e; e = e.parentElement) yield Number(getComputedStyle(e).opacity); }(el)].reduce((a, b) => a * b, 1);
      const mixed = fg.slice(0, 3).map((v, i) => v * opacity * (fg[3] ?? 1) + bg[i] * (1 - opacity * (fg[3] ?? 1)));
      const [hi, lo] = [lum(mixed), lum(bg)].sort((a, b) => b - a);
      const ratio = (hi + 0.05) / (lo + 0.05);
      const large = parseFloat(st.fontSize) >= 24 || (parseFloat(st.fontSize) >= 18.66 && Number(st.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) problems.push(`contrast ${ratio.toFixed(2)}: "${el.textContent.trim().slice(0, 40)}" (${el.tagName}.${el.className})`);
    }
    return problems;
  });
}

// Stop a process started by launch and wait for it: until it has exited its files are its own.
export function stop(child) {
  return new Promise((done) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return done();
    child.once('exit', () => done());
    child.kill('SIGTERM');
  });
}

// Remove a suite's data directory. A child of the server (a calibration run) may still be
// finishing a write in it: ENOTEMPTY is retried, not a failure of the suite.
export function removeDir(dir) {
  if (dir) rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
}

// Show one section of the dashboard (sections.js) where the section bar is on screen (a phone);
// wider, every section shows already.
export async function showSection(page, name) {
  const button = page.locator(`.sections button[data-section="${name}"]`);
  if (await button.isVisible()) await button.click();
}

// On a phone, show the section that holds the first element `selector` matches (nothing to do
// for one outside every section, such as a dialog, or when every section shows).
export async function showSectionOf(page, selector) {
  const name = await page.locator(selector).first().evaluate((el) => {
    const part = el.closest('[data-sections]');
    return part ? part.dataset.sections.split(' ')[0] : null;
  });
  if (name) await showSection(page, name);
}
// An API call a suite makes itself: a string body is JSONL (application/x-ndjson), anything
// else JSON; a failure fails the test, naming the call. -> the answer's JSON
export async function apiCall(base, method, path, body) {
  const type = typeof body === 'string' ? 'application/x-ndjson' : 'application/json';
  const r = await fetch(base + path, { method, headers: { 'Content-Type': type },
    body: typeof body === 'string' ? body : body && JSON.stringify(body) });
  assert.ok(r.ok, `${method} ${path}: ${r.status} ${await r.clone().text()}`);
  return r.json();
}

export const pause = (ms) => new Promise((ok) => setTimeout(ok, ms));
