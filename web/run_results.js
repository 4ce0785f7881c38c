// run_results.js: what a scenario run found, as nodes for the runs panel (runs.js): one run's
// results (each scenario's answer, every check passed or failed with why, the judge's score and
// reason or why it did not judge, the latency), and two runs side by side, each scenario's
// change marked: pass -> fail in red, fail -> pass in green.
import { h, when, basename } from './dom.js';
import { checkText, question } from './checks.js';

// How the dashboard names a run's model.
export function runLabel(run) {
  const t = run.target || {};
  if (t.kind === 'adapter') return `version ${t.version}`;
  if (t.kind === 'checkpoint') return `checkpoint of job ${t.job} at step ${t.step}`;
  return 'base model';
}

const seconds = (ms) => (typeof ms === 'number' ? `${(ms / 1000).toFixed(1)} s` : '\u2014');
const passed = (r) => r && r.status === 'pass';

const STATUS = { pass: 'passed', fail: 'failed', unjudged: 'not judged', error: 'error' };
const statusBadge = (status) => h('span.badge.status', { 'data-status': status || 'missing', text: STATUS[status] || 'not run' });

// The judge's verdict, or why there is none.
function judgeLine(result, scenario, run) {
  if (result.judge && result.judge.error) {
    return h('p.judge', { 'data-judged': 'no' }, h('strong', { text: 'Not judged: ' }), result.judge.error);
  }
  if (result.judge) {
    const j = result.judge;
    return h('p.judge', { 'data-judged': 'yes' },
      h('strong', { text: `Judge: ${j.score}/5 ` }), j.reason,
      h('small', { text: ` (${j.provider}${j.model ? `, ${j.model}` : ''}, prompt ${j.prompt_version})` }));
  }
  if (scenario && scenario.rubric) {
    return h('p.judge', { 'data-judged': 'no' }, h('strong', { text: 'Not judged: ' }),
      run.settings && run.settings.judge === false ? 'this run had the judge off.' : 'no provider could judge.');
  }
  return null;
}

// The answer's checks, each passed or failed with why (only the failed ones with `failed`).
function verdicts(result, scenario, failed = false) {
  const checks = (scenario && scenario.checks) || {};
  return h('ul.verdicts', { 'aria-label': 'Checks' }, ...(result.checks || []).filter((c) => !failed || !c.pass).map((c) =>
    h('li.verdict', { 'data-pass': String(c.pass) },
      h('span.mark', { 'aria-hidden': 'true', text: c.pass ? '\u2713' : '\u2717' }),
      h('span.sr-only', { text: c.pass ? 'passed: ' : 'failed: ' }),
      `${c.check in checks ? checkText(c.check, checks[c.check]) : c.check} \u2014 ${c.detail}`)));
}

// One run: a summary line, then each scenario's result.
export function runView(run, scenarios) {
  const byId = new Map(scenarios.map((s) => [s.id, s]));
  const total = run.total ?? '?';
  return h('section.run-view', { 'aria-labelledby': 'run-view-h', 'data-run': run.id },
    h('h3', { id: 'run-view-h', text: `Results on the ${runLabel(run)}` }),
    h('p.hint', { text: `${run.passed} of ${total} passed \u00b7 ${run.answered} answered \u00b7 ${run.state} \u00b7 started ${when((run.started_at || run.created_at) * 1000)} \u00b7 judge ${run.settings && run.settings.judge ? 'on' : 'off'} \u00b7 model ${basename(run.model)}` }),
    run.error ? h('p.error', { text: run.error }) : null,
    h('ol.results', {}, ...(run.results || []).map((r) => {
      const s = byId.get(r.scenario);
      return h('li.result', { 'data-scenario': r.scenario, 'data-status': r.status },
        h('div.result-head', {}, statusBadge(r.status), h('code', { text: r.scenario }),
          h('span.hint', { text: `answered in ${seconds(r.latency_ms)}` })),
        s ? h('p.question', { text: question(s) }) : null,
        r.error ? h('p.error', { text: r.error }) : h('p.answer', { text: r.answer }),
        verdicts(r, s), judgeLine(r, s, run));
    })));
}

// What changed for one scenario from the first run to the second.
function change(a, b) {
  if (passed(a) && b && !passed(b)) return 'worse';
  if (a && !passed(a) && passed(b)) return 'better';
  return 'same';
}

const CHANGE = { worse: 'pass \u2192 fail', better: 'fail \u2192 pass', same: '' };

function side(label, r, scenario, run) {
  return h('div.cmp-side', {},
    h('div.result-head', {}, h('span.cmp-label', { text: label }), statusBadge(r && r.status)),
    h('p.answer', { text: r ? (r.error || r.answer) : 'Not in this run.' }),
    r ? verdicts(r, scenario, true) : null,
    r ? judgeLine(r, scenario, run) : null);
}

// Two runs, the older first: every scenario either answered, in the skill's order.
export function compareView(runs, scenarios) {
  const [a, b] = [...runs].sort((x, y) => x.created_at - y.created_at || (x.id < y.id ? -1 : 1));
  const index = (run) => new Map((run.results || []).map((r) => [r.scenario, r]));
  const [ra, rb] = [index(a), index(b)];
  const known = new Map(scenarios.map((s) => [s.id, s]));
  const ids = [...new Set([...scenarios.map((s) => s.id), ...ra.keys(), ...rb.keys()])].filter((id) => ra.has(id) || rb.has(id));
  const rows = ids.map((id) => ({ id, a: ra.get(id), b: rb.get(id), change: change(ra.get(id), rb.get(id)) }));
  const count = (c) => rows.filter((r) => r.change === c).length;
  const [la, lb] = [runLabel(a), runLabel(b)];
  return h('section.compare', { 'aria-labelledby': 'compare-h', 'data-runs': `${a.id} ${b.id}` },
    h('h3', { id: 'compare-h', text: `Compare: ${la} \u2192 ${lb}` }),
    h('p.hint', { text: `${la}: ${a.passed}/${a.total ?? '?'} passed (run ${a.id}) \u00b7 ${lb}: ${b.passed}/${b.total ?? '?'} passed (run ${b.id}) \u00b7 ${count('better')} now pass, ${count('worse')} now fail` }),
    h('ol.cmp-rows', {}, ...rows.map((r) => {
      const s = known.get(r.id);
      return h('li.cmp-row', { 'data-scenario': r.id, 'data-change': r.change },
        h('div.cmp-q', {}, h('code', { text: r.id }),
          CHANGE[r.change] ? h('span.change', { text: CHANGE[r.change] }) : null,
          s ? h('p.question', { text: question(s) }) : null),
        side(la, r.a, s, a), side(lb, r.b, s, b));
    })));
}
