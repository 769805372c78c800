// Small DOM helpers: no framework, just elements built in code (text is never parsed as HTML).

import { explain } from './api.js';
import { choices } from './words.js';

let counter = 0;
export const uid = (prefix = 'f') => `${prefix}-${++counter}`;

/** h('p', {class: 'x', onclick: fn}, 'text', child) → an element. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false || key === 'value') continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key in el && typeof value !== 'string') el[key] = value; // checked, value, disabled…
    else el.setAttribute(key, value === true ? '' : value);
  }
  append(el, children);
  // After the children: a select's options and a textarea's text must exist first.
  if (props && props.value !== undefined && props.value !== null) el.value = props.value;
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** The page's heading; focus moves here after navigation so keyboard users start at the top. */
export function heading(text) {
  return h('h1', { tabindex: '-1', id: 'page-title' }, text);
}

/** A labelled control: <div class="field"><label for=id>…</label><control id=id></div>. */
export function field(labelText, control, hint) {
  control.id ||= uid();
  const parts = [h('label', { for: control.id }, labelText), control];
  if (hint) {
    const hintId = uid('hint');
    control.setAttribute('aria-describedby', hintId);
    parts.push(h('p', { class: 'hint', id: hintId }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

export function select(name, options, value) {
  return h('select', { name }, options.map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
}

/** A message box: errors are role=alert (announced at once), notices role=status. */
export function message(el, kind, text) {
  el.replaceChildren();
  if (!text) return;
  el.append(h('div', { class: `msg msg-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text));
}

export function showError(el, err) {
  message(el, 'error', explain(err));
}

export function table(columns, rows, caption) {
  return h('table', {},
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c.label)))),
    h('tbody', {}, rows.length
      ? rows.map((row) => h('tr', {}, columns.map((c) => h('td', {}, c.render ? c.render(row) : fmt(row[c.key])))))
      : h('tr', {}, h('td', { colspan: String(columns.length), class: 'empty' }, 'Nothing to show.'))));
}

export function link(href, text) {
  return h('a', { href }, text);
}

export function fmt(value) {
  if (value === null || value === undefined || value === '') return '—';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(2);
  return String(value);
}

/** Points as a teacher writes them: 2.5, not 2.50 (at most two decimals). */
export function fmtPoints(value) {
  if (value === null || value === undefined) return '—';
  return String(Number(Number(value).toFixed(2)));
}

export function fmtDate(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

/** The viewer's time zone, by name (e.g. "Europe/Paris"). */
export function timeZoneName() {
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time'; } catch { return 'local time'; }
}

/** A moment in the viewer's time zone, the zone named: "14 Dec 2026, 09:00 CET". */
export function fmtZoned(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short' });
}

/** An ISO time as the value of an <input type="datetime-local"> (the viewer's zone). */
export function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** An <input type="datetime-local"> value back as ISO with its UTC offset; null when empty. */
export function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value); // a datetime-local value without a zone is read as local time
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return m ? `${m} min ${s} s` : `${s} s`;
}

export function fmtPct(value, scale = 1) {
  return value === null || value === undefined ? '—' : `${(value * scale).toFixed(1)} %`;
}

const PROVISIONAL_HINT = 'Scored against the attempts analysed so far; final once the exam settles and all its attempts are scored together.';

/** An integrity score in per cent, marked when it is provisional (it may still change). */
export function fmtIntegrity(value, status) {
  const text = fmtPct(value, 100);
  if (value === null || value === undefined || status !== 'provisional') return h('span', {}, text);
  return h('span', {}, `${text} `, h('span', { class: 'badge badge-provisional', title: PROVISIONAL_HINT }, 'provisional'));
}

/** Definition list from [label, value] pairs. */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v instanceof Node ? v : fmt(v))]));
}

/** A "Load more" pager for {items, next_cursor} lists. */
export function pager(load, renderItems, container) {
  let cursor = null;
  let latest = 0; // a reload (new filters) makes the answers of earlier calls stale
  const status = h('div');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Load more');
  async function next(reset) {
    if (reset) cursor = null;
    const call = ++latest;
    more.disabled = true;
    try {
      const page = await load(cursor);
      if (call !== latest) return; // a slower earlier answer must not replace a newer one
      renderItems(page.items, reset);
      cursor = page.next_cursor;
      more.hidden = !cursor;
      message(status, 'info', '');
    } catch (err) {
      showError(status, err);
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', () => next(false));
  container.append(status, more);
  return next;
}

// --- grading status: shown wherever a score is, so an ungraded 0 never reads as a failure ---

export const GRADING_LABELS = Object.fromEntries(choices('grading_statuses'));

/** A small badge for an attempt's grading_status (nothing before it is submitted). */
export function gradingBadge(status) {
  if (!status) return null;
  return h('span', { class: `badge badge-grading-${status}`, dataset: { gradingStatus: status } }, GRADING_LABELS[status] || status);
}

/** "7 of 10 (70.0 %)" with the grading status after it; '—' when there is no score. */
export function scoreWithStatus(a) {
  if (a.score === null || a.score === undefined) return '—';
  const pct = a.percentage === null || a.percentage === undefined ? '' : ` (${a.percentage.toFixed(1)} %)`;
  return h('span', { class: 'score' }, `${fmtPoints(a.score)} of ${fmtPoints(a.max_score)}${pct}`, a.grading_status ? ' ' : null, gradingBadge(a.grading_status));
}

/** Passed or not, but "not final yet" while grading is pending. */
export function passedText(a) {
  if (a.grading_status === 'pending') return 'not final yet';
  return fmt(a.passed);
}
