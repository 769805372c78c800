// The teacher's alerts: filters (exam, kind, status, severity), paging, triage (acknowledge,
// dismiss or reopen with a note, and the history of each alert), an export of an exam's
// alerts, and the live stream, which puts each new or changed alert in its place in the list.

import { ApiError, api, download, session } from './api.js';
import { h, heading, field, fmtZoned, link, message, select, showError } from './ui.js';
import { choices, say } from './words.js';

const STREAM_RETRY_MS = 3000; // wait before reopening a dropped alert stream
const CATCH_UP_MS = 8000; // within the stream's own look-back (10 s on the server)
const PAGE_SIZE = 50;
const RANK = { normal: 0, warning: 1, critical: 2 };
const PROVISIONAL_ALERT = 'The integrity score behind this alert is provisional: the alert is confirmed, changed or withdrawn once the exam settles.';
const ACTIONS = { acknowledged: 'Acknowledge', dismissed: 'Dismiss', open: 'Reopen' };

function hashQuery() {
  return new URLSearchParams(location.hash.split('?')[1] || '');
}

// An ISO time as whole microseconds, so two alerts raised in the same millisecond still
// compare as the server orders them.
function micros(iso) {
  const fraction = (/\.(\d+)/.exec(iso)?.[1] || '').padEnd(6, '0').slice(0, 6);
  return Math.floor(Date.parse(iso) / 1000) * 1e6 + Number(fraction);
}

/** The list's order, as the server pages it: most severe, then newest raised, then id. */
function ranksBefore(a, b) {
  if (RANK[a.severity] !== RANK[b.severity]) return RANK[a.severity] > RANK[b.severity];
  const ta = micros(a.first_at);
  const tb = micros(b.first_at);
  if (ta !== tb) return ta > tb;
  return a.id > b.id;
}

function what(a) {
  return a.event_type ? say('events', a.event_type) : say('alert_kinds', a.kind);
}

export async function alertList({ view }) {
  const query = hashQuery();
  const examSelect = select('exam', [['', 'All my exams']], query.get('exam') || '');
  const kindSelect = select('kind', [['', 'All kinds'],
    ...choices('alert_kinds').filter(([k]) => k !== 'monitoring_anomaly'),
    ...choices('events').filter(([k]) => k !== 'heartbeat' && k !== 'typing')], query.get('kind') || '');
  const statusSelect = select('status', [...choices('statuses'), ['all', 'Any status']], query.get('status') || 'open');
  const severitySelect = select('severity', [['', 'Any severity'], ...choices('severities').slice().reverse()], '');
  const exportButton = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Download this exam\'s alerts (CSV)');
  const pause = h('button', { type: 'button', class: 'secondary', 'aria-pressed': 'false' }, 'Pause updates');
  const updated = h('p', { class: 'muted' }, 'Loading…');
  const announce = h('p', { class: 'sr-only', 'aria-live': 'polite' });
  const box = h('div');
  const body = h('tbody');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Load more');
  const tableEl = h('table', { class: 'alerts' }, h('caption', {}, 'Alerts, most serious and newest first'),
    h('thead', {}, h('tr', {}, ['Severity', 'Raised', 'Exam', 'Student', 'What happened', 'Times', 'Status', 'Triage', 'Attempt']
      .map((c) => h('th', { scope: 'col' }, c)))),
    body);
  const dialog = triageDialog(onTriaged);
  view.append(heading('Alerts'),
    h('p', {}, 'New alerts and changes arrive here as they happen; there is no need to reload. '
      + 'Acknowledge an alert you are looking into, dismiss one that needs nothing more; a dismissed alert that comes back more serious opens again.'),
    h('div', { class: 'toolbar' }, field('Exam', examSelect), field('Kind', kindSelect), field('Status', statusSelect),
      field('Severity', severitySelect), pause, exportButton),
    updated, announce, box, h('div', { class: 'table-scroll' }, tableEl), more, dialog.element);

  let items = [];
  let cursor = null;
  let boundary = null; // the last alert of the last page read: the next page starts after it
  let stopped = false;
  let paused = false;
  let generation = 0; // which load is current: an answer to an older one is dropped
  let heard = Date.now(); // the list's last news: a load, or a message on the stream
  const rows = new Map(); // alert id -> its <tr>
  const controller = new AbortController();

  const filters = () => ({ exam_id: examSelect.value, kind: kindSelect.value, status: statusSelect.value, severity: severitySelect.value });

  function matches(a) {
    const f = filters();
    return (!f.exam_id || a.exam_id === f.exam_id) && (!f.kind || a.kind === f.kind || a.event_type === f.kind)
      && (f.status === 'all' || a.status === f.status) && (!f.severity || a.severity === f.severity);
  }

  function row(a, fresh) {
    const triage = a.status === 'open'
      ? [button('acknowledged', a), button('dismissed', a)]
      : [button('open', a), button(a.status === 'dismissed' ? 'acknowledged' : 'dismissed', a)];
    return h('tr', { class: `sev-${a.severity}${fresh ? ' new' : ''}`, dataset: { eventType: a.event_type || '', kind: a.kind, alertId: a.id, status: a.status } },
      h('td', {}, h('span', { class: `badge badge-${a.severity}` }, say('severities', a.severity))),
      h('td', {}, fmtZoned(a.first_at)),
      h('td', {}, link(`#/teacher/exams/${a.exam_id}/analytics`, a.exam_title)),
      h('td', {}, link(`#/teacher/students/${a.student_id}`, a.full_name || a.username || `Student ${String(a.student_id).slice(0, 8)}`)),
      h('td', {}, h('strong', {}, what(a)), a.description ? h('br') : null, a.description ? h('span', { class: 'muted' }, a.description) : null,
        a.score_status === 'provisional' ? [' ', h('span', { class: 'badge badge-provisional', title: PROVISIONAL_ALERT }, 'provisional')] : null),
      h('td', {}, a.count > 1 ? `${a.count} times, latest ${fmtZoned(a.created_at)}` : '1'),
      h('td', {}, h('span', { class: `status status-${a.status}` }, say('statuses', a.status)),
        a.status_note ? h('span', { class: 'muted note' }, ` “${a.status_note}”`) : null),
      h('td', { class: 'triage' }, triage),
      h('td', {}, link(`#/teacher/attempts/${a.attempt_id}`, 'Timeline')));
  }

  function button(status, a) {
    return h('button', { type: 'button', class: 'secondary small', 'aria-label': `${ACTIONS[status]}: ${what(a)}, ${a.full_name || a.username}`,
      onclick: () => dialog.open(a, status) }, ACTIONS[status]);
  }

  function showEmpty() {
    const empty = body.querySelector('tr.empty-row');
    if (!items.length && !empty) body.append(h('tr', { class: 'empty-row' }, h('td', { colspan: '9', class: 'empty' }, 'No alerts.')));
    if (items.length && empty) empty.remove();
  }

  function append(list) {
    for (const a of list) {
      if (rows.has(a.id)) continue; // moved up since its page was read
      items.push(a);
      const tr = row(a, false);
      rows.set(a.id, tr);
      body.append(tr);
    }
    showEmpty();
  }

  /** A new or changed alert (from the stream or a triage): drop it, then put it back at its
   *  rank if it still matches and falls within what is loaded; the pages below get it. */
  function place(a, fresh) {
    const old = items.findIndex((x) => x.id === a.id);
    if (old >= 0) {
      items.splice(old, 1);
      rows.get(a.id)?.remove();
      rows.delete(a.id);
    }
    // Within what is loaded: up to the last alert of the last page read (the pages' cursor).
    if (matches(a) && (!cursor || !ranksBefore(boundary, a))) {
      const at = items.findIndex((x) => ranksBefore(a, x));
      const index = at >= 0 ? at : items.length;
      items.splice(index, 0, a);
      const tr = row(a, fresh);
      rows.set(a.id, tr);
      body.insertBefore(tr, index + 1 < items.length ? rows.get(items[index + 1].id) : null);
    }
    showEmpty();
  }

  async function load(reset) {
    const mine = ++generation;
    if (reset) { cursor = null; }
    more.disabled = true;
    try {
      const f = filters();
      const page = await api('/api/teacher/alerts', { query: { ...f, limit: PAGE_SIZE, cursor } });
      if (mine !== generation) return;
      if (reset) { items = []; rows.clear(); body.replaceChildren(); heard = Date.now(); }
      cursor = page.next_cursor;
      boundary = page.items.at(-1) || boundary;
      append(page.items);
      more.hidden = !cursor;
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      message(box, 'info', '');
    } catch (err) {
      showError(box, err);
      if (err.status === 403 || err.status === 401) stop();
    } finally {
      more.disabled = false;
    }
  }

  function onTriaged(a) {
    place(a, false);
    announce.textContent = `${what(a)} of ${a.full_name || a.username}: ${say('statuses', a.status)}.`;
  }

  // Server-sent events over fetch, so the bearer token goes in a header, not the URL.
  async function listen() {
    while (!stopped) {
      try {
        const res = await fetch('/api/teacher/alerts/stream', { headers: { Authorization: `Bearer ${session.token()}` }, signal: controller.signal });
        if (res.status === 401 || res.status === 403) {
          showError(box, new ApiError(res.status, (await res.json().catch(() => ({}))).detail));
          stop();
          return;
        }
        if (res.ok && res.body) {
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = '';
          let first = true;
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            // The stream starts by sending what changed in its last seconds (STREAM_OVERLAP on
            // the server); after a longer silence, read the list again.
            if (first && Date.now() - heard > CATCH_UP_MS && !paused) load(true);
            first = false;
            heard = Date.now();
            buffer += value;
            let cut;
            while ((cut = buffer.indexOf('\n\n')) >= 0) {
              const block = buffer.slice(0, cut).split('\n');
              buffer = buffer.slice(cut + 2);
              const data = block.find((line) => line.startsWith('data: '));
              if (block.includes('event: alert') && data && !paused) arrived(JSON.parse(data.slice(6)));
            }
          }
        }
      } catch {
        if (stopped) return;
      }
      await new Promise((resolve) => setTimeout(resolve, STREAM_RETRY_MS));
    }
  }

  function arrived(a) {
    const known = items.find((x) => x.id === a.id);
    place(a, !known || known.count !== a.count || known.severity !== a.severity);
    if (matches(a) && (!known || known.count !== a.count)) announce.textContent = `New: ${what(a)}, ${a.full_name || a.username}.`;
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  function stop() {
    stopped = true;
    controller.abort();
  }

  function refilter() {
    exportButton.hidden = !examSelect.value;
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries({ exam: examSelect.value, kind: kindSelect.value, status: statusSelect.value })) if (v) q.set(k, v);
    history.replaceState(null, '', `#/teacher/alerts${q.toString() ? `?${q}` : ''}`);
    load(true);
  }

  for (const control of [examSelect, kindSelect, statusSelect, severitySelect]) control.addEventListener('change', refilter);
  more.addEventListener('click', () => load(false));
  exportButton.addEventListener('click', async () => {
    try {
      await download(`/api/teacher/exams/${encodeURIComponent(examSelect.value)}/export/alerts.csv`);
    } catch (err) {
      showError(box, err);
    }
  });
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.setAttribute('aria-pressed', String(paused));
    pause.textContent = paused ? 'Resume updates' : 'Pause updates';
    if (!paused) load(true);
  });

  // The exams to filter by: those the caller may see (alerts come from those they analyze).
  api('/api/teacher/exams', { query: { limit: 500 } }).then((page) => {
    const chosen = examSelect.value;
    examSelect.replaceChildren(h('option', { value: '' }, 'All my exams'),
      ...page.items.map((e) => h('option', { value: e.id, selected: e.id === chosen }, e.title)));
    examSelect.value = chosen;
    exportButton.hidden = !examSelect.value;
  }).catch(() => {});
  await load(true);
  listen();
  return stop;
}

/** The dialog that changes an alert's status, with a note, and shows its history. */
function triageDialog(onDone) {
  const title = h('h2', { id: 'triage-title' }, 'Alert');
  const summary = h('p');
  const status = select('status', choices('statuses'), 'acknowledged');
  const note = h('textarea', { name: 'note', rows: '3', maxlength: '2000' });
  const box = h('div');
  const changes = h('ol', { class: 'history' });
  const save = h('button', { type: 'submit' }, 'Save');
  const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
  const form = h('form', { method: 'dialog' },
    title, summary, field('New status', status), field('Note (optional)', note, 'Why: it is kept with the alert and in the audit log.'),
    box, h('div', { class: 'actions' }, save, cancel),
    h('h3', {}, 'History'), changes);
  const element = h('dialog', { class: 'triage-dialog', 'aria-labelledby': 'triage-title' }, form);
  let current = null;

  function showHistory(items) {
    changes.replaceChildren(...(items.length ? items.map((c) => h('li', {},
      `${fmtZoned(c.created_at)}: ${c.changed_by ? c.changed_by.full_name || c.changed_by.username || 'a former user' : 'Veritas'} `
      + `changed “${say('statuses', c.from_status)}” to “${say('statuses', c.to_status)}”`,
      c.note ? h('span', { class: 'muted' }, ` — ${c.note}`) : null)) : [h('li', { class: 'muted' }, 'No change yet: raised and open.')]));
  }

  cancel.addEventListener('click', () => element.close());
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    save.disabled = true;
    try {
      const changed = await api(`/api/teacher/alerts/${encodeURIComponent(current.id)}/status`, {
        method: 'POST', body: { status: status.value, note: note.value.trim() || null } });
      element.close();
      onDone(changed);
    } catch (err) {
      showError(box, err);
    } finally {
      save.disabled = false;
    }
  });

  return {
    element,
    async open(alert, next) {
      current = alert;
      title.textContent = `${ACTIONS[next]}: ${what(alert)}`;
      summary.textContent = `${alert.full_name || alert.username}, ${alert.exam_title}. ${alert.description || ''} Now: ${say('statuses', alert.status)}.`;
      status.value = next;
      note.value = '';
      message(box, 'info', '');
      changes.replaceChildren(h('li', { class: 'muted' }, 'Loading…'));
      element.showModal();
      note.focus();
      try {
        showHistory((await api(`/api/teacher/alerts/${encodeURIComponent(alert.id)}`)).history);
      } catch (err) {
        showError(box, err);
      }
    },
  };
}
