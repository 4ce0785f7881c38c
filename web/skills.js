// skills.js: the skills list (avatar, description, last adapter's badge and loss) and the
// create/edit dialog; delete. select(id) is called when a skill is chosen.
import { api, errorText } from './api.js';
import { h, $, num, announce } from './dom.js';

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
              a ? ` loss ${num(a.eval_loss ?? a.final_loss)}` : '', ` · ${s.examples} examples`))));
    }));
  }

  function open(skill) {
    editing = skill;
    form.reset();
    form.elements.id.disabled = !!skill;
    $('#skill-dialog-title').textContent = skill ? `Edit ${skill.name}` : 'New skill';
    $('#skill-form-error').textContent = '';
    if (skill) {
      form.elements.id.value = skill.id;
      form.elements.name.value = skill.name || '';
      form.elements.description.value = skill.description || '';
      form.elements.emoji.value = (skill.avatar && skill.avatar.emoji) || '';
      form.elements.color.value = (skill.avatar && skill.avatar.color) || '#64748b';
    }
    dialog.showModal();
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = form.elements;
    // PUT replaces the metadata: keep the fields this form does not show.
    const { id: _id, examples: _n, ...kept } = editing || {};
    const meta = { ...kept, name: f.name.value, description: f.description.value,
                   avatar: { emoji: f.emoji.value || '🧠', color: f.color.value } };
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
    edit: (id) => open(skills.find((s) => s.id === id)),
    async remove(id) {
      if (!window.confirm(`Delete the skill ${id} and its examples?`)) return false;
      const r = await api.deleteSkill(id);
      if (r.status !== 200) { announce(`Could not delete: ${errorText(r)}`, 'error'); return false; }
      announce(`Deleted ${id}.`);
      return true;
    },
  };
}
