// scenarios.js: a skill's test scenarios (docs/scenarios.md): the list (id, question, checks
// as chips, rubric) with Edit and Delete, Add (scenario_form.js), and Replace all from a JSONL
// file, refused line by line as the data upload is. The suggested drafts (suggest.js) are kept
// through the same form and API.
import { api, errorText } from './api.js';
import { h, announce, showLineErrors } from './dom.js';
import { scenarioCard } from './checks.js';
import { createScenarioForm } from './scenario_form.js';

// createScenarios(root, dialog, {onChange(list)}) -> {show(skill), add(s) -> response, edit(s,
// {title, saved})}: onChange after every load, with the scenarios as saved.
export function createScenarios(root, dialog, { onChange }) {
  const list = h('ul.scenarios', { id: 'sc-list', 'aria-label': 'Scenarios' });
  const count = h('p.hint', { id: 'sc-count', role: 'status' });
  const add = h('button.primary', { type: 'button', id: 'sc-add' }, 'Add a scenario');
  const file = h('input', { type: 'file', id: 'sc-file', accept: '.jsonl,.ndjson,application/x-ndjson' });
  const upload = h('button', { type: 'button', id: 'sc-upload' }, 'Replace all from the file');
  const errors = h('ul.errors', { id: 'sc-upload-errors', 'aria-live': 'polite' });
  root.append(
    h('p.hint', { text: 'The situations this skill must handle, each with the checks a good answer passes. Every adapter can be run on them (Scenario runs, below), so two versions compare on what matters.' }),
    h('div.sc-top', {}, add,
      h('div.upload', {}, h('label', { for: 'sc-file', text: 'Or a JSONL file, one scenario a line' }), file, upload)),
    errors, count, list);

  let skill = null;
  let onSaved = () => {};
  const form = createScenarioForm(dialog, {
    save: (s, id) => (id ? api.updateScenario(skill, id, s) : api.addScenario(skill, s)),
    saved: (s) => { onSaved(s); load(); },
  });

  function edit(s, { title, saved = () => {}, fresh = false }) {
    onSaved = saved;
    form.open(s, { title, edit: fresh ? null : s.id });
  }

  async function remove(s) {
    if (!confirm(`Delete the scenario ${s.id}?`)) return;
    const r = await api.deleteScenario(skill, s.id);
    if (r.status === 200) announce(`Deleted ${s.id}.`);
    else announce(`Could not delete: ${errorText(r)}`, 'error');
    await load();
  }

  function render(scenarios) {
    count.textContent = scenarios.length ? `${scenarios.length} scenario${scenarios.length > 1 ? 's' : ''}`
      : 'No scenarios yet: add one, suggest some below, or upload a file.';
    list.replaceChildren(...scenarios.map((s) => scenarioCard(s,
      h('button', { type: 'button', 'aria-label': `Edit ${s.id}`, onclick: () => edit(s, { title: `Edit ${s.id}` }) }, 'Edit'),
      h('button.danger', { type: 'button', 'aria-label': `Delete ${s.id}`, onclick: () => remove(s) }, 'Delete'))));
  }

  async function load() {
    const id = skill;
    const r = await api.scenarios(id);
    if (id !== skill) return;
    if (r.status !== 200) {
      errors.replaceChildren(h('li', { text: errorText(r) }));
      render([]);
      onChange([]);
      return;
    }
    render(r.body.scenarios);
    onChange(r.body.scenarios);
  }

  add.addEventListener('click', () => edit(null, { title: 'New scenario', fresh: true }));
  upload.addEventListener('click', async () => {
    if (!file.files[0]) { announce('Choose a JSONL file first.', 'error'); return; }
    const r = await api.replaceScenarios(skill, await file.files[0].text());
    if (r.status !== 200) { showLineErrors(errors, errorText(r), r.body && r.body.lines); return; }
    errors.replaceChildren();
    announce(`Saved ${r.body.scenarios.length} scenarios from the file.`);
    await load();
  });

  return {
    show(id) {
      skill = id;
      errors.replaceChildren();
      return load();
    },
    add: (s) => api.addScenario(skill, s).then(async (r) => { if (r.status === 201) await load(); return r; }),
    // A draft, edited before it is kept: saved as a new scenario.
    edit: (s, opts) => edit(s, { ...opts, fresh: true }),
  };
}
