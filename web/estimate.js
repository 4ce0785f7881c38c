// estimate.js: what the run the training form describes would cost, before it starts
// (POST /api/training/estimate/:skill?model=: tokens, steps, peak memory, time on this
// server's CPU and GPU, warnings). It follows the form as the person edits it; only the latest
// answer shows. onFits(false) when the run would not fit in the memory free.
import { api, errorText } from './api.js';
import { h } from './dom.js';
import { bytesText } from './models.js';
import { duration } from './duration.js';

const DEBOUNCE_MS = 400;

const count = (n) => n.toLocaleString('en-US');

function deviceLine(label, d) {
  const free = typeof d.free_bytes === 'number' ? ` of ${bytesText(d.free_bytes)} free` : '';
  return h('li', { 'data-device': label },
    h('strong', { text: `${label}: about ${duration(Math.max(1, d.seconds))}` }),
    ` and ${bytesText(d.peak_bytes)} of memory at its peak${free}`);
}

// createEstimate(box, {onFits(fits)}) -> {update(skill, model, spec), clear()}
export function createEstimate(box, { onFits }) {
  let timer = null;
  let asked = 0; // the latest request: older answers are dropped

  function render(e) {
    const lines = [deviceLine('CPU', e.cpu)];
    if (e.gpu) lines.push(deviceLine('GPU', e.gpu));
    const parts = [
      h('p', { text: `${count(e.examples)} examples to train on and ${count(e.eval_examples)} held out, ` +
        `${count(e.tokens_per_epoch)} tokens an epoch: ${count(e.steps)} steps.` }),
      h('ul.estimate-devices', {}, ...lines)];
    if (e.warnings.length) parts.push(h('ul.estimate-warnings', {}, ...e.warnings.map((w) => h('li', { text: w }))));
    box.replaceChildren(...parts);
    box.dataset.state = e.warnings.length ? 'warning' : 'ok';
    onFits(!(e.cpu.fits === false && !e.gpu));
  }

  async function ask(n, skill, model, spec) {
    box.dataset.state = 'pending';
    box.replaceChildren(h('p', { text: 'Estimating the cost of this run… The first estimate on a model measures it on this machine, which takes a moment.' }));
    const r = await api.estimate(skill, model, spec);
    if (n !== asked) return;
    if (r.status === 200) { render(r.body.estimate); return; }
    box.dataset.state = 'error';
    const fields = Object.entries((r.body && r.body.fields) || {}).map(([k, v]) => `${k} ${v}`);
    box.replaceChildren(h('p', { text: `No estimate: ${fields.length ? fields.join('; ') : errorText(r)}` }));
    onFits(true);
  }

  return {
    update(skill, model, spec) {
      clearTimeout(timer);
      const n = ++asked;
      timer = setTimeout(() => ask(n, skill, model, spec).catch(() => {}), DEBOUNCE_MS);
    },
    clear() {
      clearTimeout(timer);
      asked++;
      box.replaceChildren();
      delete box.dataset.state;
      onFits(true);
    },
  };
}
