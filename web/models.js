// models.js: the base models a skill can train on (GET /api/models): how the dashboard names
// one (size and parameters, so a person sees the cost of a choice), and the Base models panel:
// every model with its shape and the skills on it, removing a pulled one, and pulling one from
// the Hugging Face Hub (POST /api/pulls, its progress over SSE, polling when SSE fails).
import { api, errorText } from './api.js';
import { h, $, announce } from './dom.js';
import { liveFeed } from './feed.js';

export function bytesText(bytes) {
  if (typeof bytes !== 'number') return '—';
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GB`;
  return `${Math.max(1, Math.round(bytes / 2 ** 20))} MB`;
}

export function paramsText(n) {
  if (typeof n !== 'number') return '—';
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)}M`;
}

// "HuggingFaceTB/SmolLM2-360M-Instruct: 362M parameters, 724 MB"
export function modelText(m) {
  const what = `${m.id}: ${paramsText(m.parameters)} parameters, ${bytesText(m.bytes)}`;
  return m.supported ? what : `${m.id}: not supported (${m.reason})`;
}

function rate(bytesPerS) {
  return typeof bytesPerS === 'number' ? `, ${bytesText(bytesPerS)}/s` : '';
}

function timeLeft(s) {
  if (typeof s !== 'number') return '';
  return s >= 90 ? `, about ${Math.round(s / 60)} min left` : `, about ${Math.max(1, Math.round(s))} s left`;
}

// createModelsPanel(section, {onChange()}) -> {load()}: the panel in section (#model-rows, the
// #pull-form); onChange after a model came or went (the training form's picker lists them too).
export function createModelsPanel(section, { onChange }) {
  const rows = $('#model-rows', section);
  const form = $('#pull-form', section);
  const go = $('#pull-go', section);
  const cancel = $('#pull-cancel', section);
  const bar = $('#pull-progress', section);
  const state = $('#pull-state', section);
  let feed = null;
  let pulling = null; // the task followed

  function renderPull(t) {
    pulling = t;
    const live = t.state === 'running';
    go.disabled = live;
    cancel.hidden = !live;
    bar.hidden = !live;
    form.dataset.state = t.state;
    if (live) {
      bar.max = t.total_bytes || 1;
      bar.value = t.done_bytes || 0;
      state.textContent = t.total_bytes
        ? `Pulling ${t.model}: ${bytesText(t.done_bytes)} of ${bytesText(t.total_bytes)}${rate(t.bytes_per_s)}${timeLeft(t.eta_s)}${t.file ? ` (${t.file})` : ''}`
        : `Pulling ${t.model}: asking the Hub…`;
    } else if (t.state === 'succeeded') {
      state.textContent = `Pulled ${t.model} (commit ${String(t.commit).slice(0, 12)}): pick it for a skill in its training form.`;
    } else if (t.state === 'cancelled') {
      state.textContent = `The pull of ${t.model} was cancelled; pulling it again resumes where it stopped.`;
    } else {
      state.textContent = `Could not pull ${t.model}: ${t.error}`;
    }
  }

  async function ended(t) {
    renderPull(t);
    if (feed) { feed.close(); feed = null; }
    if (t.state === 'succeeded') {
      announce(`Pulled ${t.model}.`);
      await load();
      onChange();
    } else if (t.state === 'failed') {
      announce(`Could not pull ${t.model}.`, 'error');
    }
  }

  function follow(t) {
    renderPull(t);
    if (feed) feed.close();
    feed = liveFeed({
      url: api.pullEventsUrl(t.id),
      events: ['snapshot', 'progress', 'done', 'error'],
      onEvent: (_, task) => (task.state === 'running' ? renderPull(task) : ended(task)),
      poll: async () => {
        const r = await api.pullStatus(t.id);
        if (r.status !== 200) return;
        if (r.body.task.state === 'running') renderPull(r.body.task); else ended(r.body.task);
      },
      onMode: (mode) => { form.dataset.feed = mode; },
    });
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (go.disabled) return;
    go.disabled = true;
    const model = form.elements.model.value.trim();
    const r = await api.pull(model, form.elements.token.value);
    form.elements.token.value = '';
    if (r.status === 202 || r.status === 409) { follow(r.body.task); return; }
    go.disabled = false;
    const why = (r.body && r.body.fields && r.body.fields.model) || errorText(r);
    state.textContent = `Could not pull ${model}: ${why}`;
    form.dataset.state = 'failed';
  });

  cancel.addEventListener('click', async () => {
    if (!pulling) return;
    const r = await api.cancelPull(pulling.id);
    if (r.status !== 202) announce(`Could not cancel: ${errorText(r)}`, 'error');
  });

  async function remove(m) {
    if (!window.confirm(`Remove ${m.id} (${bytesText(m.bytes)}) from this machine?`)) return;
    const r = await api.deleteModel(m.id);
    if (r.status !== 200) { announce(`Could not remove ${m.id}: ${errorText(r)}`, 'error'); return; }
    announce(`Removed ${m.id}.`);
    await load();
    onChange();
  }

  function row(m) {
    const note = m.supported ? (m.skills.length ? m.skills.join(', ') : '—') : `not supported: ${m.reason}`;
    const removable = m.source !== 'bundled' && !m.default;
    return h('tr', { 'data-model': m.id },
      h('td', {}, h('strong', { text: m.id }), m.default ? h('span.badge', { text: 'default' }) : null),
      h('td', { text: m.source }), h('td', { text: m.architecture || '—' }),
      h('td', { text: paramsText(m.parameters) }), h('td', { text: bytesText(m.bytes) }),
      h('td', { text: m.context ? String(m.context) : '—' }),
      h('td.model-note', { text: note }),
      h('td', {}, removable
        ? h('button', { type: 'button', onclick: () => remove(m) }, `Remove ${m.id}`)
        : null));
  }

  async function load() {
    const r = await api.models();
    if (r.status !== 200) { rows.replaceChildren(); return []; }
    rows.replaceChildren(...r.body.models.map(row));
    return r.body.models;
  }

  return { load };
}
