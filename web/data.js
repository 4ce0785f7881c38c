// data.js: a skill's examples (paged), JSONL upload (replace or append, errors by line) and
// the data-quality numbers with the token-length histogram.
import { api, errorText } from './api.js';
import { h, $, num, announce, showLineErrors } from './dom.js';
import { histogramChart } from './chart.js';

const PER_PAGE = 10;

// The prompt and answer of an example in any of the accepted shapes.
function summarize(ex) {
  const turns = ex.messages || (ex.conversations || []).map((t) => ({
    role: { human: 'user', gpt: 'assistant' }[t.from] || t.from, content: t.value }));
  if (turns.length) {
    const last = (role) => [...turns].reverse().find((t) => t.role === role);
    return [last('user')?.content ?? '', last('assistant')?.content ?? ''];
  }
  return [[ex.instruction, ex.input].filter(Boolean).join('\n'), ex.output ?? JSON.stringify(ex)];
}

const QUALITY = [
  ['examples', 'Examples'], ['tokens', 'Tokens'], ['mean_len', 'Mean length'], ['max_len', 'Longest'],
  ['truncated', 'Truncated'], ['duplicate_prompts', 'Duplicate prompts'],
  ['near_duplicate_prompts', 'Near duplicates'], ['empty_answers', 'Empty answers'], ['short_answers', 'Short answers'],
];

export function createData(root) {
  const rows = $('#examples', root);
  const pager = $('#pager', root);
  const quality = $('#quality', root);
  const errors = $('#upload-errors', root);
  const histogram = histogramChart($('#histogram', root));
  let skill = null;
  let page = 1;

  async function loadPage(n) {
    const r = await api.data(skill, n, PER_PAGE);
    if (r.status !== 200) { rows.replaceChildren(); return; }
    page = n;
    const { total, examples } = r.body;
    rows.replaceChildren(...(examples.length ? examples.map(({ line, example }) => {
      const [prompt, answer] = summarize(example);
      return h('tr', {}, h('td', { text: String(line) }), h('td', { text: prompt }), h('td', { text: answer }));
    }) : [h('tr', {}, h('td', { colspan: 3, text: 'No examples yet: upload a JSONL file.' }))]));
    const pages = Math.max(1, Math.ceil(total / PER_PAGE));
    pager.replaceChildren(
      h('button', { type: 'button', disabled: page <= 1, onclick: () => loadPage(page - 1) }, 'Previous'),
      h('span', { text: `Page ${page} of ${pages} · ${total} examples` }),
      h('button', { type: 'button', disabled: page >= pages, onclick: () => loadPage(page + 1) }, 'Next'));
  }

  async function loadStats() {
    const r = await api.stats(skill);
    const st = r.status === 200 && r.body.stats ? r.body.stats : {};
    quality.replaceChildren(...QUALITY.map(([k, label]) =>
      h('div', {}, h('dt', { text: label }), h('dd', { text: k === 'mean_len' ? num(st[k], 1) : String(st[k] ?? '—') }))));
    histogram.set(st.histogram);
  }

  async function upload(append) {
    const file = $('#upload-file', root).files[0];
    if (!file) { announce('Choose a JSONL file first.', 'error'); return; }
    const r = await api.upload(skill, await file.text(), append);
    if (r.status === 200) {
      errors.replaceChildren();
      announce(`${append ? 'Appended' : 'Uploaded'} ${r.body.added} examples (${r.body.examples} in all).`);
      await Promise.all([loadPage(1), loadStats()]);
      return;
    }
    showLineErrors(errors, errorText(r), r.body && r.body.lines);
  }
  $('#upload-replace', root).addEventListener('click', () => upload(false));
  $('#upload-append', root).addEventListener('click', () => upload(true));

  return {
    show(id) {
      skill = id;
      errors.replaceChildren();
      return Promise.all([loadPage(1), loadStats()]);
    },
  };
}
