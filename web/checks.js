// checks.js: how a test scenario reads in the dashboard: its question (the last user turn),
// its hard checks as short plain-language chips, and the card the scenarios list and the
// suggested drafts share (id, question, chips, rubric, then the caller's buttons).
import { h } from './dom.js';

// The check names of docs/scenarios.md in the order they are shown, with their wording.
const WORDS = {
  must_include: (v) => `says all of: ${v.join(', ')}`,
  must_include_any: (v) => `says one of: ${v.join(' / ')}`,
  must_not_include: (v) => `never says: ${v.join(', ')}`,
  regex: (v) => `matches /${v}/`,
  max_words: (v) => `at most ${v} words`,
  ends_with_question: (v) => (v ? 'ends with a question' : 'does not end with a question'),
};
export const CHECK_NAMES = Object.keys(WORDS);

export const checkText = (name, value) => (WORDS[name] ? WORDS[name](value) : `${name}: ${JSON.stringify(value)}`);

// The turn the model answers.
export function question(s) {
  const turns = s.messages || [];
  for (let i = turns.length - 1; i >= 0; i--) if (turns[i].role === 'user') return turns[i].content;
  return '';
}

// A scenario's checks as chips.
export function chips(checks) {
  const names = Object.keys(checks || {}).sort((a, b) => CHECK_NAMES.indexOf(a) - CHECK_NAMES.indexOf(b));
  return h('ul.chips', { 'aria-label': 'Checks' },
    ...names.map((name) => h('li.chip', { 'data-check': name, text: checkText(name, checks[name]) })));
}

// scenarioCard(s, ...buttons) -> an <li> with the scenario and the buttons.
export function scenarioCard(s, ...buttons) {
  const earlier = (s.messages || []).length - 1;
  return h('li.scenario', { 'data-scenario': s.id },
    h('div.scenario-head', {}, h('code.scenario-id', { text: s.id }),
      earlier > 0 ? h('span.hint', { text: `after ${earlier} earlier turn${earlier > 1 ? 's' : ''}` }) : null),
    h('p.question', { text: question(s) }),
    chips(s.checks),
    s.rubric ? h('p.rubric', {}, h('strong', { text: 'Judge: ' }), s.rubric) : null,
    buttons.length ? h('div.row-actions', {}, ...buttons) : null);
}
