// Admin pages: users (filter, create, edit, lock/unlock, password resets) and the audit-log browser.

import { api, download, explain } from './api.js';
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
    h('thead', {}, h('tr', {}, ['Username', 'Name', 'Email', 'Role', 'Status', 'Created', 'Id', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
    body);
  view.append(heading('Users'), filters, rowBox, list);
  const footer = h('div');
  view.append(footer);

  const row = (u) => {
    const name = h('td', {}, fmt(u.full_name));
    const email = h('td', {}, u.email);
    const roleCell = h('td', {}, u.role);
    const status = h('td', {}, u.is_active ? 'active' : 'locked');
    const toggle = h('button', { type: 'button', class: 'secondary', 'aria-label': `${u.is_active ? 'Lock' : 'Unlock'} ${u.username}` }, u.is_active ? 'Lock' : 'Unlock');
    toggle.addEventListener('click', async () => {
      // Locking signs the user out everywhere at once: ask first. Unlocking needs no warning.
      if (u.is_active && !window.confirm(`Lock ${u.username}? They are signed out at once and cannot sign in until unlocked.`)) return;
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
    const edit = h('button', { type: 'button', class: 'secondary', 'aria-label': `Edit ${u.username}` }, 'Edit');
    edit.addEventListener('click', () => {
      const form = editForm(u, (updated) => {
        Object.assign(u, updated);
        name.textContent = fmt(u.full_name);
        email.textContent = u.email;
        roleCell.textContent = u.role;
        message(rowBox, 'info', `${u.username} is saved.`);
        form.remove();
      });
      rowBox.replaceChildren(form);
      form.querySelector('input').focus();
    });
    const reset = h('button', { type: 'button', class: 'secondary', 'aria-label': `Reset password of ${u.username}` }, 'Reset password');
    reset.addEventListener('click', async () => {
      reset.disabled = true;
      try {
        const link = await api(`/api/admin/users/${u.id}/password-reset`, { method: 'POST' });
        rowBox.replaceChildren(linkCard(`Password reset link for ${u.username}`, link.setup_link, link.expires_at,
          'Their current password keeps working until they use this link; using it signs them out everywhere.'));
      } catch (err) {
        showError(rowBox, err);
      } finally {
        reset.disabled = false;
      }
    });
    return h('tr', { dataset: { userId: u.id } },
      h('td', {}, u.username), name, email, roleCell, status,
      h('td', {}, fmtDate(u.created_at)), h('td', { class: 'mono' }, u.id), h('td', {}, edit, ' ', toggle, ' ', reset));
  };
  const load = pager(
    (cursor) => api('/api/admin/users', { query: { q: q.value.trim(), role: role.value, is_active: active.value, cursor } }),
    (items, reset) => {
      if (reset) body.replaceChildren();
      body.append(...items.map(row));
      if (!body.children.length) body.append(h('tr', {}, h('td', { colspan: '8', class: 'empty' }, 'No users match.')));
    },
    footer);
  filters.addEventListener('submit', (e) => { e.preventDefault(); load(true); });
  view.append(createUserForm(() => load(true)));
  await load(true);
}

const ROLES = [['student', 'Student'], ['teacher', 'Teacher'], ['admin', 'Admin']];

/** A one-time link, shown once, with a button that copies it. */
function linkCard(title, url, expiresAt, note) {
  const input = h('input', { type: 'text', readonly: true, value: url, 'aria-label': title, class: 'mono' });
  const status = h('span', { role: 'status' });
  const copy = h('button', { type: 'button' }, 'Copy link');
  copy.addEventListener('click', async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(url);
      status.textContent = ' Copied.';
    } catch {
      status.textContent = ' Press Ctrl+C (⌘C) to copy the selected link.';
    }
  });
  return h('div', { class: 'card' }, h('h2', {}, title), input, copy, status,
    h('p', { class: 'hint' }, `Shown only this once. It works once, until ${fmtDate(expiresAt)}. ${note}`));
}

function editForm(u, onSaved) {
  const inputs = {
    full_name: h('input', { name: 'full_name', autocomplete: 'off', value: u.full_name || '' }),
    email: h('input', { name: 'email', type: 'email', required: true, autocomplete: 'off', value: u.email }),
    role: select('role', ROLES, u.role),
  };
  const box = h('div');
  const form = h('form', { class: 'card', 'aria-label': `Edit ${u.username}` },
    h('h2', {}, `Edit ${u.username}`),
    field('Full name', inputs.full_name), field('Email', inputs.email),
    field('Role', inputs.role, 'A new role signs the user out everywhere; they sign in again with it.'),
    box, h('button', { type: 'submit' }, 'Save'), ' ',
    h('button', { type: 'button', class: 'secondary', onclick: () => form.remove() }, 'Cancel'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!form.reportValidity()) return;
    const body = {};
    const fullName = inputs.full_name.value.trim() || null;
    if (fullName !== (u.full_name || null)) body.full_name = fullName;
    if (inputs.email.value.trim().toLowerCase() !== u.email) body.email = inputs.email.value.trim();
    if (inputs.role.value !== u.role) body.role = inputs.role.value;
    try {
      onSaved(await api(`/api/admin/users/${u.id}`, { method: 'PATCH', body }));
    } catch (err) {
      if (err.status === 409) message(box, 'error', explain(err));
      else showError(box, err);
    }
  });
  return form;
}

function createUserForm(onCreated) {
  const inputs = {
    email: h('input', { name: 'email', type: 'email', required: true, autocomplete: 'off' }),
    username: h('input', { name: 'username', required: true, autocomplete: 'off', pattern: '[A-Za-z0-9_.\\-]{3,64}' }),
    full_name: h('input', { name: 'full_name', autocomplete: 'off' }),
    role: select('role', ROLES, 'teacher'),
    password: h('input', { name: 'password', type: 'password', autocomplete: 'new-password', minlength: '8' }),
  };
  const box = h('div');
  const form = h('form', { class: 'card', 'aria-labelledby': 'new-user-h' },
    h('h2', { id: 'new-user-h' }, 'Create a user'),
    field('Email', inputs.email), field('Username', inputs.username, '3–64 letters, digits, dots, dashes or underscores.'),
    field('Full name (optional)', inputs.full_name), field('Role', inputs.role),
    field('Initial password (optional)', inputs.password, 'At least 8 characters and not a common password. Leave it empty to get a one-time link with which the user chooses their own.'),
    box, h('button', { type: 'submit' }, 'Create user'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!form.reportValidity()) return;
    try {
      const body = {};
      for (const [k, el] of Object.entries(inputs)) if (el.value.trim()) body[k] = k === 'password' ? el.value : el.value.trim();
      const user = await api('/api/admin/users', { method: 'POST', body });
      // Reset first: the link card is shown inside the form, and a reset would empty it.
      form.reset();
      inputs.role.value = 'teacher';
      message(box, 'info', `${user.role[0].toUpperCase()}${user.role.slice(1)} ${user.username} created (id ${user.id}).`);
      if (user.setup_link) {
        box.append(linkCard(`Set-password link for ${user.username}`, user.setup_link, user.setup_link_expires_at,
          'Give it to them privately; with it they choose their password.'));
      }
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
    action: select('action', [['', 'Any']], ''),
    user_id: h('input', { name: 'user_id', autocomplete: 'off' }),
    resource_type: h('input', { name: 'resource_type', autocomplete: 'off' }),
    resource_id: h('input', { name: 'resource_id', autocomplete: 'off' }),
    since: h('input', { name: 'since', type: 'datetime-local' }),
    until: h('input', { name: 'until', type: 'datetime-local' }),
  };
  const labels = { action: 'Action', user_id: 'User id', resource_type: 'Resource type', resource_id: 'Resource id', since: 'From', until: 'Until' };
  const exportButton = h('button', { type: 'button', class: 'secondary' }, 'Download (CSV)');
  const filters = h('form', { class: 'toolbar', role: 'search', 'aria-label': 'Filter the audit log' },
    Object.entries(inputs).map(([k, el]) => field(labels[k], el)), h('button', { type: 'submit' }, 'Filter'), exportButton);
  const body = h('tbody');
  const list = h('table', {}, h('caption', {}, 'Audit records, newest first'),
    h('thead', {}, h('tr', {}, ['When', 'Action', 'User', 'Resource', 'IP', 'Details'].map((c) => h('th', { scope: 'col' }, c)))),
    body);
  const footer = h('div');
  const box = h('div');
  view.append(heading('Audit log'), filters, box, list, footer);
  try {
    // The actions the trail holds, so the filter offers only what can match.
    const { actions } = await api('/api/admin/audit-logs/actions');
    inputs.action.append(...actions.map((a) => h('option', { value: a }, a)));
  } catch (err) {
    showError(box, err);
  }
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
        h('td', {}, fmtDate(r.created_at)), h('td', {}, r.action),
        h('td', {}, r.user_id ? [r.user_name || '(deleted user)', r.user_email ? ` <${r.user_email}>` : '', h('br'), h('span', { class: 'mono' }, r.user_id)] : '—'),
        h('td', {}, r.resource_type ? `${r.resource_type} ${r.resource_id || ''}` : '—'), h('td', {}, fmt(r.ip_address)),
        h('td', {}, r.details && Object.keys(r.details).length
          ? h('details', {}, h('summary', {}, 'Show'), h('pre', {}, JSON.stringify(r.details, null, 2)))
          : '—'))));
      if (!body.children.length) body.append(h('tr', {}, h('td', { colspan: '6', class: 'empty' }, 'No records match.')));
    },
    footer);
  filters.addEventListener('submit', (e) => { e.preventDefault(); message(box, 'info', ''); load(true); });
  // The records the filters select, every page of them.
  exportButton.addEventListener('click', async () => {
    try {
      await download('/api/admin/audit-logs/export.csv', { query: query() });
    } catch (err) {
      showError(box, err);
    }
  });
  await load(true);
}
