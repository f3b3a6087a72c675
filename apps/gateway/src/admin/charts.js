/*
 * SVG charts of the starq admin dashboard (no dependencies, no build step). Exposes
 * window.StarqCharts = { lineChart, gantt, barList }.
 *
 * Readable without colour: every series of a line chart has its own dash pattern and point
 * marker and is labelled at its right end; Gantt bars carry their block index as text and a
 * hatch pattern marks re-encoded blocks, an outline marks reused ones.
 */
(function () {
  'use strict';

  var NS = 'http://www.w3.org/2000/svg';
  var DASHES = ['', '6 3', '2 3', '8 3 2 3', '1 2'];
  var MARKERS = ['circle', 'square', 'triangle', 'diamond', 'cross'];

  function s(tag, attrs, text) {
    var e = document.createElementNS(NS, tag);
    if (attrs) for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k) && attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function clear(svg) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }

  function fmtNum(v) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    if (Math.abs(v) >= 1e9) return (v / 1e9).toFixed(1) + 'G';
    if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(0) + 'k';
    if (Math.abs(v) >= 100 || v === Math.round(v)) return String(Math.round(v));
    return v.toFixed(1);
  }

  function marker(kind, x, y) {
    var r = 2.6;
    if (kind === 'square') return s('rect', { x: x - r, y: y - r, width: 2 * r, height: 2 * r });
    if (kind === 'triangle') return s('polygon', { points: [x, y - r - 0.6, x - r, y + r, x + r, y + r].join(' ') });
    if (kind === 'diamond') return s('polygon', { points: [x, y - r - 0.6, x + r + 0.6, y, x, y + r + 0.6, x - r - 0.6, y].join(' ') });
    if (kind === 'cross') return s('path', { d: 'M' + (x - r) + ' ' + (y - r) + 'L' + (x + r) + ' ' + (y + r) + 'M' + (x - r) + ' ' + (y + r) + 'L' + (x + r) + ' ' + (y - r), class: 'cross' });
    return s('circle', { cx: x, cy: y, r: r });
  }

  /**
   * A line chart. `series`: [{ name, points: [[x, y|null], …] }] (x ascending; null = gap).
   * opts: { width, height, xFormat(x), yUnit, title, xLabel, maxMarkers }.
   */
  function lineChart(svg, series, opts) {
    opts = opts || {};
    var W = opts.width || 560;
    var H = opts.height || 180;
    var L = 52, R = 110, T = 20, B = 26;
    clear(svg);
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('role', 'img');
    if (opts.title) {
      svg.setAttribute('aria-label', opts.title);
      svg.appendChild(s('title', null, opts.title));
    }
    var xs = [];
    var ymax = 0;
    series.forEach(function (se) {
      se.points.forEach(function (p) {
        xs.push(p[0]);
        if (p[1] !== null && p[1] > ymax) ymax = p[1];
      });
    });
    if (xs.length === 0) {
      svg.appendChild(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, 'no data yet'));
      return;
    }
    var x0 = Math.min.apply(null, xs);
    var x1 = Math.max.apply(null, xs);
    if (x1 === x0) x1 = x0 + 1;
    var y1 = niceMax(ymax);
    var px = function (x) {
      return L + ((x - x0) / (x1 - x0)) * (W - L - R);
    };
    var py = function (y) {
      return H - B - (y / y1) * (H - T - B);
    };
    var axes = s('g', { class: 'axes' });
    for (var i = 0; i <= 4; i++) {
      var yv = (y1 * i) / 4;
      axes.appendChild(s('line', { x1: L, x2: W - R, y1: py(yv), y2: py(yv), class: i === 0 ? 'axis' : 'grid' }));
      axes.appendChild(s('text', { x: L - 4, y: py(yv) + 3, 'text-anchor': 'end' }, fmtNum(yv) + (i === 4 && opts.yUnit ? ' ' + opts.yUnit : '')));
    }
    var xf = opts.xFormat || fmtNum;
    for (var j = 0; j <= 4; j++) {
      var xv = x0 + ((x1 - x0) * j) / 4;
      axes.appendChild(s('text', { x: px(xv), y: H - B + 14, 'text-anchor': j === 0 ? 'start' : j === 4 ? 'end' : 'middle' }, xf(xv)));
    }
    if (opts.xLabel) axes.appendChild(s('text', { x: (L + W - R) / 2, y: H - 2, 'text-anchor': 'middle', class: 'xlabel' }, opts.xLabel));
    svg.appendChild(axes);
    series.forEach(function (se, k) {
      var g = s('g', { class: 'series series-' + (k % 5), 'data-series': se.name });
      var d = '';
      var pen = false;
      var last = null;
      se.points.forEach(function (p) {
        if (p[1] === null || p[1] === undefined) {
          pen = false;
          return;
        }
        d += (pen ? 'L' : 'M') + px(p[0]).toFixed(1) + ' ' + py(p[1]).toFixed(1);
        pen = true;
        last = p;
      });
      g.appendChild(s('path', { d: d, 'stroke-dasharray': DASHES[k % DASHES.length], class: 'line' }));
      var pts = se.points.filter(function (p) {
        return p[1] !== null && p[1] !== undefined;
      });
      var every = Math.max(1, Math.ceil(pts.length / (opts.maxMarkers || 12)));
      pts.forEach(function (p, n) {
        if (n % every === 0 || n === pts.length - 1) g.appendChild(marker(MARKERS[k % MARKERS.length], px(p[0]), py(p[1])));
      });
      if (last) {
        g.appendChild(marker(MARKERS[k % MARKERS.length], W - R + 10, py(last[1])));
        g.appendChild(s('text', { x: W - R + 16, y: py(last[1]) + 3, class: 'label' }, se.name + ' ' + fmtNum(last[1])));
      }
      svg.appendChild(g);
    });
  }

  /**
   * A Gantt chart of block encodes: one row per host, one bar per block span.
   * rows: [hostId…]; spans: [{ row, start, end, label, kind, title }]; t0: time origin (epoch ms).
   */
  function gantt(svg, rows, spans, opts) {
    opts = opts || {};
    var W = opts.width || 900;
    var rowH = 26;
    var L = 170, R = 16, T = 8, B = 28;
    var H = T + B + Math.max(1, rows.length) * rowH;
    clear(svg);
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', opts.title || 'block encodes per host');
    var defs = s('defs');
    var pat = s('pattern', { id: 'hatch', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' });
    pat.appendChild(s('rect', { width: 6, height: 6, class: 'hatch-bg' }));
    pat.appendChild(s('line', { x1: 0, y1: 0, x2: 0, y2: 6, class: 'hatch-line' }));
    defs.appendChild(pat);
    svg.appendChild(defs);
    var t0 = opts.t0;
    var t1 = t0 + 1;
    spans.forEach(function (sp) {
      if (sp.end !== null && sp.end > t1) t1 = sp.end;
      if (sp.start !== null && sp.start > t1) t1 = sp.start;
    });
    if (opts.t1 && opts.t1 > t1) t1 = opts.t1;
    var px = function (t) {
      return L + ((t - t0) / (t1 - t0)) * (W - L - R);
    };
    rows.forEach(function (r, i) {
      var y = T + i * rowH;
      svg.appendChild(s('rect', { x: 0, y: y, width: W, height: rowH, class: i % 2 ? 'row odd' : 'row' }));
      svg.appendChild(s('text', { x: 6, y: y + rowH / 2 + 4, class: 'rowlabel' }, r.length > 26 ? r.slice(0, 25) + '…' : r));
    });
    for (var j = 0; j <= 5; j++) {
      var tv = t0 + ((t1 - t0) * j) / 5;
      svg.appendChild(s('line', { x1: px(tv), x2: px(tv), y1: T, y2: H - B, class: 'grid' }));
      svg.appendChild(s('text', { x: px(tv), y: H - B + 14, 'text-anchor': j === 0 ? 'start' : j === 5 ? 'end' : 'middle' }, '+' + fmtNum(tv - t0) + ' ms'));
    }
    spans.forEach(function (sp) {
      var row = rows.indexOf(sp.row);
      if (row < 0) return;
      var y = T + row * rowH + 4;
      var a = sp.start === null ? t0 : sp.start;
      var b = sp.end === null ? t1 : sp.end;
      var w = Math.max(3, px(b) - px(a));
      var g = s('g', { class: 'bar bar-' + sp.kind, 'data-block': sp.block, 'data-host': sp.row, 'data-kind': sp.kind });
      g.appendChild(s('title', null, sp.title));
      g.appendChild(s('rect', { x: px(a), y: y, width: w, height: rowH - 8, fill: sp.kind === 'recovered' ? 'url(#hatch)' : null }));
      g.appendChild(s('text', { x: px(a) + 3, y: y + rowH / 2 + 1, class: 'barlabel' }, sp.label));
      svg.appendChild(g);
    });
  }

  window.StarqCharts = { lineChart: lineChart, gantt: gantt, fmtNum: fmtNum };
})();
