// The exam page: start or resume an attempt, answer, autosave drafts, keep time, submit.
// Monitoring runs through the SDK, exactly as any other front end would use it.

import { api, explain, session } from './api.js';
import { h, heading, facts, fmt, fmtDuration, fmtZoned, timeZoneName, gradingBadge, link, message, passedText, showError } from './ui.js';
import { cachedExam, timeAllowed } from './student.js';
import { VeritasMonitor, mountIndicator, renderDisclosure } from '../sdk/veritas-monitor.js';

const DRAFT_DELAY_MS = 1500;

// localStorage, not sessionStorage: a crashed or closed tab must find its attempt and answers.
const attemptKey = (examId) => `veritas.attempt.${session.user()?.id}.${examId}`;
const draftKey = (attemptId) => `veritas.draft.${attemptId}`;

function readJson(key) {
  try { return JSON.parse(localStorage.getItem(key)); } catch { return null; }
}

async function findExam(examId) {
  const cached = cachedExam(examId);
  if (cached) return cached;
  try {
    const page = await api('/api/student/exams/available', { query: { limit: 500 } });
    return page.items.find((e) => e.id === examId) || null;
  } catch {
    return null; // the title is a nicety; starting the exam will report real problems
  }
}

export async function examPage({ view, params }) {
  const { examId } = params;
  const exam = await findExam(examId);
  const title = exam?.title || 'Exam';
  const box = h('div');
  view.append(heading(title), box);
  let teardown = () => {};
  const begin = async () => {
    try {
      teardown = await runAttempt(view, box, examId, title);
    } catch (err) {
      showError(box, err);
    }
  };
  if (readJson(attemptKey(examId))) {
    await begin(); // resume after a reload or a crash without asking again
  } else {
    const intro = h('section', { class: 'card', 'aria-labelledby': 'intro-h' },
      h('h2', { id: 'intro-h' }, 'Before you start'),
      exam ? facts([
        ['Questions', exam.question_count],
        ['Time allowed', `${timeAllowed(exam)} (the clock starts when you press Start)`],
        ['Pass mark', `${fmt(exam.passing_score)} of ${fmt(exam.max_score)} points`],
        exam.closes_at ? ['Closes', `${fmtZoned(exam.closes_at)}: your time ends then at the latest${exam.extra_minutes ? `, plus your ${exam.extra_minutes} min extra time` : ''}`] : null,
        exam.max_attempts ? ['Attempts left', `${exam.attempts_left} of ${exam.max_attempts}: starting uses one`] : null,
      ].filter(Boolean)) : null,
      h('h3', {}, 'What is recorded'));
    renderDisclosure(intro);
    intro.append(h('p', {}, 'Your answers are saved as drafts while you work, so a reload or a lost connection does not lose them.'));
    const start = h('button', { type: 'button', onclick: async () => { start.disabled = true; intro.remove(); await begin(); } }, 'Start exam');
    intro.append(start);
    view.append(intro);
  }
  return () => teardown();
}

async function runAttempt(view, box, examId, title) {
  message(box, 'info', 'Starting…');
  const attempt = await api(`/api/student/exams/${encodeURIComponent(examId)}/start`, { method: 'POST' });
  message(box, 'info', '');
  localStorage.setItem(attemptKey(examId), JSON.stringify({ attempt_id: attempt.attempt_id }));

  let monitor = null;
  const indicator = h('div', { class: 'indicator' });
  let unmountIndicator = () => {};
  async function startMonitor() {
    monitor = new VeritasMonitor({
      attemptId: attempt.attempt_id, getToken: () => session.token(),
      heartbeatMs: attempt.heartbeat_seconds * 1000,
    });
    await monitor.start();
    window.veritasMonitor = monitor; // for diagnostics and the end-to-end tests
    unmountIndicator();
    unmountIndicator = mountIndicator(monitor, indicator);
    monitor.addEventListener('ended', () => endedByServer('This attempt has ended; monitoring stopped.'));
  }
  await startMonitor();

  const timer = h('span', { role: 'timer', 'aria-live': 'off', class: 'timer' });
  const timeNotice = h('span', { class: 'sr-only', 'aria-live': 'polite' });
  const saveState = h('span', { class: 'muted save-state' }, 'Not saved yet');
  const saveAlert = h('div');
  const fullscreen = h('button', { type: 'button', class: 'secondary', onclick: () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else document.documentElement.requestFullscreen?.().catch(() => {});
  } }, 'Full screen');
  // The attempt's own end, extra time included, from the server: the same on every device.
  const endsAt = h('span', { class: 'muted ends-at' }, `ends ${fmtZoned(attempt.expires_at)} (${timeZoneName()})`);
  const bar = h('div', { class: 'exam-bar' },
    h('span', {}, 'Time left: ', timer), endsAt, timeNotice, saveState, indicator, fullscreen);
  const disclosure = h('details', { class: 'disclosure' }, h('summary', {}, 'What this page records'));
  renderDisclosure(disclosure);

  const form = h('form', { class: 'exam-form', 'aria-label': `Exam: ${title}`, novalidate: true });
  attempt.questions.forEach((q, i) => form.append(questionBlock(q, i, attempt.questions.length)));
  const submitBox = h('div');
  const submit = h('button', { type: 'submit' }, 'Submit exam');
  form.append(h('div', { class: 'submit-row' }, submit, h('span', { class: 'muted' }, 'You can submit once. Unanswered questions score 0.')), submitBox);
  view.append(bar, saveAlert, disclosure, form);

  restore(form, readJson(draftKey(attempt.attempt_id)) || {});

  // --- drafts: locally at once, to the server after a short pause ---------------------
  let draftTimer = null;
  let ended = false;
  const saveDraft = async () => {
    draftTimer = null;
    const responses = collect(form, attempt.questions);
    try {
      await api(`/api/student/attempts/${attempt.attempt_id}/drafts`, { method: 'POST', body: { responses } });
      saveState.textContent = `Draft saved at ${new Date().toLocaleTimeString()}`;
      message(saveAlert, 'info', '');
    } catch (err) {
      if (err.status === 409) return endedByServer(explain(err));
      saveState.textContent = 'Draft kept on this device';
      if (err.status) message(saveAlert, 'error', `Your draft could not be saved to the server: ${explain(err)}`);
    }
  };
  form.addEventListener('input', () => {
    if (ended) return;
    localStorage.setItem(draftKey(attempt.attempt_id), JSON.stringify(collect(form, attempt.questions)));
    clearTimeout(draftTimer);
    draftTimer = setTimeout(saveDraft, DRAFT_DELAY_MS);
  });

  // --- the clock ------------------------------------------------------------------------
  // The real time left: the attempt's end (extra time included) on the server's clock, so a
  // device whose clock is wrong shows the same time left as any other.
  const expiresAt = new Date(attempt.expires_at).getTime();
  const skew = attempt.server_time ? new Date(attempt.server_time).getTime() - Date.now() : 0;
  const warned = new Set();
  const tick = () => {
    const left = Math.max(0, expiresAt - (Date.now() + (Number.isFinite(skew) ? skew : 0)));
    const s = Math.floor(left / 1000);
    const hh = Math.floor(s / 3600);
    const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
    const ss = String(s % 60).padStart(2, '0');
    timer.textContent = hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
    for (const minutes of [10, 5, 1]) {
      if (left <= minutes * 60000 && left > 0 && !warned.has(minutes)) {
        warned.add(minutes);
        timeNotice.textContent = `${minutes} minute${minutes > 1 ? 's' : ''} left.`;
      }
    }
    if (left === 0 && !ended) finish(true);
  };
  tick();
  const clock = setInterval(tick, 1000);

  // --- submitting -------------------------------------------------------------------
  async function finish(timeUp) {
    if (ended) return;
    ended = true;
    clearTimeout(draftTimer);
    submit.disabled = true;
    message(submitBox, 'info', timeUp ? 'Time is up. Submitting your answers…' : 'Submitting…');
    // Deliver every monitoring event first: once the attempt is completed it takes no more.
    await monitor.finish({ timeoutMs: 8000 });
    try {
      const result = await api(`/api/student/exams/${attempt.attempt_id}/submit`, {
        method: 'POST', body: { responses: collect(form, attempt.questions) },
      });
      forget();
      showResult(result);
    } catch (err) {
      if (err.status === 409) { forget(); endedByServer(explain(err)); return; }
      // Still open: keep monitoring and let the student try again.
      ended = false;
      submit.disabled = false;
      message(submitBox, 'error', `${explain(err)} Your answers are kept on this device; press Submit exam again.`);
      await startMonitor();
    }
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); finish(false); });

  function forget() {
    localStorage.removeItem(attemptKey(examId));
    localStorage.removeItem(draftKey(attempt.attempt_id));
  }

  function endedByServer(text) {
    ended = true;
    clearInterval(clock);
    clearTimeout(draftTimer);
    for (const el of form.elements) el.disabled = true;
    message(submitBox, 'error', text);
    if (monitor && !['ended', 'finished', 'finished_unsent'].includes(monitor.state)) monitor.stop();
  }

  function showResult(r) {
    clearInterval(clock);
    bar.remove();
    form.remove();
    disclosure.remove();
    const h1 = view.querySelector('h1');
    h1.textContent = `Submitted: ${title}`;
    const pending = r.grading_status === 'pending';
    view.append(h('section', { class: 'card result', 'aria-labelledby': 'result-h' },
      h('h2', { id: 'result-h' }, pending ? 'Submitted: waiting for your teacher' : r.passed ? 'You passed' : 'Result'),
      facts([
        ['Score so far', `${fmt(r.score)} of ${fmt(r.max_score)} points`],
        ['Percentage', `${r.percentage.toFixed(1)} %`],
        ['Passed', passedText(r)],
        ['Grading', gradingBadge(r.grading_status) || '—'],
        ['Time taken', fmtDuration(r.duration_seconds)],
      ]),
      pending ? h('p', {}, 'Your teacher still has to grade your written answers (essays and short answers). Until then they count as 0 or as marked automatically, so your score can still go up or down.') : null,
      h('p', {}, link(`#/student/attempts/${r.attempt_id}`, 'See the details of this attempt'), ' · ', link('#/student/dashboard', 'My dashboard'))));
    h1.focus();
  }

  return () => {
    clearInterval(clock);
    clearTimeout(draftTimer);
    unmountIndicator();
    // Leaving the page keeps the attempt open; unsent events stay in IndexedDB.
    if (monitor && monitor.state !== 'ended' && !String(monitor.state).startsWith('finished')) monitor.stop();
  };
}

function questionBlock(q, index, total) {
  const label = `Question ${index + 1} of ${total}`;
  const points = `${fmt(q.points)} point${q.points === 1 ? '' : 's'}`;
  const name = `q-${q.id}`;
  if (q.type === 'single_choice' || q.type === 'multiple_choice') {
    const kind = q.type === 'single_choice' ? 'radio' : 'checkbox';
    return h('fieldset', { class: 'question', dataset: { questionId: q.id, type: q.type } },
      // The spaces keep the accessible name readable: "Question 1 of 3 · 4 points 2+2?".
      h('legend', {}, h('span', { class: 'q-label' }, `${label} · ${points}`), ' ', h('span', { class: 'prompt' }, q.prompt),
        kind === 'checkbox' ? h('span', { class: 'muted' }, ' (choose all that apply)') : null),
      (q.options || []).map((option) => h('label', { class: 'option' },
        h('input', { type: kind, name, value: option }), ' ', option)));
  }
  const control = q.type === 'essay'
    ? h('textarea', { name, rows: '8', spellcheck: 'true' })
    : h('input', { name, type: 'text', autocomplete: 'off' });
  control.id = `answer-${q.id}`;
  return h('div', { class: 'question', role: 'group', 'aria-labelledby': `qh-${q.id}`, dataset: { questionId: q.id, type: q.type } },
    h('p', { class: 'q-label', id: `qh-${q.id}` }, `${label} · ${points}`),
    h('label', { for: control.id, class: 'prompt' }, q.prompt), control);
}

/** The answers so far: an option, a list of options, or text, keyed by question id. */
function collect(form, questions) {
  const out = {};
  for (const q of questions) {
    const inputs = [...form.querySelectorAll(`[name="q-${CSS.escape(q.id)}"]`)];
    if (q.type === 'single_choice') {
      const picked = inputs.find((i) => i.checked);
      if (picked) out[q.id] = picked.value;
    } else if (q.type === 'multiple_choice') {
      const picked = inputs.filter((i) => i.checked).map((i) => i.value);
      if (picked.length) out[q.id] = picked;
    } else if (inputs[0] && inputs[0].value !== '') {
      out[q.id] = inputs[0].value;
    }
  }
  return out;
}

function restore(form, responses) {
  for (const [qid, answer] of Object.entries(responses)) {
    const inputs = [...form.querySelectorAll(`[name="q-${CSS.escape(qid)}"]`)];
    for (const input of inputs) {
      if (input.type === 'radio') input.checked = input.value === answer;
      else if (input.type === 'checkbox') input.checked = Array.isArray(answer) && answer.includes(input.value);
      else input.value = typeof answer === 'string' ? answer : '';
    }
  }
}
