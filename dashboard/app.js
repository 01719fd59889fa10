// Courier dashboard: a hash router over a few pages, fed by the admin API (/api/v1/...) and, on
// the overview, by server-sent events once a second. No framework; text goes in with
// textContent only (never innerHTML), and the CSP allows nothing but these files.
import { LineChart, legend, formatNumber } from './chart.js';

const $ = (sel) => document.querySelector(sel);

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'testid') el.dataset.testid = v;
    else if (k === 'text') el.textContent = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
  }
}

async function api(path, { method = 'GET', body } = {}) {
  const init = { method, headers: { accept: 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(`/api/v1${path}`, init);
  const data = res.headers.get('content-type')?.includes('json') ? await res.json() : null;
  if (res.status === 401 && path !== '/login') {
    showLogin();
    throw new ApiError(401, data);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

const state = { who: null, cleanup: [], stream: null, samples: [], listeners: new Set() };

// ---------------------------------------------------------------------------------------------
// Login

function showLogin() {
  stopStream();
  state.who = null;
  $('#nav').hidden = true;
  $('#page').hidden = true;
  $('#logout').hidden = true;
  $('#who').textContent = '';
  $('#login').hidden = false;
}

async function afterLogin(who) {
  state.who = who;
  $('#login').hidden = true;
  $('#nav').hidden = false;
  $('#logout').hidden = false;
  $('#who').textContent = `${who.user} (${who.role})`;
  try {
    const info = await api('/broker');
    $('#version').textContent = `Courier ${info.version}${info.node ? ` · node ${info.node}` : ''}`;
  } catch {
    /* shown by the page */
  }
  startStream();
  route();
}

$('#token-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  await login({ token: $('#token').value.trim() });
});
$('#password-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  await login({ user: $('#user').value, password: $('#password').value });
});
$('#logout').addEventListener('click', async () => {
  await api('/logout', { method: 'POST', body: {} }).catch(() => {});
  showLogin();
});

async function login(body) {
  $('#login-error').textContent = '';
  try {
    await afterLogin(await api('/login', { method: 'POST', body }));
  } catch (err) {
    $('#login-error').textContent = err.message;
  }
}

// ---------------------------------------------------------------------------------------------
// Live data (SSE): one sample a second, shared by whatever page is open

function startStream() {
  if (state.stream) return;
  const es = new EventSource('/api/v1/stream');
  es.addEventListener('sample', (e) => {
    const s = JSON.parse(e.data);
    state.samples.push(s);
    if (state.samples.length > 900) state.samples.shift();
    for (const fn of state.listeners) fn(s);
  });
  es.addEventListener('alarm', () => refreshAlarms());
  state.stream = es;
  refreshAlarms();
}

function stopStream() {
  if (state.stream) state.stream.close();
  state.stream = null;
}

function onSample(fn) {
  state.listeners.add(fn);
  state.cleanup.push(() => state.listeners.delete(fn));
}

async function refreshAlarms() {
  try {
    const a = await api('/alarms');
    const n = a.active.length;
    $('#alarm-count').hidden = n === 0;
    $('#alarm-count').textContent = String(n);
    $('#alarm-banner').hidden = n === 0;
    $('#alarm-banner').textContent = a.active.map((x) => x.message).join(' · ');
  } catch {
    /* not logged in */
  }
}

// ---------------------------------------------------------------------------------------------
// Router

const pages = { overview, clients, subscriptions, topics, retained, publish, alarms };

function route() {
  if (!state.who) return;
  for (const fn of state.cleanup.splice(0)) fn();
  const [name, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  const page = pages[name] ? name : 'overview';
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.page === page);
  const root = $('#page');
  root.hidden = false;
  root.replaceChildren();
  root.dataset.page = page;
  pages[page](root, rest.map(decodeURIComponent)).catch((err) => {
    if (err.status !== 401) root.append(h('p', { class: 'error', text: err.message }));
  });
}
window.addEventListener('hashchange', route);

// ---------------------------------------------------------------------------------------------
// Pages

function stat(label, testid) {
  const value = h('div', { class: 'value', testid, text: '–' });
  return { el: h('div', { class: 'card stat' }, h('div', { class: 'label', text: label }), value), value };
}

function chartCard(title, series, opts, testid) {
  const canvas = h('canvas', { testid, 'aria-label': title, role: 'img' });
  const leg = h('div', { class: 'legend' });
  legend(leg, series);
  const chart = new LineChart(canvas, series, opts);
  return { el: h('div', { class: 'card chart' }, h('h2', { text: title }), canvas, leg), chart };
}

async function overview(root) {
  const info = await api('/broker');
  const cards = {
    connections: stat('Connections', 'stat-connections'),
    sessions: stat('Sessions', 'stat-sessions'),
    subscriptions: stat('Subscriptions', 'stat-subscriptions'),
    retained: stat('Retained', 'stat-retained'),
    messagesIn: stat('Messages in/s', 'stat-in'),
    messagesOut: stat('Messages out/s', 'stat-out'),
    dropped: stat('Dropped/s', 'stat-dropped'),
    uptime: stat('Uptime', 'stat-uptime'),
  };
  const drops = ['qos0_backpressure', 'queue_full', 'expired', 'too_large', 'queue_budget'];
  const charts = [
    [chartCard('Messages per second', [{ label: 'in' }, { label: 'out' }], {}, 'chart-messages'), (v) => [v.messagesIn, v.messagesOut]],
    [chartCard('Bytes per second', [{ label: 'in' }, { label: 'out' }], { unit: 'bytes' }, 'chart-bytes'), (v) => [v.bytesIn, v.bytesOut]],
    [chartCard('Connections and sessions', [{ label: 'connections' }, { label: 'sessions' }], {}, 'chart-connections'), (v) => [v.connections, v.sessions]],
    [chartCard('Dropped per second by reason', drops.map((d) => ({ label: d.replace(/_/g, ' ') })), { stacked: true }, 'chart-drops'), (v) => drops.map((d) => v[`dropped_${d}`])],
    [chartCard('Event loop delay p99', [{ label: 'p99' }], { unit: 'ms' }, 'chart-loop'), (v) => [v.eventLoopP99Ms]],
    [chartCard('Memory', [{ label: 'heap used' }, { label: 'RSS' }], { unit: 'bytes' }, 'chart-memory'), (v) => [v.heapUsedBytes, v.rssBytes]],
  ];
  const listeners = h(
    'table',
    {},
    h('thead', {}, h('tr', {}, h('th', { text: 'Listener' }), h('th', { text: 'Address' }), h('th', { text: 'Connections' }))),
    h('tbody', {}, info.listeners.map((l) => h('tr', {}, h('td', { text: l.transport }), h('td', { class: 'mono', text: `${l.host}:${l.port}` }), h('td', { text: String(l.connections) })))),
  );
  root.append(
    h('h1', { text: 'Overview' }),
    h('div', { class: 'grid' }, Object.values(cards).map((c) => c.el)),
    h('div', { class: 'charts' }, charts.map(([c]) => c.el)),
    h('div', { class: 'card', style: undefined }, h('h2', { text: 'Listeners' }), listeners),
  );
  const history = await api('/metrics/history');
  const show = (s) => {
    const v = s.v;
    cards.connections.value.textContent = formatNumber(v.connections);
    cards.sessions.value.textContent = formatNumber(v.sessions);
    cards.subscriptions.value.textContent = formatNumber(v.subscriptions);
    cards.retained.value.textContent = formatNumber(v.retained);
    cards.messagesIn.value.textContent = formatNumber(v.messagesIn);
    cards.messagesOut.value.textContent = formatNumber(v.messagesOut);
    cards.dropped.value.textContent = formatNumber(drops.reduce((a, d) => a + v[`dropped_${d}`], 0));
    const up = Math.floor((s.t - Date.parse(info.startedAt)) / 1000);
    cards.uptime.value.textContent = up >= 86400 ? `${Math.floor(up / 86400)} d ${Math.floor((up % 86400) / 3600)} h` : up >= 3600 ? `${Math.floor(up / 3600)} h ${Math.floor((up % 3600) / 60)} m` : `${Math.floor(up / 60)} m ${up % 60} s`;
    for (const [c, pick] of charts) c.chart.add(s.t, pick(v));
  };
  for (const s of history.samples.slice(-120)) show(s);
  onSample(show);
  state.cleanup.push(() => charts.forEach(([c]) => c.chart.destroy()));
}

function table(columns, rows, onClick) {
  return h(
    'table',
    {},
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { text: c.label })))),
    h(
      'tbody',
      {},
      rows.length === 0
        ? h('tr', {}, h('td', { colspan: columns.length, class: 'muted', text: 'Nothing here.' }))
        : rows.map((r) =>
            h(
              'tr',
              { class: onClick ? 'clickable' : undefined, onclick: onClick ? () => onClick(r) : undefined, 'data-key': columns[0].key(r) },
              columns.map((c) => {
                const v = c.render ? c.render(r) : c.key(r);
                return h('td', { class: c.mono ? 'mono' : undefined }, v === null || v === undefined ? '–' : v);
              }),
            ),
          ),
    ),
  );
}

function pager(page, load) {
  const el = h('div', { class: 'pager' }, `${page.total} in all, showing ${page.items.length}`);
  if (page.next) el.append(h('button', { class: 'secondary', onclick: () => load(page.next), text: 'Next page' }));
  return el;
}

const PROTOCOLS = { 3: '3.1', 4: '3.1.1', 5: '5.0' };

async function clients(root, [selected]) {
  // The search survives opening a client (the hash changes, the page is drawn again).
  const search = h('input', { name: 'search', placeholder: 'client id contains…', testid: 'client-search', value: state.clientSearch || '' });
  const stateSel = h('select', { name: 'state' }, h('option', { value: '', text: 'any state' }), h('option', { value: 'online', text: 'online' }), h('option', { value: 'offline', text: 'offline' }));
  stateSel.value = state.clientState || '';
  const list = h('div', { class: 'card', testid: 'client-list' });
  const detail = h('div', { class: 'card', testid: 'client-detail' }, h('p', { class: 'muted', text: 'Select a client.' }));
  const load = async (cursor) => {
    state.clientSearch = search.value;
    state.clientState = stateSel.value;
    const q = new URLSearchParams({ search: search.value, state: stateSel.value, limit: '50' });
    if (cursor) q.set('cursor', cursor);
    const page = await api(`/clients?${q}`);
    list.replaceChildren(
      table(
        [
          { label: 'Client id', key: (r) => r.clientId, mono: true },
          { label: 'State', key: (r) => r.state, render: (r) => h('span', { class: `pill ${r.state}`, text: r.state }) },
          { label: 'User', key: (r) => r.username },
          { label: 'Address', key: (r) => (r.ip ? `${r.ip}:${r.port}` : null), mono: true },
          { label: 'MQTT', key: (r) => (r.protocolVersion ? PROTOCOLS[r.protocolVersion] : null) },
          { label: 'Subs', key: (r) => r.subscriptions },
          { label: 'Queued', key: (r) => r.queued },
          { label: 'In flight', key: (r) => r.inflight },
        ],
        page.items,
        (r) => (location.hash = `#/clients/${encodeURIComponent(r.clientId)}`),
      ),
      pager(page, load),
    );
  };
  const form = h('form', { class: 'inline', onsubmit: (e) => (e.preventDefault(), load()) }, h('label', {}, 'Search', search), h('label', {}, 'State', stateSel), h('button', { type: 'submit', text: 'Search', testid: 'client-search-go' }));
  root.append(h('h1', { text: 'Clients' }), form, h('div', { class: 'split' }, list, detail));
  await load();
  if (selected) await clientDetail(detail, selected, load);
}

async function clientDetail(el, id, reload) {
  let c;
  try {
    c = await api(`/clients/${encodeURIComponent(id)}`);
  } catch (err) {
    el.replaceChildren(h('p', { class: 'error', text: err.status === 404 ? `No client "${id}" (any more).` : err.message }));
    return;
  }
  const row = (k, v) => [h('dt', { text: k }), h('dd', { text: v === null || v === undefined ? '–' : String(v) })];
  const msg = h('p', { class: 'okmsg', role: 'status' });
  const discard = h('input', { type: 'checkbox', name: 'discard' });
  const confirmBtn = h('button', {
    class: 'danger',
    hidden: true,
    testid: 'kick-confirm',
    text: 'Really disconnect',
    onclick: async () => {
      try {
        const r = await api(`/clients/${encodeURIComponent(id)}${discard.checked ? '?session=discard' : ''}`, { method: 'DELETE' });
        msg.textContent = `${r.disconnected ? 'Disconnected' : 'Not connected'}${r.discarded ? '; session discarded' : ''}.`;
        confirmBtn.hidden = true;
        await reload();
      } catch (err) {
        msg.className = 'error';
        msg.textContent = err.message;
      }
    },
  });
  const kick = h('button', { class: 'danger', testid: 'kick', text: c.state === 'online' ? 'Disconnect…' : 'Discard session…', onclick: () => (confirmBtn.hidden = false) });
  if (c.state !== 'online') discard.checked = true;
  el.replaceChildren(
    h('h2', { class: 'mono', text: c.clientId }),
    h(
      'dl',
      {},
      row('State', c.state),
      row('User', c.username),
      row('Address', c.ip ? `${c.ip}:${c.port}` : null),
      row('Listener', c.listener),
      row('Protocol', c.protocolVersion ? `MQTT ${PROTOCOLS[c.protocolVersion]}` : null),
      row('Keep alive', c.keepAlive === null ? null : `${c.keepAlive} s`),
      row('Connected at', c.connectedAt),
      row('Disconnected at', c.disconnectedAt),
      row('Session expiry', c.sessionExpiryInterval === 4294967295 ? 'never' : `${c.sessionExpiryInterval} s`),
      row('Queued', `${c.queued} (${formatNumber(c.queuedBytes, 'bytes')})`),
      row('In flight', c.inflight),
      row('Socket backlog', formatNumber(c.outboundBufferBytes, 'bytes')),
      row('Will', c.will ? `${c.will.topic} (QoS ${c.will.qos}${c.will.retain ? ', retained' : ''}, delay ${c.will.delaySeconds} s)` : null),
    ),
    h('h2', { text: 'Subscriptions' }),
    table(
      [
        { label: 'Filter', key: (s) => s.filter, mono: true },
        { label: 'QoS', key: (s) => s.qos },
        { label: 'Options', key: (s) => [s.noLocal ? 'no local' : '', s.retainAsPublished ? 'RAP' : '', `RH ${s.retainHandling}`].filter(Boolean).join(', ') },
      ],
      c.subscriptionList,
    ),
    state.who.role === 'admin' ? h('div', { class: 'toolbar' }, h('label', { class: 'check' }, discard, 'also discard the session'), kick, confirmBtn) : null,
    msg,
  );
}

async function subscriptions(root) {
  const filter = h('input', { name: 'filter', placeholder: 'filter contains…' });
  const client = h('input', { name: 'clientId', placeholder: 'client id' });
  const out = h('div', { class: 'card', testid: 'subscription-list' });
  const load = async (cursor) => {
    const q = new URLSearchParams({ filter: filter.value, clientId: client.value, limit: '100' });
    if (cursor) q.set('cursor', cursor);
    const page = await api(`/subscriptions?${q}`);
    out.replaceChildren(
      table(
        [
          { label: 'Filter', key: (s) => s.filter, mono: true },
          { label: 'Client', key: (s) => s.clientId, mono: true },
          { label: 'QoS', key: (s) => s.qos },
          { label: 'Shared group', key: (s) => s.share },
          { label: 'Options', key: (s) => [s.noLocal ? 'no local' : '', s.retainAsPublished ? 'RAP' : '', `RH ${s.retainHandling}`, s.subscriptionId ? `id ${s.subscriptionId}` : ''].filter(Boolean).join(', ') },
        ],
        page.items,
        (s) => (location.hash = `#/clients/${encodeURIComponent(s.clientId)}`),
      ),
      pager(page, load),
    );
  };
  root.append(h('h1', { text: 'Subscriptions' }), h('form', { class: 'inline', onsubmit: (e) => (e.preventDefault(), load()) }, h('label', {}, 'Filter', filter), h('label', {}, 'Client', client), h('button', { type: 'submit', text: 'Search' })), out);
  await load();
}

async function topics(root) {
  const search = h('input', { name: 'search', placeholder: 'filter contains…' });
  const out = h('div', { class: 'card', testid: 'topic-list' });
  const load = async (cursor) => {
    const q = new URLSearchParams({ search: search.value, limit: '100' });
    if (cursor) q.set('cursor', cursor);
    const page = await api(`/topics?${q}`);
    out.replaceChildren(table([{ label: 'Filter', key: (t) => t.filter, mono: true }, { label: 'Subscribers', key: (t) => t.subscribers }], page.items), pager(page, load));
  };
  root.append(h('h1', { text: 'Topics' }), h('p', { class: 'muted', text: 'Subscription filters and how many sessions hold each.' }), h('form', { class: 'inline', onsubmit: (e) => (e.preventDefault(), load()) }, h('label', {}, 'Search', search), h('button', { type: 'submit', text: 'Search' })), out);
  await load();
}

async function retained(root) {
  const match = h('input', { name: 'match', value: '#', placeholder: 'topic filter', testid: 'retained-filter' });
  const out = h('div', { class: 'card', testid: 'retained-list' });
  const view = h('div', { class: 'card', testid: 'retained-view' }, h('p', { class: 'muted', text: 'Select a message.' }));
  const load = async (cursor) => {
    const q = new URLSearchParams({ match: match.value, limit: '100' });
    if (cursor) q.set('cursor', cursor);
    const page = await api(`/retained?${q}`);
    out.replaceChildren(
      table(
        [
          { label: 'Topic', key: (m) => m.topic, mono: true },
          { label: 'QoS', key: (m) => m.qos },
          { label: 'Size', key: (m) => formatNumber(m.bytes, 'bytes') },
          { label: 'Preview', key: (m) => (m.preview === null ? '(binary)' : m.preview.slice(0, 60)), mono: true },
        ],
        page.items,
        (m) => show(m.topic),
      ),
      pager(page, load),
    );
  };
  const show = async (topic) => {
    const m = await api(`/retained/${encodeURIComponent(topic)}`);
    const msg = h('p', { class: 'okmsg', role: 'status' });
    let text = m.payload;
    if (m.encoding === 'utf8') {
      try {
        text = JSON.stringify(JSON.parse(m.payload), null, 2);
      } catch {
        /* not JSON */
      }
    }
    view.replaceChildren(
      h('h2', { class: 'mono', text: m.topic }),
      h('p', { class: 'muted', text: `QoS ${m.qos} · ${formatNumber(m.bytes, 'bytes')} · ${m.encoding}${m.contentType ? ` · ${m.contentType}` : ''}${m.expiresAt ? ` · expires ${m.expiresAt}` : ''}` }),
      h('pre', { testid: 'retained-payload', text }),
      state.who.role === 'admin'
        ? h('button', {
            class: 'danger',
            testid: 'retained-delete',
            text: 'Delete retained message',
            onclick: async () => {
              try {
                await api(`/retained/${encodeURIComponent(topic)}`, { method: 'DELETE' });
                msg.textContent = 'Deleted.';
                await load();
              } catch (err) {
                msg.className = 'error';
                msg.textContent = err.message;
              }
            },
          })
        : null,
      msg,
    );
  };
  root.append(h('h1', { text: 'Retained messages' }), h('form', { class: 'inline', onsubmit: (e) => (e.preventDefault(), load()) }, h('label', {}, 'Topic filter', match), h('button', { type: 'submit', text: 'List' })), h('div', { class: 'split' }, out, view));
  await load();
}

async function publish(root) {
  const topic = h('input', { name: 'topic', required: true, placeholder: 'a/topic', testid: 'publish-topic' });
  const payload = h('textarea', { name: 'payload', testid: 'publish-payload' });
  const qos = h('select', { name: 'qos' }, [0, 1, 2].map((q) => h('option', { value: q, text: `QoS ${q}` })));
  const retain = h('input', { type: 'checkbox', name: 'retain' });
  const msg = h('p', { class: 'okmsg', role: 'status', testid: 'publish-result' });
  const form = h(
    'form',
    {
      class: 'card',
      onsubmit: async (e) => {
        e.preventDefault();
        msg.className = 'okmsg';
        try {
          const r = await api('/publish', { method: 'POST', body: { topic: topic.value, payload: payload.value, qos: Number(qos.value), retain: retain.checked } });
          msg.textContent = `Published ${r.bytes} bytes to ${r.published}.`;
        } catch (err) {
          msg.className = 'error';
          msg.textContent = err.message;
        }
      },
    },
    h('label', {}, 'Topic', topic),
    h('label', {}, 'Payload (UTF-8)', payload),
    h('div', { class: 'toolbar' }, h('label', {}, 'QoS', qos), h('label', { class: 'check' }, retain, 'retain'), h('button', { type: 'submit', text: 'Publish', testid: 'publish-go', disabled: state.who.role !== 'admin' })),
    msg,
  );
  root.append(h('h1', { text: 'Publish' }), h('p', { class: 'muted', text: 'Published as the broker itself (no client id), to every matching subscriber.' }), form);
}

async function alarms(root) {
  const a = await api('/alarms');
  const cols = [
    { label: 'Alarm', key: (x) => x.name },
    { label: 'Message', key: (x) => x.message },
    { label: 'Raised', key: (x) => x.raisedAt },
    { label: 'Cleared', key: (x) => x.clearedAt },
  ];
  root.append(
    h('h1', { text: 'Alarms' }),
    h('div', { class: 'card', testid: 'alarms-active' }, h('h2', { text: 'Active' }), table(cols.slice(0, 3), a.active)),
    h('br'),
    h('div', { class: 'card', testid: 'alarms-history' }, h('h2', { text: 'History' }), table(cols, a.history)),
  );
}

// ---------------------------------------------------------------------------------------------
// Start: logged in already (session cookie)?

api('/whoami')
  .then((who) => (who ? afterLogin(who) : showLogin()))
  .catch(() => showLogin());
