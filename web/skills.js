// skills.js: the skills list (avatar, description, last adapter's badge and loss) and the
// create/edit dialog (name, avatar, system prompt, sample prompts, training defaults; the
// system prompt the skill's data carries is offered); delete. select(id) is called when a
// skill is chosen.
import { api, errorText } from './api.js';
import { h, $, num, announce } from './dom.js';
import { systemPromptOf } from './data.js';

// The training defaults the dialog edits: its field, the path in the skill's `defaults`.
const DEFAULTS = [['epochs', ['epochs']], ['lr', ['lr']], ['max_len', ['max_len']], ['rank', ['lora', 'r']]];

// defaults with the dialog's values set (an empty field removes its value).
function withDefaults(defaults, f) {
  const out = structuredClone({ ...defaults });  // a saved empty object may come back as []
  for (const [name, path] of DEFAULTS) {
    const last = path[path.length - 1];
    const parent = path.slice(0, -1).reduce((o, k) => (o[k] ??= {}), out);
    if (f[name].value === '') delete parent[last];
    else parent[last] = Number(f[name].value);
    if (path.length > 1 && !Object.keys(parent).length) delete out[path[0]];
  }
  return out;
}

// createSkills(list, dialog, {select}) -> {load(adapters), current()}.
export function createSkills(list, dialog, { select }) {
  let skills = [];
  let selected = null;
  let editing = null;  // the skill being edited, or null when creating
  const form = $('form', dialog);

  function render(adapters) {
    const latest = {};
    for (const a of adapters) latest[a.skill] ??= a;  // newest version first
    list.replaceChildren(...skills.map((s) => {
      const avatar = s.avatar || {};
      const a = latest[s.id];
      return h('li', {},
        h('button.skill', { type: 'button', 'aria-current': s.id === selected ? 'true' : null,
          'data-skill': s.id, onclick: () => select(s.id) },
          h('span.avatar', { 'aria-hidden': 'true', style: { background: avatar.color || '#64748b' }, text: avatar.emoji || '🧠' }),
          h('span.skill-text', {},
            h('span.skill-name', { text: s.name || s.id }),
            h('span.skill-desc', { text: s.description || '' }),
            h('span.skill-meta', {},
              h('span.badge', { 'data-badge': a ? a.status : 'untrained', text: a ? a.status : 'not trained' }),
              a ? (a.eval_loss != null ? ` held-out loss ${num(a.eval_loss)}` : ` training loss ${num(a.training_loss ?? a.final_loss)}`) : '', ` · ${s.examples} examples`))));
    }));
  }

  // The system prompt the skill's first examples carry, offered when the field differs.
  async function offerSystemPrompt(skill) {
    const found = $('#system-found', dialog);
    found.replaceChildren();
    const r = skill && skill.examples ? await api.data(skill.id, 1, 50) : null;
    const prompt = r && r.status === 200 ? systemPromptOf(r.body.examples.map((e) => e.example)) : '';
    if (!prompt || prompt === form.elements.system.value || editing !== skill) return;
    found.append(h('p', { text: `The data carries this system prompt: “${prompt.length > 160 ? `${prompt.slice(0, 160)}…` : prompt}”` }),
      h('button', { type: 'button', id: 'use-found-system', onclick: () => {
        form.elements.system.value = prompt;
        found.replaceChildren();
      } }, 'Use the data’s system prompt'));
  }

  function open(skill) {
    editing = skill;
    form.reset();
    form.elements.id.disabled = !!skill;
    $('#skill-dialog-title').textContent = skill ? `Edit ${skill.name}` : 'New skill';
    $('#skill-form-error').textContent = '';
    if (skill) {
      const f = form.elements;
      f.id.value = skill.id;
      f.name.value = skill.name || '';
      f.description.value = skill.description || '';
      f.emoji.value = (skill.avatar && skill.avatar.emoji) || '';
      f.color.value = (skill.avatar && skill.avatar.color) || '#64748b';
      f.system.value = skill.system || '';
      f.prompts.value = (skill.sample_prompts || []).join('\n');
      for (const [name, path] of DEFAULTS) f[name].value = path.reduce((o, k) => o?.[k], skill.defaults) ?? '';
    }
    offerSystemPrompt(skill);
    dialog.showModal();
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = form.elements;
    // PUT replaces the metadata: keep the fields this form does not show.
    const { id: _id, examples: _n, system: _s, sample_prompts: _p, defaults, ...kept } = editing || {};
    const prompts = f.prompts.value.split('\n').map((p) => p.trim()).filter(Boolean);
    const meta = { ...kept, name: f.name.value, description: f.description.value,
                   avatar: { emoji: f.emoji.value || '🧠', color: f.color.value } };
    const spec = withDefaults(defaults, f);
    if (Object.keys(spec).length) meta.defaults = spec;
    if (f.system.value.trim()) meta.system = f.system.value;
    if (prompts.length) meta.sample_prompts = prompts;
    const r = editing ? await api.updateSkill(editing.id, meta) : await api.createSkill({ id: f.id.value, ...meta });
    if (r.status !== 200 && r.status !== 201) {
      const fields = r.body && r.body.fields ? Object.entries(r.body.fields).map(([k, v]) => `${k} ${v}`).join('; ') : '';
      $('#skill-form-error').textContent = `${errorText(r)}${fields ? `: ${fields}` : ''}`;
      return;
    }
    dialog.close();
    announce(`Saved ${r.body.skill.name}.`);
    select(r.body.skill.id);
  });
  $('#skill-cancel', dialog).addEventListener('click', () => dialog.close());

  return {
    async load(adapters) {
      const r = await api.skills();
      if (r.status !== 200) { announce(`Could not list skills: ${errorText(r)}`, 'error'); return []; }
      skills = r.body.skills;
      render(adapters);
      return skills;
    },
    setSelected(id, adapters) { selected = id; render(adapters); },
    get: (id) => skills.find((s) => s.id === id),
    create: () => open(null),
    async edit(id) {  // as saved now: the data view may have changed it since the list came
      const r = await api.skill(id);
      open(r.status === 200 ? r.body.skill : skills.find((s) => s.id === id));
    },
    async remove(id) {
      if (!window.confirm(`Delete the skill ${id} and its examples?`)) return false;
      const r = await api.deleteSkill(id);
      if (r.status !== 200) { announce(`Could not delete: ${errorText(r)}`, 'error'); return false; }
      announce(`Deleted ${id}.`);
      return true;
    },
  };
}
