// api.js: the dashboard's calls to the fastbrain API. request() resolves to {status, body}
// for any HTTP answer (callers decide what a 404 or 409 means) and rejects only when the
// server cannot be reached. Mutating calls send application/json or application/x-ndjson.
export async function request(method, path, body, type = 'application/json') {
  // The server refuses a mutating request without a JSON or NDJSON type, body or not (CSRF).
  const init = { method, headers: method === 'GET' ? {} : { 'Content-Type': type } };
  if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  return { status: res.status, body: data };
}

// The error text of a failed answer. The server's own 401 means it has a token and this
// browser no cookie for it yet: say how to get one.
export function errorText(r) {
  const error = r.body && r.body.error;
  if (r.status === 401 && (error === 'missing token' || error === 'bad token')) {
    return 'this server needs its token: open the link `fastbrain serve` printed (/?token=…)';
  }
  return error || `HTTP ${r.status}`;
}

const skill = (id) => encodeURIComponent(id);
const scenariosPath = (id) => `/api/skills/${skill(id)}/scenarios`;
const runsPath = (id) => `/api/skills/${skill(id)}/scenario-runs`;
const adapterPath = (id, version) => `/api/adapters/${skill(id)}/${encodeURIComponent(version)}`;

export const api = {
  skills: () => request('GET', '/api/skills'),
  createSkill: (meta) => request('POST', '/api/skills', meta),
  skill: (id) => request('GET', `/api/skills/${skill(id)}`),
  updateSkill: (id, meta) => request('PUT', `/api/skills/${skill(id)}`, meta),
  patchSkill: (id, fields) => request('PATCH', `/api/skills/${skill(id)}`, fields),
  deleteSkill: (id) => request('DELETE', `/api/skills/${skill(id)}`),
  data: (id, page, perPage) => request('GET', `/api/skills/${skill(id)}/data?page=${page}&per_page=${perPage}`),
  upload: (id, jsonl, append) =>
    request(append ? 'POST' : 'PUT', `/api/skills/${skill(id)}/data`, jsonl, 'application/x-ndjson'),
  stats: (id) => request('GET', `/api/skills/${skill(id)}/stats`),
  addExample: (id, ex) => request('POST', `/api/skills/${skill(id)}/examples`, ex),
  updateExample: (id, line, ex) => request('PUT', `/api/skills/${skill(id)}/examples/${line}`, ex),
  deleteExample: (id, line) => request('DELETE', `/api/skills/${skill(id)}/examples/${line}`),
  train: (id, spec) => request('POST', `/api/train-skill/${skill(id)}`, spec),
  defaults: (id) => request('GET', `/api/training/defaults/${skill(id)}`),
  estimate: (id, model, spec) =>
    request('POST', `/api/training/estimate/${skill(id)}?model=${encodeURIComponent(model)}`, spec),
  models: () => request('GET', '/api/models'),
  pull: (model, token) => request('POST', '/api/pulls', token ? { model, token } : { model }),
  pullStatus: (id) => request('GET', `/api/pulls/${id}`),
  cancelPull: (id) => request('DELETE', `/api/pulls/${id}`),
  pullEventsUrl: (id) => `/api/pulls/${id}/events`,
  deleteModel: (id) => request('DELETE', `/api/models/${id.split('/').map(encodeURIComponent).join('/')}`),
  status: (id) => request('GET', `/api/training/status/${skill(id)}`),
  cancel: (id) => request('POST', `/api/training/cancel/${skill(id)}`, {}),
  resume: (id) => request('POST', `/api/training/resume/${skill(id)}`, {}),
  jobs: (id, perPage = 1) => request('GET', `/api/jobs?skill=${skill(id)}&per_page=${perPage}`),
  activity: (id, lines) => request('GET', `/api/training/activity/${skill(id)}?lines=${lines}`),
  jobLog: (job, lines) => request('GET', `/api/jobs/${encodeURIComponent(job)}/log?lines=${lines}`),
  adapters: () => request('GET', '/api/adapters'),
  preview: (id, version, prompt) => request('POST', `${adapterPath(id, version)}/generate`, { prompt }),
  exportAdapter: (id, version, body) => request('POST', `${adapterPath(id, version)}/export`, body),
  exportTask: (id, version) => request('GET', `${adapterPath(id, version)}/export`),
  exportEventsUrl: (id, version) => `${adapterPath(id, version)}/export/events`,
  eventsUrl: (id) => `/api/training/events/${skill(id)}`,
  generate: (id, count) => request('POST', `/api/skills/${skill(id)}/generate`, { count }),
  generation: (id) => request('GET', `/api/skills/${skill(id)}/generate`),
  generateEventsUrl: (id) => `/api/skills/${skill(id)}/generate/events`,
  cancelGeneration: (id) => request('POST', `/api/skills/${skill(id)}/generate/cancel`, {}),
  providers: () => request('GET', '/api/providers'),
  setKey: (name, value) => request('POST', '/api/providers/keys', { name, value }),
  scenarios: (id) => request('GET', scenariosPath(id)),
  replaceScenarios: (id, jsonl) => request('PUT', scenariosPath(id), jsonl, 'application/x-ndjson'),
  addScenario: (id, s) => request('POST', scenariosPath(id), s),
  updateScenario: (id, sid, s) => request('PUT', `${scenariosPath(id)}/${encodeURIComponent(sid)}`, s),
  deleteScenario: (id, sid) => request('DELETE', `${scenariosPath(id)}/${encodeURIComponent(sid)}`),
  suggest: (id, count) => request('POST', `${scenariosPath(id)}/suggest`, { count }),
  suggestion: (id) => request('GET', `${scenariosPath(id)}/suggest`),
  suggestEventsUrl: (id) => `${scenariosPath(id)}/suggest/events`,
  startRun: (id, body) => request('POST', runsPath(id), body),
  runs: (id) => request('GET', runsPath(id)),
  run: (id, run) => request('GET', `${runsPath(id)}/${encodeURIComponent(run)}`),
  checkpoints: (id) => request('GET', `/api/skills/${skill(id)}/checkpoints`),
  cancelRun: (id, run) => request('POST', `${runsPath(id)}/${encodeURIComponent(run)}/cancel`),
  runsEventsUrl: (id) => `${runsPath(id)}/events`,
};
