// Teacher pages for grading: the queue of attempts waiting for a grade, and one attempt's
// answers with the points, feedback and a way to (re)grade each question.

import { api } from './api.js';
import { GRADING_LABELS, h, heading, facts, field, fmtDate, fmtPoints, link, message, pager, passedText, scoreWithStatus, select, showError } from './ui.js';

const TYPE_NAMES = { single_choice: 'Single choice', multiple_choice: 'Multiple choice', short_text: 'Short answer', essay: 'Essay' };

function hashQuery() {
  return new URLSearchParams(location.hash.split('?')[1] || '');
}

function studentName(a) {
  return a.full_name || a.username;
}

export async function queue({ view }) {
  const query = hashQuery();
  const status = select('status', [['pending', GRADING_LABELS.pending], ['graded', GRADING_LABELS.graded]], query.get('status') || 'pending');
  const exam = select('exam', [['', 'All exams']], '');
  const body = h('tbody');
  const tableEl = h('table', {}, h('caption', {}, 'Submitted attempts, oldest first'),
    h('thead', {}, h('tr', {}, ['Submitted', 'Exam', 'Student', 'Score so far', 'Left to grade', ''].map((c) => h('th', { scope: 'col' }, c)))),
    body);
  const box = h('div');
  view.append(heading('Grading'),
    h('p', {}, 'Essays and short answers wait here until you have given them points. Short answers were marked automatically (an exact match of the accepted answers); check and confirm their points.'),
    h('div', { class: 'toolbar' }, field('Show', status), field('Exam', exam)), box, tableEl);
  try {
    const exams = await api('/api/teacher/exams', { query: { limit: 200 } });
    exam.append(...exams.items.map((e) => h('option', { value: e.id }, e.title)));
    exam.value = query.get('exam') || '';
  } catch (err) {
    showError(box, err); // the list below still loads without the exam filter
  }
  const next = pager(
    (cursor) => api('/api/teacher/grading', { query: { status: status.value, exam_id: exam.value, cursor, limit: 50 } }),
    (items, reset) => {
      if (reset) body.replaceChildren();
      body.querySelector('.empty')?.closest('tr')?.remove();
      body.append(...items.map((a) => h('tr', { dataset: { attemptId: a.attempt_id } },
        h('td', {}, fmtDate(a.completed_at)),
        h('td', {}, a.exam_title),
        h('td', {}, studentName(a)),
        h('td', {}, scoreWithStatus(a)),
        h('td', {}, a.questions_to_grade ? `${a.questions_to_grade} question${a.questions_to_grade > 1 ? 's' : ''}` : 'none'),
        h('td', {}, link(`#/teacher/attempts/${a.attempt_id}/grading`,
          `${a.can_grade ? 'Grade' : 'View'} ${studentName(a)}'s attempt`)))));
      if (!body.children.length) {
        body.append(h('tr', {}, h('td', { colspan: '6', class: 'empty' },
          status.value === 'pending' ? 'Nothing is waiting for a grade.' : 'No graded attempts yet.')));
      }
    },
    view);
  const reload = () => {
    const params = new URLSearchParams({ status: status.value, ...(exam.value ? { exam: exam.value } : {}) });
    history.replaceState(null, '', `#/teacher/grading?${params}`);
    next(true);
  };
  status.addEventListener('change', reload);
  exam.addEventListener('change', reload);
  await next(true);
}

function answerText(q) {
  const r = q.response;
  if (r === null || r === undefined || r === '' || (Array.isArray(r) && !r.length)) return h('p', { class: 'empty' }, 'No answer.');
  if (Array.isArray(r)) return h('p', { class: 'answer' }, r.join(', '));
  return h('p', { class: 'answer' }, String(r));
}

function keyText(q) {
  if (q.type === 'essay') return 'No answer key: an essay is graded by its teacher.';
  if (q.type === 'short_text') return `Accepted answers: ${(q.correct || []).join(' · ')}`;
  return `Correct: ${Array.isArray(q.correct) ? q.correct.join(', ') : q.correct}`;
}

function gradedLine(q) {
  if (q.awarded_points === null || q.awarded_points === undefined) {
    return q.needs_grading ? 'Not graded yet.' : 'Marked automatically.';
  }
  return `Graded: ${fmtPoints(q.awarded_points)} points by ${q.graded_by_name || 'a teacher'}, ${fmtDate(q.graded_at)}.`;
}

function questionCard(q, index, total, attempt, onGraded) {
  const titleId = `gq-${q.id}`;
  const status = h('p', { class: 'muted graded-line' }, gradedLine(q));
  const box = h('div');
  const start = q.awarded_points ?? q.auto_points;
  const points = h('input', { name: 'points', type: 'number', min: '0', max: String(q.points), step: 'any', required: true, value: start === null || start === undefined ? '' : String(start) });
  const feedback = h('textarea', { name: 'feedback', rows: '3', maxlength: '20000', value: q.feedback || '' });
  const save = h('button', { type: 'submit' }, q.awarded_points === null || q.awarded_points === undefined ? 'Save grade' : 'Regrade');
  const editable = attempt.can_grade && attempt.status === 'completed';
  const form = h('form', { class: 'grade-form', novalidate: true },
    field(`Points (0 to ${fmtPoints(q.points)})`, points, q.auto_points === null || q.auto_points === undefined ? null : `Automatic: ${fmtPoints(q.auto_points)}. Your points replace them.`),
    field('Feedback for the student (optional)', feedback),
    box, save);
  for (const el of [points, feedback, save]) el.disabled = !editable;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = Number(points.value);
    if (points.value === '' || !Number.isFinite(value) || value < 0 || value > q.points) {
      message(box, 'error', `Points must be between 0 and ${fmtPoints(q.points)}.`);
      points.focus();
      return;
    }
    save.disabled = true;
    message(box, 'info', 'Saving…');
    try {
      const grade = await api(`/api/teacher/attempts/${encodeURIComponent(attempt.attempt_id)}/grades/${encodeURIComponent(q.id)}`, {
        method: 'PUT', body: { points: value, feedback: feedback.value.trim() || null },
      });
      Object.assign(q, { awarded_points: grade.points, feedback: grade.feedback, graded_at: grade.graded_at, graded_by_name: 'you' });
      status.textContent = gradedLine(q);
      save.textContent = 'Regrade';
      message(box, 'info', 'Saved.');
      onGraded(grade.attempt);
    } catch (err) {
      showError(box, err);
    } finally {
      save.disabled = !editable;
    }
  });
  return h('section', { class: 'card grade-card', 'aria-labelledby': titleId, dataset: { questionId: q.id } },
    h('h2', { id: titleId }, `Question ${index + 1} of ${total}`, h('span', { class: 'muted' }, ` · ${TYPE_NAMES[q.type] || q.type} · ${fmtPoints(q.points)} point${q.points === 1 ? '' : 's'}`)),
    h('p', { class: 'prompt' }, q.prompt),
    q.options ? h('ul', { class: 'options' }, q.options.map((o) => h('li', {}, o))) : null,
    h('h3', {}, 'Answer'), answerText(q),
    h('p', { class: 'muted' }, keyText(q)),
    status, form);
}

export async function gradeAttempt({ view, params }) {
  const box = h('div');
  view.append(heading('Grade an attempt'), box);
  let attempt;
  try {
    attempt = await api(`/api/teacher/attempts/${encodeURIComponent(params.attemptId)}/responses`);
  } catch (err) {
    showError(box, err);
    return;
  }
  view.querySelector('h1').textContent = `Grading: ${attempt.exam_title}, ${attempt.student_name}`;
  const summary = h('div');
  const announce = h('p', { class: 'sr-only', 'aria-live': 'polite' });
  const drawSummary = () => summary.replaceChildren(facts([
    ['Student', link(`#/teacher/students/${attempt.student_id}`, attempt.student_name)],
    ['Status', attempt.status],
    ['Submitted', fmtDate(attempt.completed_at)],
    ['Score', scoreWithStatus(attempt)],
    ['Passed', passedText(attempt)],
  ]));
  drawSummary();
  view.append(summary, announce,
    h('p', {}, link(`#/teacher/attempts/${attempt.attempt_id}`, 'Attempt timeline'), ' · ', link('#/teacher/grading', 'Back to the grading list')));
  if (attempt.status !== 'completed') {
    message(box, 'info', `This attempt is ${attempt.status.replace('_', ' ')}: there is nothing submitted to grade. The answers below are the latest saved draft.`);
  } else if (!attempt.can_grade) {
    message(box, 'info', 'You may read this attempt but not grade it: grading needs permission to edit the exam.');
  }
  const total = attempt.questions.length;
  attempt.questions.forEach((q, i) => view.append(questionCard(q, i, total, attempt, (totals) => {
    Object.assign(attempt, totals);
    drawSummary();
    announce.textContent = `Score now ${fmtPoints(totals.score)} of ${fmtPoints(totals.max_score)}; ${GRADING_LABELS[totals.grading_status].toLowerCase()}.`;
  })));
  if (!total) view.append(h('p', { class: 'empty' }, 'This attempt has no questions.'));
}
