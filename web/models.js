// models.js: the base models a skill can train on (GET /api/models): how the dashboard names
// one (size and parameters, so a person sees the cost of a choice), and the Base models panel:
// every model with its shape and the skills on it, removing a pulled one.
import { api, errorText } from './api.js';
import { h, announce } from './dom.js';

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

// createModelsPanel(tbody, {onChange()}) -> {load()}: the panel's table; onChange after a
// removal (the training form's picker lists the models too).
export function createModelsPanel(rows, { onChange }) {
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
