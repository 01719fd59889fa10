// A small line chart on a <canvas>: time on x, one or more series on y, redrawn when points are
// added. No library: the dashboard loads nothing but Courier's own files.
const COLORS = ['#2563eb', '#16a34a', '#dc2626', '#d97706', '#7c3aed', '#0891b2'];

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function formatNumber(v, unit) {
  if (unit === 'bytes') {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
  }
  if (unit === 'ms') return `${v.toFixed(v < 10 ? 1 : 0)} ms`;
  if (Math.abs(v) >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (Math.abs(v) >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

export class LineChart {
  constructor(canvas, series, { unit = '', windowSeconds = 120, stacked = false } = {}) {
    this.canvas = canvas;
    this.series = series; // [{ key, label }]
    this.unit = unit;
    this.windowMs = windowSeconds * 1000;
    this.stacked = stacked;
    this.points = []; // { t, values: [] }
    this.observer = new ResizeObserver(() => this.draw());
    this.observer.observe(canvas);
  }

  add(t, values) {
    this.points.push({ t, values });
    const cutoff = t - this.windowMs;
    while (this.points.length > 0 && this.points[0].t < cutoff) this.points.shift();
    this.canvas.dataset.points = String(this.points.length);
    this.canvas.dataset.last = String(values.reduce((a, b) => a + b, 0));
    this.draw();
  }

  destroy() {
    this.observer.disconnect();
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (w === 0 || h === 0) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const style = getComputedStyle(c);
    const muted = style.getPropertyValue('--muted') || '#888';
    const line = style.getPropertyValue('--line') || '#ddd';
    const left = 58, right = 18, top = 8, bottom = 20;
    const pw = w - left - right, ph = h - top - bottom;
    const now = this.points.length > 0 ? this.points[this.points.length - 1].t : Date.now();
    const t0 = now - this.windowMs;
    let max = 0;
    for (const p of this.points) {
      if (this.stacked) max = Math.max(max, p.values.reduce((a, b) => a + b, 0));
      else for (const v of p.values) max = Math.max(max, v);
    }
    max = niceMax(max);
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = muted;
    g.strokeStyle = line;
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = top + ph - (ph * i) / 4;
      g.beginPath();
      g.moveTo(left, Math.round(y) + 0.5);
      g.lineTo(left + pw, Math.round(y) + 0.5);
      g.stroke();
      g.textAlign = 'right';
      g.textBaseline = 'middle';
      g.fillText(formatNumber((max * i) / 4, this.unit), left - 6, y);
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    const minutes = this.windowMs / 60000;
    const step = minutes <= 2 ? 0.5 : Math.max(1, Math.round(minutes / 5));
    for (let i = 0; i <= minutes + 1e-9; i += step) {
      const x = left + pw - (pw * i) / minutes;
      g.fillText(i === 0 ? 'now' : Number.isInteger(i) ? `-${i}m` : `-${i * 60}s`, x, top + ph + 4);
    }
    const x = (t) => left + ((t - t0) / this.windowMs) * pw;
    const y = (v) => top + ph - (v / max) * ph;
    const base = this.points.map(() => 0);
    this.series.forEach((s, si) => {
      g.strokeStyle = COLORS[si % COLORS.length];
      g.lineWidth = 1.6;
      g.beginPath();
      this.points.forEach((p, i) => {
        const v = (p.values[si] || 0) + (this.stacked ? base[i] : 0);
        if (this.stacked) base[i] = v;
        const px = x(p.t), py = y(v);
        if (i === 0) g.moveTo(px, py);
        else g.lineTo(px, py);
      });
      g.stroke();
    });
  }
}

export function legend(el, series) {
  el.replaceChildren(
    ...series.map((s, i) => {
      const span = document.createElement('span');
      const sw = document.createElement('i');
      sw.className = `sw${i % COLORS.length}`;
      span.append(sw, s.label);
      return span;
    }),
  );
}
