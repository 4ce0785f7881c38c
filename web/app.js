// app.js: the dashboard's entry: wires the skills list, the skill's view (training and its
// history, its preview: its own adapters' answers beside the base model's, data and its example
// generation, test scenarios with their suggestions and runs), the adapters table with each
// adapter's Use panel, the base models and the data providers; on a phone, one section of them
// at a time (sections.js) with tables as cards (cards.js). The selected skill lives in the URL
// hash (#/skill/<id>), so a reload comes back to it and re-attaches to its training.
import { api, errorText } from './api.js';
import { h, $, num, announce } from './dom.js';
import { createSkills } from './skills.js';
import { createTraining } from './training.js';
import { createData } from './data.js';
import { createGenerate } from './generate.js';
import { createProviders } from './providers.js';
import { createModelsPanel } from './models.js';
import { createUse } from './use.js';
import { createScenarios } from './scenarios.js';
import { createSuggest } from './suggest.js';
import { createRuns } from './runs.js';
import { createHistory } from './history.js';
import { duration } from './duration.js';
import { labelTables } from './cards.js';
import { createSections } from './sections.js';

labelTables();
createSections($('#main'));

let adapters = [];
let current = null;
let picked = null;  // the adapter version the person chose to preview, if any

const skills = createSkills($('#skill-list'), $('#skill-dialog'), { select });
const models = createModelsPanel($('#models'), { onChange: () => training.loadModels() });
const training = createTraining($('#training'), { onFinished: refresh, onModel: () => models.load() });
const data = createData($('#data'), {
  onChange: async (count) => {  // Start needs examples; the sidebar shows how many
    training.setExamples(count);
    if (skills.get(current)?.examples === count) return;
    await skills.load(adapters);
    skills.setSelected(current, adapters);
  },
});
const providers = createProviders($('#provider-rows'), $('#provider-keys'));
const use = createUse($('#use-dialog'));
const runs = createRuns($('#runs'));
const runHistory = createHistory($('#history'));
const scenarios = createScenarios($('#scenario-list'), $('#scenario-dialog'), {
  onChange: (list) => {
    runs.setScenarios(list);
    suggest.known(list.map((s) => s.id));
  },
});
const suggest = createSuggest($('#suggest'), {
  keep: (draft) => scenarios.add(draft),
  edit: (draft, opts) => scenarios.edit(draft, opts),
});
const generate = createGenerate($('#generate'), {
  onUpdate: (task, finished) => {
    providers.load();
    if (finished) data.show(current);
  },
});

// The adapter's held-out loss beside the base model's on the same examples: what LoRA changed.
function heldOut(a) {
  return typeof a.base_eval_loss === 'number' ? `${num(a.eval_loss)} (base ${num(a.base_eval_loss)})` : num(a.eval_loss);
}

// The version's scenario result ("17/20"), flagged when it passes fewer than the one before.
function scenarioCell(a) {
  const s = a.scenarios;
  if (!s) return h('td', { text: '—' });
  const cell = h('td', {}, h('span', { text: `${s.passed}/${s.total}` }));
  const r = a.regressed_from;
  if (r) {
    cell.append(h('span.regressed', { 'data-regressed': r.version,
      text: ` \u25BC fewer than ${r.version} (${r.passed}/${r.total})` }));
  }
  return cell;
}

function renderAdapters() {
  const rows = $('#adapter-rows');
  if (!adapters.length) {
    rows.replaceChildren(h('tr', {}, h('td', { colspan: 9, text: 'No adapters yet: train a skill to make one.' })));
    return;
  }
  rows.replaceChildren(...adapters.map((a) => h('tr', { 'data-adapter': `${a.skill}/${a.version}` },
    h('td', { text: a.skill }), h('td', { text: a.version }), h('td', { text: String(a.examples ?? '—') }),
    h('td', { text: num(a.training_loss) }), h('td', { text: heldOut(a) }), h('td', { text: duration(a.wall_time_s) }),
    scenarioCell(a),
    h('td', {}, h('span.badge', { 'data-badge': a.status, text: a.status })),
    h('td', {}, h('div.row-actions', {},
      h('button.primary', { type: 'button', onclick: () => use.open(a), 'aria-label': `Use ${a.skill} ${a.version}` }, 'Use'),
      h('button', { type: 'button', onclick: () => choosePreview(a) }, `Preview ${a.skill}`),
      h('a.button', { href: `/api/adapters/${encodeURIComponent(a.skill)}/${encodeURIComponent(a.version)}/download`,
                      download: `${a.skill}-${a.version}.tar.gz`, 'aria-label': `Download ${a.skill} ${a.version}` }, 'Download'))))));
}

async function loadAdapters() {
  const r = await api.adapters();
  adapters = r.status === 200 ? r.body.adapters : [];
  renderAdapters();
  renderPreview();
  runs.setAdapters(adapters);
  runHistory.setAdapters(adapters);
}

// The preview belongs to the skill on screen: its adapters, newest first (the list is), the
// newest chosen until the person picks another; the heading names the one it asks.
function renderPreview() {
  const picker = $('#preview-version');
  const own = adapters.filter((a) => a.skill === current);
  picker.replaceChildren(...own.map((a) => h('option', { value: a.version, text: `${a.version} (${a.status})` })));
  if (own.some((a) => a.version === picked)) picker.value = picked;
  $('#preview-none').hidden = own.length > 0;
  $('#preview-controls').hidden = own.length === 0;
  renderPreviewTarget();
}

function renderPreviewTarget() {
  const version = $('#preview-version').value;
  $('#preview-target').textContent = version ? `${current} / ${version}` : current || '';
  $('#preview-adapter-h').textContent = version ? `With ${current} / ${version}` : 'With the adapter';
}

$('#preview-version').addEventListener('change', () => { picked = $('#preview-version').value; renderPreviewTarget(); });

// A row's Preview: that adapter, on its skill's page.
async function choosePreview(a) {
  if (a.skill !== current) await select(a.skill);
  picked = a.version;
  renderPreview();
  $('#preview-prompt').focus();
}

$('#preview').addEventListener('submit', async (e) => {
  e.preventDefault();
  const version = $('#preview-version').value;
  if (!current || !version) { announce('Train this skill first: it has no adapter to preview.', 'error'); return; }
  const go = $('#preview-go');
  go.disabled = true;
  $('#preview-adapter').textContent = '…';
  $('#preview-base').textContent = '…';
  const r = await api.preview(current, version, $('#preview-prompt').value);
  go.disabled = false;
  if (r.status === 200) {
    $('#preview-adapter').textContent = r.body.adapter;
    $('#preview-base').textContent = r.body.base;
    return;
  }
  $('#preview-adapter').textContent = errorText(r);
  $('#preview-base').textContent = '';
});

function showSkill(skill) {
  const view = $('#skill-view');
  view.hidden = !skill;
  if (!skill) return;
  const avatar = skill.avatar || {};
  $('#skill-avatar').textContent = avatar.emoji || '🧠';
  $('#skill-avatar').style.background = avatar.color || '#64748b';
  $('#skill-title').textContent = skill.name || skill.id;
  $('#skill-desc').textContent = skill.description || '';
}

// Show a skill (its id, or the first one) and remember it in the URL.
async function select(id) {
  const list = await skills.load(adapters);
  const skill = skills.get(id) || list[0] || null;
  const changed = current !== (skill && skill.id);
  current = skill && skill.id;
  if (current && location.hash !== `#/skill/${current}`) history.replaceState(null, '', `#/skill/${current}`);
  skills.setSelected(current, adapters);
  showSkill(skill);
  if (!skill) return;
  if (changed) {
    picked = null;  // the newest of this skill, not the adapter last picked elsewhere
    $('#preview-adapter').textContent = $('#preview-base').textContent = '';
  }
  renderPreview();
  training.show(current);
  generate.show(current);
  suggest.show(current);
  runHistory.show(current);
  runHistory.setAdapters(adapters);
  runs.show(current);
  runs.setAdapters(adapters);
  await Promise.all([data.show(current), scenarios.show(current)]);
}

// After a job ends: the adapters table and the skills' badges.
async function refresh() {
  await loadAdapters();
  await skills.load(adapters);
  skills.setSelected(current, adapters);
  runHistory.reload();
  runs.reload();
}

$('#new-skill').addEventListener('click', () => skills.create());
$('#edit-skill').addEventListener('click', () => skills.edit(current));
$('#delete-skill').addEventListener('click', async () => {
  if (await skills.remove(current)) { history.replaceState(null, '', '#'); await select(null); }
});

await Promise.all([loadAdapters(), providers.load(), models.load()]);
await select(decodeURIComponent((location.hash.match(/^#\/skill\/(.+)$/) || [])[1] || ''));
