// Veritas browser monitoring SDK: one ES module, no dependencies. Documented in docs/web.md.
//
// It records *how* an exam page is used (focus, visibility, clipboard sizes, typing cadence,
// idle and offline periods, heartbeats), never *what* is typed or copied. Every event is
// written to IndexedDB before it is sent and is deleted only after the server acknowledged
// it with a 2xx, so reloads, crashes and offline periods lose nothing; each event carries a
// client UUID that the server dedupes on, so resending after a lost answer duplicates nothing.

export const DISCLOSURE =
  'While this exam is open, this page records: when the exam window loses focus or the tab ' +
  'is hidden, and for how long; when you leave full screen; when you copy, cut or paste, and ' +
  'how many characters (never the text itself); your typing rhythm on each question (how ' +
  'many keys and the pauses between them, never which keys); periods without any input; ' +
  'periods when your device is offline; and a heartbeat every few seconds while the page is ' +
  'open. Nothing else: no camera, no microphone, no screen contents, no other tabs or sites.';

export const EVENT_TYPES = [
  'heartbeat', 'focus_lost', 'visibility_hidden', 'fullscreen_exit', 'copy', 'cut', 'paste',
  'typing', 'idle', 'network_offline',
];

const DEFAULTS = {
  baseUrl: '',
  heartbeatMs: 5000, // pass the start response's heartbeat_seconds * 1000; this is its value
  idleMs: 60000,
  typingWindowMs: 10000,
  batchDelayMs: 1000, // gather events for a moment so one request carries several
  maxBatch: 1000, // the server's limit per batch
  keepaliveBytes: 60000, // browsers cap in-flight keepalive bodies at 64 KiB in total
  backoffBaseMs: 1000,
  backoffMaxMs: 30000,
  requestTimeoutMs: 15000,
  dbName: 'veritas-monitor',
};

// Keys that are not typing: bare modifiers, and the keys that leave a field.
const NON_TYPING_KEYS = new Set(['Shift', 'Control', 'Alt', 'Meta', 'CapsLock', 'AltGraph', 'Fn', 'Tab', 'Escape']);
const TEXT_INPUT_TYPES = new Set(['text', 'search', 'email', 'number', 'tel', 'url', '']); // not password

/** A v4 UUID; crypto.randomUUID exists only in secure contexts, getRandomValues everywhere. */
export function uuid4() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// --- IndexedDB, promisified just enough ---------------------------------------------------

function openDb(name) {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(name, 1);
    req.onupgradeneeded = () => {
      const db = req.result;
      db.createObjectStore('events', { keyPath: 'event_id' }).createIndex('attempt', 'attempt_id');
      db.createObjectStore('attempts', { keyPath: 'attempt_id' }); // the next seq per attempt
    };
    req.onsuccess = () => {
      const db = req.result;
      db.onversionchange = () => db.close(); // never block a newer SDK's upgrade in another tab
      resolve(db);
    };
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error('IndexedDB upgrade blocked'));
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error('transaction aborted'));
  });
}

function result(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function questionOf(target) {
  const el = target instanceof Element ? target.closest('[data-question-id]') : null;
  return el ? el.getAttribute('data-question-id') : undefined;
}

function isTextEntry(el) {
  if (!(el instanceof Element)) return false;
  if (el.isContentEditable || el.tagName === 'TEXTAREA') return true;
  return el.tagName === 'INPUT' && TEXT_INPUT_TYPES.has((el.getAttribute('type') || '').toLowerCase());
}

function selectedLength(target) {
  // Inputs keep their own selection; the document selection does not include it.
  if (target && typeof target.selectionStart === 'number' && typeof target.selectionEnd === 'number') {
    return Math.max(0, target.selectionEnd - target.selectionStart);
  }
  return (globalThis.getSelection?.()?.toString() || '').length;
}

/**
 * Monitors one exam attempt in this page and delivers its events.
 *
 * Events: 'statechange' (detail {state, pending}), 'ended' (the attempt took no more events:
 * 409), 'rejected' (403/404: not this user's attempt), 'unauthorized' (401: give a new token).
 */
export class VeritasMonitor extends EventTarget {
  constructor(options) {
    super();
    if (!options?.attemptId) throw new Error('VeritasMonitor needs attemptId');
    if (!options.getToken && !options.token) throw new Error('VeritasMonitor needs token or getToken');
    this.options = { ...DEFAULTS, ...options };
    this.attemptId = options.attemptId;
    this._started = false;
    this._early = []; // track() calls made before start() knew the attempt's next seq
    this._pending = new Map(); // event_id -> {event_id, attempt_id, body}, not yet acknowledged
    this._db = null;
    this._nextSeq = 0;
    this._capturing = false;
    this._stopped = false;
    this._timer = null;
    this._waitUntil = 0; // no sends before this time (backoff or Retry-After)
    this._failures = 0;
    this._inflight = null;
    this._batchLimit = this.options.maxBatch;
    this._cleanup = [];
    this._typing = null;
    this._focusLostAt = null;
    this._hiddenAt = null;
    this._offlineAt = null;
    this._idleSince = null;
    this._lastActivity = Date.now();
    this._wasFullscreen = false;
    this._terminal = null; // why the monitor stopped, once it has
    this._unauthorized = false;
    this._keepaliveInflight = false;
    this._counts = {
      generated: 0, // events created by this page (see nextSeq for the attempt's total)
      acknowledged: 0,
      recorded: 0,
      duplicates: 0,
      rejected: 0, // events the server refused as invalid (413/422 on their own)
      unsaved: 0, // IndexedDB writes still in progress
      durable: true, // false when IndexedDB is unavailable and events live in memory only
      byType: {},
    };
  }

  get pending() { return this._pending.size; }

  /** Counters for diagnostics and tests; `nextSeq` is how many events the attempt has had. */
  get stats() {
    return { ...this._counts, byType: { ...this._counts.byType }, pending: this._pending.size,
      nextSeq: this._nextSeq, state: this.state };
  }

  /** What the indicator shows, derived from the monitor's situation rather than stored. */
  get state() {
    if (this._terminal) return this._terminal;
    if (!this._started) return 'starting';
    if (this._unauthorized) return 'unauthorized';
    if (navigator.onLine === false) return 'offline';
    if (this._waitUntil > Date.now()) return 'retrying';
    return this._pending.size || this._inflight ? 'sending' : 'online';
  }

  /** Load what an earlier page of this attempt left unsent, then capture and send. */
  async start({ capture = true } = {}) {
    try {
      this._db = await openDb(this.options.dbName);
      const tx = this._db.transaction(['events', 'attempts'], 'readonly');
      const [rows, meta] = await Promise.all([
        result(tx.objectStore('events').index('attempt').getAll(IDBKeyRange.only(this.attemptId))),
        result(tx.objectStore('attempts').get(this.attemptId)),
      ]);
      for (const row of rows) this._pending.set(row.event_id, { ...row, saved: true });
      this._nextSeq = meta?.next_seq || 0;
    } catch (err) {
      this._db = null;
      this._counts.durable = false;
      console.warn('veritas-monitor: IndexedDB unavailable, events are kept in memory only', err);
    }
    const spilled = this._unspill();
    // The next seq is the highest any record knows of, so no seq is ever handed out twice.
    for (const row of this._pending.values()) this._nextSeq = Math.max(this._nextSeq, row.body.data.seq + 1);
    this._nextSeq = Math.max(this._nextSeq, this._seqBackup());
    for (const row of spilled) this._persist(row);
    if (capture) this._attach();
    this._started = true;
    for (const args of this._early.splice(0)) this.track(...args);
    this._emitState();
    this._schedule(0);
    return this;
  }

  /** Record an event of any type (for monitoring modules that add their own). */
  track(eventType, data = {}, { severity = 'normal', description } = {}) {
    if (this._stopped) return null;
    if (!this._started) { this._early.push([eventType, data, { severity, description }]); return null; }
    const seq = this._nextSeq++;
    const body = {
      event_id: uuid4(),
      event_type: eventType,
      severity,
      data: { ...data, seq },
      client_timestamp: new Date().toISOString(),
    };
    if (description) body.description = description;
    const row = { event_id: body.event_id, attempt_id: this.attemptId, body };
    this._pending.set(row.event_id, row);
    this._saveSeqBackup();
    this._counts.generated += 1;
    this._counts.byType[eventType] = (this._counts.byType[eventType] || 0) + 1;
    this._persist(row);
    // Never push back a timer already set: a steady stream of events must not starve sending.
    if (!this._timer && !this._inflight) this._schedule(this.options.batchDelayMs);
    this._emitState();
    return body.event_id;
  }

  /** Send everything now (respecting any Retry-After); resolves when the queue is empty or stuck. */
  async flush() {
    for (let rounds = 0; this._pending.size && rounds < 50 && !this._stopped; rounds += 1) {
      if (this._waitUntil > Date.now()) break;
      const before = this._pending.size;
      await this._send();
      if (this._pending.size >= before) break;
    }
    return this._pending.size;
  }

  /**
   * End of the exam: close open intervals, stop capturing, and keep sending until everything
   * is acknowledged or timeoutMs passes. Resolves with the number of events still unsent.
   */
  async finish({ timeoutMs = 10000 } = {}) {
    this._closeIntervals();
    this._detach();
    const deadline = Date.now() + timeoutMs;
    while (this._pending.size && !this._stopped && Date.now() < deadline) {
      const wait = Math.min(Math.max(0, this._waitUntil - Date.now()), deadline - Date.now());
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      this._waitUntil = 0;
      await this._send();
    }
    await this._settled();
    const left = this._pending.size;
    if (!this._stopped) this._stop(left ? 'finished_unsent' : 'finished');
    return left;
  }

  /** Stop capturing and sending; unsent events stay in IndexedDB for the next page. */
  stop() {
    this._detach();
    this._stop('stopped');
  }

  /** Resolve once every IndexedDB write issued so far has completed. */
  async _settled() {
    while (this._counts.unsaved > 0) await new Promise((r) => setTimeout(r, 20));
  }

  // --- capture ------------------------------------------------------------------------

  _attach() {
    if (this._capturing) return;
    this._capturing = true;
    const on = (target, type, fn, opts) => {
      target.addEventListener(type, fn, opts);
      this._cleanup.push(() => target.removeEventListener(type, fn, opts));
    };
    on(window, 'blur', () => {
      this._closeTyping();
      if (this._focusLostAt === null) this._focusLostAt = Date.now();
    });
    on(window, 'focus', () => {
      if (this._focusLostAt !== null) {
        this.track('focus_lost', { duration_ms: Date.now() - this._focusLostAt });
        this._focusLostAt = null;
      }
      this._lastActivity = Date.now(); // time away is focus_lost, not idle
    });
    on(document, 'visibilitychange', () => {
      if (document.visibilityState === 'hidden') {
        this._closeTyping();
        if (this._hiddenAt === null) this._hiddenAt = Date.now();
        this._spill();
        this._flushKeepalive(); // the page may be discarded from here on
      } else if (this._hiddenAt !== null) {
        this.track('visibility_hidden', { duration_ms: Date.now() - this._hiddenAt });
        this._hiddenAt = null;
        this._lastActivity = Date.now();
      }
    });
    on(window, 'pagehide', () => { this._closeTyping(); this._spill(); this._flushKeepalive(); });
    on(document, 'fullscreenchange', () => {
      if (document.fullscreenElement) this._wasFullscreen = true;
      else if (this._wasFullscreen) {
        this._wasFullscreen = false;
        this.track('fullscreen_exit', {});
      }
    });
    for (const kind of ['copy', 'cut']) {
      on(document, kind, (e) => this.track(kind, this._clip(selectedLength(e.target), e.target)), true);
    }
    on(document, 'paste', (e) => {
      // The text is read only to measure it; it is neither kept nor sent.
      const chars = (e.clipboardData?.getData('text') || '').length;
      this.track('paste', this._clip(chars, e.target));
    }, true);
    on(document, 'keydown', (e) => this._onKey(e), true);
    on(document, 'input', (e) => this._onInput(e), true);
    for (const kind of ['pointerdown', 'wheel', 'touchstart', 'scroll']) {
      on(document, kind, () => this._activity(), { capture: true, passive: true });
    }
    let lastMove = 0;
    on(document, 'pointermove', () => {
      const now = Date.now();
      if (now - lastMove > 500) { lastMove = now; this._activity(); }
    }, { passive: true });
    on(window, 'offline', () => {
      if (this._offlineAt === null) this._offlineAt = Date.now();
      this._emitState();
    });
    on(window, 'online', () => {
      if (this._offlineAt !== null) {
        this.track('network_offline', { duration_ms: Date.now() - this._offlineAt });
        this._offlineAt = null;
      }
      this._failures = 0;
      this._waitUntil = 0;
      this._schedule(0);
    });
    if (navigator.onLine === false) this._offlineAt = Date.now();
    if (document.fullscreenElement) this._wasFullscreen = true;
    const heartbeat = setInterval(() => this.track('heartbeat', {}), this.options.heartbeatMs);
    const tick = setInterval(() => this._tick(), 1000);
    this._cleanup.push(() => clearInterval(heartbeat), () => clearInterval(tick));
  }

  _detach() {
    this._closeTyping();
    for (const undo of this._cleanup.splice(0)) undo();
    this._capturing = false;
  }

  _clip(chars, target) {
    const data = { chars };
    const qid = questionOf(target);
    if (qid !== undefined) data.question_id = qid;
    return data;
  }

  _onKey(e) {
    this._activity();
    // e.key is looked at only to skip non-typing keys; it is never stored or sent.
    // Shortcuts (Ctrl+V, Cmd+C…) are not typing; clipboard events report those. AltGr
    // reports Ctrl too on some layouts, and it types characters.
    const shortcut = (e.ctrlKey || e.metaKey) && !e.getModifierState?.('AltGraph');
    if (NON_TYPING_KEYS.has(e.key) || shortcut || !isTextEntry(e.target)) return;
    const qid = questionOf(e.target) ?? null;
    if (this._typing && this._typing.qid !== qid) this._closeTyping();
    const now = performance.now();
    const t = this._typing || (this._typing = {
      qid, keys: 0, chars: 0, last: null, intervalSum: 0, intervals: 0, pauses: 0, startedAt: now,
    });
    t.keys += 1;
    if (t.last !== null) {
      const gap = now - t.last;
      t.intervalSum += gap;
      t.intervals += 1;
      if (gap > 2000) t.pauses += 1;
    }
    t.last = now;
  }

  _onInput(e) {
    this._activity();
    const kind = e.inputType || '';
    // Pastes and drops are clipboard events of their own, not typing.
    if (!this._typing || !kind.startsWith('insert') || kind === 'insertFromPaste' || kind === 'insertFromDrop') return;
    if ((questionOf(e.target) ?? null) !== this._typing.qid) return; // text set in another field
    this._typing.chars += e.data ? e.data.length : 1; // a line break has no data
  }

  _closeTyping() {
    const t = this._typing;
    this._typing = null;
    if (!t || !t.keys) return;
    this.track('typing', {
      question_id: t.qid,
      keys: t.keys,
      chars_added: t.chars,
      mean_interval_ms: t.intervals ? Math.round(t.intervalSum / t.intervals) : 0,
      pauses_over_2s: t.pauses,
    });
  }

  _activity() {
    const now = Date.now();
    if (this._idleSince !== null) {
      this.track('idle', { duration_ms: now - this._idleSince });
      this._idleSince = null;
    }
    this._lastActivity = now;
  }

  _tick() {
    const now = Date.now();
    if (this._typing && performance.now() - this._typing.startedAt >= this.options.typingWindowMs) {
      this._closeTyping();
    }
    // Idle counts only while the page is in front; time away is focus_lost/visibility_hidden.
    const present = document.visibilityState === 'visible' && this._focusLostAt === null;
    if (present && this._idleSince === null && now - this._lastActivity >= this.options.idleMs) {
      this._idleSince = this._lastActivity;
    }
  }

  _closeIntervals() {
    const now = Date.now();
    this._closeTyping();
    if (this._idleSince !== null) {
      this.track('idle', { duration_ms: now - this._idleSince });
      this._idleSince = null;
    }
    if (this._offlineAt !== null) {
      this.track('network_offline', { duration_ms: now - this._offlineAt });
      this._offlineAt = null;
    }
  }

  // --- storage --------------------------------------------------------------------------

  // The next seq is also kept in localStorage, written synchronously: an event sent by the
  // pagehide keepalive before its IndexedDB write finished must not see its seq reused.
  _seqKey() { return `${this.options.dbName}.seq.${this.attemptId}`; }

  _seqBackup() {
    try { return Number(localStorage.getItem(this._seqKey())) || 0; } catch { return 0; }
  }

  _saveSeqBackup() {
    try { localStorage.setItem(this._seqKey(), String(this._nextSeq)); } catch { /* storage full or blocked */ }
  }

  _persist(row) {
    if (!this._db) return;
    this._counts.unsaved += 1;
    try {
      const tx = this._db.transaction(['events', 'attempts'], 'readwrite');
      tx.objectStore('events').put({ event_id: row.event_id, attempt_id: row.attempt_id, body: row.body });
      tx.objectStore('attempts').put({ attempt_id: this.attemptId, next_seq: this._nextSeq });
      done(tx).then(() => { row.saved = true; })
        .catch((err) => console.warn('veritas-monitor: could not store an event', err))
        .finally(() => { this._counts.unsaved -= 1; });
    } catch (err) {
      this._counts.unsaved -= 1;
      console.warn('veritas-monitor: could not store an event', err);
    }
  }

  // IndexedDB writes are asynchronous and may never finish once the page is going away
  // (a typing window closed on pagehide, say). localStorage writes are synchronous, so the
  // events not yet in IndexedDB are spilled there, and the next page takes them back.
  _spillKey() { return `${this.options.dbName}.spill.${this.attemptId}`; }

  _spill() {
    const unsaved = [...this._pending.values()].filter((r) => !r.saved).map((r) => r.body);
    try {
      if (unsaved.length) localStorage.setItem(this._spillKey(), JSON.stringify(unsaved));
    } catch { /* storage full or blocked: the keepalive send is the remaining chance */ }
  }

  /** Take back what the last page spilled; returns the rows new to the queue. */
  _unspill() {
    let bodies = [];
    try { bodies = JSON.parse(localStorage.getItem(this._spillKey())) || []; } catch { /* corrupt: ignore */ }
    const added = [];
    for (const body of bodies) {
      if (this._pending.has(body.event_id)) continue;
      const row = { event_id: body.event_id, attempt_id: this.attemptId, body };
      this._pending.set(row.event_id, row);
      added.push(row);
    }
    try { localStorage.removeItem(this._spillKey()); } catch { /* nothing to clean */ }
    return added;
  }

  _forget(ids) {
    if (!this._db || !ids.length) return;
    try {
      const tx = this._db.transaction('events', 'readwrite');
      const store = tx.objectStore('events');
      for (const id of ids) store.delete(id);
      done(tx).catch((err) => console.warn('veritas-monitor: could not delete sent events', err));
    } catch (err) {
      console.warn('veritas-monitor: could not delete sent events', err);
    }
  }

  // --- delivery -------------------------------------------------------------------------

  _schedule(delayMs) {
    if (this._stopped) return;
    clearTimeout(this._timer);
    const wait = Math.max(delayMs, this._waitUntil - Date.now(), 0);
    this._timer = setTimeout(() => { this._timer = null; this._send(); }, wait);
  }

  _batch(limit, maxBytes = Infinity) {
    const rows = [...this._pending.values()].sort((a, b) => a.body.data.seq - b.body.data.seq);
    const out = [];
    let bytes = 64;
    for (const row of rows) {
      if (out.length >= limit) break;
      const size = JSON.stringify(row.body).length + 1;
      if (bytes + size > maxBytes) break;
      bytes += size;
      out.push(row);
    }
    return out;
  }

  async _post(rows, keepalive) {
    // Called synchronously from pagehide: fetch must start before anything is awaited, so a
    // getToken that returns a plain string is preferred over one that returns a promise.
    let token = this.options.getToken ? this.options.getToken() : this.options.token;
    if (token && typeof token.then === 'function') token = await token;
    const controller = keepalive ? null : new AbortController();
    const timer = controller && setTimeout(() => controller.abort(), this.options.requestTimeoutMs);
    try {
      return await fetch(`${this.options.baseUrl}/api/monitor/events/batch`, {
        method: 'POST',
        keepalive,
        signal: controller?.signal,
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ attempt_id: this.attemptId, events: rows.map((r) => r.body) }),
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /** One batch; the single in-flight request keeps batches in order and the server calm. */
  _send() {
    if (this._inflight) return this._inflight;
    this._inflight = this._sendOnce().finally(() => { this._inflight = null; });
    return this._inflight;
  }

  async _sendOnce() {
    if (this._stopped) return;
    if (this._waitUntil > Date.now()) { this._schedule(0); return; } // a timer fired early

    const rows = this._batch(this._batchLimit);
    if (!rows.length) { this._emitState(); return; }
    let res;
    try {
      res = await this._post(rows, false);
    } catch {
      this._backoff(null);
      return;
    }
    await this._handle(res, rows);
    if (this._pending.size && !this._stopped) this._schedule(0);
  }

  async _handle(res, rows) {
    if (res.ok) {
      const body = await res.json().catch(() => ({}));
      this._ack(rows, body);
      this._failures = 0;
      this._unauthorized = false;
      this._batchLimit = this.options.maxBatch;
      this._emitState();
      return;
    }
    if (res.status === 409) { // the attempt ended: the server will never take these
      this._drop([...this._pending.keys()]);
      try { localStorage.removeItem(this._seqKey()); } catch { /* nothing to clean */ }
      this._stop('ended');
      this.dispatchEvent(new CustomEvent('ended'));
      return;
    }
    if (res.status === 403 || res.status === 404) {
      // Not this user's attempt (a shared computer, another account signed in): stop, but
      // keep the events for the account that owns them.
      this._stop('rejected');
      this.dispatchEvent(new CustomEvent('rejected', { detail: { status: res.status } }));
      return;
    }
    if (res.status === 413 || res.status === 422) {
      // Find the event the server refuses by halving; a lone refused event is dropped so
      // it cannot block everything behind it.
      if (rows.length > 1) this._batchLimit = Math.max(1, Math.floor(rows.length / 2));
      else { this._counts.rejected += 1; this._drop([rows[0].event_id]); }
      this._schedule(0);
      return;
    }
    if (res.status === 401) { // keep everything; the page may hand over a fresh token
      this._unauthorized = true;
      this.dispatchEvent(new CustomEvent('unauthorized'));
    }
    const retryAfter = Number(res.headers.get('Retry-After'));
    this._backoff(res.status === 429 || res.status === 503 ? retryAfter : null);
  }

  _ack(rows, body) {
    const ids = [];
    for (const row of rows) {
      if (this._pending.delete(row.event_id)) { ids.push(row.event_id); this._counts.acknowledged += 1; }
    }
    this._counts.recorded += body.recorded || 0;
    this._counts.duplicates += body.duplicates || 0;
    this._forget(ids);
  }

  _drop(ids) {
    for (const id of ids) this._pending.delete(id);
    this._forget(ids);
  }

  _backoff(retryAfterSeconds) {
    this._failures += 1;
    let delay;
    if (Number.isFinite(retryAfterSeconds) && retryAfterSeconds > 0) {
      delay = retryAfterSeconds * 1000 + Math.random() * 1000; // jitter spreads the herd
    } else {
      const ceiling = Math.min(this.options.backoffMaxMs, this.options.backoffBaseMs * 2 ** (this._failures - 1));
      delay = ceiling / 2 + Math.random() * (ceiling / 2);
    }
    this._waitUntil = Date.now() + delay;
    this._emitState();
    this._schedule(delay);
  }

  /** Last chance before the page goes away: fetch with keepalive outlives the document. */
  _flushKeepalive() {
    // pagehide usually follows visibilitychange; one keepalive at a time stays under the quota.
    if (this._stopped || !this._pending.size || this._keepaliveInflight) return;
    const rows = this._batch(this.options.maxBatch, this.options.keepaliveBytes);
    if (!rows.length) return;
    this._keepaliveInflight = true;
    this._post(rows, true)
      .then((res) => (res.ok ? res.json().then((body) => this._ack(rows, body)) : null))
      .catch(() => {}) // still in IndexedDB: the next page sends them
      .finally(() => { this._keepaliveInflight = false; this._emitState(); });
  }

  _stop(reason) {
    this._stopped = true;
    this._terminal = reason;
    clearTimeout(this._timer);
    this._emitState();
  }

  _emitState() {
    this.dispatchEvent(new CustomEvent('statechange', {
      detail: { state: this.state, pending: this._pending.size },
    }));
  }

  /** Attempts that left unsent events in this browser (e.g. after a crash), for drainLeftovers. */
  static async leftoverAttempts(dbName = DEFAULTS.dbName) {
    const db = await openDb(dbName);
    try {
      const rows = await result(db.transaction('events').objectStore('events').getAll());
      return [...new Set(rows.map((r) => r.attempt_id))];
    } finally {
      db.close();
    }
  }

  /** Send (or, for ended attempts, discard) what other attempts left behind. */
  static async drainLeftovers(options, { exceptAttemptId } = {}) {
    const ids = (await VeritasMonitor.leftoverAttempts(options.dbName)).filter((id) => id !== exceptAttemptId);
    for (const attemptId of ids) {
      const sender = new VeritasMonitor({ ...options, attemptId });
      await sender.start({ capture: false });
      await sender.finish({ timeoutMs: 5000 });
    }
    return ids.length;
  }
}

const LABELS = {
  starting: 'Connecting…',
  online: 'Connected', // the same words while sending: a heartbeat should not flicker the label
  sending: 'Connected',
  retrying: 'Reconnecting — nothing is lost',
  offline: 'Offline — kept on this device',
  unauthorized: 'Signed out — kept on this device',
  ended: 'Monitoring ended',
  rejected: 'Monitoring stopped',
  finished: 'All saved',
  finished_unsent: 'Some events are still on this device',
  stopped: 'Monitoring paused',
};

/**
 * A small, calm connection indicator: a dot and a word. Only state changes are announced
 * to screen readers (role=status); the waiting count is plain text beside it.
 */
export function mountIndicator(monitor, element) {
  element.classList.add('vm-indicator');
  element.innerHTML = '';
  const dot = document.createElement('span');
  dot.className = 'vm-dot';
  dot.setAttribute('aria-hidden', 'true');
  const label = document.createElement('span');
  label.setAttribute('role', 'status');
  const count = document.createElement('span');
  count.className = 'vm-count';
  element.append(dot, label, count);
  const render = ({ state, pending }) => {
    element.dataset.state = state;
    const text = LABELS[state] || state;
    if (label.textContent !== text) label.textContent = text;
    count.textContent = pending ? ` (${pending} waiting)` : '';
  };
  render({ state: monitor.state, pending: monitor.pending });
  // `retrying` ends by itself when its wait runs out, without an event; look again now and then.
  const poll = setInterval(() => render({ state: monitor.state, pending: monitor.pending }), 2000);
  const listener = (e) => render(e.detail);
  monitor.addEventListener('statechange', listener);
  return () => { clearInterval(poll); monitor.removeEventListener('statechange', listener); };
}

/** The plain statement of what is recorded, as a paragraph in `element`. */
export function renderDisclosure(element, text = DISCLOSURE) {
  const p = document.createElement('p');
  p.className = 'vm-disclosure';
  p.textContent = text;
  element.append(p);
  return p;
}
