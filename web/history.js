// history.js: a skill's training runs (GET /api/jobs?skill=, newest first): each job's
// settings, base model, data size, duration, (smoothed) training and held-out loss, the scenario pass rate
// of the adapter it made, and the step it published when it chose by scenarios. Tick two or more to draw their losses on one chart and list the
// settings in which they differ (only those).
import { api } from './api.js';
import { h, num, when, basename } from './dom.js';
import { overlayChart } from './chart.js';
import { FIELDS } from './training.js';

const MAX_JOBS = 100;
// Spec fields that say where things are, not how the run trained.
const PLACES = new Set(['out', 'checkpoints', 'data', 'hooks', 'skill', 'samples.system', 'samples.prompts']);

// What the training form calls a setting, for those it has.
const LABELS = new Map([...FIELDS.map(([name, label]) => [name, label]), ['model', 'Base model'], ['device', 'Compute on'], ['select', 'Published weights']]);

const version = (job) => (job.adapter ? basename(job.adapter) : null);
// The spec the job ran: the worker's complete one once it finished, else the one asked for.
const specOf = (job) => (job.summary && job.summary.spec) || job.spec || {};
const minutes = (s) => (typeof s !== 'number' ? '\u2014' : s < 10 ? `${s.toFixed(1)} s` : s < 90 ? `${s.toFixed(0)} s` : `${(s / 60).toFixed(1)} min`);
const started = (job) => when(job.started_at || job.created_at);

// {a: {b: 1}} -> {'a.b': 1}
function flatten(obj, prefix = '', out = {}) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix + k;
    if (v && typeof v === 'object' && !Array.isArray(v)) flatten(v, `${key}.`, out);
    else out[key] = v;
  }
  return out;
}

const shown = (key, v) => (v === undefined ? '\u2014' : key === 'model' ? basename(v) : typeof v === 'string' ? v : JSON.stringify(v));

// The settings in which jobs differ: [[key, [value per job]]...].
export function settingsDiff(jobs) {
  const flat = jobs.map((j) => flatten(specOf(j)));
  const keys = [...new Set(flat.flatMap(Object.keys))].filter((k) => !PLACES.has(k)).sort();
  return keys.map((k) => [k, flat.map((f) => f[k])])
    .filter(([, values]) => new Set(values.map((v) => JSON.stringify(v))).size > 1);
}

// createHistory(root) -> {show(skill), setAdapters(adapters), reload()}
export function createHistory(root) {
  const rows = h('tbody', { id: 'history-rows' });
  const canvas = h('canvas', { id: 'history-chart', role: 'img', 'aria-label': 'Loss by step of the ticked runs' });
  const diff = h('div', { id: 'history-diff' });
  const compared = h('div.history-compare', { id: 'history-compare', hidden: true },
    h('div.chart-box', {}, canvas), diff);
  root.append(
    h('p.hint', { text: 'Every training run of this skill. Tick two or more to lay their loss curves over each other and see which settings differ.' }),
    h('div.table-wrap', {}, h('table.history', {},
      h('thead', {}, h('tr', {}, ...['Pick', 'Started', 'State', 'Examples', 'Time', 'Training loss', 'Held-out loss', 'Scenarios',
        'Base model', 'Steps', 'Learning rate', 'LoRA rank'].map((t) => h('th', { scope: 'col', text: t })))),
      rows)),
    compared);
  const chart = overlayChart(canvas);

  let skill = null;
  let jobs = [];
  let scores = new Map();  // adapter version -> {passed, total}
  let ticked = new Set();

  const label = (job) => `${started(job)}`;
  function scenarios(job) {
    const s = scores.get(version(job));
    return s ? `${s.passed}/${s.total}` : '\u2014';
  }

  // Which weights a run chose by its scenarios (spec.select = "scenarios"), under its steps.
  const published = (sum) => (sum.select === 'scenarios' && sum.selected_step !== undefined
    ? [h('br'), h('small.hint', { text: `published: step ${sum.selected_step} (${sum.selected_passed}/${sum.scenario_total} pass)` })]
    : []);

  function renderCompare() {
    const picked = jobs.filter((j) => ticked.has(j.id));
    compared.hidden = picked.length === 0;
    if (!picked.length) return;
    chart.set(picked.map((j) => ({ label: label(j), loss: j.loss_history, evalLoss: j.eval_history })));
    if (picked.length < 2) {
      diff.replaceChildren(h('p.hint', { text: 'Tick another run to compare their settings.' }));
      return;
    }
    const changed = settingsDiff(picked);
    diff.replaceChildren(changed.length ? h('div.table-wrap', {}, h('table.diff', {},
      h('caption', { text: 'Settings that differ' }),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Setting' }),
        ...picked.map((j) => h('th', { scope: 'col', text: label(j) })))),
      h('tbody', {}, ...changed.map(([key, values]) => h('tr', { 'data-setting': key },
        h('th', { scope: 'row' }, LABELS.get(key) || '', LABELS.has(key) ? ' ' : '', h('code', { text: key })), ...values.map((v) => h('td', { text: shown(key, v) })))))))
      : h('p.hint', { text: 'These runs used the same settings.' }));
  }

  function render() {
    if (!jobs.length) {
      rows.replaceChildren(h('tr', {}, h('td', { colspan: 12, text: 'Not trained yet.' })));
    } else {
      rows.replaceChildren(...jobs.map((j) => {
        const spec = specOf(j);
        const sum = j.summary || {};
        return h('tr', { 'data-job': j.id, 'data-state': j.state },
          h('td', {}, h('input', { type: 'checkbox', checked: ticked.has(j.id), 'aria-label': `Compare the run of ${label(j)}`,
            onchange: (e) => { if (e.target.checked) ticked.add(j.id); else ticked.delete(j.id); renderCompare(); } })),
          h('td', { text: started(j) }),
          h('td', {}, h('span.badge', { text: j.state })),
          h('td', { text: String(sum.examples ?? '\u2014') }),
          h('td', { text: minutes(sum.wall_time_s) }),
          h('td', { text: num(sum.final_loss_smoothed ?? sum.final_loss) }),
          h('td', { text: num(sum.eval_loss) }),
          h('td', { text: scenarios(j) }),
          h('td', { text: basename(sum.base_model || spec.model) || '\u2014' }),
          h('td', {}, String(sum.steps ?? (j.progress && j.progress.step) ?? '\u2014'), ...published(sum)),
          h('td', { text: String(spec.lr ?? 'default') }),
          h('td', { text: String((spec.lora && spec.lora.r) ?? 'default') }));
      }));
    }
    renderCompare();
  }

  async function load() {
    const id = skill;
    const r = await api.jobs(id, MAX_JOBS);
    if (id !== skill) return;
    jobs = r.status === 200 ? [...r.body.jobs].sort((a, b) => b.created_at - a.created_at) : [];
    render();
  }

  return {
    show(id) {
      skill = id;
      ticked = new Set();
      jobs = [];
      return load();
    },
    setAdapters(adapters) {
      scores = new Map(adapters.filter((a) => a.skill === skill && a.scenarios).map((a) => [a.version, a.scenarios]));
      render();
    },
    reload: () => skill && load(),
  };
}
