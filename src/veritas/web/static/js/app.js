// The single-page app: hash routes, the role-aware navigation, and the sign-in page.

import { api, explain, login, logout, session } from './api.js';
import { h, heading, field, message, showError } from './ui.js';
import * as student from './student.js';
import { examPage } from './exam.js';
import * as teacherExams from './teacher-exams.js';
import * as insights from './teacher-insights.js';
import * as alerts from './teacher-alerts.js';
import * as grading from './grading.js';
import * as admin from './admin.js';

const STAFF = ['teacher', 'admin'];

// Patterns are matched against the hash after "#"; ":name" captures one path segment.
const ROUTES = [
  ['/login', null, loginPage],
  ['/set-password', null, setPasswordPage],
  ['/student/exams', ['student'], student.availableExams],
  ['/student/exam/:examId', ['student'], examPage],
  ['/student/dashboard', ['student'], student.dashboard],
  ['/student/attempts/:attemptId', ['student'], student.attemptDetail],
  ['/teacher/exams', STAFF, teacherExams.examList],
  ['/teacher/exams/new', STAFF, teacherExams.createExam],
  ['/teacher/exams/:examId', STAFF, teacherExams.editExam],
  ['/teacher/exams/:examId/analytics', STAFF, insights.analytics],
  ['/teacher/alerts', STAFF, alerts.alertList],
  ['/teacher/grading', STAFF, grading.queue],
  ['/teacher/attempts/:attemptId', STAFF, insights.attemptTimeline],
  ['/teacher/attempts/:attemptId/grading', STAFF, grading.gradeAttempt],
  ['/teacher/students/:studentId', STAFF, insights.studentDetail],
  ['/admin/users', ['admin'], admin.users],
  ['/admin/audit', ['admin'], admin.auditLogs],
];

const HOME = { student: '#/student/exams', teacher: '#/teacher/exams', admin: '#/admin/users' };

const NAV = {
  student: [['#/student/exams', 'Exams'], ['#/student/dashboard', 'My dashboard']],
  teacher: [['#/teacher/exams', 'Exams'], ['#/teacher/exams/new', 'New exam'], ['#/teacher/grading', 'Grading'], ['#/teacher/alerts', 'Live alerts']],
  admin: [['#/admin/users', 'Users'], ['#/admin/audit', 'Audit log'], ['#/teacher/exams', 'Exams'], ['#/teacher/grading', 'Grading'], ['#/teacher/alerts', 'Live alerts']],
};

const ROLE_NAMES = { student: 'students', teacher: 'teachers', admin: 'administrators' };

let cleanup = null;
let navigation = 0; // which route() call is current; a slower earlier one must not win
let notice = null; // a message carried to the next page (e.g. "signed out")

function match(path) {
  for (const [pattern, roles, render] of ROUTES) {
    const names = [];
    const re = new RegExp(`^${pattern.replace(/:(\w+)/g, (_, n) => { names.push(n); return '([^/]+)'; })}$`);
    const m = path.match(re);
    if (m) return { roles, render, params: Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(m[i + 1])])) };
  }
  return null;
}

function renderChrome(user) {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  const here = location.hash;
  nav.replaceChildren(...(user ? [h('ul', {}, (NAV[user.role] || []).map(([href, text]) =>
    h('li', {}, h('a', { href, 'aria-current': here === href ? 'page' : null }, text))))] : []));
  who.replaceChildren(...(user ? [
    h('span', {}, `${user.username} (${user.role})`),
    h('button', { type: 'button', class: 'secondary', onclick: async () => {
      await logout();
      notice = 'You are signed out.';
      location.hash = '#/login';
    } }, 'Sign out'),
  ] : []));
}

async function route() {
  const hash = location.hash || '#/';
  if (!hash.startsWith('#/')) return; // in-page anchors are not routes
  const path = hash.slice(1).split('?')[0];
  const current = ++navigation;
  if (cleanup) { try { cleanup(); } catch (err) { console.warn(err); } cleanup = null; }
  const user = session.user();
  renderChrome(user);
  const main = document.getElementById('main');
  const view = h('div', { class: 'view' });
  main.replaceChildren(view);
  if (path === '/' || path === '') {
    location.replace(user ? HOME[user.role] : '#/login');
    return;
  }
  const found = match(path);
  if (!found) {
    view.append(heading('Page not found'), h('p', {}, 'There is no page at this address. ', h('a', { href: '#/' }, 'Go to the start page.')));
  } else if (found.roles && !user) {
    notice = 'Please sign in to continue.';
    sessionStorage.setItem('veritas.after-login', hash);
    location.replace('#/login');
    return;
  } else if (found.roles && !found.roles.includes(user.role)) {
    // The API refuses these calls too; this just says so before asking it.
    view.append(heading('Not available'), h('div', { class: 'msg msg-error', role: 'alert' },
      `This page is for ${found.roles.map((r) => ROLE_NAMES[r]).join(' and ')}. You are signed in as a ${user.role}.`),
    h('p', {}, h('a', { href: HOME[user.role] }, 'Go to your start page')));
  } else {
    try {
      const undo = await found.render({ view, params: found.params, user, notice: takeNotice() });
      if (current === navigation) cleanup = undo || null;
      else if (undo) undo(); // the user moved on while this page was loading
    } catch (err) {
      const box = h('div');
      view.append(box);
      showError(box, err);
    }
  }
  if (current !== navigation) return;
  const title = view.querySelector('h1');
  document.title = title ? `${title.textContent} · Veritas` : 'Veritas';
  // Move focus to the new page's heading so keyboard and screen-reader users start there.
  if (title && !view.contains(document.activeElement)) title.focus();
}

function takeNotice() {
  const n = notice;
  notice = null;
  return n;
}

async function loginPage({ view, notice: carried }) {
  if (session.user()) { location.replace(HOME[session.user().role]); return null; }
  const box = h('div');
  const identifier = h('input', { name: 'identifier', autocomplete: 'username', required: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'card narrow', onsubmit: async (e) => {
    e.preventDefault();
    submit.disabled = true;
    message(box, 'info', 'Signing in…');
    try {
      const user = await login(identifier.value.trim(), password.value);
      const back = sessionStorage.getItem('veritas.after-login');
      sessionStorage.removeItem('veritas.after-login');
      location.hash = back && match(back.slice(1))?.roles?.includes(user.role) ? back : HOME[user.role];
    } catch (err) {
      if (err.status === 401) message(box, 'error', 'Wrong email, username or password.');
      else if (err.status === 403) message(box, 'error', 'This account is locked. Ask an administrator to unlock it.');
      else showError(box, err);
      submit.disabled = false;
      password.select();
    }
  } },
  field('Email or username', identifier),
  field('Password', password),
  submit);
  view.append(heading('Sign in'), box, form);
  if (carried) message(box, 'info', carried);
  identifier.focus();
  return null;
}

// Where a one-time set-password link lands (a new account from a class roster, or a reset).
// The token rides in the fragment, which the browser never sends to a server.
async function setPasswordPage({ view }) {
  const token = new URLSearchParams(location.hash.split('?')[1] || '').get('token');
  const box = h('div');
  view.append(heading('Choose your password'), box);
  if (!token) {
    message(box, 'error', 'This link is incomplete. Open the whole link you were given, or ask for a new one.');
    return null;
  }
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const again = h('input', { name: 'again', type: 'password', autocomplete: 'new-password', required: true });
  const submit = h('button', { type: 'submit' }, 'Set password');
  const form = h('form', { class: 'card narrow', onsubmit: async (e) => {
    e.preventDefault();
    if (password.value !== again.value) {
      message(box, 'error', 'The two passwords are not the same. Type them again.');
      again.select();
      return;
    }
    submit.disabled = true;
    message(box, 'info', 'Saving…');
    try {
      await api('/api/auth/set-password', { method: 'POST', auth: false, body: { token, password: password.value } });
      if (session.user()) await logout(); // someone else's session in this browser ends here
      notice = 'Your password is set. Sign in with it now.';
      location.replace('#/login');
    } catch (err) {
      if (err.status === 400) {
        message(box, 'error', 'This link was used already or has expired. Ask your teacher or an administrator for a new one.');
        form.remove();
        return;
      }
      message(box, 'error', explain(err));
      submit.disabled = false;
      password.select();
    }
  } },
  field('New password', password, 'At least 8 characters, and not a common password.'),
  field('New password again', again),
  submit);
  view.append(form);
  password.focus();
  return null;
}

window.addEventListener('veritas:signed-out', () => {
  notice = 'Your session ended. Please sign in again.';
  if (!location.hash.startsWith('#/login')) {
    sessionStorage.setItem('veritas.after-login', location.hash);
    location.hash = '#/login';
  }
});
window.addEventListener('hashchange', route);
document.getElementById('skip-link').addEventListener('click', (e) => {
  e.preventDefault(); // "#main" would otherwise be taken for a route
  document.getElementById('main').focus();
});
route();
