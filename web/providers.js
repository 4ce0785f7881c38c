// providers.js: the data providers panel, from GET /api/providers: each provider's state (ok,
// cooling down until a time, unusable), its budget used today against the limit, and its last
// error. The server never sends keys.
import { api } from './api.js';
import { h } from './dom.js';

const used = (n, limit) => (limit ? `${n ?? 0} / ${limit}` : String(n ?? 0));
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '\u2014');

// createProviders(tbody) -> {load()}
export function createProviders(rows) {
  async function load() {
    const r = await api.providers();
    const list = r.status === 200 ? r.body.providers : [];
    rows.replaceChildren(...list.map((p) => h('tr', { 'data-provider': p.name },
      h('th', { scope: 'row', text: p.name }),
      h('td', {}, h('span.badge', { 'data-state': p.state, title: p.detail || '', text: p.state })),
      h('td', { 'data-until': p.until || '', text: time(p.until) }),
      h('td', { text: used(p.budget.tokens_used, p.budget.tokens_limit) }),
      h('td', { text: used(p.budget.requests_used, p.budget.requests_limit) }),
      h('td.last-error', { text: p.last_error || '\u2014' }))));
  }
  return { load };
}
