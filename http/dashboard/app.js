// app.js — Ricochet's dashboard. Every number comes from the HTTP API
// (docs/http-api.md), the same one scripts use; nothing here changes state
// except the breaker's pause and resume, which call the API too. Text from
// the API is set with textContent only, never parsed as HTML.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const views = ['queue', 'campaigns', 'destinations', 'recipient', 'classifier'];
  const num = (v) => Number(v || 0).toLocaleString('en-US');
  const pct = (v) => (Number(v || 0) * 100).toFixed(2) + '%';
  let timer = null;

  // ---- the API: a token when the page was given one (outside trusted networks)
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  async function api(path, opts) {
    opts = Object.assign({ headers: {} }, opts || {});
    const token = sessionStorage.getItem('ricochet-token');
    if (token) opts.headers.Authorization = 'Bearer ' + token;
    if (opts.json !== undefined) {
      opts.body = JSON.stringify(opts.json);
      opts.headers['Content-Type'] = 'application/json';
      delete opts.json;
    }
    const r = await fetch(path, opts);
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (r.status === 401) {
      // Stop polling: every refused token counts towards the API's limit.
      if (timer) clearInterval(timer);
      timer = null;
      $('token-form').hidden = false;
      $('token-error').textContent = token ? (body && body.error) || 'invalid token' : '';
    }
    if (!r.ok) throw new ApiError(r.status, (body && body.error) || r.statusText);
    return body;
  }
  function showError(e) {
    if (e instanceof ApiError && e.status === 401) return;  // the token form says it
    $('error').textContent = String(e.message || e);
    $('error').hidden = false;
  }
  function stamp() {
    $('error').hidden = true;
    $('updated').textContent = 'updated ' + new Date().toISOString().slice(11, 19) + ' UTC';
  }

  // ---- table helpers
  function cell(tr, text, cls) {
    const td = document.createElement('td');
    td.textContent = text === undefined || text === null ? '' : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function fill(tbody, rows, make) {
    tbody.replaceChildren();
    for (const r of rows) {
      const tr = document.createElement('tr');
      make(tr, r);
      tbody.appendChild(tr);
    }
    if (!rows.length) {
      const tr = document.createElement('tr');
      const td = cell(tr, 'nothing yet', 'muted');
      td.colSpan = tbody.parentElement.querySelectorAll('th').length;
      tbody.appendChild(tr);
    }
  }

  // ---- queue
  async function loadQueue() {
    const s = await api('/v1/queue/summary');
    $('q-messages').textContent = num(s.total.messages);
    $('q-active').textContent = num(s.total.active);
    $('q-deferred').textContent = num(s.total.deferred);
    $('q-hold').textContent = num(s.total.hold);
    $('q-oldest').textContent = s.oldest ? `${s.oldest.id} (${s.oldest.state}) since ${s.oldest.arrival}` : 'the queue is empty';
    fill($('q-domains').tBodies[0], s.domains, (tr, d) => {
      tr.dataset.domain = d.domain;
      cell(tr, d.domain);
      for (const k of ['total', 'active', 'deferred', 'hold']) cell(tr, num(d[k]), 'n').dataset.k = k;
      cell(tr, d.paused_until || '').dataset.k = 'paused_until';
    });
    stamp();
  }

  // ---- campaigns
  async function loadCampaigns() {
    const bucket = $('c-period').value;
    const [stats, breaker] = await Promise.all([api('/v1/stats?since=30d'), api('/v1/campaigns')]);
    const states = new Map(breaker.map((b) => [b.id, b]));
    const select = $('c-campaign');
    const chosen = select.value;
    const names = stats.by_campaign.map((c) => c.campaign).filter((c) => c !== '');
    select.replaceChildren(new Option('all campaigns', ''), ...names.map((c) => new Option(c, c)));
    select.value = names.includes(chosen) ? chosen : '';
    const rows = stats.by_campaign.slice();
    for (const b of breaker)  // a scope paused with nothing sent in 30 days still shows
      if (b.scope === 'campaign' && !rows.some((r) => r.campaign === b.id)) rows.push({ campaign: b.id });
    fill($('c-table').tBodies[0], rows, (tr, c) => {
      tr.dataset.campaign = c.campaign;
      cell(tr, c.campaign === '' ? '(none)' : c.campaign);
      for (const k of ['sent', 'delivered', 'hard', 'soft', 'block', 'technical', 'complaints'])
        cell(tr, num(c[k]), 'n').dataset.k = k;
      cell(tr, pct(c.bounce_rate), 'n').dataset.k = 'bounce_rate';
      const b = states.get(c.campaign);
      const st = cell(tr, b ? b.state + (b.reason ? ': ' + b.reason : '') : 'ok', 'state-' + (b ? b.state : 'ok'));
      st.dataset.k = 'state';
      const td = cell(tr, '');
      if (c.campaign !== '') {
        const paused = b && b.state === 'paused';
        const btn = document.createElement('button');
        btn.type = 'button';
        btn.textContent = paused ? 'resume' : 'pause';
        btn.className = paused ? '' : 'danger';
        btn.dataset.action = paused ? 'resume' : 'pause';
        btn.addEventListener('click', () => campaignAction(c.campaign, btn.dataset.action, btn));
        td.appendChild(btn);
      }
    });
    const q = new URLSearchParams({ bucket, since: bucket === 'day' ? '30d' : '48h' });
    if (select.value) q.set('campaign', select.value);
    const s = await api('/v1/stats/series?' + q);
    const pts = s.series[0].points;
    const labels = pts.map((p) => p.t);
    const day = bucket === 'day';
    RicochetChart.line($('c-chart-counts'), labels, [
      { name: 'sent', values: pts.map((p) => p.sent) },
      { name: 'delivered', values: pts.map((p) => p.delivered) },
      { name: 'bounced (hard+soft)', values: pts.map((p) => p.hard + p.soft) },
      { name: 'complaints', values: pts.map((p) => p.complaints) },
    ], { day });
    RicochetChart.line($('c-chart-rates'), labels, [
      { name: 'bounce rate', values: pts.map((p) => p.bounce_rate) },
      { name: 'complaint rate', values: pts.map((p) => p.complaint_rate) },
    ], { percent: true, day });
    stamp();
  }
  async function campaignAction(id, action, btn) {
    btn.disabled = true;
    try {
      await api(`/v1/campaigns/${encodeURIComponent(id)}/${action}`, { method: 'POST' });
      await loadCampaigns();
    } catch (e) {
      showError(e);
      btn.disabled = false;
    }
  }

  // ---- destinations
  async function loadDestinations() {
    const bucket = $('d-period').value;
    const q = new URLSearchParams({ bucket, by: 'domain', top: '8', since: bucket === 'day' ? '30d' : '48h' });
    const [series, stats, replies] = await Promise.all([
      api('/v1/stats/series?' + q), api('/v1/stats?since=30d'),
      api('/v1/stats/replies?limit=30&since=' + (bucket === 'day' ? '30d' : '48h'))]);
    const labels = series.series.length ? series.series[0].points.map((p) => p.t) : [];
    const day = bucket === 'day';
    RicochetChart.line($('d-chart-delivery'), labels,
      series.series.map((s) => ({ name: s.domain, values: s.points.map((p) => p.delivery_rate) })), { percent: true, day });
    RicochetChart.line($('d-chart-deferral'), labels,
      series.series.map((s) => ({ name: s.domain, values: s.points.map((p) => p.deferral_rate) })), { percent: true, day });
    const byDomain = stats.by_domain.slice().sort((a, b) => b.sent - a.sent);
    fill($('d-table').tBodies[0], byDomain, (tr, d) => {
      tr.dataset.domain = d.domain;
      const failed = d.hard + d.soft + d.block + d.technical;
      cell(tr, d.domain);
      cell(tr, num(d.sent), 'n').dataset.k = 'sent';
      cell(tr, num(d.delivered), 'n').dataset.k = 'delivered';
      cell(tr, num(d.deferred), 'n').dataset.k = 'deferred';
      cell(tr, num(failed), 'n').dataset.k = 'failed';
      const done = d.delivered + failed;
      cell(tr, done ? pct(d.delivered / done) : '–', 'n').dataset.k = 'delivery_rate';
      cell(tr, d.sent ? pct(d.deferred / d.sent) : '–', 'n').dataset.k = 'deferred_share';
    });
    fill($('d-replies').tBodies[0], replies.replies, (tr, r) => {
      cell(tr, r.domain);
      cell(tr, r.outcome);
      cell(tr, r.kind);
      cell(tr, r.category);
      cell(tr, num(r.count), 'n').dataset.k = 'count';
    });
    stamp();
  }

  // ---- recipient
  async function lookUp(address) {
    $('r-none').hidden = true;
    $('r-result').hidden = true;
    try {
      const r = await api('/v1/recipients/' + encodeURIComponent(address) + '?history=100');
      $('r-status').textContent = r.status;
      $('r-bounces').textContent = num(r.bounce_count);
      $('r-last').textContent = r.last_reply || '–';
      fill($('r-history').tBodies[0], r.history || [], (tr, h) => {
        cell(tr, h.time);
        cell(tr, h.type).dataset.k = 'type';
        cell(tr, h.campaign);
        cell(tr, h.kind);
        cell(tr, h.category);
        cell(tr, h.rule).dataset.k = 'rule';
        cell(tr, h.reply, 'reply');
      });
      $('r-result').hidden = false;
      stamp();
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        $('r-none').textContent = e.message;
        $('r-none').hidden = false;
      } else showError(e);
    }
  }

  // ---- classifier
  async function classify() {
    const body = { reply: $('k-reply').value, stage: $('k-stage').value };
    if ($('k-domain').value) body.domain = $('k-domain').value;
    const c = await api('/v1/classify', { method: 'POST', json: body });
    for (const k of ['kind', 'category', 'rule', 'scope']) $('k-' + k).textContent = c[k];
    $('k-retry').textContent = c.retry ? 'yes' : 'no';
    $('k-code').textContent = `${c.code} ${c.enhanced}`.trim();
    $('k-result').hidden = false;
    stamp();
  }

  // ---- navigation: one view at a time, the hash names it
  const loaders = { queue: [loadQueue, 5000], campaigns: [loadCampaigns, 15000], destinations: [loadDestinations, 30000] };
  function show() {
    let v = location.hash.slice(1).split('?')[0];
    if (!views.includes(v)) v = 'queue';
    for (const name of views) $('view-' + name).hidden = name !== v;
    for (const a of document.querySelectorAll('nav a')) a.classList.toggle('current', a.dataset.view === v);
    if (timer) clearInterval(timer);
    timer = null;
    const l = loaders[v];
    if (l) {
      const run = () => l[0]().catch(showError);
      run();
      timer = setInterval(run, l[1]);
    }
    if (v === 'recipient') {
      const a = new URLSearchParams(location.hash.split('?')[1] || '').get('address');
      if (a) { $('r-address').value = a; lookUp(a); }
    }
  }
  document.addEventListener('DOMContentLoaded', () => {
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      sessionStorage.setItem('ricochet-token', $('token').value.trim());
      $('token-form').hidden = true;
      show();
    });
    $('r-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      history.replaceState(null, '', '#recipient?address=' + encodeURIComponent($('r-address').value.trim()));
      lookUp($('r-address').value.trim());
    });
    $('k-form').addEventListener('submit', (ev) => { ev.preventDefault(); classify().catch(showError); });
    $('c-period').addEventListener('change', () => loadCampaigns().catch(showError));
    $('c-campaign').addEventListener('change', () => loadCampaigns().catch(showError));
    $('d-period').addEventListener('change', () => loadDestinations().catch(showError));
    window.addEventListener('hashchange', show);
    show();
  });
})();
