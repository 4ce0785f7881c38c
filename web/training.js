// training.js: THE training component, the only place training starts. It owns the form
// (the skill's base model, hyperparameters with defaults and explanations, and what the run
// will cost: estimate.js), Start/Cancel/Resume, and the live view (stat cards, progress bar,
// loss chart, samples, log tail, tips) fed by the SSE stream /api/training/events/:skill,
// falling back to polling the status every 3 s when SSE fails. Before any run it says what
// will appear and what to do; a refused start marks each field the server named; a finished
// run is celebrated, and a poor result is said plainly with what usually helps.
import { api, errorText } from './api.js';
import { h, num, announce } from './dom.js';
import { lossChart } from './chart.js';
import { liveFeed } from './feed.js';
import { createEstimate } from './estimate.js';
import { modelText } from './models.js';
import { duration } from './duration.js';
import { activityLine } from './activity.js';
import confetti from './vendor/confetti.module.mjs';

const LOG_LINES = 20;
const SAMPLES = 4;
const LIVE = new Set(['queued', 'running']);

// The hyperparameters the form offers: [name in the spec, label, step, explanation]. Their
// values and limits come from the server (GET /api/training/defaults/:skill: the trainer's
// defaults for its model, then the skill's, and each field's range as the trainer checks it),
// and a start sends only the fields the user changed, so the server's choice for the model
// (such as a small model's higher learning rate) holds.
export const FIELDS = [
  ['epochs', 'Epochs', 1, 'Passes over the data. The default suits the model: 2–4 for 50–500 examples on a real model, more for a small one; too many memorises.'],
  ['max_steps', 'Max steps', 1, 'Stop after this many optimizer steps (0: run the epochs).'],
  ['lr', 'Learning rate', 0.00001, 'Step size. The default suits the model (1e-4 to 3e-4 is usual for LoRA, more for a small model); too high makes the loss jump.'],
  ['lora.r', 'LoRA rank', 1, 'Capacity of the adapter. 8–16 teaches a tone and facts; higher costs memory.'],
  ['lora.alpha', 'LoRA alpha', 1, 'Scales the update by alpha/rank; twice the rank is a safe default.'],
  ['max_len', 'Max tokens per example', 1, 'Longer examples are cut; the data view counts them.'],
  ['eval.fraction', 'Held-out share', 0.05, 'Share of examples kept out of training to measure eval loss.'],
];

// How the form names the spec's devices: [value, label]; the server says which there are.
const DEVICES = [['auto', 'Auto: a GPU when the server has one'], ['cpu', 'CPU'], ['cuda', 'GPU (CUDA)']];

// How the view names the device a run reported.
const deviceLabel = (p) => (p.device === 'cpu' ? 'the CPU' : p.device_name || 'the GPU');

// Learning rates far outside LoRA's usual 1e-5..1e-2 (a small model's default is 5e-3): a
// factor of 3 beyond either end is warned about, not refused (an experiment may want it).
const LR_LOW = 3e-6;
const LR_HIGH = 3e-2;

// What a value in the form is worth a warning for: the field's name -> (value, model) -> text.
const WARNINGS = {
  lr: (v) => (v > 0 && v < LR_LOW ? 'Far below the usual 1e-5 to 1e-2: the loss will hardly move.'
    : v > LR_HIGH ? 'Far above the usual 1e-5 to 1e-2: the loss may jump or explode.' : ''),
  max_len: (v, model) => (model && model.context && v > model.context
    ? `Above this model's context of ${model.context} tokens: examples are cut to ${model.context}.` : ''),
};

const valueAt = (obj, name) => name.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);

// The fields whose value differs from defaults, as a spec.
function specFrom(form, defaults) {
  const spec = {};
  for (const [name] of FIELDS) {
    const input = form.elements[name];
    if (input.value === '') continue;
    const value = parseFloat(input.value);
    if (value === valueAt(defaults, name)) continue;
    const path = name.split('.');
    let t = spec;
    for (const k of path.slice(0, -1)) t = t[k] ??= {};
    t[path[path.length - 1]] = value;
  }
  const device = form.elements.device.value;
  if (device !== (defaults.device ?? 'auto')) spec.device = device;
  return spec;
}

// A run's epoch count: whole, or fractional when max_steps ends it mid-epoch.
function epochs(n) {
  return typeof n !== 'number' ? '—' : Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function card(label) {
  const value = h('span.stat-value', { text: '—' });
  return { node: h('div.stat', { role: 'group', 'aria-label': label }, h('span.stat-label', { text: label }), value), value };
}

// createTraining(root, {onFinished(state), onModel()}) -> {show(skill), loadModels()}: builds
// the component in root; onModel after the skill's base model changed.
export function createTraining(root, { onFinished, onModel }) {
  const baseModel = h('select', { name: 'base_model', id: 'base-model', 'aria-describedby': 'help-base_model' });
  const form = h('form.train-form', { 'aria-label': 'Training settings' },
    h('label.field.wide', {},
      h('span', { text: 'Base model' }),
      baseModel,
      h('small', { id: 'help-base_model', text: 'The model the adapter teaches. A bigger one answers far better and costs more time and memory: the estimate below says how much. Pull more with fastbrain pull ORG/NAME.' })),
    ...FIELDS.map(([name, label, step, help]) => h('label.field', {},
      h('span', { text: label }),
      h('input', { name, type: 'number', step, 'aria-describedby': `note-${name} help-${name}` }),
      h('small.field-note', { id: `note-${name}`, hidden: true }),
      h('small', { id: `help-${name}`, text: help }))),
    h('label.field', {},
      h('span', { text: 'Compute on' }),
      h('select', { name: 'device', 'aria-describedby': 'help-device' },
        ...DEVICES.map(([value, label]) => h('option', { value, text: label }))),
      h('small', { id: 'help-device', text: 'Auto trains on an NVIDIA GPU (Ampere or newer) when the server can use one, else on the CPU; the log says which.' })));
  const start = h('button.primary', { type: 'button', id: 'start' }, 'Start training');
  const cancel = h('button', { type: 'button', id: 'cancel', hidden: true }, 'Cancel');
  const resume = h('button', { type: 'button', id: 'resume', hidden: true }, 'Resume');
  const stateLine = h('p.state', { id: 'train-state', role: 'status' });
  const fewExamples = h('p.warn', { id: 'few-examples', hidden: true });
  const estimateBox = h('div.estimate', { id: 'estimate', 'aria-live': 'polite', 'aria-label': 'Estimated cost' });
  const cards = { loss: card('Training loss (smoothed)'), steps: card('Steps'), eta: card('Time left'), epoch: card('Epoch') };
  const bar = h('div.bar-fill');
  const barLabel = h('span.bar-label', { text: '0%' });
  const progress = h('div.bar', { role: 'progressbar', 'aria-label': 'Training progress',
    'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': 0 }, bar, barLabel);
  const canvas = h('canvas', { id: 'loss-chart', role: 'img', 'aria-label': 'Training loss (smoothed and each step) and held-out loss by step' });
  const samples = h('ul.samples', { id: 'samples' });
  const log = h('pre.log', { id: 'log', tabindex: 0, 'aria-label': 'Training log' });
  const tip = h('p.tip', { id: 'tip', 'aria-live': 'polite' });
  const failure = h('div.failure', { id: 'failure', role: 'alert', hidden: true });
  const result = h('div.train-result', { id: 'train-result', role: 'status', hidden: true });
  const emptyAction = h('p.empty-action');
  const empty = h('div.empty-state', { id: 'train-empty', hidden: true },
    emptyAction,
    h('p', { text: 'Once it runs, this space shows:' }),
    h('ul', {},
      h('li', { text: 'the smoothed training loss, the steps done and the time left, with a progress bar;' }),
      h('li', { text: 'a chart of the training loss at each step and the held-out loss at each evaluation (lower is better);' }),
      h('li', { text: 'the adapter\'s answers to the skill\'s sample prompts as it learns;' }),
      h('li', { text: 'a log of the run: steps, evaluations, checkpoints, cancel and resume.' })));
  const live = h('div.live', { id: 'live' },
    h('div.stats', {}, ...Object.values(cards).map((c) => c.node)),
    progress, failure, result,
    h('div.chart-box', {}, canvas),
    h('div.live-cols', {},
      h('section', { 'aria-labelledby': 'samples-h' }, h('h3', { id: 'samples-h', text: 'Latest samples' }), samples),
      h('section', { 'aria-labelledby': 'log-h' }, h('h3', { id: 'log-h', text: 'Log' }), log)));
  root.append(
    h('div.train-top', {}, h('div', {}, form, estimateBox), h('div.actions', {}, start, cancel, resume, stateLine, fewExamples)),
    empty, live,
    h('aside.tips', { 'aria-label': 'Tip' }, h('span.tip-icon', { 'aria-hidden': 'true', text: '💡' }), tip));
  const chart = lossChart(canvas);
  // Our own canvas and no worker: the server's CSP allows neither blob workers nor inline styles.
  const confettiCanvas = h('canvas.confetti', { 'aria-hidden': 'true' });
  document.body.append(confettiCanvas);
  const celebrate = confetti.create(confettiCanvas, { resize: true, useWorker: false, disableForReducedMotion: true });

  let skill = null;
  let job = null;      // the job the view shows
  let state = null;    // its state
  let busy = false;    // a start request is in flight
  let examples = null; // the skill's example count (setExamples), null until known
  let where = null;    // the device the job reported
  let note = '';       // what the scheduler says of a live job ("Slurm: PENDING (Resources)")
  let saving = false;  // the steps are done and the adapter is being written
  let feed = null;     // the live feed of the skill's events
  let logLines = [];   // [{kind, text}] (activity.js)
  let models = [];     // the models the picker offers
  let defaults = {};       // what the server runs for each field a start leaves out
  let edited = new Set();  // fields the user changed since the skill was shown
  let fits = true;         // the run fits in the memory free (the estimate's word)
  let defaultModel = null; // the server's default base model
  const estimate = createEstimate(estimateBox, { onFits: (ok) => { fits = ok; renderButtons(); } });
  const reestimate = () => {
    if (skill && baseModel.value) estimate.update(skill, baseModel.value, specFrom(form, defaults));
  };
  form.addEventListener('input', (e) => {
    if (e.target === baseModel) return;
    edited.add(e.target.name);
    e.target.removeAttribute('aria-invalid');  // the server's word on the old value no longer holds
    renderNote(e.target.name);
    reestimate();
  });

  // A field's note: the server's error for it, else a warning about its value, else nothing.
  function renderNote(name, error) {
    const note = form.querySelector(`#note-${CSS.escape(name)}`);
    if (!note) return;
    const input = form.elements[name];
    const warn = WARNINGS[name];
    const model = models.find((m) => m.id === baseModel.value);
    const text = error || (warn && input.value !== '' ? warn(Number(input.value), model) : '');
    note.textContent = text;
    note.hidden = !text;
    note.dataset.kind = error ? 'error' : 'warning';
    if (error) input.setAttribute('aria-invalid', 'true');
  }
  const renderNotes = () => { for (const [name] of FIELDS) if (!form.elements[name].hasAttribute('aria-invalid')) renderNote(name); };

  // A 400's {fields: {name: problem}} at the fields; those the form has no field for, in the toast.
  function showFieldErrors(r) {
    const fields = (r.body && r.body.fields) || {};
    const elsewhere = [];
    let first = null;
    for (const [name, problem] of Object.entries(fields)) {
      if (form.querySelector(`#note-${CSS.escape(name)}`)) {
        renderNote(name, `${problem}.`);
        first = first || form.elements[name];
      } else {
        elsewhere.push(`${name}: ${problem}`);
      }
    }
    const marked = first ? 'the fields marked below' : '';
    announce(`Could not start training: ${[marked, ...elsewhere].filter(Boolean).join('; ') || errorText(r)}`, 'error');
    if (first) first.focus();
  }

  // The models into the picker, the skill's own selected.
  async function loadModels(id) {
    const [list, sk] = await Promise.all([api.models(), api.skill(id)]);
    if (list.status !== 200 || sk.status !== 200 || skill !== id) return;
    defaultModel = list.body.default;
    const chosen = sk.body.skill.base_model || defaultModel;
    baseModel.replaceChildren(...list.body.models.map((m) => h('option', {
      value: m.id, text: modelText(m), disabled: !m.supported, selected: m.id === chosen })));
    baseModel.value = chosen;
    models = list.body.models;
    examples = sk.body.skill.examples;
    renderEmpty();
    renderNotes();
  }

  baseModel.addEventListener('change', async () => {
    const id = skill;
    const value = baseModel.value;
    const r = await api.patchSkill(id, { base_model: value === defaultModel ? null : value });
    if (r.status !== 200) {
      announce(`Could not change the base model: ${errorText(r)}`, 'error');
      await loadModels(id);
      return;
    }
    announce(`${id} now trains on ${value}.`);
    onModel();
    await loadDefaults(id);
    reestimate();
  });

  // The skill's defaults into the fields the user has not changed.
  async function loadDefaults(id) {
    const r = await api.defaults(id);
    if (r.status !== 200 || skill !== id) return;
    defaults = r.body.defaults;
    applyLimits(r.body.fields || {});
    for (const [name] of FIELDS) {
      if (!edited.has(name)) form.elements[name].value = valueAt(defaults, name) ?? '';
    }
    if (!edited.has('device')) form.elements.device.value = defaults.device ?? 'auto';
    renderNotes();
  }

  // The trainer's range for each number and its choice of devices (the fields a request may set,
  // as the server describes them), so the browser knows the limits the server checks.
  function applyLimits(fields) {
    for (const [name] of FIELDS) {
      const f = fields[name];
      if (f && f.min !== undefined) Object.assign(form.elements[name], { min: f.min, max: f.max });
    }
    const choices = fields.device && fields.device.choices;
    if (!choices) return;
    const device = form.elements.device;
    const chosen = device.value;
    const label = new Map(DEVICES);
    device.replaceChildren(...choices.map((value) => h('option', { value, text: label.get(value) || value })));
    device.value = choices.includes(chosen) ? chosen : choices[0];
  }

  // No run yet: what will appear, and the one thing to do (add examples first when there are none).
  function renderEmpty() {
    empty.hidden = Boolean(job);
    live.hidden = !job;
    emptyAction.replaceChildren(examples === 0
      ? h('strong', { text: 'This skill has no examples yet: add some under Data below (upload a JSONL file or generate them), then press Start training.' })
      : h('strong', { text: 'Not trained yet: press Start training to teach the base model this skill.' }));
  }

  function renderButtons() {
    const running = LIVE.has(state);
    start.disabled = busy || running || !skill || !fits || examples === 0;
    start.textContent = running ? (saving ? 'Saving adapter…' : 'Training…') : busy ? 'Starting…' : 'Start training';
    cancel.hidden = !running;
    resume.hidden = running || !(state === 'cancelled' || state === 'interrupted');
    stateLine.textContent = state  // the empty state says it
      ? `Job ${job}: ${state}${where ? ` on ${where}` : ''}${LIVE.has(state) && note ? ` (${note})` : ''}` : '';
    start.title = fits ? '' : 'This run would not fit in the memory free: see the estimate.';
    fewExamples.hidden = examples === null || examples >= 20;
    fewExamples.textContent = examples === 0 ? 'No examples yet: add some in Data below to train.'
      : `Only ${examples} examples: 20 or more teach a skill more reliably.`;
    renderEmpty();
  }

  function renderProgress(p) {
    if (p.device && !where) { where = deviceLabel(p); renderButtons(); }
    const loss = p.loss_smoothed ?? p.loss;
    if (loss !== undefined) cards.loss.value.textContent = num(loss);
    if (p.step !== undefined) cards.steps.value.textContent = `${p.step ?? 0} / ${p.total_steps ?? '—'}`;
    if (p.eta_s !== undefined) cards.eta.value.textContent = p.step > 0 ? duration(p.eta_s) : '—';
    if (p.epoch !== undefined) cards.epoch.value.textContent = `${num(p.epoch, 1)} / ${epochs(p.total_epochs)}`;
    if (typeof p.step === 'number' && p.total_steps) {
      const pct = Math.min(100, Math.round((100 * p.step) / p.total_steps));
      bar.style.width = `${pct}%`;
      barLabel.textContent = saving ? 'Saving adapter…' : `${pct}%`;
      progress.setAttribute('aria-valuenow', pct);
      if (!saving) progress.removeAttribute('aria-valuetext');
    }
  }

  // The steps are done: the bar and the button say the adapter is being written.
  function startSaving() {
    saving = true;
    if (cards.eta.value.textContent !== '—') cards.eta.value.textContent = duration(0);
    barLabel.textContent = 'Saving adapter…';
    progress.setAttribute('aria-valuetext', 'Saving adapter');
    renderButtons();
  }

  const sampleItem = (s) => h('li', {}, h('strong', { text: `Step ${s.step}: ${s.prompt}` }), h('p', { text: s.text }));
  function renderSamples(list) {
    samples.replaceChildren(...(list || []).slice(-SAMPLES).reverse().map(sampleItem));
  }

  // An event into the log tail: a step replaces the step before it.
  function addLog(ev) {
    const line = activityLine(ev);
    if (!line) return;
    const last = logLines[logLines.length - 1];
    if (last && last.text === line.text) return;  // a cancel's checkpoint of a step just saved
    logLines = [...(last && last.kind === 'step' && line.kind === 'step' ? logLines.slice(0, -1) : logLines), line]
      .slice(-LOG_LINES);
    log.textContent = logLines.map((l) => l.text).join('\n');
    log.scrollTop = log.scrollHeight;  // a tail: the latest line in view
  }

  function reset() {
    where = null;
    note = '';
    saving = false;
    for (const c of Object.values(cards)) c.value.textContent = '—';
    bar.style.width = '0%';
    barLabel.textContent = '0%';
    progress.setAttribute('aria-valuenow', 0);
    progress.removeAttribute('aria-valuetext');
    chart.set([], [], []);
    samples.replaceChildren();
    logLines = [];
    log.textContent = '';
    failure.hidden = true;
    result.hidden = true;
  }

  // The job's recent activity into the log tail.
  async function loadActivity(id) {
    const r = await api.activity(skill, LOG_LINES);
    if (r.status !== 200 || r.body.job !== id || job !== id) return;
    logLines = [];
    for (const ev of r.body.events) addLog(ev);
    // Reloaded while the adapter is written: say so, as the live event did.
    const { events } = r.body;
    if (LIVE.has(state) && events.findLastIndex((e) => e.event === 'saving') > events.findLastIndex((e) => e.event === 'start')) {
      startSaving();
    }
  }

  // A finished run's result: plain words when it is poor, and what usually helps.
  function renderResult(st) {
    const s = st.summary;
    if (st.state !== 'succeeded' || !s) { result.hidden = true; return; }
    const heldOut = typeof s.eval_loss === 'number'
      ? ` Its held-out loss is ${num(s.eval_loss)}${typeof s.base_eval_loss === 'number' ? ` (the base model's ${num(s.base_eval_loss)})` : ''}.` : '';
    const poor = st.badge === 'needs work';
    result.dataset.verdict = poor ? 'poor' : 'ok';
    result.replaceChildren(poor
      ? h('p', {}, h('strong', { text: 'Finished, but this adapter needs work: ' }),
        `its answers are still far from the examples.${heldOut} What usually helps: more examples (it trained on ${s.examples}), ` +
        'more epochs, or a larger base model.')
      : h('p', {}, h('strong', { text: `Finished: the adapter is saved and rated ${st.badge || 'unknown'}.` }), heldOut,
        ' Try it in the preview below.'));
    result.hidden = false;
  }

  // The job's last log lines.
  async function logTail(id) {
    const r = await api.jobLog(id, LOG_LINES);
    return r.status === 200 ? r.body.lines.map((l) => l.message) : [];
  }

  async function showFailure(st) {
    const message = (st.error && st.error.message) || st.reason || 'the worker failed';
    const tail = await logTail(st.job);
    failure.replaceChildren(h('strong', { text: `Training failed: ${message}` }), h('pre', { text: tail.join('\n') }));
    failure.hidden = false;
  }

  // A status object (snapshot event or polled) replaces the whole view.
  async function renderStatus(st) {
    if (!st || !st.job) { job = null; state = null; reset(); renderButtons(); return; }
    const other = st.job !== job;
    if (other) reset();
    job = st.job;
    state = st.state;
    note = st.reason || '';
    saving = saving && LIVE.has(state);
    renderButtons();
    renderProgress(st);
    if (!LIVE.has(state)) cards.eta.value.textContent = '—';  // nothing left to wait for
    chart.set(st.loss_history, st.eval_history, st.smoothed_history);
    renderSamples(st.samples);
    renderResult(st);
    if (st.state === 'failed') await showFailure(st);
    else failure.hidden = true;
    if (other) await loadActivity(st.job);
  }

  async function finished(next) {
    const r = await api.status(skill);
    if (r.status !== 200) return;
    await renderStatus(r.body);
    if (next === 'succeeded') {
      const count = (key) => { root.dataset[key] = String(Number(root.dataset[key] || 0) + 1); };
      count('finished');
      if (r.body.badge === 'needs work') {
        announce('Training finished, but the adapter needs work: see the result above the chart.');
      } else {
        count('confetti');
        celebrate({ particleCount: 150, spread: 80, origin: { y: 0.3 } });
        announce('Training finished: the adapter is saved.');
      }
    }
    onFinished(next);
  }

  // One event from the stream.
  function onEvent(type, ev) {
    if (type === 'snapshot') { renderStatus(ev); return; }
    if (type === 'tip') { tip.textContent = ev.text; return; }
    if (ev.job && ev.job !== job) { job = ev.job; reset(); }
    addLog({ ...ev, event: type });
    switch (type) {
      case 'start': case 'progress':
        renderProgress(ev);
        chart.add('loss', ev.step, ev.loss);
        chart.add('smoothed', ev.step, ev.loss_smoothed);
        break;
      case 'eval': chart.add('eval', ev.step, ev.eval_loss); break;
      case 'saving': startSaving(); break;
      case 'sample':
        samples.prepend(sampleItem(ev));
        while (samples.children.length > SAMPLES) samples.lastChild.remove();
        break;
      case 'state':
        state = ev.state;
        note = ev.reason || '';
        if (ev.state === 'running' || !LIVE.has(ev.state)) saving = false;  // a resume trains again; an end ends it
        renderButtons();
        if (!LIVE.has(ev.state)) finished(ev.state);
        break;
      default: break;
    }
  }

  // Polling (SSE failed): the status replaces the view; terminal transitions finish too.
  async function poll() {
    // The jobs list first: a skill never trained is no error (its status would be a 404).
    const jobs = await api.jobs(skill);
    if (jobs.status === 200 && jobs.body.total === 0) { renderStatus(null); return; }
    const r = await api.status(skill);
    if (r.status !== 200) return;
    const was = state;
    const sameJob = r.body.job === job;
    await renderStatus(r.body);
    if (sameJob && LIVE.has(was)) await loadActivity(job);  // no stream to add its lines
    if (sameJob && LIVE.has(was) && !LIVE.has(r.body.state)) finished(r.body.state);
  }

  function connect() {
    if (feed) feed.close();
    feed = liveFeed({
      url: api.eventsUrl(skill),
      events: ['snapshot', 'tip', 'start', 'progress', 'eval', 'checkpoint', 'saving', 'sample', 'log', 'error', 'done', 'state'],
      onEvent,
      poll,
      onMode: (mode) => { root.dataset.feed = mode; },
    });
  }

  // Show the job a start or resume answered with (its events may have arrived first).
  function attach(id) {
    if (id !== job) { job = id; state = 'queued'; reset(); }
    renderButtons();
  }

  start.addEventListener('click', async () => {
    if (start.disabled) return;
    busy = true;
    renderButtons();  // disabled before any await: a double-click sends one request
    try {
      const r = await api.train(skill, specFrom(form, defaults));
      if (r.status === 202) attach(r.body.job.id);
      else if (r.status === 409) { attach(r.body.job.id); announce('Training was already running: showing it.'); }
      else if (r.status === 400 && r.body && r.body.fields) showFieldErrors(r);
      else announce(`Could not start training: ${errorText(r)}`, 'error');
    } catch (e) {
      announce(`Could not start training: ${e.message}`, 'error');
    } finally {
      busy = false;
      renderButtons();
    }
  });

  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    const r = await api.cancel(skill);
    cancel.disabled = false;
    if (r.status !== 202) announce(`Could not cancel: ${errorText(r)}`, 'error');
  });

  resume.addEventListener('click', async () => {
    resume.disabled = true;
    const r = await api.resume(skill);
    resume.disabled = false;
    if (r.status === 202 || r.status === 409) attach(r.body.job.id);
    else announce(`Could not resume: ${errorText(r)}`, 'error');
  });

  return {
    // The skill's example count (the data view's): none disables Start, under 20 warns.
    setExamples(n) { examples = n; renderButtons(); },
    show(id) {
      skill = id;
      job = null;
      state = null;
      defaults = {};
      edited = new Set();
      examples = null;
      for (const [name] of FIELDS) { form.elements[name].removeAttribute('aria-invalid'); renderNote(name); }
      estimate.clear();
      reset();
      renderButtons();
      connect();
      Promise.all([loadModels(id), loadDefaults(id)]).then(reestimate);
    },
    // The models again (one was removed), the skill's choice kept.
    loadModels: () => skill && loadModels(skill),
  };
}
