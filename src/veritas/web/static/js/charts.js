// Inline SVG charts. Each chart carries a <title> and a <desc> listing its numbers, so a
// screen reader gets the data, not just "image".

import { uid } from './ui.js';
import { say } from './words.js';

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function svgRoot(width, height, title, desc) {
  const titleId = uid('chart-title');
  const descId = uid('chart-desc');
  return s('svg', {
    viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': `${titleId} ${descId}`,
    class: 'chart', preserveAspectRatio: 'xMidYMid meet',
  }, s('title', { id: titleId }, title), s('desc', { id: descId }, desc));
}

/** Vertical bars, one per {label, value}. */
export function barChart(title, bars, { unit = '', color = 'var(--accent)' } = {}) {
  const width = 420;
  const height = 180;
  const pad = { top: 14, bottom: 34, left: 30, right: 8 };
  const max = Math.max(1, ...bars.map((b) => b.value));
  const desc = bars.map((b) => `${b.label}: ${b.value}${unit}`).join(', ') || 'no data';
  const svg = svgRoot(width, height, title, desc);
  const plotH = height - pad.top - pad.bottom;
  const slot = (width - pad.left - pad.right) / Math.max(1, bars.length);
  svg.append(
    s('line', { x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom, class: 'axis' }),
    s('text', { x: pad.left - 4, y: pad.top + 4, 'text-anchor': 'end', class: 'tick' }, max),
    s('text', { x: pad.left - 4, y: height - pad.bottom, 'text-anchor': 'end', class: 'tick' }, 0),
  );
  bars.forEach((b, i) => {
    const barH = (b.value / max) * plotH;
    const x = pad.left + i * slot + slot * 0.15;
    svg.append(
      s('rect', { x, y: height - pad.bottom - barH, width: slot * 0.7, height: barH, fill: b.color || color, rx: 2 }),
      s('text', { x: x + slot * 0.35, y: height - pad.bottom + 14, 'text-anchor': 'middle', class: 'tick' }, b.label),
    );
    if (b.value) {
      svg.append(s('text', { x: x + slot * 0.35, y: height - pad.bottom - barH - 3, 'text-anchor': 'middle', class: 'tick' }, b.value));
    }
  });
  return figure(title, svg);
}

/** One horizontal bar split into parts, e.g. passed / failed. */
export function shareBar(title, parts) {
  const width = 420;
  const height = 70;
  const total = parts.reduce((n, p) => n + p.value, 0);
  const desc = total ? parts.map((p) => `${p.label}: ${p.value} (${Math.round((p.value / total) * 100)} %)`).join(', ') : 'no data';
  const svg = svgRoot(width, height, title, desc);
  let x = 0;
  if (!total) svg.append(s('rect', { x: 0, y: 10, width, height: 26, class: 'empty-bar' }));
  for (const p of parts) {
    const w = total ? (p.value / total) * width : 0;
    if (w > 0) {
      svg.append(s('rect', { x, y: 10, width: w, height: 26, fill: p.color }));
      if (w > 60) svg.append(s('text', { x: x + 6, y: 28, class: 'on-bar' }, `${p.label} ${Math.round((p.value / total) * 100)} %`));
    }
    x += w;
  }
  svg.append(s('text', { x: 0, y: 58, class: 'tick' }, desc));
  return figure(title, svg);
}

/** Buckets values in [0, top] into n equal bins labelled by their lower bound. */
export function histogram(values, n, top, labelScale = 1) {
  const bins = Array.from({ length: n }, (_, i) => ({ label: `${Math.round((i * top * labelScale) / n)}`, value: 0 }));
  for (const v of values) {
    if (v === null || v === undefined || Number.isNaN(v)) continue;
    const i = Math.min(n - 1, Math.max(0, Math.floor((v / top) * n)));
    bins[i].value += 1;
  }
  return bins;
}

const LANE_COLORS = {
  focus_lost: '#b45309', visibility_hidden: '#b45309', paste: '#7c3aed', copy: '#7c3aed', cut: '#7c3aed',
  typing: '#0f766e', idle: '#64748b', network_offline: '#475569', heartbeat: '#94a3b8', fullscreen_exit: '#b45309',
};

/**
 * Events over time: one lane per event type; an event with duration_ms is drawn as the span
 * it covered (ending at its time), others as a tick; anomalies get a red marker above.
 */
export function timelineStrip(title, { start, end, events }) {
  const t0 = new Date(start).getTime();
  const t1 = Math.max(t0 + 1000, new Date(end).getTime());
  const lanes = [...new Set(events.map((e) => e.event_type))].sort();
  const width = 760;
  const laneH = 22;
  const left = 120;
  const height = 30 + lanes.length * laneH + 24;
  const anomalies = events.filter((e) => e.is_anomaly).length;
  const svg = svgRoot(width, height, title,
    `${events.length} events between ${new Date(t0).toLocaleTimeString()} and ${new Date(t1).toLocaleTimeString()}, ` +
    `${anomalies} marked as anomalies; lanes: ${lanes.map((lane) => say('events', lane)).join(', ') || 'none'}. The table below lists every event.`);
  const x = (t) => left + ((Math.min(Math.max(t, t0), t1) - t0) / (t1 - t0)) * (width - left - 10);
  lanes.forEach((lane, i) => {
    const y = 24 + i * laneH;
    svg.append(
      s('text', { x: left - 6, y: y + 14, 'text-anchor': 'end', class: 'tick' }, say('events', lane)),
      s('line', { x1: left, y1: y + laneH / 2, x2: width - 10, y2: y + laneH / 2, class: 'lane' }),
    );
  });
  for (const e of events) {
    const at = new Date(e.client_timestamp || e.server_timestamp).getTime();
    const y = 24 + lanes.indexOf(e.event_type) * laneH;
    const color = e.is_anomaly ? 'var(--danger)' : LANE_COLORS[e.event_type] || 'var(--accent)';
    const duration = Number(e.data_payload?.duration_ms) || 0;
    const mark = duration > 0
      ? s('rect', { x: x(at - duration), y: y + 5, width: Math.max(2, x(at) - x(at - duration)), height: laneH - 10, fill: color, opacity: 0.8 })
      : s('rect', { x: x(at) - 1, y: y + 4, width: 2, height: laneH - 8, fill: color });
    mark.append(s('title', {}, `${say('events', e.event_type)} at ${new Date(at).toLocaleTimeString()}${e.description ? ` — ${e.description}` : ''}`));
    svg.append(mark);
    if (e.is_anomaly) {
      const cx = x(at);
      svg.append(s('path', { d: `M${cx - 5} ${y - 3} L${cx + 5} ${y - 3} L${cx} ${y + 4} Z`, fill: 'var(--danger)', class: 'anomaly-marker' }));
    }
  }
  svg.append(
    s('text', { x: left, y: height - 6, class: 'tick' }, new Date(t0).toLocaleTimeString()),
    s('text', { x: width - 10, y: height - 6, 'text-anchor': 'end', class: 'tick' }, new Date(t1).toLocaleTimeString()),
  );
  return figure(title, svg);
}

function figure(caption, svg) {
  const fig = document.createElement('figure');
  fig.className = 'chart-figure';
  const cap = document.createElement('figcaption');
  cap.textContent = caption;
  fig.append(cap, svg);
  return fig;
}
