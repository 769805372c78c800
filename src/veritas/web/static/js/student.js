// Student pages: available exams, the dashboard, and one attempt's result.

import { api, session } from './api.js';
import { h, heading, facts, fmt, fmtDate, fmtDuration, fmtIntegrity, fmtZoned, fmtPct, fmtPoints, gradingBadge, link, passedText, showError, table } from './ui.js';
import { VeritasMonitor } from '../sdk/veritas-monitor.js';
import { say } from './words.js';

const EXAM_CACHE = 'veritas.exams';

/** Exams seen in the list, so the exam page can show a title without another lookup. */
export function cachedExam(examId) {
  try { return JSON.parse(sessionStorage.getItem(EXAM_CACHE) || '{}')[examId] || null; } catch { return null; }
}

function cacheExams(items) {
  const all = JSON.parse(sessionStorage.getItem(EXAM_CACHE) || '{}');
  for (const e of items) all[e.id] = e;
  sessionStorage.setItem(EXAM_CACHE, JSON.stringify(all));
}

export async function availableExams({ view, notice }) {
  const box = h('div');
  const list = h('ul', { class: 'cards', 'aria-label': 'Available exams' });
  view.append(heading('Available exams'), box, list);
  if (notice) box.append(h('div', { class: 'msg msg-info', role: 'status' }, notice));
  // Events an earlier exam page could not send (a crash, a closed lid) go out now.
  VeritasMonitor.drainLeftovers({ getToken: () => session.token() }).catch(() => {});
  let cursor = null;
  const more = h('button', { type: 'button', class: 'secondary', hidden: true, onclick: () => load() }, 'Load more exams');
  view.append(more);
  async function load() {
    try {
      const page = await api('/api/student/exams/available', { query: { cursor } });
      cacheExams(page.items);
      if (!page.items.length && !cursor) list.append(h('li', { class: 'empty' }, 'No exams are open to you right now.'));
      for (const exam of page.items) {
        const titleId = `exam-${exam.id}`;
        list.append(h('li', { class: 'card', 'aria-labelledby': titleId },
          h('h2', { id: titleId }, exam.title),
          h('p', { class: 'muted' }, [exam.subject, exam.topic].filter(Boolean).join(' · ')),
          exam.description ? h('p', {}, exam.description) : null,
          facts([
            ['Questions', exam.question_count],
            ['Time allowed', timeAllowed(exam)],
            ['Pass mark', `${fmt(exam.passing_score)} of ${fmt(exam.max_score)} points`],
            ['Due', exam.due_at ? fmtDate(exam.due_at) : 'no due date'],
            ['Opens', exam.opens_at ? fmtZoned(exam.opens_at) : 'open now'],
            ['Closes', exam.closes_at ? fmtZoned(exam.closes_at) : 'no closing time'],
            ['Attempts left', attemptsLeft(exam)],
          ]),
          openButton(exam)));
      }
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (err) {
      showError(box, err);
    }
  }
  await load();
}

/** The duration, with the student's own extra time when they have some. */
export function timeAllowed(exam) {
  return exam.extra_minutes ? `${exam.duration_minutes} min + ${exam.extra_minutes} min extra time` : `${exam.duration_minutes} min`;
}

function attemptsLeft(exam) {
  if (exam.attempts_left === null || exam.attempts_left === undefined) return `unlimited (${exam.attempts_used ?? 0} used)`;
  return `${exam.attempts_left} of ${exam.max_attempts}`;
}

/** Why the exam cannot be started now, or null: not yet open, closed, or no attempts left. */
export function startBlocked(exam, now = Date.now()) {
  if (exam.attempt_in_progress) return null; // resuming is always possible
  if (exam.opens_at && now < new Date(exam.opens_at).getTime()) return `Opens ${fmtZoned(exam.opens_at)}`;
  if (exam.closes_at && now >= new Date(exam.closes_at).getTime()) return `Closed ${fmtZoned(exam.closes_at)}`;
  if (exam.attempts_left === 0) return 'No attempts left';
  return null;
}

function openButton(exam) {
  const blocked = startBlocked(exam);
  if (blocked) return h('p', { class: 'muted exam-blocked' }, blocked);
  const text = exam.attempt_in_progress ? 'Continue exam' : 'Open exam';
  return h('a', { class: 'button', href: `#/student/exam/${exam.id}`, 'aria-label': `${text}: ${exam.title}` }, text);
}

function momentumWords(lmi) {
  if (lmi === null || lmi === undefined) return 'not measured yet';
  const trend = lmi > 0.1 ? 'rising' : lmi < -0.1 ? 'falling' : 'steady';
  return `${trend} (${lmi.toFixed(2)} on a scale from −1 to 1)`;
}

const RISK_WORDS = { safe: 'on track', at_risk: 'worth a check-in', high_risk: 'needs support' };

export async function dashboard({ view }) {
  view.append(heading('My dashboard'));
  const box = h('div');
  view.append(box);
  let data;
  try {
    data = await api('/api/student/dashboard');
  } catch (err) {
    showError(box, err);
    return;
  }
  const p = data.profile || {};
  const integrity = data.integrity_status || {};
  view.append(
    h('section', { 'aria-labelledby': 'sum-h' }, h('h2', { id: 'sum-h' }, 'Summary'),
      facts([
        ['Exams attempted', p.total_exams_attempted ?? 0],
        ['Exams passed', p.total_exams_passed ?? 0],
        ['Average score', p.avg_score === null || p.avg_score === undefined ? '—' : `${p.avg_score.toFixed(1)} %`],
        ['Learning momentum', momentumWords(p.cumulative_lmi)],
        ['Status', RISK_WORDS[data.dropout_risk?.label] || 'not assessed yet'],
      ])),
    h('section', { 'aria-labelledby': 'int-h' }, h('h2', { id: 'int-h' }, 'Integrity'),
      facts([
        ['Overall integrity score', fmtPct(integrity.cumulative_integrity_score, 100)],
        ['Latest exam', fmtPct(integrity.latest_integrity_score, 100)],
        ['Analysis', integrity.analyzed ? 'done' : 'not yet analysed'],
      ])),
    h('section', { 'aria-labelledby': 'rec-h' }, h('h2', { id: 'rec-h' }, 'Recommendations'),
      data.recommendations?.length
        ? h('ul', {}, data.recommendations.map((r) => h('li', {}, typeof r === 'string' ? r : r.text || JSON.stringify(r))))
        : h('p', { class: 'muted' }, 'No recommendations yet.')),
    h('section', { 'aria-labelledby': 'hist-h' }, h('h2', { id: 'hist-h' }, 'Exam history'),
      table([
        { label: 'Exam', render: (a) => link(`#/student/attempts/${a.attempt_id}`, a.exam_title) },
        { label: 'Status', key: 'status' },
        { label: 'Score', render: (a) => (a.score === null ? '—' : `${fmtPoints(a.score)} / ${fmtPoints(a.max_score)}`) },
        { label: 'Percentage', render: (a) => (a.percentage === null ? '—' : `${a.percentage.toFixed(1)} %`) },
        { label: 'Passed', render: passedText },
        { label: 'Grading', render: (a) => gradingBadge(a.grading_status) || '—' },
        { label: 'Integrity', render: (a) => fmtIntegrity(a.integrity_score, a.integrity_score_status) },
        { label: 'Started', render: (a) => fmtDate(a.started_at) },
      ], data.exam_history || [])),
  );
}

export async function attemptDetail({ view, params }) {
  view.append(heading('Exam result'));
  const box = h('div');
  view.append(box);
  let a;
  try {
    a = await api(`/api/student/attempts/${encodeURIComponent(params.attemptId)}`);
  } catch (err) {
    showError(box, err);
    return;
  }
  const summary = a.monitoring_summary || { by_type: {} };
  view.querySelector('h1').textContent = `Result: ${a.exam_title}`;
  view.append(
    facts([
      ['Status', say('attempt_statuses', a.status)],
      ['Score', a.score === null ? '—' : `${fmtPoints(a.score)} of ${fmtPoints(a.max_score)}`],
      ['Percentage', a.percentage === null ? '—' : `${a.percentage.toFixed(1)} %`],
      ['Passed', passedText(a)],
      ['Grading', gradingBadge(a.grading_status) || '—'],
      ['Time taken', fmtDuration(a.duration_seconds)],
      ['Integrity score', a.integrity?.analyzed ? fmtIntegrity(a.integrity.score, a.integrity_score_status) : 'not yet analysed'],
      ['Review', a.review?.status ? String(a.review.status).replaceAll('_', ' ') : '—'],
    ]),
    results(a),
    h('section', { 'aria-labelledby': 'mon-h' }, h('h2', { id: 'mon-h' }, 'What was recorded'),
      h('p', {}, `${summary.total_events || 0} monitoring events in total.`),
      table([{ label: 'Event', key: 'type' }, { label: 'Count', key: 'n' }],
        Object.entries(summary.by_type || {}).map(([type, n]) => ({ type: say('events', type), n })))),
    h('section', { 'aria-labelledby': 'fb-h' }, h('h2', { id: 'fb-h' }, 'Feedback'),
      h('p', {}, a.feedback?.summary || 'No feedback yet.'),
      a.feedback?.recommendations?.length
        ? h('ul', {}, a.feedback.recommendations.map((r) => h('li', {}, typeof r === 'string' ? r : JSON.stringify(r))))
        : null),
    h('p', {}, link('#/student/dashboard', 'Back to my dashboard')),
  );
}

const WHEN_SHOWN = {
  never: 'Your teacher does not show the results of each question for this exam.',
  after_submit: 'The results of each question appear here once you have submitted.',
  after_close: 'The results of each question appear here after the exam has closed for everyone.',
};

function answerText(answer) {
  if (answer === null || answer === undefined || answer === '' || (Array.isArray(answer) && !answer.length)) return 'no answer';
  return Array.isArray(answer) ? answer.join(', ') : String(answer);
}

/** Points, feedback and correct answers per question, when the exam shows them. */
function results(a) {
  const section = h('section', { 'aria-labelledby': 'res-h' }, h('h2', { id: 'res-h' }, 'Your answers'));
  if (!a.results_visible || !a.questions) {
    section.append(h('p', { class: 'muted' }, WHEN_SHOWN[a.show_results] || WHEN_SHOWN.never));
    return section;
  }
  a.questions.forEach((q, i) => {
    const correct = q.correct === null || q.correct === undefined ? null
      : Array.isArray(q.correct) ? q.correct.join(q.type === 'short_text' ? ' or ' : ', ') : q.correct;
    section.append(h('article', { class: 'card', dataset: { questionId: q.id } },
      h('h3', {}, `Question ${i + 1}: ${q.prompt}`),
      facts([
        ['Your answer', h('span', { class: 'prewrap' }, answerText(q.response))],
        ['Points', q.points_awarded === null || q.points_awarded === undefined ? `not graded yet (of ${fmtPoints(q.points)})` : `${fmtPoints(q.points_awarded)} of ${fmtPoints(q.points)}`],
        correct === null ? null : ['Correct answer', correct],
        q.feedback ? ['Feedback from your teacher', q.feedback] : null,
      ].filter(Boolean))));
  });
  return section;
}
