// The pages' HTTP client: the session in sessionStorage, one refresh on 401, readable errors.

const KEY = 'veritas.session';

export const session = {
  get() {
    try { return JSON.parse(sessionStorage.getItem(KEY)) || null; } catch { return null; }
  },
  set(value) { sessionStorage.setItem(KEY, JSON.stringify(value)); },
  clear() { sessionStorage.removeItem(KEY); },
  token() { return this.get()?.token || null; },
  user() { return this.get()?.user || null; },
};

export class ApiError extends Error {
  constructor(status, detail, retryAfter) {
    super(typeof detail === 'string' ? detail : `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

function validationText(detail) {
  // FastAPI's 422 is a list of {loc, msg}; name the field, drop the "body" prefix.
  return detail.map((e) => {
    const where = (e.loc || []).filter((p) => p !== 'body').join('.');
    return where ? `${where}: ${e.msg}` : e.msg;
  }).join('; ');
}

/** What to tell a person about a failed request, in one or two sentences. */
export function explain(err) {
  if (!(err instanceof ApiError)) return 'The server could not be reached. Check your connection and try again.';
  const detail = Array.isArray(err.detail) ? validationText(err.detail) : err.detail;
  switch (err.status) {
    case 401: return 'You are signed out or your session expired. Please sign in again.';
    case 403: return `You are not allowed to do that${detail ? ` (${detail})` : ''}.`;
    case 404: return `Not found${detail ? `: ${detail}` : ''}.`;
    case 409: return `That cannot be done now: ${detail || 'it conflicts with the current state'}.`;
    case 413: return 'That is too large to send.';
    case 422: return `Please check the form: ${detail}.`;
    case 429: return `Too many attempts. Please wait ${err.retryAfter || 'a little'} ${err.retryAfter ? 'seconds' : ''} and try again.`.replace(/\s+/g, ' ');
    default:
      if (err.status >= 500) return 'The server had a problem. Please try again in a moment.';
      return detail || `Request failed (${err.status}).`;
  }
}

let refreshing = null;

async function refresh() {
  // Concurrent 401s share one refresh: a refresh token works only once.
  refreshing ||= (async () => {
    const current = session.get();
    if (!current?.refresh) return false;
    const res = await fetch('/api/auth/refresh', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: current.refresh }),
    });
    if (!res.ok) return false;
    const pair = await res.json();
    session.set({ ...current, token: pair.access_token, refresh: pair.refresh_token });
    return true;
  })().finally(() => { refreshing = null; });
  return refreshing;
}

function queryString(query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** Call the API and resolve with its Response when it succeeds (after one refresh on 401);
 *  rejects with ApiError otherwise. */
async function send(path, { method = 'GET', body, query, auth = true, retried = false } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const token = session.token();
  if (auth && token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path + queryString(query), {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401 && auth && token && !retried && await refresh().catch(() => false)) {
    return send(path, { method, body, query, auth, retried: true });
  }
  if (!res.ok) {
    const payload = await res.json().catch(() => ({}));
    const err = new ApiError(res.status, payload.detail, Number(res.headers.get('Retry-After')) || null);
    if (res.status === 401 && auth && token) {
      session.clear();
      window.dispatchEvent(new CustomEvent('veritas:signed-out'));
    }
    throw err;
  }
  return res;
}

/** Call the API; resolves with the JSON body (null for 204), rejects with ApiError. */
export async function api(path, options = {}) {
  const res = await send(path, options);
  return res.status === 204 ? null : res.json();
}

/** Download a file the API sends (a CSV export) under the name it gives. The bearer token
 *  goes in a header, so the page fetches it and hands the browser the bytes. */
export async function download(path, { query } = {}) {
  const res = await send(path, { query });
  const name = /filename="([^"]+)"/.exec(res.headers.get('Content-Disposition') || '')?.[1] || 'export.csv';
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return name;
}

/** Show an HTML page of the API (the incident report) in a new tab. The tab is opened at
 *  once, in the click, so no pop-up blocker stops it, and gets the page when it arrives. */
export async function openPage(path, { query } = {}) {
  const tab = window.open('', '_blank');
  try {
    const res = await send(path, { query });
    const url = URL.createObjectURL(new Blob([await res.text()], { type: 'text/html' }));
    if (tab) tab.location.href = url;
    else location.href = url; // no new tab allowed: show it here
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (err) {
    tab?.close();
    throw err;
  }
}

export async function login(identifier, password) {
  const field = identifier.includes('@') ? 'email' : 'username';
  const pair = await api('/api/auth/login', {
    method: 'POST', auth: false, body: { [field]: identifier, password },
  });
  session.set({ token: pair.access_token, refresh: pair.refresh_token });
  const user = await api('/api/auth/me');
  session.set({ token: pair.access_token, refresh: pair.refresh_token, user });
  return user;
}

export async function logout() {
  const current = session.get();
  session.clear();
  if (!current?.token) return;
  // Best effort: the tokens die server-side; the page forgets them either way.
  await fetch('/api/auth/logout', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${current.token}` },
    body: JSON.stringify({ refresh_token: current.refresh }),
  }).catch(() => {});
}
