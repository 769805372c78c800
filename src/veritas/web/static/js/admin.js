// Admin pages: users (filter, lock/unlock, create a teacher) and the audit-log browser.

import { api } from './api.js';
import { h, heading, field, fmt, fmtDate, message, pager, select, showError } from './ui.js';

export async function users({ view }) {
  const q = h('input', { name: 'q', type: 'search', autocomplete: 'off' });
  const role = select('role', [['', 'Any'], ['student', 'Student'], ['teacher', 'Teacher'], ['admin', 'Admin']], '');
  const active = select('is_active', [['', 'Any'], ['true', 'Active'], ['false', 'Locked']], '');
  const filters = h('form', { class: 'toolbar', role: 'search', 'aria-label': 'Filter users' },
    field('Email or username contains', q), field('Role', role), field('Status', active),
    h('button', { type: 'submit' }, 'Filter'));
  const rowBox = h('div');
  const body = h('tbody');
  const list = h('table', {}, h('caption', {}, 'Users, newest first'),
    h('thead', {}, h('tr', {}, ['Username', 'Email', 'Role', 'Status', 'Created', 'Id', 'Action'].map((c) => h('th', { scope: 'col' }, c)))),
    body);
  view.append(heading('Users'), filters, rowBox, list);
  const footer = h('div');
  view.append(footer);

  const row = (u) => {
    const status = h('td', {}, u.is_active ? 'active' : 'locked');
    const toggle = h('button', { type: 'button', class: 'secondary', 'aria-label': `${u.is_active ? 'Lock' : 'Unlock'} ${u.username}` }, u.is_active ? 'Lock' : 'Unlock');
    toggle.addEventListener('click', async () => {
      toggle.disabled = true;
      try {
        const updated = await api(`/api/admin/users/${u.id}/${u.is_active ? 'lock' : 'unlock'}`, { method: 'POST' });
        Object.assign(u, updated);
        status.textContent = u.is_active ? 'active' : 'locked';
        toggle.textContent = u.is_active ? 'Lock' : 'Unlock';
        toggle.setAttribute('aria-label', `${u.is_active ? 'Lock' : 'Unlock'} ${u.username}`);
        message(rowBox, 'info', `${u.username} is now ${u.is_active ? 'unlocked' : 'locked'}.`);
      } catch (err) {
        showError(rowBox, err);
      } finally {
        toggle.disabled = false;
      }
    });
    return h('tr', { dataset: { userId: u.id } },
      h('td', {}, u.username), h('td', {}, u.email), h('td', {}, u.role), status,
      h('td', {}, fmtDate(u.created_at)), h('td', { class: 'mono' }, u.id), h('td', {}, toggle));
  };
  const load = pager(
    (cursor) => api('/api/admin/users', { query: { q: q.value.trim(), role: role.value, is_active: active.value, cursor } }),
    (items, reset) => {
      if (reset) body.replaceChildren();
      body.append(...items.map(row));
      if (!body.children.length) body.append(h('tr', {}, h('td', { colspan: '7', class: 'empty' }, 'No users match.')));
    },
    footer);
  filters.addEventListener('submit', (e) => { e.preventDefault(); load(true); });
  view.append(createTeacherForm(() => load(true)));
  await load(true);
}

function createTeacherForm(onCreated) {
  const inputs = {
    email: h('input', { name: 'email', type: 'email', required: true, autocomplete: 'off' }),
    username: h('input', { name: 'username', required: true, autocomplete: 'off', pattern: '[A-Za-z0-9_.\\-]{3,64}' }),
    full_name: h('input', { name: 'full_name', autocomplete: 'off' }),
    password: h('input', { name: 'password', type: 'password', required: true, autocomplete: 'new-password', minlength: '8' }),
  };
  const box = h('div');
  const form = h('form', { class: 'card', 'aria-labelledby': 'new-teacher-h' },
    h('h2', { id: 'new-teacher-h' }, 'Create a teacher account'),
    field('Email', inputs.email), field('Username', inputs.username, '3–64 letters, digits, dots, dashes or underscores.'),
    field('Full name (optional)', inputs.full_name),
    field('Initial password', inputs.password, 'At least 8 characters and not a common password. Share it safely.'),
    box, h('button', { type: 'submit' }, 'Create teacher'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!form.reportValidity()) return;
    try {
      const body = { role: 'teacher' };
      for (const [k, el] of Object.entries(inputs)) if (el.value.trim()) body[k] = k === 'password' ? el.value : el.value.trim();
      const user = await api('/api/auth/register', { method: 'POST', body });
      message(box, 'info', `Teacher ${user.username} created (id ${user.id}).`);
      form.reset();
      onCreated();
    } catch (err) {
      if (err.status === 409) message(box, 'error', 'That email or username is already taken.');
      else showError(box, err);
    }
  });
  return form;
}

export async function auditLogs({ view }) {
  const inputs = {
    action: h('input', { name: 'action', autocomplete: 'off' }),
    user_id: h('input', { name: 'user_id', autocomplete: 'off' }),
    resource_type: h('input', { name: 'resource_type', autocomplete: 'off' }),
    resource_id: h('input', { name: 'resource_id', autocomplete: 'off' }),
    since: h('input', { name: 'since', type: 'datetime-local' }),
    until: h('input', { name: 'until', type: 'datetime-local' }),
  };
  const labels = { action: 'Action (e.g. login_success)', user_id: 'User id', resource_type: 'Resource type', resource_id: 'Resource id', since: 'From', until: 'Until' };
  const filters = h('form', { class: 'toolbar', role: 'search', 'aria-label': 'Filter the audit log' },
    Object.entries(inputs).map(([k, el]) => field(labels[k], el)), h('button', { type: 'submit' }, 'Filter'));
  const body = h('tbody');
  const list = h('table', {}, h('caption', {}, 'Audit records, newest first'),
    h('thead', {}, h('tr', {}, ['When', 'Action', 'User', 'Resource', 'IP', 'Details'].map((c) => h('th', { scope: 'col' }, c)))),
    body);
  const footer = h('div');
  const box = h('div');
  view.append(heading('Audit log'), filters, box, list, footer);
  const query = () => {
    const out = {};
    for (const [k, el] of Object.entries(inputs)) {
      const v = el.value.trim();
      if (!v) continue;
      // datetime-local is the browser's local time; the API wants an explicit offset.
      out[k] = el.type === 'datetime-local' ? new Date(v).toISOString() : v;
    }
    return out;
  };
  const load = pager(
    (cursor) => api('/api/admin/audit-logs', { query: { ...query(), cursor } }),
    (items, reset) => {
      if (reset) body.replaceChildren();
      body.append(...items.map((r) => h('tr', {},
        h('td', {}, fmtDate(r.created_at)), h('td', {}, r.action), h('td', { class: 'mono' }, fmt(r.user_id)),
        h('td', {}, r.resource_type ? `${r.resource_type} ${r.resource_id || ''}` : '—'), h('td', {}, fmt(r.ip_address)),
        h('td', {}, r.details && Object.keys(r.details).length
          ? h('details', {}, h('summary', {}, 'Show'), h('pre', {}, JSON.stringify(r.details, null, 2)))
          : '—'))));
      if (!body.children.length) body.append(h('tr', {}, h('td', { colspan: '6', class: 'empty' }, 'No records match.')));
    },
    footer);
  filters.addEventListener('submit', (e) => { e.preventDefault(); message(box, 'info', ''); load(true); });
  await load(true);
}
