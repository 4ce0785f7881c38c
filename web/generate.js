// generate.js: the data view's "Generate examples" control. POST /api/skills/:skill/generate
// {count} starts a task on the server; while it runs its progress arrives live (SSE
// .../generate/events, polling .../generate when SSE fails): the provider in use, each
// fallback with its reason, and the result (kept, dropped by reason, kept by provider). A 409
// shows the running task; Cancel stops it before its next provider call. The stream is open only while a task runs: a browser allows six
// connections to a server, and an idle tab should hold one (its training stream), not two.
import { api, errorText } from './api.js';
import { h, announce } from './dom.js';
import { taskFeed, startTask } from './feed.js';

const MAX_COUNT = 200;

function term(label, value) {
  return h('div', {}, h('dt', { text: label }), h('dd', { text: String(value) }));
}

// createGenerate(root, {onUpdate(task, finished)}) -> {show(skill)}
export function createGenerate(root, { onUpdate }) {
  const count = h('input', { id: 'gen-count', type: 'number', min: 1, max: MAX_COUNT, step: 1, value: 10 });
  const go = h('button', { type: 'button', id: 'gen-start' }, 'Generate examples');
  const stop = h('button', { type: 'button', id: 'gen-cancel', hidden: true }, 'Cancel');
  const state = h('p.state', { id: 'gen-state', role: 'status' });
  const bar = h('progress', { id: 'gen-progress', max: 1, value: 0, 'aria-label': 'Examples kept so far' });
  const fallbacks = h('ul.fallbacks', { id: 'gen-fallbacks', 'aria-label': 'Provider fallbacks' });
  const result = h('dl.quality', { id: 'gen-result', 'aria-label': 'Generation result' });
  root.append(
    h('div.gen-controls', {}, h('label', { for: 'gen-count', text: 'Examples to generate' }), count, go, stop),
    h('p.hint', { text: 'New examples come from the provider chain (see Data providers), in the voice of this skill\u2019s description and data; duplicates are dropped.' }),
    state, bar, fallbacks, result);

  let skill = null;
  let task = null;
  let busy = false;  // a start request is in flight

  const running = () => busy || (task && task.state === 'running');
  function renderButton() {
    go.disabled = running() || !skill;
    go.textContent = running() ? 'Generating\u2026' : 'Generate examples';
    stop.hidden = !(task && task.state === 'running');
  }

  // What a task that ended without all it was asked for says.
  function ending(t) {
    if (t.state === 'cancelled') return `Cancelled: ${t.kept} of ${t.count} kept and appended`;
    const hint = /_API_KEY is not set/.test(t.error || '') ? ' (Data providers, below, says how to add a key.)' : '';
    return `Failed after ${t.kept} of ${t.count}: ${t.error || 'no reason given'}${hint}`;
  }

  function render(t) {
    const was = task;
    // A late answer to the start must not undo the end its events already showed.
    if (t && was && was.id === t.id && was.state !== 'running' && t.state === 'running') return;
    task = t;
    if (t && t.state !== 'running') unfollow();
    renderButton();
    bar.hidden = !t;
    fallbacks.replaceChildren();
    result.replaceChildren();
    if (!t) { state.textContent = ''; return; }
    bar.max = t.count;
    bar.value = t.kept;
    const provider = t.provider ? `provider: ${t.provider}` : 'asking the providers\u2026';
    state.textContent = t.state === 'running' ? `Generating: ${t.kept} of ${t.count} kept \u00b7 ${provider}`
      : t.state === 'succeeded' ? `Done: ${t.kept} new examples appended \u00b7 ${provider}`
        : ending(t);
    state.dataset.state = t.state;
    fallbacks.append(...(t.fallbacks || []).map((f) =>
      h('li', { 'data-provider': f.provider }, h('strong', { text: `${f.provider} skipped: ` }), f.reason)));
    result.append(term('Kept', t.kept),
      ...Object.entries(t.dropped || {}).map(([why, n]) => term(`Dropped: ${why}`, n)),
      ...Object.entries(t.by_provider || {}).map(([name, n]) => term(`From ${name}`, n)));
    const finished = was && was.id === t.id && was.state === 'running' && t.state !== 'running';
    if (finished) announce(t.state === 'succeeded' ? `Generated ${t.kept} examples.` : `${ending(t)}.`,
      t.state === 'failed' ? 'error' : 'info');
    onUpdate(t, finished);
  }

  async function poll() {
    const r = await api.generation(skill);
    if (r.status === 200) render(r.body.task);
  }

  // Follow the running task's events (its snapshot first) until it ends.
  const feed = taskFeed(root, { render, poll });
  const follow = () => feed.follow(api.generateEventsUrl(skill));
  const unfollow = () => feed.unfollow();

  go.addEventListener('click', async () => {
    if (go.disabled) return;
    busy = true;
    renderButton();  // disabled before any await: one click, one task
    await startTask(() => api.generate(skill, parseInt(count.value, 10)),
      { render, follow, what: 'generate', already: 'A generation was already running: showing it.' });
    busy = false;
    renderButton();
  });

  stop.addEventListener('click', async () => {
    stop.disabled = true;
    const r = await api.cancelGeneration(skill);
    stop.disabled = false;
    if (r.status === 202) { announce('Cancelling: it stops before its next provider call.'); render(r.body.task); }
    else announce(`Could not cancel: ${errorText(r)}`, 'error');
  });

  return {
    async show(id) {
      skill = id;
      unfollow();
      render(null);
      await poll();
      if (task && task.state === 'running') follow();
    },
  };
}
