// dom.js: the small DOM helpers every view shares.

// h('tag.class', {attr: value, onclick: fn, style: {prop: value}}, ...children): an element;
// strings become text.
export function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split('.');
  const node = document.createElement(tag);
  if (classes.length) node.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'text') node.textContent = v;
    else if (k === 'style') Object.assign(node.style, v);  // CSSOM: the server's CSP blocks style attributes
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

export const $ = (sel, root = document) => root.querySelector(sel);

// A number with `digits` decimals, or an em dash when it is not a number.
export function num(v, digits = 3) {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '—';
}

// A time (ms since the epoch) as the reader's short date and time, to the second.
export const when = (ms) => (ms ? new Date(ms).toLocaleString([], { dateStyle: 'short', timeStyle: 'medium' }) : '\u2014');

// The last part of a path (a model's directory, an adapter's version).
export const basename = (path) => (typeof path === 'string' ? path.replace(/\/+$/, '').split('/').pop() : path);

// A message in the page's live region (errors stay until the next message).
export function announce(text, kind = 'info') {
  const box = $('#toast');
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = !text;
}

// An upload's refusal into list: its message, then each bad line the server named ([{line,
// message}...]).
export function showLineErrors(list, message, lines) {
  list.replaceChildren(h('li', { text: message }),
    ...(lines || []).map((l) => h('li', { text: `line ${l.line ?? '?'}: ${l.message}` })));
}
