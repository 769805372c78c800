// Teacher pages for exams: the list, create, edit/publish, and granting access.

import { api } from './api.js';
import { h, heading, field, fmt, fmtDate, fmtPct, fmtZoned, fromLocalInput, link, message, pager, select, showError, table, timeZoneName, toLocalInput, uid } from './ui.js';

export async function examList({ view, notice }) {
  view.append(heading('Exams'), h('p', {}, h('a', { class: 'button', href: '#/teacher/exams/new' }, 'Create an exam')));
  const box = h('div');
  view.append(box);
  if (notice) message(box, 'info', notice);
  let exams;
  let stats = { exams: [], flagged_students: [] };
  try {
    [exams, stats] = await Promise.all([
      api('/api/teacher/exams', { query: { limit: 200 } }),
      api('/api/teacher/dashboard').catch(() => stats), // the numbers are extra; the list is not
    ]);
  } catch (err) {
    showError(box, err);
    return;
  }
  const byId = Object.fromEntries(stats.exams.map((s) => [s.exam_id, s]));
  view.append(table([
    { label: 'Title', render: (e) => link(`#/teacher/exams/${e.id}`, e.title) },
    { label: 'Subject', key: 'subject' },
    { label: 'Published', key: 'is_published' },
    { label: 'Completed attempts', render: (e) => fmt(byId[e.id]?.total_attempts) },
    { label: 'Average score', render: (e) => (byId[e.id]?.avg_score == null ? '—' : `${byId[e.id].avg_score.toFixed(1)} %`) },
    { label: 'Pass rate', render: (e) => fmtPct(byId[e.id]?.pass_rate, 100) },
    { label: 'Flagged', render: (e) => fmt(byId[e.id]?.flagged_count) },
    { label: 'Awaiting grading', render: (e) => (byId[e.id]?.pending_grading ? link(`#/teacher/grading?exam=${e.id}`, `${byId[e.id].pending_grading} to grade`) : fmt(byId[e.id]?.pending_grading)) },
    { label: 'Analytics', render: (e) => link(`#/teacher/exams/${e.id}/analytics`, `Analytics for ${e.title}`) },
  ], exams.items, 'Exams you can view'));
  if (exams.next_cursor) view.append(h('p', { class: 'muted' }, 'Showing the 200 newest exams.'));
  view.append(h('section', { 'aria-labelledby': 'flag-h' }, h('h2', { id: 'flag-h' }, 'Flagged students'),
    table([
      { label: 'Student', render: (s) => link(`#/teacher/students/${s.student_id}`, s.full_name || s.username) },
      { label: 'Flagged attempts', key: 'flagged_attempts' },
      { label: 'Last flagged', render: (s) => fmtDate(s.last_flagged) },
    ], stats.flagged_students || [])));
}

// --- the exam form -----------------------------------------------------------------------

// When students see per-question points, feedback and the correct answers (show_results).
const SHOW_RESULTS = [['never', 'Never (totals only)'], ['after_submit', 'Right after they submit'], ['after_close', 'After the exam closes']];

const TYPES = [['single_choice', 'Single choice'], ['multiple_choice', 'Multiple choice'], ['short_text', 'Short text'], ['essay', 'Essay']];

function lines(text) {
  return text.split('\n').map((s) => s.trim()).filter(Boolean);
}

function questionEditor(q, list) {
  const type = select('type', TYPES, q.type || 'single_choice');
  const prompt = h('textarea', { name: 'prompt', rows: '2', required: true, value: q.prompt || '' });
  const points = h('input', { name: 'points', type: 'number', min: '0.5', step: '0.5', value: String(q.points ?? 1), required: true });
  const options = h('textarea', { name: 'options', rows: '3', value: (q.options || []).join('\n') });
  const key = h('textarea', { name: 'correct', rows: '2', value: Array.isArray(q.correct) ? q.correct.join('\n') : q.correct || '' });
  const legend = h('legend');
  const optionsField = field('Options, one per line', options);
  const keyLabel = h('span');
  const keyField = field('', key);
  keyField.querySelector('label').replaceChildren(keyLabel);
  const box = h('fieldset', { class: 'question-editor', dataset: { id: q.id || '' } }, legend,
    field('Type', type), field('Question', prompt), field('Points', points), optionsField, keyField,
    h('button', { type: 'button', class: 'secondary', onclick: () => { box.remove(); renumber(list); } }, 'Remove this question'));
  const sync = () => {
    const t = type.value;
    optionsField.hidden = !t.endsWith('_choice');
    keyField.hidden = t === 'essay';
    keyLabel.textContent = { single_choice: 'Correct option (exactly as written above)', multiple_choice: 'Correct options, one per line', short_text: 'Accepted answers, one per line (case does not matter)' }[t] || '';
  };
  type.addEventListener('change', sync);
  sync();
  box.read = () => {
    const t = type.value;
    const out = { type: t, prompt: prompt.value.trim(), points: Number(points.value) };
    if (box.dataset.id) out.id = box.dataset.id;
    if (t.endsWith('_choice')) out.options = lines(options.value);
    if (t === 'single_choice') out.correct = key.value.trim();
    if (t === 'multiple_choice' || t === 'short_text') out.correct = lines(key.value);
    return out;
  };
  return box;
}

function renumber(list) {
  [...list.children].forEach((q, i) => { q.querySelector('legend').textContent = `Question ${i + 1}`; });
}

/** The create/edit form; resolves the body to send, or null if the user must fix something. */
function examForm(exam, onSubmit, submitText) {
  const rules = exam.metadata?.anomaly_rules || {};
  const input = (name, props) => h('input', { name, ...props });
  const f = {
    title: input('title', { required: true, maxlength: '200', value: exam.title || '' }),
    subject: input('subject', { required: true, maxlength: '200', value: exam.subject || '' }),
    topic: input('topic', { maxlength: '200', value: exam.topic || '' }),
    description: h('textarea', { name: 'description', rows: '3', value: exam.description || '' }),
    duration_minutes: input('duration_minutes', { type: 'number', min: '1', max: '1440', required: true, value: String(exam.duration_minutes ?? 30) }),
    max_score: input('max_score', { type: 'number', min: '0.5', step: '0.5', value: exam.max_score ?? '' }),
    passing_score: input('passing_score', { type: 'number', min: '0', step: '0.5', required: true, value: String(exam.passing_score ?? '') }),
    is_published: input('is_published', { type: 'checkbox', checked: !!exam.is_published }),
    show_results: select('show_results', SHOW_RESULTS, exam.show_results || 'never'),
    opens_at: input('opens_at', { type: 'datetime-local', value: toLocalInput(exam.opens_at) }),
    closes_at: input('closes_at', { type: 'datetime-local', value: toLocalInput(exam.closes_at) }),
    max_attempts: input('max_attempts', { type: 'number', min: '1', max: '1000', step: '1', value: exam.max_attempts ?? '' }),
    shuffle_questions: input('shuffle_questions', { type: 'checkbox', checked: !!exam.shuffle_questions }),
    shuffle_options: input('shuffle_options', { type: 'checkbox', checked: !!exam.shuffle_options }),
    enable_monitoring: input('enable_monitoring', { type: 'checkbox', checked: exam.enable_monitoring !== false }),
    enable_integrity_analysis: input('enable_integrity_analysis', { type: 'checkbox', checked: exam.enable_integrity_analysis !== false }),
    paste_chars: input('paste_chars', { type: 'number', min: '1', value: rules.paste_chars ?? '' }),
    focus_lost_s: input('focus_lost_s', { type: 'number', min: '0.1', step: '0.1', value: rules.focus_lost_ms ? rules.focus_lost_ms / 1000 : '' }),
  };
  const check = (el, text) => h('div', { class: 'field check' }, el, h('label', { for: el.id ||= uid() }, text));
  const list = h('div', { class: 'question-list' });
  for (const q of exam.questions || []) list.append(questionEditor(q, list));
  renumber(list);
  const box = h('div');
  const submit = h('button', { type: 'submit' }, submitText);
  const form = h('form', { class: 'card exam-editor', novalidate: true },
    h('fieldset', {}, h('legend', {}, 'About the exam'),
      field('Title', f.title), field('Subject', f.subject), field('Topic (optional)', f.topic),
      field('Description (optional)', f.description),
      field('Duration in minutes', f.duration_minutes),
      field('Maximum score', f.max_score, 'Leave empty to use the sum of the question points.'),
      field('Passing score (points)', f.passing_score)),
    h('fieldset', {}, h('legend', {}, 'Monitoring'),
      check(f.enable_monitoring, 'Record monitoring events'),
      check(f.enable_integrity_analysis, 'Run the integrity analysis'),
      field('Alert on a paste longer than (characters)', f.paste_chars, 'Default 200.'),
      field('Alert when the exam is left for longer than (seconds)', f.focus_lost_s, 'Default 10.')),
    h('fieldset', {}, h('legend', {}, 'When and how often'),
      h('p', { class: 'hint' }, `Times are in your time zone, ${timeZoneName()}.`),
      field('Opens at (optional)', f.opens_at, 'Students cannot start before then. Empty: as soon as it is published.'),
      field('Closes at (optional)', f.closes_at, 'No attempt starts from then on, and every attempt ends then at the latest (plus a student\'s extra time).'),
      field('Attempts per student (optional)', f.max_attempts, 'Empty: unlimited. Extra attempts for one student are set under Accommodations.'),
      check(f.shuffle_questions, 'Shuffle the questions (each attempt its own order)'),
      check(f.shuffle_options, 'Shuffle the options of choice questions')),
    h('fieldset', {}, h('legend', {}, 'Results for students'),
      field('Students see the points, your feedback and the correct answer of each question', f.show_results,
        'Totals are always shown. "After the exam closes" waits until it is unpublished and nobody is still writing it.')),
    h('fieldset', {}, h('legend', {}, 'Questions'), list,
      h('button', { type: 'button', class: 'secondary', onclick: () => {
        const q = questionEditor({ type: 'single_choice', points: 1 }, list);
        list.append(q);
        renumber(list);
        q.querySelector('select').focus();
      } }, 'Add a question')),
    check(f.is_published, 'Published (students can see and start it)'),
    box, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const questions = [...list.children].map((q) => q.read());
    const total = questions.reduce((n, q) => n + (q.points || 0), 0);
    const problems = [];
    if (!f.title.value.trim()) problems.push('the title is empty');
    if (!f.subject.value.trim()) problems.push('the subject is empty');
    if (f.passing_score.value === '') problems.push('the passing score is empty');
    questions.forEach((q, i) => { if (!q.prompt) problems.push(`question ${i + 1} has no text`); });
    const opensAt = fromLocalInput(f.opens_at.value);
    const closesAt = fromLocalInput(f.closes_at.value);
    if (opensAt && closesAt && closesAt <= opensAt) problems.push('the closing time must come after the opening time');
    const maxAttempts = f.max_attempts.value === '' ? null : Number(f.max_attempts.value);
    if (maxAttempts !== null && !(Number.isInteger(maxAttempts) && maxAttempts >= 1)) problems.push('attempts per student must be a whole number, at least 1 (or empty)');
    if (problems.length) { message(box, 'error', `Please fix: ${problems.join('; ')}.`); return; }
    const anomalyRules = { ...rules };
    if (f.paste_chars.value) anomalyRules.paste_chars = Number(f.paste_chars.value); else delete anomalyRules.paste_chars;
    if (f.focus_lost_s.value) anomalyRules.focus_lost_ms = Math.round(Number(f.focus_lost_s.value) * 1000); else delete anomalyRules.focus_lost_ms;
    const body = {
      title: f.title.value.trim(),
      subject: f.subject.value.trim(),
      topic: f.topic.value.trim() || null,
      description: f.description.value.trim() || null,
      duration_minutes: Number(f.duration_minutes.value),
      max_score: f.max_score.value ? Number(f.max_score.value) : Math.max(total, 1),
      passing_score: Number(f.passing_score.value),
      is_published: f.is_published.checked,
      enable_monitoring: f.enable_monitoring.checked,
      enable_integrity_analysis: f.enable_integrity_analysis.checked,
      show_results: f.show_results.value,
      opens_at: opensAt,
      closes_at: closesAt,
      max_attempts: maxAttempts,
      shuffle_questions: f.shuffle_questions.checked,
      shuffle_options: f.shuffle_options.checked,
      questions,
      metadata: { ...(exam.metadata || {}), anomaly_rules: anomalyRules },
    };
    submit.disabled = true;
    message(box, 'info', 'Saving…');
    try {
      await onSubmit(body);
      message(box, 'info', 'Saved.');
    } catch (err) {
      showError(box, err);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

export async function createExam({ view }) {
  view.append(heading('New exam'), examForm({ questions: [{ type: 'single_choice', points: 1 }] }, async (body) => {
    const exam = await api('/api/teacher/exams', { method: 'POST', body });
    location.hash = `#/teacher/exams/${exam.id}`;
  }, 'Create exam'));
}

export async function editExam({ view, params }) {
  const box = h('div');
  view.append(heading('Exam'), box);
  let exam;
  try {
    exam = await api(`/api/teacher/exams/${encodeURIComponent(params.examId)}`);
  } catch (err) {
    showError(box, err);
    return;
  }
  view.querySelector('h1').textContent = `Exam: ${exam.title}`;
  const state = h('p', {}, stateText(exam));
  const publish = h('button', { type: 'button', class: 'secondary' }, exam.is_published ? 'Unpublish' : 'Publish');
  publish.addEventListener('click', async () => {
    publish.disabled = true;
    try {
      exam = await api(`/api/teacher/exams/${exam.id}`, { method: 'PATCH', body: { is_published: !exam.is_published } });
      state.textContent = stateText(exam);
      publish.textContent = exam.is_published ? 'Unpublish' : 'Publish';
      message(box, 'info', exam.is_published ? 'Published: students can now start this exam.' : 'Unpublished: students can no longer start it.');
      const box2 = view.querySelector('input[name="is_published"]');
      if (box2) box2.checked = exam.is_published;
    } catch (err) {
      showError(box, err);
    } finally {
      publish.disabled = false;
    }
  });
  view.append(
    h('div', { class: 'actions' }, state, publish,
      link(`#/teacher/exams/${exam.id}/analytics`, 'Analytics'),
      link(`#/teacher/alerts?exam=${exam.id}`, 'Live alerts for this exam')),
    h('p', { class: 'muted' }, `Exam id: ${exam.id} · created ${fmtDate(exam.created_at)}`),
    h('h2', {}, 'Edit'),
    examForm(exam, async (body) => {
      exam = await api(`/api/teacher/exams/${exam.id}`, { method: 'PATCH', body });
      state.textContent = stateText(exam);
      publish.textContent = exam.is_published ? 'Unpublish' : 'Publish';
    }, 'Save changes'),
    accommodations(exam),
    grantForm(exam));
}

// --- accommodations: one student's extra time and attempts ----------------------------------

/** The students a teacher can pick by name: those of the exam's classes (when it has any). */
async function knownStudents(exam) {
  const byId = {};
  for (const classId of exam.class_ids || []) {
    try {
      const cls = await api(`/api/teacher/classes/${encodeURIComponent(classId)}`);
      for (const s of cls.students || []) byId[s.id] = s;
    } catch { /* a class the caller does not own: its students are not theirs to list */ }
  }
  return byId;
}

function studentName(s, id) {
  if (!s) return id;
  return `${s.full_name || s.username} (${s.email || s.username})`;
}

function accommodations(exam) {
  const section = h('section', { class: 'card', 'aria-labelledby': 'acc-h' },
    h('h2', { id: 'acc-h' }, 'Accommodations'),
    h('p', { class: 'muted' }, 'Extra time or extra attempts for one student. They apply to attempts the student starts afterwards; an attempt in progress keeps its time. Students never see the note.'));
  const rows = h('tbody');
  const listBox = h('div');
  section.append(h('table', {}, h('caption', {}, 'Students with accommodations on this exam'),
    h('thead', {}, h('tr', {}, ['Student', 'Extra minutes', 'Extra attempts', 'Note', ''].map((t) => h('th', { scope: 'col' }, t)))),
    rows), listBox);
  let students = {};
  const studentPick = h('input', { name: 'student', required: true, autocomplete: 'off', list: uid('students') });
  const options = h('datalist', { id: studentPick.getAttribute('list') });
  const minutes = h('input', { name: 'extra_minutes', type: 'number', min: '0', max: '1440', step: '1', value: '0' });
  const attempts = h('input', { name: 'extra_attempts', type: 'number', min: '0', max: '100', step: '1', value: '0' });
  const note = h('input', { name: 'note', maxlength: '2000' });
  const box = h('div');
  const resolve = (text) => {
    const value = text.trim();
    if (/^[0-9a-fA-F-]{36}$/.test(value)) return value;
    const match = Object.values(students).find((s) => [s.email, s.username, studentName(s)].includes(value));
    return match ? match.id : null;
  };
  const render = (items, reset) => {
    if (reset) rows.replaceChildren();
    for (const a of items) {
      const remove = h('button', { type: 'button', class: 'secondary', onclick: async () => {
        remove.disabled = true;
        try {
          await api(`/api/teacher/exams/${exam.id}/accommodations/${a.student_id}`, { method: 'DELETE' });
          message(box, 'info', 'Accommodation removed.');
          load(true);
        } catch (err) { showError(box, err); remove.disabled = false; }
      } }, 'Remove');
      remove.setAttribute('aria-label', `Remove the accommodation of ${studentName(students[a.student_id], a.student_id)}`);
      rows.append(h('tr', { dataset: { studentId: a.student_id } },
        h('td', {}, studentName(students[a.student_id], a.student_id)),
        h('td', {}, String(a.extra_minutes)), h('td', {}, String(a.extra_attempts)),
        h('td', {}, a.note || '—'), h('td', {}, remove)));
    }
    if (!rows.children.length) rows.append(h('tr', {}, h('td', { colspan: '5', class: 'empty' }, 'No accommodations yet.')));
  };
  const load = pager((cursor) => api(`/api/teacher/exams/${exam.id}/accommodations`, { query: { cursor } }), render, listBox);
  const form = h('form', { class: 'accommodation-form', novalidate: true },
    h('h3', {}, 'Add or change'),
    field('Student', studentPick, 'Type a name or email from the exam\'s classes, or paste the student\'s user id.'), options,
    field('Extra minutes', minutes), field('Extra attempts', attempts), field('Note for teachers (optional)', note),
    box, h('button', { type: 'submit' }, 'Save accommodation'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const id = resolve(studentPick.value);
    if (!id) { message(box, 'error', 'Pick a student from the list, or paste their user id.'); return; }
    try {
      await api(`/api/teacher/exams/${exam.id}/accommodations/${id}`, { method: 'PUT', body: {
        extra_minutes: Number(minutes.value || 0), extra_attempts: Number(attempts.value || 0),
        note: note.value.trim() || null } });
      message(box, 'info', `Saved for ${studentName(students[id], id)}.`);
      load(true);
    } catch (err) {
      showError(box, err);
    }
  });
  section.append(form);
  knownStudents(exam).then((found) => {
    students = found;
    options.replaceChildren(...Object.values(found).map((s) => h('option', { value: studentName(s) })));
    load(true);
  });
  return section;
}

function stateText(exam) {
  return exam.is_published ? 'Published.' : 'Draft: not visible to students.';
}

function grantForm(exam) {
  const teacherId = h('input', { name: 'teacher_id', required: true, pattern: '[0-9a-fA-F-]{36}', autocomplete: 'off' });
  const rights = {
    can_view: h('input', { type: 'checkbox', name: 'can_view', checked: true }),
    can_edit: h('input', { type: 'checkbox', name: 'can_edit' }),
    can_view_analytics: h('input', { type: 'checkbox', name: 'can_view_analytics', checked: true }),
  };
  const names = { can_view: 'May view the exam and its attempts', can_edit: 'May edit the exam', can_view_analytics: 'May see analytics, alerts and reviews' };
  const box = h('div');
  const form = h('form', { class: 'card' },
    h('h2', {}, 'Share with another teacher'),
    h('p', { class: 'muted' }, 'Only the exam\'s creator (or an admin) can share it. Ask your colleague for their user id.'),
    field('Teacher\'s user id', teacherId),
    Object.entries(rights).map(([k, el]) => h('div', { class: 'field check' }, el, h('label', { for: el.id = uid() }, names[k]))),
    box,
    h('button', { type: 'submit' }, 'Grant access'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const id = teacherId.value.trim();
    if (!/^[0-9a-fA-F-]{36}$/.test(id)) { message(box, 'error', 'A user id looks like 123e4567-e89b-12d3-a456-426614174000.'); return; }
    try {
      const body = { teacher_id: id };
      for (const [k, el] of Object.entries(rights)) body[k] = el.checked;
      await api(`/api/teacher/exams/${exam.id}/permissions`, { method: 'POST', body });
      message(box, 'info', 'Access granted.');
    } catch (err) {
      showError(box, err);
    }
  });
  return form;
}
