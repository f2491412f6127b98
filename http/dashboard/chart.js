// chart.js — Ricochet's line charts: SVG built with DOM calls (no inline
// style, nothing from another origin), one polyline and one marker per
// point per series. About a hundred lines, so no library is vendored.
'use strict';
(function () {
  const NS = 'http://www.w3.org/2000/svg';
  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (parent) parent.appendChild(e);
    return e;
  }
  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  function fmt(v, percent) {
    if (percent) return (v * 100).toFixed(v < 0.1 && v > 0 ? 1 : 0) + '%';
    if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (v >= 1e3) return (v / 1e3).toFixed(1) + 'k';
    return String(Math.round(v * 100) / 100);
  }
  // labels: one string per point (UTC times); series: [{name, values}].
  function line(container, labels, series, opts) {
    opts = opts || {};
    container.replaceChildren();
    const W = opts.width || 560, H = opts.height || 220, L = 48, R = 10, T = 10, B = 28;
    const svg = el('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img' }, container);
    let max = 0;
    for (const s of series) for (const v of s.values) max = Math.max(max, v);
    // Rates may pass 100%: a bucket's bounces can be for mail sent in an earlier one.
    max = niceMax(max);
    const n = labels.length, iw = W - L - R, ih = H - T - B;
    const x = (i) => L + (n <= 1 ? iw / 2 : (i * iw) / (n - 1));
    const y = (v) => T + ih - (v / max) * ih;
    for (let k = 0; k <= 4; k++) {
      const v = (max * k) / 4;
      el('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: k ? 'grid' : 'axis' }, svg);
      const t = el('text', { x: L - 4, y: y(v) + 3, 'text-anchor': 'end' }, svg);
      t.textContent = fmt(v, opts.percent);
    }
    el('line', { x1: L, x2: L, y1: T, y2: T + ih, class: 'axis' }, svg);
    const ticks = Math.min(6, n);
    for (let k = 0; k < ticks; k++) {
      const i = ticks === 1 ? 0 : Math.round((k * (n - 1)) / (ticks - 1));
      const anchor = ticks > 1 && k === 0 ? 'start' : ticks > 1 && k === ticks - 1 ? 'end' : 'middle';
      const t = el('text', { x: x(i), y: H - 8, 'text-anchor': anchor }, svg);
      t.textContent = opts.day ? labels[i].slice(5, 10) : labels[i].slice(5, 10) + ' ' + labels[i].slice(11, 16);
    }
    series.forEach((s, si) => {
      const cls = 'c' + (si % 8);
      el('polyline', { class: 'line ' + cls, points: s.values.map((v, i) => `${x(i)},${y(v)}`).join(' ') }, svg);
      s.values.forEach((v, i) => {
        const c = el('circle', { cx: x(i), cy: y(v), r: v ? 2.5 : 1, class: 'pt ' + cls, 'data-value': v,
                                 'data-series': s.name, 'data-t': labels[i] }, svg);
        el('title', {}, c).textContent = `${s.name} ${labels[i]}: ${fmt(v, opts.percent)}`;
      });
    });
    const legend = document.createElement('div');
    legend.className = 'legend';
    series.forEach((s, si) => {
      const item = document.createElement('span');
      const sw = document.createElement('span');
      sw.className = 'swatch c' + (si % 8);
      item.append(sw, s.name);
      legend.appendChild(item);
    });
    if (!series.length) legend.textContent = 'nothing in this period';
    container.appendChild(legend);
  }
  window.RicochetChart = { line };
})();
