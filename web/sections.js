// sections.js: on a phone the dashboard is one column, some 16,000 px tall with the bundled
// skills; a bar of section buttons shows one part of it at a time. style.css hides the other
// parts only below 800 px: wider, every panel shows and the bar is hidden.
import { h, $ } from './dom.js';

// Each section: its button's text and the parts of the page it shows (a part may be in several).
const SECTIONS = [
  ['training', 'Training', ['#skill-view', '.skill-head', 'section[aria-labelledby="train-h"]', '#preview-panel', '#history']],
  ['data', 'Data', ['#skill-view', '.skill-head', '#data']],
  ['scenarios', 'Scenarios', ['#skill-view', '.skill-head', '#scenarios', '#runs']],
  ['adapters', 'Adapters', ['#adapters']],
  ['models', 'Models', ['#models']],
  ['providers', 'Providers', ['#providers']],
];

// createSections(main): the bar, first in main, showing the training section.
export function createSections(main) {
  const parts = new Map();  // element -> the sections it belongs to
  for (const [name, , selectors] of SECTIONS) {
    for (const el of selectors.map((sel) => $(sel, main)).filter(Boolean)) {
      parts.set(el, [...(parts.get(el) || []), name]);
    }
  }
  for (const [el, names] of parts) el.dataset.sections = names.join(' ');  // which button shows it
  const buttons = SECTIONS.map(([name, text]) =>
    h('button', { type: 'button', 'data-section': name, 'aria-pressed': 'false', onclick: () => show(name, true) }, text));
  const bar = h('nav.sections', { 'aria-label': 'Sections' }, buttons);
  main.prepend(bar);

  // Show one section; after a tap, from its top (the bar stays on screen, sticky).
  function show(name, tapped = false) {
    for (const b of buttons) b.setAttribute('aria-pressed', String(b.dataset.section === name));
    for (const [el, names] of parts) el.classList.toggle('off-section', !names.includes(name));
    if (tapped && window.scrollY > main.offsetTop) window.scrollTo({ top: main.offsetTop });
  }
  show('training');
}
