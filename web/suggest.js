// suggest.js: "Suggest scenarios": POST .../scenarios/suggest {count} starts a task in which the
// provider chain drafts scenarios; while it runs it is followed live (SSE .../suggest/events,
// polling .../suggest when SSE fails), then its drafts are listed, each with Keep (saved as it
// is), Edit (the form, then saved) and Drop, beside what the server dropped and why, the
// provider that answered and each fallback. Drafts are not saved until kept; a kept or
// dropped one stays out of the list, after a reload too (this browser's localStorage).
import { api, errorText } from './api.js';
import { h, announce } from './dom.js';
import { taskFeed, startTask } from './feed.js';
import { scenarioCard } from './checks.js';

const MAX_COUNT = 20;
const HANDLED_KEY = 'fastbrain.suggest.handled';
const MAX_HANDLED = 500;  // the newest kept: older tasks' drafts are long gone

// The drafts kept or dropped in this browser: `${task}:${draft}` ids, oldest first.
function loadHandled() {
  try {
    const list = JSON.parse(localStorage.getItem(HANDLED_KEY) || '[]');
    return new Set(Array.isArray(list) ? list : []);
  } catch {
    return new Set();  // storage off or the entry spoilt: remember for this page only
  }
}

function saveHandled(set) {
  try {
    localStorage.setItem(HANDLED_KEY, JSON.stringify([...set].slice(-MAX_HANDLED)));
  } catch { /* storage off or full: remembered for this page only */ }
}

// createSuggest(root, {keep(draft) -> response, edit(draft, {title, saved})}) -> {show(skill),
// known(ids)}: known() names the skill's saved scenarios, whose drafts are shown no more.
export function createSuggest(root, { keep, edit }) {
  const count = h('input', { id: 'sug-count', type: 'number', min: 1, max: MAX_COUNT, step: 1, value: 5 });
  const go = h('button', { type: 'button', id: 'sug-start' }, 'Suggest scenarios');
  const state = h('p.state', { id: 'sug-state', role: 'status' });
  const fallbacks = h('ul.fallbacks', { id: 'sug-fallbacks', 'aria-label': 'Provider fallbacks' });
  const dropped = h('ul.dropped', { id: 'sug-dropped', 'aria-label': 'Dropped by the server' });
  const drafts = h('ul.scenarios.drafts', { id: 'sug-drafts', 'aria-label': 'Suggested drafts' });
  root.append(
    h('h3', { id: 'sug-h', text: 'Suggest scenarios' }),
    h('div.gen-controls', {}, h('label', { for: 'sug-count', text: 'How many' }), count, go),
    h('p.hint', { text: 'The providers (see Data providers) draft situations from the skill\u2019s description, instructions and a few examples. Nothing is saved until you keep it.' }),
    state, fallbacks, dropped, drafts);

  let skill = null;
  let task = null;
  let busy = false;
  let saved = new Set();   // ids of the skill's scenarios
  const handled = loadHandled();  // `${task}:${draft}` kept or dropped

  const running = () => busy || (task && task.state === 'running');
  const key = (d) => `${task.id}:${d.id}`;

  function renderButton() {
    go.disabled = running() || !skill;
    go.textContent = running() ? 'Suggesting\u2026' : 'Suggest scenarios';
  }

  function handle(d, how) {
    handled.add(key(d));
    saveHandled(handled);
    renderDrafts();
    announce(`${how} ${d.id}.`);
  }

  async function keepDraft(d) {
    const r = await keep(d);
    if (r.status === 201) handle(d, 'Kept');
    else announce(`Could not keep ${d.id}: ${errorText(r)}`, 'error');
  }

  function renderDrafts() {
    const open = task && task.state === 'succeeded'
      ? task.drafts.filter((d) => !handled.has(key(d)) && !saved.has(d.id)) : [];
    drafts.replaceChildren(...open.map((d) => scenarioCard(d,
      h('button.primary', { type: 'button', 'aria-label': `Keep ${d.id}`, onclick: () => keepDraft(d) }, 'Keep'),
      h('button', { type: 'button', 'aria-label': `Edit ${d.id}`,
        onclick: () => edit(d, { title: `Edit the draft ${d.id}`, saved: () => handle(d, 'Kept') }) }, 'Edit'),
      h('button', { type: 'button', 'aria-label': `Drop ${d.id}`, onclick: () => handle(d, 'Dropped') }, 'Drop'))));
  }

  function render(t) {
    const was = task;
    if (t && was && was.id === t.id && was.state !== 'running' && t.state === 'running') return;  // a late start answer
    task = t;
    if (t && t.state !== 'running') feed.unfollow();
    renderButton();
    fallbacks.replaceChildren(...((t && t.fallbacks) || []).map((f) =>
      h('li', { 'data-provider': f.provider }, h('strong', { text: `${f.provider} skipped: ` }), f.reason)));
    dropped.replaceChildren(...Object.entries((t && t.dropped) || {}).map(([why, n]) =>
      h('li', { text: `Dropped ${n}: ${why}` })));
    renderDrafts();
    state.dataset.state = t ? t.state : '';
    const from = t && t.provider ? ` \u00b7 written by ${t.provider}` : '';
    state.textContent = !t ? '' : t.state === 'running' ? `Asking the providers for ${t.count} scenarios\u2026`
      : t.state === 'succeeded' ? `${t.drafts.length} draft${t.drafts.length === 1 ? '' : 's'}${from}: keep, edit or drop each.`
        : `No drafts: ${t.error}`;
    if (was && was.id === t.id && was.state === 'running' && t.state !== 'running') {
      announce(t.state === 'succeeded' ? `${t.drafts.length} scenarios suggested.` : `Suggestions failed: ${t.error}`,
        t.state === 'succeeded' ? 'info' : 'error');
    }
  }

  async function poll() {
    const r = await api.suggestion(skill);
    if (r.status === 200) render(r.body.task);
  }
  const feed = taskFeed(root, { render, poll });
  const follow = () => feed.follow(api.suggestEventsUrl(skill));

  go.addEventListener('click', async () => {
    if (go.disabled) return;
    busy = true;
    renderButton();  // disabled before any await: one click, one task
    await startTask(() => api.suggest(skill, parseInt(count.value, 10)), { render, follow,
      what: 'suggest scenarios', already: 'Suggestions were already being written: showing them.' });
    busy = false;
    renderButton();
  });

  return {
    async show(id) {
      skill = id;
      feed.unfollow();
      task = null;
      render(null);
      await poll();
      if (task && task.state === 'running') follow();
    },
    known(ids) {
      saved = new Set(ids);
      renderDrafts();
    },
  };
}
