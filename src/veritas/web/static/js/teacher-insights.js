// Teacher pages for what happened: exam analytics, an attempt's timeline, a student.

import { api, download, openPage } from './api.js';
import { h, heading, facts, fmt, fmtDate, fmtIntegrity, fmtPct, gradingBadge, link, passedText, scoreWithStatus, showError, table } from './ui.js';
import { say } from './words.js';
import { barChart, histogram, shareBar, timelineStrip } from './charts.js';

/** A button that downloads one of the API's CSV exports, saying so if it fails. */
function downloadButton(label, path, box) {
  return h('button', { type: 'button', class: 'secondary', onclick: async () => {
    try {
      await download(path);
    } catch (err) {
      showError(box, err);
    }
  } }, label);
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
  const exam = encodeURIComponent(data.exam.id);
  view.append(
    h('div', { class: 'actions' },
      downloadButton('Download grades (CSV)', `/api/teacher/exams/${exam}/export/grades.csv`, box),
      downloadButton('Download alerts (CSV)', `/api/teacher/exams/${exam}/export/alerts.csv`, box),
      link(`#/teacher/alerts?exam=${exam}`, 'Alerts of this exam')),
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
        { label: say('risks', 'safe'), value: risk.safe, color: '#15803d' },
        { label: say('risks', 'at_risk'), value: risk.at_risk, color: '#b45309' },
        { label: say('risks', 'high_risk'), value: risk.high_risk, color: 'var(--danger)' },
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
      { label: 'Risk', render: (s) => say('risks', s.dropout_label) },
      { label: 'Latest attempt', render: (s) => { const t = s.attempts.at(-1); return t ? link(`#/teacher/attempts/${t.attempt_id}`, `Timeline (${say('attempt_statuses', t.status)})`) : '—'; } },
    ], data.students),
  );
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
  const report = h('button', { type: 'button', class: 'secondary', onclick: async () => {
    try {
      // In the reader's time zone: the report names it.
      await openPage(`/api/teacher/attempts/${encodeURIComponent(attempt.attempt_id)}/report`,
        { query: { tz: Intl.DateTimeFormat().resolvedOptions().timeZone } });
    } catch (err) {
      showError(box, err);
    }
  } }, 'Printable report');
  view.append(
    h('div', { class: 'actions' }, report,
      h('span', { class: 'muted' }, 'An incident report of this attempt to print or save as PDF.')),
    facts([
      ['Student', link(`#/teacher/students/${attempt.student_id}`, 'Student detail')],
      ['Status', say('attempt_statuses', attempt.status)],
      ['Score', scoreWithStatus(attempt)],
      ['Passed', passedText(attempt)],
      ['Answers', link(`#/teacher/attempts/${attempt.attempt_id}/grading`, attempt.grading_status === 'pending' ? 'Grade this attempt' : 'Answers and grades')],
      ['Started', fmtDate(attempt.started_at)],
      ['Completed', fmtDate(attempt.completed_at)],
      ['Integrity score', fmtIntegrity(attempt.integrity_score, attempt.integrity_score_status)],
      ['Analysis', ANALYSIS_LABELS[attempt.analysis_status] || '—'],
      ['Flagged', attempt.flagged],
      ['Risk', say('risks', attempt.dropout_label)],
      ['Drafts saved', (attempt.drafts || []).length],
      ['Events', `${summary.total_events ?? events.length} (${Object.entries(summary.by_severity || {}).map(([k, v]) => `${v} ${say('severities', k).toLowerCase()}`).join(', ')})`],
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
    { label: 'Event', render: (e) => say('events', e.event_type) },
    { label: 'Severity', render: (e) => say('severities', e.severity) },
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
      ['Risk', say('risks', p.current_dropout_risk)],
      ['Flagged for review', p.flagged_for_review],
    ]),
    h('h2', {}, 'Attempts at your exams'),
    table([
      { label: 'Exam', key: 'exam_title' },
      { label: 'Status', render: (a) => say('attempt_statuses', a.status) },
      { label: 'Score', render: (a) => (a.percentage == null ? '—' : h('span', {}, `${a.percentage.toFixed(1)} % `, gradingBadge(a.grading_status))) },
      { label: 'Passed', render: passedText },
      { label: 'Integrity', render: (a) => fmtIntegrity(a.integrity_score, a.integrity_score_status) },
      { label: 'Flagged', key: 'flagged' },
      { label: 'Started', render: (a) => fmtDate(a.started_at) },
      { label: 'Timeline', render: (a) => link(`#/teacher/attempts/${a.attempt_id}`, 'Timeline') },
    ], s.attempts),
  );
}
