// runs.js: a skill's scenario runs (docs/scenarios.md, "Runs"): "Run scenarios" on the base
// model, one of the skill's adapter versions or a checkpoint of one of its training jobs (the
// list fetched again each time the picker takes focus, as a running job writes new ones), judge
// on or off; the runs, newest first, with
// their state, progress and pass rate, a live one's Cancel, live while one is queued or running (SSE
// .../scenario-runs/events, polling the list when SSE fails; the stream is open only then, so an
// idle tab holds no extra connection); a run's results, and two ticked runs compared
// (run_results.js).
import { api, errorText } from './api.js';
import { h, announce, when } from './dom.js';
import { liveFeed } from './feed.js';
import { runView, compareView, runLabel } from './run_results.js';

const LIVE = new Set(['queued', 'running']);
const EVENTS = ['snapshot', 'queued', 'progress', 'done', 'error', 'cancelled'];

const started = (run) => when((run.started_at || run.created_at) * 1000);
const rate = (run) => (run.total ? `${run.passed}/${run.total} (${Math.round((100 * run.passed) / run.total)}%)` : '\u2014');

// createRuns(root) -> {show(skill), setAdapters(adapters), setScenarios(list), reload()}
export function createRuns(root) {
  const target = h('select', { id: 'run-target' });
  const judge = h('input', { id: 'run-judge', type: 'checkbox', checked: true });
  const go = h('button.primary', { type: 'button', id: 'run-start' }, 'Run scenarios');
  const rows = h('tbody', { id: 'run-rows' });
  const compare = h('button', { type: 'button', id: 'run-compare', disabled: true }, 'Compare the two ticked runs');
  const detail = h('div.run-detail', { id: 'run-detail', 'aria-live': 'polite' });
  root.append(
    h('p.hint', { text: 'A run answers every scenario with one model and checks each answer; each new adapter is run after its training. Tick two runs to see their answers side by side.' }),
    h('div.run-controls', {},
      h('label.sc-field', { for: 'run-target' }, 'Model', target),
      h('label.inline', { for: 'run-judge' }, judge, 'Judge the rubrics (the providers score 1\u20135)'),
      go),
    h('div.table-wrap', {}, h('table.runs', {},
      h('thead', {}, h('tr', {}, ...['Pick', 'Run', 'Progress', 'Passed'].map((t) => h('th', { scope: 'col', text: t })))),
      rows)),
    h('div.run-compare-bar', {}, compare),
    detail);

  let skill = null;
  let versions = [];    // the skill's adapter versions, newest first
  let checkpoints = []; // [{job, step, job_state}]
  let runs = [];
  let scenarios = [];
  let ticked = [];    // run ids, at most two
  let showing = null; // {run} or {compare: [a, b]}
  let feed = null;

  function renderRows() {
    if (!runs.length) {
      rows.replaceChildren(h('tr', {}, h('td', { colspan: 4, text: 'No runs yet.' })));
    } else {
      rows.replaceChildren(...runs.map((run) => h('tr', { 'data-run': run.id, 'data-state': run.state },
        h('td', {}, h('input', { type: 'checkbox', checked: ticked.includes(run.id), 'aria-label': `Compare run ${run.id}`,
          onchange: (e) => tick(run.id, e.target.checked) })),
        h('td', {}, h('strong', { text: runLabel(run) }), h('br'), h('small.hint', { text: started(run) })),
        h('td.run-progress', {},
          h('span.badge', { 'data-run-state': run.state, text: run.state }), h('br'),
          h('progress', { max: run.total || 1, value: run.answered, 'aria-label': `Scenarios answered in run ${run.id}` }),
          h('span', { text: ` ${run.answered} of ${run.total ?? '?'}` })),
        h('td', {}, rate(run), h('br'),
          h('button.small', { type: 'button', 'aria-label': `Results of run ${run.id}`, onclick: () => openRun(run.id) }, 'Results'),
          LIVE.has(run.state) ? h('button.small', { type: 'button', 'aria-label': `Cancel run ${run.id}`, onclick: () => cancel(run.id) }, 'Cancel') : null))));
    }
    compare.disabled = ticked.length !== 2;
  }

  // The API answers with the run: cancelled at once when queued; a running one ends after the
  // answer being written is cut short, which its stream then says.
  async function cancel(id) {
    const r = await api.cancelRun(skill, id);
    if (r.status !== 200) { announce(`Could not cancel the run: ${errorText(r)}`, 'error'); return; }
    update(r.body.run);
    announce(`Run ${runLabel(r.body.run)} cancelled.`);
  }

  function tick(id, on) {
    ticked = on ? [...ticked.filter((t) => t !== id), id].slice(-2) : ticked.filter((t) => t !== id);
    renderRows();
  }

  async function fetchRun(id) {
    const r = await api.run(skill, id);
    return r.status === 200 ? r.body.run : null;
  }

  async function openRun(id) {
    showing = { run: id };
    const run = await fetchRun(id);
    if (run && showing.run === id) detail.replaceChildren(runView(run, scenarios));
  }

  async function openCompare(ids) {
    showing = { compare: ids };
    const pair = await Promise.all(ids.map(fetchRun));
    if (pair.every(Boolean) && showing.compare === ids) detail.replaceChildren(compareView(pair, scenarios));
  }

  function closeFeed() {
    if (feed) feed.close();
    feed = null;
    delete root.dataset.feed;
  }

  // A run's summary into the list; the results shown follow it.
  function update(summary) {
    const at = runs.findIndex((r) => r.id === summary.id);
    if (at >= 0) runs[at] = summary;
    else runs = [summary, ...runs];
    renderRows();
    if (showing && (showing.run === summary.id || (showing.compare || []).includes(summary.id))) {
      if (showing.run) openRun(showing.run);
      else openCompare(showing.compare);
    }
  }

  function setRuns(list) {
    const ended = runs.filter((r) => LIVE.has(r.state)).map((r) => r.id)
      .filter((id) => list.some((r) => r.id === id && !LIVE.has(r.state)));
    runs = list;
    renderRows();
    for (const id of ended) update(list.find((r) => r.id === id));
    if (!runs.some((r) => LIVE.has(r.state))) closeFeed();
  }

  async function poll() {
    const r = await api.runs(skill);
    if (r.status === 200) setRuns(r.body.runs);
  }

  function follow() {
    if (feed) return;
    feed = liveFeed({
      url: api.runsEventsUrl(skill),
      events: EVENTS,
      onEvent: (type, ev) => {
        if (type === 'snapshot') { setRuns(ev.runs); return; }
        update(ev);
        if (!LIVE.has(ev.state) && !runs.some((r) => LIVE.has(r.state))) closeFeed();
      },
      poll,
      onMode: (mode) => { root.dataset.feed = mode; },
    });
  }

  // The picker: the base, the versions, the jobs' checkpoints ("ckpt:<job>:<step>"); the choice kept.
  function renderTargets() {
    const chosen = target.value;
    target.replaceChildren(h('option', { value: 'base', text: 'Base model (untrained)' }),
      versions.length ? h('optgroup', { label: 'Adapter versions' },
        ...versions.map((v) => h('option', { value: v, text: `Adapter version ${v}` }))) : null,
      checkpoints.length ? h('optgroup', { label: 'Checkpoints of training jobs' },
        ...checkpoints.map((c) => h('option', { value: `ckpt:${c.job}:${c.step}`, text: `Job ${c.job} (${c.job_state}), step ${c.step}` }))) : null);
    if ([...target.options].some((o) => o.value === chosen)) target.value = chosen;
  }

  async function loadCheckpoints() {
    const id = skill;
    const r = await api.checkpoints(id);
    if (id !== skill || r.status !== 200) return;
    checkpoints = r.body.checkpoints;
    renderTargets();
  }

  async function reload() {
    await Promise.all([poll(), loadCheckpoints()]);
    if (runs.some((r) => LIVE.has(r.state))) follow();
  }

  const targetBody = (value) => {
    const ckpt = /^ckpt:(.+):(\d+)$/.exec(value);
    if (ckpt) return { job: ckpt[1], step: Number(ckpt[2]) };
    return value === 'base' ? { target: 'base' } : { version: value };
  };

  go.addEventListener('click', async () => {
    go.disabled = true;
    const body = { ...targetBody(target.value), judge: judge.checked };
    try {
      const r = await api.startRun(skill, body);
      if (r.status !== 202) { announce(`Could not start the run: ${errorText(r)}`, 'error'); return; }
      update(r.body.run);
      showing = { run: r.body.run.id };
      detail.replaceChildren(runView(r.body.run, scenarios));
      follow();
      announce(`Running the scenarios on the ${runLabel(r.body.run)}.`);
    } finally {
      go.disabled = !scenarios.length;
    }
  });
  compare.addEventListener('click', () => openCompare([...ticked]));
  target.addEventListener('focus', () => skill && loadCheckpoints());

  return {
    show(id) {
      skill = id;
      closeFeed();
      runs = [];
      checkpoints = [];
      ticked = [];
      showing = null;
      detail.replaceChildren();
      renderRows();
      return reload();
    },
    // The skill's adapter versions into the model picker, newest first.
    setAdapters(adapters) {
      versions = adapters.filter((a) => a.skill === skill).map((a) => a.version);
      renderTargets();
    },
    setScenarios(list) {
      scenarios = list;
      go.disabled = !list.length;
      go.title = list.length ? '' : 'Add scenarios first.';
    },
    reload: () => skill && reload(),
  };
}
