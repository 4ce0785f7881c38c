// exporter.js: the Use panel's export control. POST .../export starts `fastbrain export` on the
// server as a task; its phases arrive live (SSE .../export/events, polling .../export when SSE
// fails) until a download link and llama.cpp's verdict replace them. The task runs on the
// server: closing the panel or the page does not stop it, and opening it again shows it.
import { api, errorText } from './api.js';
import { h, announce } from './dom.js';
import { taskFeed } from './feed.js';

// [value, label, what it is for]
export const TARGETS = [
  ['gguf', 'GGUF (one file)', 'The model with the skill built in, for llama.cpp, LM Studio or Jan.'],
  ['ollama', 'Ollama', 'The base model, the adapter and a Modelfile: unpack, then `ollama create`.'],
  ['gguf-lora', 'GGUF LoRA (adapter only)', 'Just the adapter, for llama.cpp\u2019s --lora on the base model\u2019s GGUF.'],
  ['merged', 'Merged model (safetensors)', 'A Hugging Face model folder with the skill built in, for Python.'],
];
const TYPES = [['f16', 'f16: half size (recommended)'], ['q8_0', 'q8_0: a quarter, rounded'],
  ['f32', 'f32: exact, largest']];
const TYPED = new Set(['gguf', 'ollama']);

function size(bytes) {
  if (typeof bytes !== 'number') return '';
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GB` : `${(bytes / 2 ** 20).toFixed(1)} MB`;
}

// What the task is doing, in words.
function describe(t) {
  const secs = `${t.elapsed_s || 0} s`;
  switch (t.phase) {
    case 'queued': return 'Waiting for another export to finish\u2026';
    case 'exporting': return `Writing the files\u2026 ${secs}`;
    case 'checking': return `Checking with llama.cpp\u2026 ${secs}`;
    case 'packing': return `Packing it into one download\u2026 ${secs}`;
    case 'done': return t.reused ? 'Ready (exported earlier).' : `Done in ${secs}.`;
    default: return `Export failed: ${t.error}`;
  }
}

// createExporter(root, {onType(type)}) -> {show(adapter), close()}
export function createExporter(root, { onType }) {
  const target = h('select', { id: 'export-to', 'aria-describedby': 'export-about' },
    ...TARGETS.map(([v, label]) => h('option', { value: v, text: label })));
  const about = h('p.hint', { id: 'export-about' });
  const type = h('select', { id: 'export-type' }, ...TYPES.map(([v, label]) => h('option', { value: v, text: label })));
  const go = h('button.primary', { type: 'button', id: 'export-go' }, 'Export');
  const state = h('p.state', { id: 'export-state', role: 'status' });
  const bar = h('progress', { id: 'export-progress', 'aria-label': 'Export in progress', hidden: true });
  const result = h('div.export-result', { id: 'export-result' });
  root.append(
    h('div.export-fields', {},
      h('label', { for: 'export-to', text: 'Format' }), target,
      h('label', { for: 'export-type', text: 'Weights' }), type),
    about, go, bar, state, result);

  let adapter = null;
  let task = null;
  let starting = false;

  const running = () => starting || (task && (task.state === 'queued' || task.state === 'running'));

  function renderControls() {
    type.disabled = !TYPED.has(target.value);
    about.textContent = TARGETS.find(([v]) => v === target.value)[2];
    go.disabled = running() || !adapter;
    go.textContent = running() ? 'Exporting\u2026' : 'Export';
  }

  function render(t) {
    // A late answer to the start must not undo the end its events already showed.
    if (t && task && task.id === t.id && !['queued', 'running'].includes(task.state) && ['queued', 'running'].includes(t.state)) return;
    const was = task;
    task = t;
    if (!t || !['queued', 'running'].includes(t.state)) unfollow();
    renderControls();
    bar.hidden = !running();
    result.replaceChildren();
    state.textContent = t ? describe(t) : '';
    state.dataset.state = t ? t.state : '';
    if (!t) return;
    // The form shows what the task exports, and the snippets name its files.
    target.value = t.to;
    if (t.type) { type.value = t.type; onType(t.type); }
    renderControls();
    if (t.state !== 'done') return;
    result.append(
      h('a.button.primary', { href: t.download, download: t.file, id: 'export-download' }, `Download (${size(t.bytes)})`),
      h('code.file', { text: t.file }));
    if (t.check) result.append(h('p.check', { id: 'export-check', text: t.check }));
    if (was && was.id === t.id && was.state !== 'done') announce(`Export ready: ${t.file}`);
  }

  async function poll() {
    const r = await api.exportTask(adapter.skill, adapter.version);
    if (r.status === 200) render(r.body.task);
  }

  const feed = taskFeed(root, { render, poll });
  const follow = () => feed.follow(api.exportEventsUrl(adapter.skill, adapter.version));
  const unfollow = () => feed.unfollow();

  target.addEventListener('change', renderControls);
  type.addEventListener('change', () => onType(type.value));

  // A version that passes fewer scenarios than the one before it asks first.
  let confirmed = false;
  function regressionWarning() {
    const r = adapter.regressed_from, s = adapter.scenarios;
    return `This version passes fewer test scenarios (${s.passed}/${s.total}) than ${r.version} `
      + `(${r.passed}/${r.total}). Export it anyway?`;
  }

  go.addEventListener('click', async () => {
    if (go.disabled) return;
    if (adapter.regressed_from && !confirmed) {
      confirmed = true;
      state.textContent = regressionWarning();
      state.dataset.state = 'confirm';
      go.textContent = 'Export anyway';
      return;
    }
    starting = true;
    renderControls();  // disabled before any await: one click, one export
    const body = { to: target.value };
    if (TYPED.has(target.value)) body.type = type.value;
    try {
      const r = await api.exportAdapter(adapter.skill, adapter.version, body);
      starting = false;
      if ([200, 202, 409].includes(r.status)) render(r.body.task);
      if (r.status === 202 || r.status === 409) follow();
      if (r.status === 409) announce('An export of this adapter was already running: showing it.');
      else if (![200, 202].includes(r.status)) announce(`Could not export: ${errorText(r)}`, 'error');
    } catch (e) {
      announce(`Could not export: ${e.message}`, 'error');
    } finally {
      starting = false;
      renderControls();
    }
  });

  return {
    async show(a) {
      unfollow();
      adapter = a;
      confirmed = false;
      render(null);
      await poll();
      if (running()) follow();
    },
    close: unfollow,
  };
}
