// scenario_form.js: the dialog that adds or edits one test scenario: its id, the conversation
// (turns with a role each, the last the user's), each hard check and the rubric. The server
// validates: its message ("invalid scenario: checks.regex: ...") is shown next to the field
// or turn it names, else under the form. Nothing is checked here that the server checks.
import { h } from './dom.js';
import { errorText } from './api.js';

const ROLES = [['user', 'Customer'], ['assistant', 'Skill'], ['system', 'Instructions']];
const TERMS = [
  ['must_include', 'Must say all of these', 'One per line. Case does not matter.'],
  ['must_include_any', 'Must say at least one of these', 'One per line: synonyms, so any wording passes.'],
  ['must_not_include', 'Must never say', 'One per line.'],
];

const lines = (text) => text.split('\n').map((t) => t.trim()).filter(Boolean);

// A field's error paragraph, named by the input it describes.
const errorFor = (id) => h('p.error.field-error', { id: `${id}-error`, role: 'alert' });

// createScenarioForm(dialog, {save(scenario, id) -> Promise<{status, body}>, saved(scenario)})
// -> {open(scenario | null, {title, keepId})}: save is called with the form's scenario and the
// id it edits (null: a new one); a 2xx closes the dialog and calls saved.
export function createScenarioForm(dialog, { save, saved }) {
  const title = h('h2', { id: 'scenario-dialog-title' });
  const id = h('input', { id: 'sc-id', name: 'id', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'sc-id-error sc-id-help' });
  const turns = h('ol.turns', { id: 'sc-turns' });
  const addTurn = h('button', { type: 'button', id: 'sc-add-turn' }, 'Add a turn');
  const terms = Object.fromEntries(TERMS.map(([name]) => [name,
    h('textarea', { id: `sc-${name}`, name, rows: 2, 'aria-describedby': `sc-${name}-error sc-${name}-help` })]));
  const regex = h('input', { id: 'sc-regex', name: 'regex', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'sc-regex-error' });
  const maxWords = h('input', { id: 'sc-max_words', name: 'max_words', type: 'number', min: 1, step: 1, 'aria-describedby': 'sc-max_words-error' });
  const question = h('select', { id: 'sc-ends_with_question', name: 'ends_with_question' },
    h('option', { value: '', text: 'Not checked' }), h('option', { value: 'true', text: 'Ends with a question' }),
    h('option', { value: 'false', text: 'Does not end with a question' }));
  const rubric = h('textarea', { id: 'sc-rubric', name: 'rubric', rows: 3, 'aria-describedby': 'sc-rubric-error sc-rubric-help' });
  const general = h('p.error', { id: 'sc-error', role: 'alert' });
  const submit = h('button.primary', { type: 'submit', id: 'sc-save' }, 'Save');
  const cancel = h('button', { type: 'button', id: 'sc-cancel' }, 'Cancel');
  const field = (label, input, help) => h('div.sc-field', {},
    h('label', { for: input.id, text: label }), input,
    help ? h('small', { id: `${input.id}-help`, text: help }) : null, errorFor(input.id));
  const form = h('form.scenario-form', { method: 'dialog', novalidate: true },
    title,
    field('Id (a-z, 0-9, - and _)', id, 'A short name for the situation, e.g. burst-pipe.'),
    h('fieldset', {}, h('legend', { text: 'Conversation (the skill answers the last customer turn)' }),
      turns, errorFor('sc-turns'), addTurn),
    h('fieldset.sc-checks', {}, h('legend', { text: 'Checks a good answer passes (all optional)' }),
      ...TERMS.map(([name, label, help]) => field(label, terms[name], help)),
      field('Must match the pattern (regular expression)', regex),
      field('At most this many words', maxWords),
      field('Question at the end', question)),
    field('What a good answer does, for the judge (scored 1–5)', rubric,
      'Plain words: "gives a price range and says the plumber confirms on site".'),
    general,
    h('div.dialog-actions', {}, cancel, submit));
  dialog.append(form);

  let editing = null;  // the id being edited, or null for a new scenario

  function turnRow(role = 'user', content = '') {
    const select = h('select', {},
      ...ROLES.map(([value, label]) => h('option', { value, text: label, selected: value === role })));
    const text = h('textarea', { rows: 2 });
    text.value = content;
    const remove = h('button', { type: 'button' }, 'Remove');
    const row = h('li.turn', {}, h('div.turn-line', {}, select, remove), text, h('p.error.field-error', { role: 'alert' }));
    remove.addEventListener('click', () => { row.remove(); numberTurns(); });
    return row;
  }

  // Names and error ids follow the turns' order (the server counts messages from 1).
  function numberTurns() {
    [...turns.children].forEach((row, i) => {
      const n = i + 1;
      row.querySelector('select').setAttribute('aria-label', `Turn ${n}: who speaks`);
      row.querySelector('textarea').setAttribute('aria-label', `Turn ${n}: what is said`);
      row.querySelector('textarea').setAttribute('aria-describedby', `sc-turn-${n}-error`);
      row.querySelector('button').setAttribute('aria-label', `Remove turn ${n}`);
      row.querySelector('.error').id = `sc-turn-${n}-error`;
    });
  }

  function clearErrors() {
    for (const p of form.querySelectorAll('.error')) p.textContent = '';
  }

  // The server's message next to what it names: "id: ...", "messages[2].content: ...",
  // "checks.regex: ...", "rubric: ..."; anything else under the form.
  function showError(message) {
    const text = message.replace(/^invalid scenario: /, '');
    const [, path, rest] = text.match(/^([\w.[\]]+): (.*)$/s) || [];
    const turn = path && path.match(/^messages\[(\d+)\]/);
    const target = !path ? null
      : path === 'id' || /exists/.test(text) ? '#sc-id-error'
        : turn ? `#sc-turn-${turn[1]}-error`
          : path === 'messages' ? '#sc-turns-error'
            : path.startsWith('checks.') ? `#sc-${path.slice(7)}-error`
              : path === 'rubric' ? '#sc-rubric-error' : null;
    const p = target && form.querySelector(target);
    if (p) p.textContent = rest;
    else general.textContent = text;
  }

  function scenario() {
    const checks = {};
    for (const [name] of TERMS) if (lines(terms[name].value).length) checks[name] = lines(terms[name].value);
    if (regex.value.trim()) checks.regex = regex.value.trim();
    if (maxWords.value !== '') checks.max_words = Number(maxWords.value);
    if (question.value) checks.ends_with_question = question.value === 'true';
    const s = { id: id.value.trim(), messages: [...turns.children].map((row) => ({
      role: row.querySelector('select').value, content: row.querySelector('textarea').value })) };
    if (Object.keys(checks).length) s.checks = checks;
    if (rubric.value.trim()) s.rubric = rubric.value.trim();
    return s;
  }

  function fill(s) {
    const c = (s && s.checks) || {};
    id.value = (s && s.id) || '';
    turns.replaceChildren();
    for (const m of (s && s.messages) || [{ role: 'user', content: '' }]) turns.append(turnRow(m.role, m.content));
    numberTurns();
    for (const [name] of TERMS) terms[name].value = (c[name] || []).join('\n');
    regex.value = c.regex || '';
    maxWords.value = c.max_words ?? '';
    question.value = c.ends_with_question === undefined ? '' : String(c.ends_with_question);
    rubric.value = (s && s.rubric) || '';
  }

  addTurn.addEventListener('click', () => {
    turns.append(turnRow(turns.lastElementChild?.querySelector('select').value === 'user' ? 'assistant' : 'user'));
    numberTurns();
    turns.lastElementChild.querySelector('textarea').focus();
  });
  cancel.addEventListener('click', () => dialog.close());
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors();
    submit.disabled = true;
    const s = scenario();
    try {
      const r = await save(s, editing);
      if (r.status >= 200 && r.status < 300) {
        dialog.close();
        saved(r.body.scenario || s);
      } else {
        showError(errorText(r));
      }
    } catch (err) {
      general.textContent = `Could not save: ${err.message}`;
    } finally {
      submit.disabled = false;
    }
  });

  return {
    // open(s, {title, edit}): edit names the scenario replaced (its id is then fixed).
    open(s, { title: heading, edit = null }) {
      editing = edit;
      title.textContent = heading;
      fill(s);
      id.readOnly = Boolean(edit);
      clearErrors();
      dialog.showModal();
      (edit ? turns.querySelector('textarea') : id).focus();
    },
  };
}
