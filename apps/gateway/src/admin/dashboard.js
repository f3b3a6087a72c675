/*
 * starq admin dashboard (served by the gateway at /admin; no build step, no dependencies).
 *
 * Polls every 2 s (the next poll starts 2 s after the previous one answered) with the admin key
 * from this tab's sessionStorage. Views (the URL hash picks one):
 * - overview (`#`): actors (with a drain button per host), queue depths, recent jobs;
 *   `#job=<id>` adds the job's detail: fields, a Gantt of its block encodes per host, the
 *   per-token latency chart and its events (GET /admin/jobs/:id and /admin/jobs/:id/timeline);
 * - `#kv`: per host the contexts and blocks it holds, with an evict button (GET /admin/kv);
 * - `#history`: the last hour's charts (GET /admin/history);
 * - `#audit`: the admin actions taken (GET /admin/audit).
 * Actions (cancel a job, evict a context, drain a host) ask for confirmation, then POST to the
 * admin API with {"confirm": target}; the gateway writes each to the audit log. Every value from
 * the server is inserted as text (textContent), never as HTML. Charts: charts.js.
 */
(function () {
  'use strict';

  var KEY_STORE = 'starq.adminKey';
  var POLL_MS = 2000;
  var STALE_MS = 3 * POLL_MS;
  var HISTORY = 150; // samples kept for the queue-depth time series (5 min at 2 s)
  var UNFINISHED = { queued: true, encoding: true, generating: true };

  var state = {
    key: readKey(),
    timer: null,
    inflight: false,
    blocked: false, // 401/403: stop polling until a new key is given
    lastOk: 0,
    lastError: null,
    history: [],
    detailId: null,
    detailJob: null,
    view: 'overview',
  };
  var C = window.StarqCharts;

  var $ = function (id) {
    return document.getElementById(id);
  };

  function readKey() {
    try {
      return window.sessionStorage.getItem(KEY_STORE) || '';
    } catch (e) {
      return '';
    }
  }

  function writeKey(k) {
    try {
      if (k) window.sessionStorage.setItem(KEY_STORE, k);
      else window.sessionStorage.removeItem(KEY_STORE);
    } catch (e) {
      /* storage disabled: keep it in memory only */
    }
    state.key = k;
  }

  // ---------- formatting ----------

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function fmtInt(n) {
    return n === null || n === undefined || !isFinite(n) ? '–' : Math.round(n).toLocaleString('en-US');
  }

  function fmtBytes(b) {
    if (b === null || b === undefined) return '–';
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (b >= 1024 && i < u.length - 1) {
      b /= 1024;
      i++;
    }
    return (i === 0 ? String(b) : b.toFixed(b < 10 ? 2 : 1)) + ' ' + u[i];
  }

  function fmtAge(ms) {
    if (ms === null || ms === undefined) return '–';
    if (ms < 1000) return ms + ' ms ago';
    if (ms < 120000) return (ms / 1000).toFixed(1) + ' s ago';
    return Math.round(ms / 60000) + ' min ago';
  }

  function fmtDuration(ms) {
    if (ms === null || ms === undefined) return '–';
    var s = Math.floor(ms / 1000);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  function fmtTime(ms) {
    var d = new Date(ms);
    var p = function (x) {
      return (x < 10 ? '0' : '') + x;
    };
    return p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
  }

  function errorText(status, body) {
    var e = body && body.error ? body.error : null;
    return status + ' ' + (e ? e.code + ': ' + e.message : 'HTTP error');
  }

  // ---------- HTTP ----------

  function api(method, path, body) {
    var headers = { Accept: 'application/json' };
    if (state.key) headers.Authorization = 'Bearer ' + state.key;
    var init = { method: method, headers: headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (res) {
      return res.text().then(function (text) {
        var body = null;
        try {
          body = text ? JSON.parse(text) : null;
        } catch (e) {
          body = null;
        }
        return { status: res.status, body: body };
      });
    });
  }

  // ---------- banners ----------

  function showBanner(text, kind) {
    var b = $('banner');
    b.textContent = text;
    b.className = 'banner' + (kind ? ' ' + kind : '');
    b.setAttribute('data-kind', kind || 'error');
    b.hidden = false;
  }

  function hideBanner() {
    $('banner').hidden = true;
    $('banner').textContent = '';
  }

  var noticeTimer = null;
  function showNotice(text) {
    var n = $('notice');
    n.textContent = text;
    n.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(function () {
      n.hidden = true;
    }, 8000);
  }

  function authProblem(status, body) {
    state.blocked = true;
    var what =
      status === 401
        ? 'Not authorized (' + errorText(status, body) + '). Enter the admin key above.'
        : 'Forbidden (' + errorText(status, body) + '). This dashboard needs the admin key (STARQ_ADMIN_KEY), not an API key.';
    showBanner(what, 'auth');
    $('content').hidden = true; // no cluster data on screen without a working key
    $('key-state').textContent = state.key ? 'key rejected' : 'no key';
    $('admin-key').focus();
    setDot('bad');
  }

  function setDot(kind) {
    $('live-dot').className = 'dot ' + kind;
  }

  // ---------- polling ----------

  function schedule() {
    clearTimeout(state.timer);
    state.timer = null;
    if (!$('auto-refresh').checked || state.blocked) return;
    state.timer = setTimeout(refresh, POLL_MS);
  }

  function refresh() {
    if (state.inflight) return Promise.resolve();
    state.inflight = true;
    return api('GET', '/admin/overview?jobs=25')
      .then(function (r) {
        if (r.status === 200 && r.body) {
          state.blocked = false;
          state.lastOk = Date.now();
          state.lastError = null;
          hideBanner();
          $('content').hidden = false;
          $('key-state').textContent = state.key ? 'key set (this tab)' : 'no key (open gateway)';
          render(r.body);
          if (state.view === 'kv') return loadKv();
          if (state.view === 'history') return loadHistory();
          if (state.view === 'audit') return loadAudit();
          return state.detailId ? loadDetail(state.detailId) : undefined;
        }
        if (r.status === 401 || r.status === 403) return authProblem(r.status, r.body);
        state.lastError = 'Could not refresh: ' + errorText(r.status, r.body);
        showBanner(state.lastError);
      })
      .catch(function (e) {
        state.lastError = 'Could not reach the gateway: ' + (e && e.message ? e.message : String(e));
        showBanner(state.lastError);
      })
      .then(function () {
        state.inflight = false;
        tick();
        schedule();
      });
  }

  function tick() {
    var lu = $('last-updated');
    if (!state.lastOk) {
      lu.textContent = state.blocked ? 'not loaded (admin key needed)' : 'not loaded yet';
      return;
    }
    var age = Date.now() - state.lastOk;
    lu.textContent = 'last updated ' + fmtTime(state.lastOk) + ' (' + (age / 1000).toFixed(1) + ' s ago)';
    lu.setAttribute('data-updated-at', String(state.lastOk));
    if (!state.blocked) setDot(age > STALE_MS || state.lastError ? 'stale' : 'ok');
  }

  // ---------- rendering ----------

  /** Keeps one row per key in `tbody`, in the order of `items`; `fill` (re)writes a row's cells. */
  function syncRows(tbody, items, keyOf, columns, fill, emptyText) {
    var existing = {};
    var rows = tbody.querySelectorAll('tr[data-key]');
    for (var i = 0; i < rows.length; i++) existing[rows[i].getAttribute('data-key')] = rows[i];
    var empty = tbody.querySelector('tr.empty');
    if (items.length === 0) {
      for (var k in existing) tbody.removeChild(existing[k]);
      if (!empty) {
        empty = el('tr', { class: 'empty' });
        var td = el('td', { colspan: String(columns) }, emptyText);
        empty.appendChild(td);
        tbody.appendChild(empty);
      } else empty.firstChild.textContent = emptyText;
      return;
    }
    if (empty) tbody.removeChild(empty);
    var keep = {};
    items.forEach(function (item) {
      var key = keyOf(item);
      keep[key] = true;
      var tr = existing[key];
      if (!tr) {
        tr = el('tr', { 'data-key': key });
        for (var c = 0; c < columns; c++) tr.appendChild(el('td'));
      }
      fill(tr, item);
      tbody.appendChild(tr); // moves it into place
    });
    for (var k2 in existing) if (!keep[k2]) tbody.removeChild(existing[k2]);
  }

  function setCell(td, text, cls) {
    if (td.textContent !== text) td.textContent = text;
    td.className = cls || '';
  }

  function render(o) {
    var info = $('gateway-info');
    info.textContent = 'model ' + o.gateway.model + ' · prefix ' + o.gateway.prefix + ' · gateway ' + o.gateway.id + ' (pid ' + o.gateway.pid + ', up ' + fmtDuration(o.now - o.gateway.startedAt) + ')';
    renderCards(o);
    renderActors(o.actors);
    renderQueues(o.queues, o.now);
    renderJobs(o.jobs);
  }

  function card(label, value, id) {
    var c = el('div', { class: 'card', 'data-card': id });
    c.appendChild(el('div', { class: 'v' }, value));
    c.appendChild(el('div', { class: 'k' }, label));
    return c;
  }

  function depthOf(q) {
    if (!q) return 0;
    return (q.waiting || 0) + (q.active || 0) + (q['waiting-children'] || 0) + (q.delayed || 0) + (q.prioritized || 0);
  }

  function renderCards(o) {
    var hosts = o.actors.filter(function (a) {
      return a.type === 'host';
    });
    var queries = o.actors.filter(function (a) {
      return a.type === 'query';
    });
    var used = 0;
    var limit = 0;
    hosts.forEach(function (h) {
      used += h.kvBytes || 0;
      limit += h.kvLimitBytes || 0;
    });
    var c = $('cards');
    c.textContent = '';
    c.appendChild(card('host actors', String(hosts.length), 'hosts'));
    c.appendChild(card('query actors', String(queries.length), 'queries'));
    c.appendChild(card('KV used / limit', fmtBytes(used) + ' / ' + fmtBytes(limit), 'kv'));
    c.appendChild(card('unfinished requests', fmtInt(depthOf(o.queues.requests)), 'depth'));
    c.appendChild(card('block jobs waiting', fmtInt(o.queues.blocks ? o.queues.blocks.waiting : 0), 'blocks-waiting'));
    c.appendChild(card('jobs in flight (this gateway)', fmtInt(o.gateway.jobsInFlight), 'in-flight'));
  }

  function renderActors(actors) {
    var tbody = $('actors').tBodies[0];
    syncRows(
      tbody,
      actors,
      function (a) {
        return a.type + ':' + a.id;
      },
      9,
      function (tr, a) {
        tr.setAttribute('data-actor-id', a.id);
        tr.setAttribute('data-actor-type', a.type);
        var td = tr.cells;
        setCell(td[0], a.type);
        setCell(td[1], a.id, 'mono');
        setCell(td[2], a.hostname + ':' + a.pid, 'mono');
        setCell(td[3], fmtInt(a.threads) + (a.executionProvider ? ' · ' + a.executionProvider : ''), 'num');
        td[3].setAttribute('data-field', 'threads');
        // KV used / limit with a bar (hosts only)
        td[4].textContent = '';
        td[4].className = '';
        if (a.kvLimitBytes) {
          var wrap = el('div', { class: 'kv' });
          var bar = el('div', { class: 'bar' });
          var fillEl = el('span');
          var frac = Math.min(1, (a.kvBytes || 0) / a.kvLimitBytes);
          fillEl.style.width = (frac * 100).toFixed(1) + '%';
          if (frac > 0.85) fillEl.className = 'high';
          bar.appendChild(fillEl);
          wrap.appendChild(bar);
          wrap.appendChild(el('span', { 'data-field': 'kv' }, fmtBytes(a.kvBytes) + ' / ' + fmtBytes(a.kvLimitBytes)));
          td[4].appendChild(wrap);
        } else td[4].appendChild(el('span', { class: 'muted', 'data-field': 'kv' }, a.type === 'host' ? fmtBytes(a.kvBytes) : '–'));
        var down = a.state && a.state !== 'alive';
        tr.setAttribute('data-actor-state', a.state || 'alive');
        tr.className = down ? 'actor-down' : '';
        setCell(td[5], a.type === 'host' && !down ? fmtInt(a.blocks) : '–', 'num');
        // state: busy / idle while alive; starting / restarting / dead (with how it ended) from the supervisor
        setCell(td[6], down ? a.state + (a.lastExit ? ' (' + a.lastExit + (a.restarts ? ', ' + a.restarts + ' restarts' : '') + ')' : '') : a.busy ? 'busy' : 'idle', down ? 'down' : '');
        td[6].setAttribute('data-field', 'state');
        setCell(td[7], down ? '–' : fmtAge(a.lastHeartbeatMsAgo), 'num' + (!down && a.lastHeartbeatMsAgo > 3000 ? ' hb-old' : ''));
        td[7].setAttribute('data-field', 'heartbeat');
        if (a.draining) setCell(td[6], 'draining');
        var db = td[8].querySelector('button');
        if (a.type === 'host' && !a.draining && !down) {
          if (!db) {
            db = el('button', { type: 'button', class: 'danger', 'data-action': 'drain' }, 'Drain');
            td[8].appendChild(db);
          }
          db.setAttribute('data-host-id', a.id);
        } else if (db) td[8].removeChild(db);
      },
      'no actors',
    );
  }

  function renderQueues(queues, now) {
    var names = Object.keys(queues || {});
    var tbody = $('queues').tBodies[0];
    var cols = ['waiting', 'active', 'waiting-children', 'delayed', 'completed', 'failed'];
    syncRows(
      tbody,
      names,
      function (n) {
        return n;
      },
      7,
      function (tr, name) {
        tr.setAttribute('data-queue', name);
        setCell(tr.cells[0], name);
        cols.forEach(function (c, i) {
          setCell(tr.cells[i + 1], fmtInt(queues[name][c] || 0), 'num');
          tr.cells[i + 1].setAttribute('data-field', c);
        });
      },
      'no queues',
    );
    var depth = depthOf(queues.requests);
    state.history.push({ t: now, n: depth });
    if (state.history.length > HISTORY) state.history.shift();
    $('depth-now').textContent = String(depth);
    drawSpark();
  }

  function drawSpark() {
    var svg = $('depth-spark');
    var h = state.history;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    if (h.length === 0) return;
    var t0 = h[0].t;
    var span = Math.max(1, h[h.length - 1].t - t0);
    var max = 1;
    h.forEach(function (p) {
      if (p.n > max) max = p.n;
    });
    var pts = h
      .map(function (p) {
        var x = h.length === 1 ? 300 : ((p.t - t0) / span) * 300;
        var y = 58 - (p.n / max) * 54;
        return x.toFixed(1) + ',' + y.toFixed(1);
      })
      .join(' ');
    var line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
    line.setAttribute('points', pts);
    svg.appendChild(line);
    var label = document.createElementNS('http://www.w3.org/2000/svg', 'text');
    label.setAttribute('x', '4');
    label.setAttribute('y', '12');
    label.setAttribute('font-size', '10');
    label.setAttribute('fill', '#6a7383');
    label.textContent = 'max ' + max;
    svg.appendChild(label);
    $('spark-span').textContent = String(Math.round(span / 1000));
  }

  function renderJobs(jobs) {
    var tbody = $('jobs').tBodies[0];
    syncRows(
      tbody,
      jobs,
      function (j) {
        return j.id;
      },
      11,
      function (tr, j) {
        tr.setAttribute('data-job-id', j.id);
        tr.setAttribute('data-status', j.status);
        tr.className = state.detailId === j.id ? 'selected' : '';
        var td = tr.cells;
        // id (link to the detail view)
        var link = td[0].firstChild;
        if (!link || link.tagName !== 'A') {
          td[0].textContent = '';
          link = el('a', { class: 'mono', 'data-field': 'id' });
          td[0].appendChild(link);
        }
        link.setAttribute('href', '#job=' + encodeURIComponent(j.id));
        link.textContent = j.id.length > 13 ? j.id.slice(0, 8) + '…' : j.id;
        link.setAttribute('title', j.id);
        setCell(td[1], j.ownerLabel || j.owner);
        td[1].setAttribute('title', 'key fingerprint ' + j.owner);
        // status pill
        var pill = td[2].firstChild;
        if (!pill || pill.tagName !== 'SPAN') {
          td[2].textContent = '';
          pill = el('span');
          td[2].appendChild(pill);
        }
        pill.className = 'status status-' + j.status;
        pill.setAttribute('data-field', 'status');
        pill.textContent = j.status;
        setCell(td[3], j.mode + (j.kind !== 'job' ? ' (' + j.kind + ')' : ''));
        setCell(td[4], fmtInt(j.contextTokens), 'num');
        setCell(td[5], j.progress.blocks.done + ' / ' + j.progress.blocks.total, 'num');
        td[5].setAttribute('data-field', 'blocks');
        setCell(td[6], j.progress.tokens + ' / ' + j.progress.maxNewTokens, 'num');
        td[6].setAttribute('data-field', 'tokens');
        setCell(td[7], fmtInt(j.timings.phase1Ms), 'num');
        setCell(td[8], fmtInt(j.timings.phase2Ms), 'num');
        setCell(td[9], j.error ? j.error.code : '', 'mono');
        td[9].setAttribute('data-field', 'error');
        if (j.error) td[9].setAttribute('title', j.error.message);
        // cancel button, only while the job can still be cancelled
        var btn = td[10].querySelector('button');
        if (UNFINISHED[j.status]) {
          if (!btn) {
            btn = el('button', { type: 'button', class: 'danger', 'data-action': 'cancel' }, 'Cancel');
            td[10].appendChild(btn);
          }
          btn.setAttribute('data-job-id', j.id);
        } else if (btn) td[10].removeChild(btn);
      },
      'no jobs yet',
    );
  }

  // ---------- job detail ----------

  function detailIdFromHash() {
    var m = /^#job=(.+)$/.exec(window.location.hash);
    return m ? decodeURIComponent(m[1]) : null;
  }

  function openDetailFromHash() {
    state.detailId = detailIdFromHash();
    var box = $('job-detail');
    if (!state.detailId) {
      box.hidden = true;
      state.detailJob = null;
      return;
    }
    $('detail-id').textContent = state.detailId;
    box.hidden = false;
    $('detail-fields').textContent = '';
    $('detail-text').textContent = 'loading…';
    if (!state.blocked) loadDetail(state.detailId);
  }

  function loadDetail(id) {
    return api('GET', '/admin/jobs/' + encodeURIComponent(id)).then(function (r) {
      if (state.detailId !== id) return;
      if (r.status === 401 || r.status === 403) return authProblem(r.status, r.body);
      if (r.status !== 200) {
        $('detail-fields').textContent = '';
        $('detail-text').textContent = errorText(r.status, r.body);
        $('detail-cancel').hidden = true;
        return;
      }
      renderDetail(r.body);
      return loadTimeline(id);
    });
  }

  function loadTimeline(id) {
    return api('GET', '/admin/jobs/' + encodeURIComponent(id) + '/timeline').then(function (r) {
      if (state.detailId !== id || r.status !== 200 || !r.body) return;
      renderTimeline(r.body);
    });
  }

  function fmtMs(ms) {
    return ms === null || ms === undefined ? '–' : fmtInt(ms) + ' ms';
  }

  function renderTimeline(tl) {
    var p = tl.plan;
    $('timeline-plan').textContent =
      'plan: ' + p.mode + ' · ' + p.blocks + ' block(s) of ' + p.blockSize + ' tokens · anchor ' + p.anchorSize + ' · ' + p.hosts + ' host(s) planned · ' + p.contextTokens + ' context + ' + p.queryTokens + ' query tokens' +
      ' · time to first token ' + fmtMs(tl.phase2.ttftMs) + ' · per-token p50 ' + fmtMs(tl.phase2.p50Ms) + ', p99 ' + fmtMs(tl.phase2.p99Ms);
    var rows = tl.hosts.slice();
    var spans = tl.blocks.map(function (b) {
      var row = b.hostId || '(unknown host)';
      if (rows.indexOf(row) < 0) rows.push(row);
      var what = { encoded: 'encoded', reused: 'reused (encoded earlier)', recovered: 're-encoded after ' + (b.lostFrom || 'a host') + ' was lost', pending: 'pending', failed: 'failed: ' + (b.error || '') }[b.kind];
      return {
        row: row,
        block: b.block,
        start: b.start,
        end: b.end,
        kind: b.kind,
        label: '#' + b.block + ' · ' + b.tokens + (b.kind === 'recovered' ? ' · re-enc' : b.kind === 'reused' ? ' · reused' : ''),
        title: 'block ' + b.block + ' (' + b.tokens + ' tokens) on ' + row + ': ' + what + (b.start !== null && b.end !== null ? ', ' + (b.end - b.start) + ' ms' : '') + (b.attempts > 1 ? ', ' + b.attempts + ' attempts' : ''),
      };
    });
    var t1 = tl.phase2.startedAt || null;
    C.gantt($('gantt'), rows, spans, { t0: tl.submittedAt, t1: t1, title: 'block encodes of job ' + tl.id + ' per host' });
    var pts = tl.phase2.perTokenMs.map(function (x) {
      return [x[0], x[1]];
    });
    C.lineChart($('token-chart'), [{ name: 'ms/token', points: pts }], { title: 'per-token latency of job ' + tl.id, xLabel: 'token index', yUnit: 'ms' });
    $('token-caption').textContent = 'Phase 2: latency of each generated token (ms since the previous one); ' + tl.phase2.tokens + ' token(s)' + (tl.phase2.queryActor ? ' on ' + tl.phase2.queryActor : '') + '.';
    var tbody = $('events').tBodies[0];
    syncRows(
      tbody,
      tl.events.map(function (e, i) {
        e.i = i;
        return e;
      }),
      function (e) {
        return String(e.i);
      },
      5,
      function (tr, e) {
        tr.setAttribute('data-event', e.type);
        setCell(tr.cells[0], fmtTime(e.t), 'mono');
        setCell(tr.cells[1], fmtInt(e.t - tl.submittedAt), 'num');
        setCell(tr.cells[2], e.type);
        setCell(tr.cells[3], e.code || '', 'mono');
        setCell(tr.cells[4], e.detail);
      },
      'no events',
    );
  }

  // ---------- KV map ----------

  function loadKv() {
    return api('GET', '/admin/kv').then(function (r) {
      if (r.status === 401 || r.status === 403) return authProblem(r.status, r.body);
      if (r.status !== 200) return showBanner('Could not load the KV map: ' + errorText(r.status, r.body));
      renderKv(r.body);
    });
  }

  function renderKv(m) {
    var box = $('kv-map');
    box.textContent = '';
    if (m.hosts.length === 0) box.appendChild(el('p', { class: 'muted' }, 'no live host actors'));
    m.hosts.forEach(function (h) {
      var sec = el('div', { class: 'kv-host', 'data-host-id': h.hostId });
      var head = el('h3', null, h.hostId + (h.draining ? ' (draining)' : ''));
      sec.appendChild(head);
      var frac = h.kvLimitBytes ? Math.min(1, h.kvBytes / h.kvLimitBytes) : 0;
      var wrap = el('div', { class: 'kv' });
      var bar = el('div', { class: 'bar' });
      var fillEl = el('span');
      fillEl.style.width = (frac * 100).toFixed(1) + '%';
      if (frac > 0.85) fillEl.className = 'high';
      bar.appendChild(fillEl);
      wrap.appendChild(bar);
      wrap.appendChild(el('span', { 'data-field': 'kv' }, fmtBytes(h.kvBytes) + ' of ' + fmtBytes(h.kvLimitBytes) + ' limit (' + (frac * 100).toFixed(0) + '%) · ' + h.blocks + ' block(s) · ' + fmtBytes(Math.max(0, h.kvLimitBytes - h.kvBytes)) + ' free'));
      sec.appendChild(wrap);
      var t = el('table', { class: 'kv-contexts' });
      var hr = el('tr');
      ['context', 'b / a', 'blocks held', 'tokens', 'bytes (freed by eviction)', 'last used', 'eviction rank', 'jobs', ''].forEach(function (x) {
        hr.appendChild(el('th', null, x));
      });
      var thead = el('thead');
      thead.appendChild(hr);
      t.appendChild(thead);
      var tb = el('tbody');
      if (h.contexts.length === 0) {
        var er = el('tr', { class: 'empty' });
        er.appendChild(el('td', { colspan: '9' }, 'holds no blocks'));
        tb.appendChild(er);
      }
      h.contexts.forEach(function (c) {
        var tr = el('tr', { 'data-context': c.contextKey });
        tr.appendChild(el('td', { class: 'mono', title: c.contextKey }, c.contextHash.slice(0, 12) + '…'));
        tr.appendChild(el('td', { class: 'num' }, c.blockSize + ' / ' + c.anchorSize));
        tr.appendChild(el('td', { class: 'num', 'data-field': 'blocks' }, c.blocks.join(', ')));
        tr.appendChild(el('td', { class: 'num' }, fmtInt(c.tokens)));
        tr.appendChild(el('td', { class: 'num' }, fmtBytes(c.bytes)));
        tr.appendChild(el('td', { class: 'num' }, fmtAge(m.now - c.lastUsedAt)));
        tr.appendChild(el('td', { class: 'num' }, String(c.evictionRank)));
        var jobs = el('td', { class: 'mono small' });
        c.jobs.forEach(function (id, i) {
          if (i > 0) jobs.appendChild(document.createTextNode(' '));
          jobs.appendChild(el('a', { href: '#job=' + encodeURIComponent(id), title: id }, id.slice(0, 8)));
        });
        tr.appendChild(jobs);
        var act = el('td');
        act.appendChild(el('button', { type: 'button', class: 'danger', 'data-action': 'evict', 'data-context': c.contextKey }, 'Evict'));
        tr.appendChild(act);
        tb.appendChild(tr);
      });
      t.appendChild(tb);
      sec.appendChild(t);
      box.appendChild(sec);
    });
    $('kv-orphaned').textContent = m.orphaned.length
      ? 'Handles naming hosts that are gone (their blocks are re-encoded when next used): ' +
        m.orphaned
          .map(function (o) {
            return o.hostId + ' (' + o.cacheIds + ' block(s), ' + fmtBytes(o.bytes) + ')';
          })
          .join('; ')
      : '';
  }

  // ---------- history ----------

  function loadHistory() {
    return api('GET', '/admin/history').then(function (r) {
      if (r.status === 401 || r.status === 403) return authProblem(r.status, r.body);
      if (r.status !== 200) return showBanner('Could not load the history: ' + errorText(r.status, r.body));
      renderHistory(r.body);
    });
  }

  function renderHistory(h) {
    var pts = h.points;
    var xf = function (t) {
      return fmtTime(t);
    };
    var series = function (name, f) {
      return {
        name: name,
        points: pts.map(function (p) {
          return [p.t, f(p)];
        }),
      };
    };
    C.lineChart($('h-queue'), [series('queued', function (p) { return p.queueDepth + (p.admissionWaiting || 0); }), series('running', function (p) { return p.running; })], { xFormat: xf, title: 'requests queued and running' });
    C.lineChart($('h-tokens'), [series('tokens/s', function (p) { return p.tokensPerSec; })], { xFormat: xf, title: 'generated tokens per second' });
    C.lineChart($('h-ttft'), [series('p50', function (p) { return p.ttftP50Ms; }), series('p99', function (p) { return p.ttftP99Ms; })], { xFormat: xf, yUnit: 'ms', title: 'time to first token' });
    C.lineChart($('h-pertoken'), [series('p50', function (p) { return p.perTokenP50Ms; }), series('p99', function (p) { return p.perTokenP99Ms; })], { xFormat: xf, yUnit: 'ms', title: 'per-token latency' });
    var hosts = {};
    pts.forEach(function (p) {
      for (var k in p.kvBytes) hosts[k] = true;
    });
    C.lineChart(
      $('h-kv'),
      Object.keys(hosts)
        .sort()
        .map(function (id) {
          return series(id.length > 14 ? '…' + id.slice(-13) : id, function (p) {
            return p.kvBytes[id] === undefined ? null : p.kvBytes[id];
          });
        }),
      { xFormat: xf, yUnit: 'B', title: 'KV bytes per host' },
    );
  }

  // ---------- audit ----------

  function loadAudit() {
    return api('GET', '/admin/audit?limit=200').then(function (r) {
      if (r.status === 401 || r.status === 403) return authProblem(r.status, r.body);
      if (r.status !== 200) return showBanner('Could not load the audit log: ' + errorText(r.status, r.body));
      syncRows(
        $('audit').tBodies[0],
        r.body.data,
        function (e) {
          return e.at + ':' + e.action + ':' + e.target;
        },
        6,
        function (tr, e) {
          tr.setAttribute('data-action', e.action);
          tr.setAttribute('data-outcome', e.outcome);
          setCell(tr.cells[0], new Date(e.at).toISOString().replace('T', ' ').slice(0, 19), 'mono');
          setCell(tr.cells[1], e.action);
          setCell(tr.cells[2], e.target, 'mono');
          setCell(tr.cells[3], e.outcome, e.outcome === 'ok' ? '' : 'bad');
          setCell(tr.cells[4], e.detail);
          setCell(tr.cells[5], e.gatewayId, 'mono small');
        },
        'no admin actions yet',
      );
    });
  }

  function renderDetail(j) {
    state.detailJob = j;
    var dl = $('detail-fields');
    dl.textContent = '';
    var t = j.timings;
    var rows = [
      ['status', j.status],
      ['kind', j.kind],
      ['owner', (j.ownerLabel || '') + ' (fingerprint ' + j.owner + ')'],
      ['created', new Date(j.createdAt).toISOString()],
      ['mode', j.mode + ' · block ' + j.blockSize + ' · anchor ' + j.anchorSize + (j.cache ? ' · cached' : ' · not cached')],
      ['context / query tokens', j.contextTokens + ' / ' + j.queryTokens],
      ['blocks', j.progress.blocks.done + ' / ' + j.progress.blocks.total + ' done (' + j.progress.blocks.reused + ' reused, ' + j.progress.blocks.encoded + ' encoded' + (j.blocks ? ', ' + j.blocks.recovered + ' recovered' : '') + ')'],
      ['tokens generated', j.progress.tokens + ' / ' + j.progress.maxNewTokens],
      ['elapsed', fmtInt(t.elapsedMs) + ' ms'],
      ['phase 1', t.phase1Ms === null ? '–' : fmtInt(t.phase1Ms) + ' ms'],
      ['first token', t.firstTokenMs === null ? '–' : fmtInt(t.firstTokenMs) + ' ms'],
      ['phase 2', t.phase2Ms === null ? '–' : fmtInt(t.phase2Ms) + ' ms'],
      ['decode', t.decodeTokensPerSec === null ? '–' : t.decodeTokensPerSec.toFixed(1) + ' tokens/s'],
    ];
    if (j.result) rows.push(['finish reason', j.result.finishReason]);
    if (j.error) rows.push(['error', j.error.code + ': ' + j.error.message]);
    rows.forEach(function (r) {
      dl.appendChild(el('dt', null, r[0]));
      dl.appendChild(el('dd', { 'data-field': r[0] }, r[1]));
    });
    $('detail-text').textContent = j.result ? j.result.text : j.error ? '(no output: ' + j.status + ')' : '(not finished)';
    $('detail-cancel').hidden = !UNFINISHED[j.status];
  }

  // ---------- actions ----------

  /** Asks for confirmation, POSTs {confirm: target, …extra}, reports the outcome, refreshes. */
  function act(question, what, path, target, extra, button, ok) {
    if (!window.confirm(question)) return;
    if (button) button.disabled = true;
    var body = { confirm: target };
    for (var k in extra || {}) body[k] = extra[k];
    api('POST', path, body)
      .then(function (r) {
        if (r.status === 200) showNotice(ok(r.body));
        else if (r.status === 401 || r.status === 403) authProblem(r.status, r.body);
        else showBanner(what + ' failed: ' + errorText(r.status, r.body));
      })
      .catch(function (e) {
        showBanner(what + ' failed: ' + (e && e.message ? e.message : String(e)));
      })
      .then(function () {
        if (button) button.disabled = false;
        return refresh();
      });
  }

  function cancelJob(id, button) {
    act('Cancel job ' + id + '?', 'Cancel of job ' + id, '/admin/jobs/' + encodeURIComponent(id) + '/cancel', id, null, button, function (b) {
      return 'Job ' + id + ' cancelled (status: ' + (b && b.status) + ').';
    });
  }

  function evictContext(key, button) {
    act('Evict context ' + key + ' from every host? Requests on it will re-encode its blocks.', 'Eviction of ' + key, '/admin/kv/evict', key, { contextKey: key }, button, function (b) {
      var n = 0;
      var bytes = 0;
      (b.hosts || []).forEach(function (h) {
        n += h.blocks;
        bytes += h.bytes;
      });
      return 'Context evicted: ' + n + ' block(s), ' + fmtBytes(bytes) + ' freed.';
    });
  }

  function drainHost(id, button) {
    act('Drain host ' + id + '? It stops taking blocks, moves its blocks to other hosts and exits.', 'Drain of ' + id, '/admin/hosts/' + encodeURIComponent(id) + '/drain', id, null, button, function (b) {
      return 'Drain started: ' + (b && b.detail ? b.detail : id);
    });
  }

  // ---------- views ----------

  function route() {
    var h = window.location.hash;
    state.view = h === '#kv' ? 'kv' : h === '#history' ? 'history' : h === '#audit' ? 'audit' : 'overview';
    var views = document.querySelectorAll('[data-view]');
    for (var i = 0; i < views.length; i++) views[i].hidden = views[i].getAttribute('data-view') !== state.view;
    var tabs = document.querySelectorAll('#tabs a');
    for (var j = 0; j < tabs.length; j++) {
      var on = tabs[j].getAttribute('data-tab') === state.view;
      tabs[j].className = on ? 'active' : '';
      if (on) tabs[j].setAttribute('aria-current', 'page');
      else tabs[j].removeAttribute('aria-current');
    }
    openDetailFromHash();
    if (!state.blocked && state.lastOk) {
      if (state.view === 'kv') loadKv();
      else if (state.view === 'history') loadHistory();
      else if (state.view === 'audit') loadAudit();
    }
  }

  function init() {
    $('key-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var input = $('admin-key');
      writeKey(input.value.trim());
      input.value = '';
      state.blocked = false;
      hideBanner();
      $('key-state').textContent = state.key ? 'checking…' : 'no key';
      refresh();
    });
    $('key-forget').addEventListener('click', function () {
      writeKey('');
      $('key-state').textContent = 'key forgotten';
      state.blocked = false;
      refresh();
    });
    $('auto-refresh').addEventListener('change', function () {
      if ($('auto-refresh').checked) refresh();
      else schedule();
    });
    $('jobs').addEventListener('click', function (ev) {
      var b = ev.target && ev.target.closest ? ev.target.closest('button[data-action="cancel"]') : null;
      if (b) cancelJob(b.getAttribute('data-job-id'), b);
    });
    $('actors').addEventListener('click', function (ev) {
      var b = ev.target && ev.target.closest ? ev.target.closest('button[data-action="drain"]') : null;
      if (b) drainHost(b.getAttribute('data-host-id'), b);
    });
    $('kv-map').addEventListener('click', function (ev) {
      var b = ev.target && ev.target.closest ? ev.target.closest('button[data-action="evict"]') : null;
      if (b) evictContext(b.getAttribute('data-context'), b);
    });
    $('detail-cancel').addEventListener('click', function () {
      if (state.detailId) cancelJob(state.detailId, $('detail-cancel'));
    });
    $('detail-close').addEventListener('click', function (ev) {
      ev.preventDefault();
      history.replaceState(null, '', window.location.pathname + window.location.search);
      openDetailFromHash();
    });
    window.addEventListener('hashchange', route);
    $('key-state').textContent = state.key ? 'key set (this tab)' : 'no key';
    setInterval(tick, 500);
    route();
    refresh();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
