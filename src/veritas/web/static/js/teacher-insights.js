// Teacher pages for what happened: exam analytics, live alerts, an attempt's timeline, a student.

import { ApiError, api, session } from './api.js';
import { h, heading, facts, field, fmt, fmtDate, fmtIntegrity, fmtPct, gradingBadge, link, message, passedText, scoreWithStatus, select, showError, table } from './ui.js';
import { barChart, histogram, shareBar, timelineStrip } from './charts.js';

const RISK_LABELS = { safe: 'Safe', at_risk: 'At risk', high_risk: 'High risk' };
const STREAM_RETRY_MS = 3000; // wait before reopening a dropped alert stream

function hashQuery() {
  return new URLSearchParams(location.hash.split('?')[1] || '');
}

export async function analytics({ view, params }) {
  const box = h('div');
  view.append(heading('Exam analytics'), box);
  let data;
  try {
    data = await api(`/api/teacher/exams/${encodeURIComponent(params.examId)}/analytics`);
  } catch (err) {
    showError(box, err);
    return;
  }
  const a = data.analytics;
  view.querySelector('h1').textContent = `Analytics: ${data.exam.title}`;
  const attempts = data.students.flatMap((s) => s.attempts);
  const completed = attempts.filter((t) => t.status === 'completed');
  const risk = { safe: 0, at_risk: 0, high_risk: 0, none: 0 };
  for (const s of data.students) risk[s.dropout_label || 'none'] += 1;
  const passed = completed.filter((t) => t.passed).length;
  view.append(
    facts([
      ['Students', a.unique_students],
      ['Completed attempts', a.total_attempts],
      ['Average score', a.avg_score == null ? '—' : `${a.avg_score.toFixed(1)} %`],
      ['Pass rate', fmtPct(a.pass_rate, 100)],
      ['Average integrity', fmtIntegrity(a.avg_integrity, a.avg_integrity_status)],
      ['High-risk attempts', a.high_risk_count],
      ['Awaiting grading', a.pending_grading ? link(`#/teacher/grading?exam=${data.exam.id}`, `${a.pending_grading} attempt${a.pending_grading > 1 ? 's' : ''}`) : 'none'],
    ]),
    h('div', { class: 'charts' },
      barChart('Score distribution (completed attempts, % of max score)', histogram(completed.map((t) => t.percentage), 10, 100)),
      barChart('Integrity distribution (analysed attempts, %)', histogram(attempts.map((t) => t.integrity_score), 10, 1, 100), { color: '#0f766e' }),
      barChart('Risk breakdown (students)', [
        { label: 'Safe', value: risk.safe, color: '#15803d' },
        { label: 'At risk', value: risk.at_risk, color: '#b45309' },
        { label: 'High risk', value: risk.high_risk, color: 'var(--danger)' },
        { label: 'Not assessed', value: risk.none, color: '#94a3b8' },
      ]),
      shareBar('Pass rate (completed attempts)', [
        { label: 'Passed', value: passed, color: '#15803d' },
        { label: 'Failed', value: completed.length - passed, color: '#b91c1c' },
      ])),
    h('h2', {}, 'Students'),
    table([
      { label: 'Student', render: (s) => link(`#/teacher/students/${s.student_id}`, s.full_name || s.username) },
      { label: 'Attempts', render: (s) => s.attempts.length },
      { label: 'Latest score', render: (s) => { const t = s.attempts.at(-1); return t?.percentage == null ? '—' : h('span', {}, `${t.percentage.toFixed(1)} % `, gradingBadge(t.grading_status)); } },
      { label: 'Integrity', render: (s) => fmtIntegrity(s.integrity_score, s.integrity_score_status) },
      { label: 'Risk', render: (s) => RISK_LABELS[s.dropout_label] || '—' },
      { label: 'Latest attempt', render: (s) => { const t = s.attempts.at(-1); return t ? link(`#/teacher/attempts/${t.attempt_id}`, `Timeline (${t.status})`) : '—'; } },
    ], data.students),
  );
}

export async function liveAlerts({ view }) {
  const examId = hashQuery().get('exam') || '';
  const severity = select('severity', [['', 'All'], ['warning', 'Warning'], ['critical', 'Critical'], ['normal', 'Normal']], '');
  const pause = h('button', { type: 'button', class: 'secondary', 'aria-pressed': 'false' }, 'Pause updates');
  const updated = h('p', { class: 'muted' }, 'Loading…');
  const announce = h('p', { class: 'sr-only', 'aria-live': 'polite' });
  const box = h('div');
  const body = h('tbody');
  const tableEl = h('table', {}, h('caption', {}, 'Anomalies and analysis alerts, most severe and newest first'),
    h('thead', {}, h('tr', {}, ['Severity', 'Latest', 'Exam', 'Student', 'Event', 'Times', 'What happened', 'Attempt'].map((c) => h('th', { scope: 'col' }, c)))),
    body);
  view.append(heading('Live alerts'),
    h('p', {}, 'New alerts arrive here as they happen; there is no need to reload.'),
    h('div', { class: 'toolbar' }, field('Severity', severity), pause),
    examId ? h('p', {}, 'Showing one exam. ', link('#/teacher/alerts', 'Show all exams')) : '',
    updated, announce, box, tableEl);
  const seen = new Set();
  let first = true;
  let paused = false;
  let stopped = false;
  let pending = null;
  const controller = new AbortController();

  // The list itself comes from GET /api/teacher/alerts; the stream only says when to reload it.
  async function reload() {
    pending = null;
    if (stopped || paused) return;
    try {
      const page = await api('/api/teacher/alerts', { query: { limit: 100, exam_id: examId, severity: severity.value } });
      render(page.items);
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      message(box, 'info', '');
    } catch (err) {
      showError(box, err);
      if (err.status === 403 || err.status === 401) stop();
    }
  }

  function soon() {
    if (!pending) pending = setTimeout(reload, 150); // one reload for a burst of alerts
  }

  // Server-sent events over fetch, so the bearer token goes in a header, not the URL.
  async function listen() {
    while (!stopped) {
      try {
        const res = await fetch(`/api/teacher/alerts/stream${examId ? `?exam_id=${encodeURIComponent(examId)}` : ''}`,
          { headers: { Authorization: `Bearer ${session.token()}` }, signal: controller.signal });
        if (res.status === 401 || res.status === 403) {
          showError(box, new ApiError(res.status, (await res.json().catch(() => ({}))).detail));
          stop();
          return;
        }
        if (res.ok && res.body) {
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = '';
          soon(); // catch up on whatever arrived while the stream was closed
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += value;
            let cut;
            while ((cut = buffer.indexOf('\n\n')) >= 0) {
              const block = buffer.slice(0, cut);
              buffer = buffer.slice(cut + 2);
              if (block.split('\n').includes('event: alert')) soon();
            }
          }
        }
      } catch {
        if (stopped) return;
      }
      await new Promise((resolve) => setTimeout(resolve, STREAM_RETRY_MS));
    }
  }

  function stop() {
    stopped = true;
    clearTimeout(pending);
    controller.abort();
  }

  function render(items) {
    // Repeats fold into one alert: a higher count is news too.
    const key = (a) => `${a.id}:${a.count}`;
    const fresh = items.filter((a) => !seen.has(key(a)));
    for (const a of fresh) seen.add(key(a));
    body.replaceChildren(...(items.length ? items.map((a) => h('tr', {
      class: !first && fresh.includes(a) ? `sev-${a.severity} new` : `sev-${a.severity}`,
      dataset: { eventType: a.event_type || '', kind: a.kind, alertId: a.id },
    },
    h('td', {}, h('span', { class: `badge badge-${a.severity}` }, a.severity)),
    h('td', {}, fmtDate(a.created_at)),
    h('td', {}, link(`#/teacher/exams/${a.exam_id}/analytics`, a.exam_title)),
    h('td', {}, link(`#/teacher/students/${a.student_id}`, a.full_name || a.username || `Student ${String(a.student_id).slice(0, 8)}`)),
    // Analysis alerts have a kind but no event type.
    h('td', {}, a.event_type || (a.kind || '').replaceAll('_', ' ')),
    h('td', {}, a.count > 1 ? `${a.count} times since ${fmtDate(a.first_at)}` : '1'),
    h('td', {}, a.description || '—', a.score_status === 'provisional' ? [' ', h('span', { class: 'badge badge-provisional', title: 'The integrity score behind this alert is provisional: the alert is confirmed, changed or withdrawn once the exam settles.' }, 'provisional')] : null),
    h('td', {}, link(`#/teacher/attempts/${a.attempt_id}`, 'Timeline')))) : [h('tr', {}, h('td', { colspan: '8', class: 'empty' }, 'No alerts.'))]));
    if (!first && fresh.length) announce.textContent = `${fresh.length} new alert${fresh.length > 1 ? 's' : ''}.`;
    first = false;
  }

  severity.addEventListener('change', () => { first = true; seen.clear(); reload(); });
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.setAttribute('aria-pressed', String(paused));
    pause.textContent = paused ? 'Resume updates' : 'Pause updates';
    if (!paused) reload();
  });
  await reload();
  listen();
  return stop;
}

async function allEvents(attemptId) {
  const events = [];
  let cursor = null;
  for (let i = 0; i < 20; i += 1) { // 10,000 events is far more than any exam produces
    const page = await api(`/api/teacher/attempts/${encodeURIComponent(attemptId)}/monitoring`, { query: { limit: 500, cursor } });
    events.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return events;
}

function compactData(data) {
  const { seq, ...rest } = data || {};
  const text = Object.entries(rest).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
  return seq === undefined ? text || '—' : `#${seq}${text ? ` · ${text}` : ''}`;
}

// An attempt's analysis_status; a failed one will not be retried by itself.
const ANALYSIS_LABELS = {
  pending: 'Pending',
  done: 'Done',
  failed: 'Failed: ask an administrator (the server log names this attempt)',
};

export async function attemptTimeline({ view, params }) {
  const box = h('div');
  view.append(heading('Attempt timeline'), box);
  let attempt;
  let events;
  try {
    [attempt, events] = await Promise.all([
      api(`/api/teacher/attempts/${encodeURIComponent(params.attemptId)}`),
      allEvents(params.attemptId),
    ]);
  } catch (err) {
    showError(box, err);
    return;
  }
  view.querySelector('h1').textContent = `Attempt timeline: ${attempt.exam_title}`;
  const summary = attempt.monitoring_summary || {};
  const analysis = attempt.behavior_analysis;
  const end = attempt.completed_at || (Date.now() < new Date(attempt.expires_at).getTime() ? new Date().toISOString() : attempt.expires_at);
  view.append(
    facts([
      ['Student', link(`#/teacher/students/${attempt.student_id}`, 'Student detail')],
      ['Status', attempt.status],
      ['Score', scoreWithStatus(attempt)],
      ['Passed', passedText(attempt)],
      ['Answers', link(`#/teacher/attempts/${attempt.attempt_id}/grading`, attempt.grading_status === 'pending' ? 'Grade this attempt' : 'Answers and grades')],
      ['Started', fmtDate(attempt.started_at)],
      ['Completed', fmtDate(attempt.completed_at)],
      ['Integrity score', fmtIntegrity(attempt.integrity_score, attempt.integrity_score_status)],
      ['Analysis', ANALYSIS_LABELS[attempt.analysis_status] || '—'],
      ['Flagged', attempt.flagged],
      ['Risk', RISK_LABELS[attempt.dropout_label] || '—'],
      ['Drafts saved', (attempt.drafts || []).length],
      ['Events', `${summary.total_events ?? events.length} (${Object.entries(summary.by_severity || {}).map(([k, v]) => `${v} ${k}`).join(', ')})`],
    ]),
    timelineStrip('Events over time (anomalies marked in red)', { start: attempt.started_at, end, events }),
  );
  if (analysis) {
    view.append(h('section', { 'aria-labelledby': 'an-h' }, h('h2', { id: 'an-h' }, 'Behaviour analysis'),
      facts([
        ['Anomalies', analysis.anomaly_count],
        ['Critical events', analysis.critical_events],
        ['Needs attention', analysis.requires_instructor_attention],
        ['Summary', analysis.llm_summary],
      ]),
      (analysis.llm_recommendations || []).length ? h('ul', {}, analysis.llm_recommendations.map((r) => h('li', {}, typeof r === 'string' ? r : JSON.stringify(r)))) : null));
  }
  const onlyAnomalies = h('input', { type: 'checkbox', id: 'only-anomalies' });
  const holder = h('div');
  const draw = () => holder.replaceChildren(table([
    { label: 'Time', render: (e) => fmtDate(e.client_timestamp || e.server_timestamp) },
    { label: 'Event', key: 'event_type' },
    { label: 'Severity', key: 'severity' },
    { label: 'Anomaly', render: (e) => (e.is_anomaly ? h('strong', {}, `yes (${fmt(e.anomaly_score)})`) : 'no') },
    { label: 'Data', render: (e) => compactData(e.data_payload) },
    { label: 'Description', render: (e) => e.description || '—' },
  ], onlyAnomalies.checked ? events.filter((e) => e.is_anomaly) : events, 'Every event of this attempt'));
  onlyAnomalies.addEventListener('change', draw);
  view.append(h('h2', {}, 'Events'), h('div', { class: 'field check' }, onlyAnomalies, h('label', { for: 'only-anomalies' }, 'Only anomalies')), holder);
  draw();
}

export async function studentDetail({ view, params }) {
  const box = h('div');
  view.append(heading('Student'), box);
  let s;
  try {
    s = await api(`/api/teacher/students/${encodeURIComponent(params.studentId)}`);
  } catch (err) {
    showError(box, err);
    return;
  }
  const p = s.profile || {};
  view.querySelector('h1').textContent = `Student: ${s.full_name || s.username}`;
  view.append(
    facts([
      ['Username', s.username],
      ['Email', s.email],
      ['Enrolment id', p.enrollment_id],
      ['Cohort', p.cohort],
      ['Exams attempted', p.total_exams_attempted],
      ['Exams passed', p.total_exams_passed],
      // An average is provisional while any score in it is.
      ['Integrity (overall)', fmtIntegrity(p.cumulative_integrity_score, s.attempts.some((a) => a.integrity_score_status === 'provisional') ? 'provisional' : 'final')],
      ['Learning momentum', p.cumulative_lmi == null ? '—' : p.cumulative_lmi.toFixed(2)],
      ['Risk', RISK_LABELS[p.current_dropout_risk] || '—'],
      ['Flagged for review', p.flagged_for_review],
    ]),
    h('h2', {}, 'Attempts at your exams'),
    table([
      { label: 'Exam', key: 'exam_title' },
      { label: 'Status', key: 'status' },
      { label: 'Score', render: (a) => (a.percentage == null ? '—' : h('span', {}, `${a.percentage.toFixed(1)} % `, gradingBadge(a.grading_status))) },
      { label: 'Passed', render: passedText },
      { label: 'Integrity', render: (a) => fmtIntegrity(a.integrity_score, a.integrity_score_status) },
      { label: 'Flagged', key: 'flagged' },
      { label: 'Started', render: (a) => fmtDate(a.started_at) },
      { label: 'Timeline', render: (a) => link(`#/teacher/attempts/${a.attempt_id}`, 'Timeline') },
    ], s.attempts),
  );
}
