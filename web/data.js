// data.js: a skill's examples (paged; each one edited or deleted in a chat-style editor, new
// ones added there or pasted as JSONL), JSONL upload (replace or append, errors by line), a
// template to start from, and the data-quality numbers with the token-length histogram, in the
// tokens of the skill's base model. onChange(count) hears the example count whenever it is
// known anew; a system prompt the data carries and the skill lacks is offered to the skill.
import { api, errorText } from './api.js';
import { h, $, num, announce, showLineErrors } from './dom.js';
import { histogramChart } from './chart.js';

const PER_PAGE = 10;
const ROLES = ['system', 'user', 'assistant'];
const TEMPLATE = [
  { messages: [{ role: 'system', content: 'You are the receptionist of Example Plumbing. Be brief and friendly.' },
    { role: 'user', content: 'Are you open on Saturdays?' },
    { role: 'assistant', content: 'Yes, from 9 to 1. Shall I book you a visit?' }] },
  { messages: [{ role: 'user', content: 'How much is a call-out?' },
    { role: 'assistant', content: 'A call-out is $80, which covers the first half hour.' }] },
].map((ex) => JSON.stringify(ex)).join('\n') + '\n';

// An example in any accepted shape as chat turns [{role, content}].
export function turnsOf(ex) {
  if (ex.messages) return ex.messages;
  if (ex.conversations) {
    return ex.conversations.map((t) => ({ role: { human: 'user', gpt: 'assistant' }[t.from] || t.from, content: t.value }));
  }
  return [{ role: 'user', content: [ex.instruction, ex.input].filter(Boolean).join('\n') },
    { role: 'assistant', content: ex.output ?? '' }];
}

// The system prompt most of these examples carry, or ''.
export function systemPromptOf(examples) {
  const counts = new Map();
  for (const ex of examples) {
    const first = turnsOf(ex)[0];
    if (first && first.role === 'system' && first.content) counts.set(first.content, (counts.get(first.content) || 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] || '';
}

// The prompt and answer of an example.
function summarize(ex) {
  const turns = turnsOf(ex);
  const last = (role) => [...turns].reverse().find((t) => t.role === role);
  return [last('user')?.content ?? '', last('assistant')?.content ?? JSON.stringify(ex)];
}

// The chat-style editor of one example: turns with a role each, in a dialog of its own.
// open(turns, save(messages) -> error text | '') shows it.
function exampleEditor() {
  const turns = h('ol.turns', { id: 'example-turns' });
  const error = h('p.error', { id: 'example-error', role: 'alert' });
  const title = h('h2', { id: 'example-title' });
  let save = null;

  function turn({ role, content }) {
    const select = h('select', { 'aria-label': 'Role' }, ...ROLES.map((r) => h('option', { value: r, text: r })));
    select.value = role;
    const text = h('textarea', { rows: 3, 'aria-label': 'Message', required: true });
    text.value = content;
    const li = h('li.turn', {}, h('div.turn-head', {}, select,
      h('button', { type: 'button', 'aria-label': 'Remove this turn', onclick: () => li.remove() }, 'Remove')), text);
    return li;
  }
  const form = h('form', {}, title,
    h('p.hint', { text: 'An optional system prompt first, then user and assistant turns; the last one answers.' }),
    turns,
    h('button', { type: 'button', id: 'add-turn', onclick: () => {
      error.textContent = '';
      const last = turns.lastElementChild && $('select', turns.lastElementChild).value;
      turns.append(turn({ role: last === 'user' ? 'assistant' : 'user', content: '' }));
      $('textarea', turns.lastElementChild).focus();
    } }, 'Add a turn'),
    error,
    h('div.dialog-actions', {},
      h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel'),
      h('button.primary', { type: 'submit', id: 'example-save' }, 'Save example')));
  const dialog = h('dialog.example', { id: 'example-dialog', 'aria-labelledby': 'example-title' }, form);
  document.body.append(dialog);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const messages = [...turns.children].map((li) => ({ role: $('select', li).value, content: $('textarea', li).value }));
    error.textContent = await save(messages);
    if (!error.textContent) dialog.close();
  });
  return {
    open(heading, list, onSave) {
      title.textContent = heading;
      error.textContent = '';
      save = onSave;
      turns.replaceChildren(...list.map(turn));
      dialog.showModal();
    },
  };
}

// A refusal of one example as one line of text.
function refusal(r) {
  const line = r.body && r.body.lines && r.body.lines[0];
  return line ? line.message : errorText(r);
}

// createData(root, {onChange(count)}) -> {show(id)}
export function createData(root, { onChange = () => {} } = {}) {
  const rows = $('#examples', root);
  const pager = $('#pager', root);
  const quality = $('#quality', root);
  const errors = $('#upload-errors', root);
  const counted = $('#counted', root);
  const offer = $('#system-offer', root);
  const histogram = histogramChart($('#histogram', root));
  const editor = exampleEditor();
  let skill = null;
  let page = 1;

  async function saveExample(line, messages) {
    const r = line ? await api.updateExample(skill, line, { messages }) : await api.addExample(skill, { messages });
    if (r.status !== 200) return refusal(r);
    announce(line ? `Saved example ${line}.` : `Added an example (${r.body.examples} in all).`);
    await reload(line ? page : Infinity);
    return '';
  }

  async function remove(line) {
    if (!window.confirm(`Delete example ${line}?`)) return;
    const r = await api.deleteExample(skill, line);
    if (r.status !== 200) { announce(`Could not delete: ${errorText(r)}`, 'error'); return; }
    announce(`Deleted example ${line} (${r.body.examples} left).`);
    await reload(page);
  }

  function row({ line, example }) {
    const [prompt, answer] = summarize(example);
    return h('tr', { 'data-line': line }, h('td', { text: String(line) }), h('td', { text: prompt }), h('td', { text: answer }),
      h('td', {}, h('div.row-actions', {},
        h('button', { type: 'button', 'aria-label': `Edit example ${line}`,
          onclick: () => editor.open(`Example ${line}`, turnsOf(example), (m) => saveExample(line, m)) }, 'Edit'),
        h('button.danger', { type: 'button', 'aria-label': `Delete example ${line}`, onclick: () => remove(line) }, 'Delete'))));
  }

  // Page n (Infinity: the last), then the count to onChange.
  async function loadPage(n) {
    const r = await api.data(skill, Math.min(n, 1e6), PER_PAGE);
    if (r.status !== 200) { rows.replaceChildren(); return; }
    const { total } = r.body;
    const pages = Math.max(1, Math.ceil(total / PER_PAGE));
    if (n > pages) return loadPage(pages);
    page = n;
    const { examples } = r.body;
    rows.replaceChildren(...(examples.length ? examples.map(row)
      : [h('tr', {}, h('td', { colspan: 4, text: 'No examples yet: upload a JSONL file, paste some or add one.' }))]));
    pager.replaceChildren(
      h('button', { type: 'button', disabled: page <= 1, onclick: () => loadPage(page - 1) }, 'Previous'),
      h('span', { text: `Page ${page} of ${pages} · ${total} examples` }),
      h('button', { type: 'button', disabled: page >= pages, onclick: () => loadPage(page + 1) }, 'Next'));
    onChange(total);
    if (page === 1) offerSystemPrompt(examples.map((e) => e.example));
  }

  // The data's system prompt, offered to a skill that has none.
  async function offerSystemPrompt(examples) {
    const found = systemPromptOf(examples);
    const r = found ? await api.skill(skill) : null;
    offer.replaceChildren();
    if (!r || r.status !== 200 || r.body.skill.system) return;
    offer.append(h('p', { text: 'Your data carries a system prompt this skill does not have; training samples and previews run without it:' }),
      h('blockquote', { text: found }),
      h('button', { type: 'button', id: 'use-system', onclick: async () => {
        const p = await api.patchSkill(skill, { system: found });
        if (p.status !== 200) { announce(`Could not save: ${errorText(p)}`, 'error'); return; }
        offer.replaceChildren();
        announce('The skill now uses the data\u2019s system prompt.');
      } }, 'Use it as the skill\u2019s system prompt'));
  }

  async function loadStats() {
    const r = await api.stats(skill);
    const st = r.status === 200 && r.body.stats ? r.body.stats : {};
    const tokenizer = r.status === 200 ? r.body.tokenizer : null;
    const unit = tokenizer === 'bytes' ? 'bytes' : 'tokens';
    const fields = [
      ['examples', 'Examples'], ['tokens', `Total ${unit}`], ['mean_len', `Mean ${unit} per example`],
      ['max_len', 'Longest'], ['truncated', st.limit ? `Cut at ${st.limit} ${unit}` : 'Truncated'],
      ['duplicate_prompts', 'Duplicate prompts'], ['near_duplicate_prompts', 'Near duplicates'],
      ['empty_answers', 'Empty answers'], ['short_answers', 'Short answers']];
    quality.replaceChildren(...fields.map(([k, label]) =>
      h('div', { 'data-stat': k }, h('dt', { text: label }),
        h('dd', { text: k === 'mean_len' ? num(st[k], 1) : String(st[k] ?? '\u2014') }))));
    counted.textContent = !tokenizer ? ''
      : tokenizer === 'bytes' ? 'Lengths are in bytes (no base model to count with).'
        : `Lengths are in tokens of ${tokenizer}, this skill\u2019s base model${st.limit ? `; a run cuts examples at ${st.limit}` : ''}.`;
    histogram.set(st.histogram, tokenizer === 'bytes' ? 'bytes per example' : `${tokenizer} tokens per example`);
  }

  // Page n and the stats again, after a change.
  function reload(n) { return Promise.all([loadPage(n), loadStats()]); }

  async function upload(text, append, what) {
    const r = await api.upload(skill, text, append);
    if (r.status === 200) {
      errors.replaceChildren();
      announce(`${what} ${r.body.added} examples (${r.body.examples} in all).`);
      await reload(1);
      return true;
    }
    showLineErrors(errors, errorText(r), r.body && r.body.lines);
    return false;
  }

  async function uploadFile(append) {
    const file = $('#upload-file', root).files[0];
    if (!file) { announce('Choose a JSONL file first.', 'error'); return; }
    await upload(await file.text(), append, append ? 'Appended' : 'Uploaded');
  }
  $('#upload-replace', root).addEventListener('click', () => uploadFile(false));
  $('#upload-append', root).addEventListener('click', () => uploadFile(true));
  $('#paste-append', root).addEventListener('click', async () => {
    const box = $('#paste-jsonl', root);
    if (!box.value.trim()) { announce('Paste JSONL lines first.', 'error'); return; }
    if (await upload(box.value, true, 'Added')) box.value = '';
  });
  $('#add-example', root).addEventListener('click', () => editor.open('New example',
    [{ role: 'user', content: '' }, { role: 'assistant', content: '' }], (m) => saveExample(null, m)));
  const template = $('#data-template', root);
  template.href = URL.createObjectURL(new Blob([TEMPLATE], { type: 'application/x-ndjson' }));

  return {
    show(id) {
      skill = id;
      errors.replaceChildren();
      offer.replaceChildren();
      return reload(1);
    },
  };
}
