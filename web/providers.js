// providers.js: the data providers panel, from GET /api/providers: each provider's state (ok,
// cooling down until a time, unusable) with why, its budget used today against the limit, and
// its last error; then how to give it an API key (the environment at start, the keys file) and,
// on a server listening on loopback, a form that writes one into the keys file. The server
// never sends keys; the form's field is emptied once sent.
import { api, errorText } from './api.js';
import { h, $, announce } from './dom.js';

const used = (n, limit) => (limit ? `${n ?? 0} / ${limit}` : String(n ?? 0));
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '\u2014');
const SOURCE = { environment: 'set in the environment', file: 'set in the keys file' };

// createProviders(tbody, keysBox) -> {load()}
export function createProviders(rows, keysBox) {
  let shown = null;  // the keys as last rendered: a reload that changes nothing keeps what is typed

  function renderKeys(keys) {
    if (JSON.stringify(keys) === shown) return;
    shown = JSON.stringify(keys);
    if (!keys) { keysBox.replaceChildren(); return; }
    const names = keys.vars.map((v) => v.name);
    const form = keys.form ? h('form.key-form', { id: 'key-form' },
      h('label', {}, 'Key for', h('select', { name: 'name', id: 'key-name' },
        ...keys.vars.map((v) => h('option', { value: v.name, text: `${v.provider} (${v.name})` })))),
      h('label', {}, 'Value', h('input', { name: 'value', id: 'key-value', type: 'password', autocomplete: 'off', required: true })),
      h('button.primary', { type: 'submit', id: 'key-save' }, 'Save the key'),
      h('p.error', { id: 'key-error', role: 'alert' })) : null;
    keysBox.replaceChildren(
      h('h3', { id: 'keys-h', text: 'API keys' }),
      h('ul.key-vars', { id: 'key-vars' }, ...keys.vars.map((v) => h('li', { 'data-var': v.name },
        h('code', { text: v.name }), ` (${v.provider}): `,
        h('span', { 'data-source': v.source || 'none', text: SOURCE[v.source] || 'not set' })))),
      h('p.hint', {}, 'Set ', h('code', { text: names.join(', ') }),
        ' in the environment before ', h('code', { text: 'fastbrain serve' }),
        keys.file ? ' starts, or put ' : ' starts.',
        ...(keys.file ? [h('code', { text: 'VAR=value' }), ' lines in ', h('code', { text: keys.file }),
          ' (', h('code', { text: `chmod 600 ${keys.file}` }), '); the environment wins.'] : [])),
      form || h('p.hint', { id: 'key-form-off',
        text: 'The key form is offered only when the server listens on this machine alone (loopback).' }));
    if (!form) return;
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const value = form.elements.value;
      const r = await api.setKey(form.elements.name.value, value.value);
      value.value = '';  // never kept in the page
      if (r.status !== 200) {
        const fields = r.body && r.body.fields ? Object.entries(r.body.fields).map(([k, v]) => `${k} ${v}`).join('; ') : '';
        $('#key-error', form).textContent = `${errorText(r)}${fields ? `: ${fields}` : ''}`;
        return;
      }
      announce(`Saved ${form.elements.name.value} in the keys file.`);
      render(r.body);
    });
  }

  function render({ providers, keys }) {
    rows.replaceChildren(...providers.map((p) => h('tr', { 'data-provider': p.name },
      h('th', { scope: 'row', text: p.name }),
      h('td', {}, h('span.badge', { 'data-state': p.state, text: p.state }),
        p.detail ? h('small.why', { text: p.detail.replace(/^[^:]*:\s*/, '') }) : null),
      h('td', { 'data-until': p.until || '', text: time(p.until) }),
      h('td', { text: used(p.budget.tokens_used, p.budget.tokens_limit) }),
      h('td', { text: used(p.budget.requests_used, p.budget.requests_limit) }),
      h('td.last-error', { text: p.last_error || '\u2014' }))));
    renderKeys(keys);
  }

  async function load() {
    const r = await api.providers();
    render(r.status === 200 ? r.body : { providers: [] });
  }
  return { load };
}
