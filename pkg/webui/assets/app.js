// The jetflow web UI: one script for the three pages (instances, one instance, dead letters).
// It talks only to the HTTP API (package httpapi) and builds the DOM with textContent, never
// with HTML from data.
'use strict';

const API = '/runtime/webhooks/durabletask';
const KEY_STORE = 'jetflow.apiKey';
const KEY_HEADER = 'x-functions-key';
const TOKEN_HEADER = 'x-ms-continuation-token';
const STATUSES = ['Pending', 'Running', 'Suspended', 'Completed', 'Failed', 'Terminated', 'ContinuedAsNew', 'Canceled'];
const TERMINAL = new Set(['Completed', 'Failed', 'Terminated', 'Canceled']);
const LIVE_LIST_MS = 3000;     // the instance list and its counts
const LIVE_INSTANCE_MS = 1000; // an instance that has not ended
const COUNT_PAGES = 10;        // the counts read at most this many pages of 1000 instances

// ---- API key --------------------------------------------------------------------------------

function apiKey() {
  try { return sessionStorage.getItem(KEY_STORE) || ''; } catch (e) { return ''; }
}

function setAPIKey(k) {
  try {
    if (k) sessionStorage.setItem(KEY_STORE, k); else sessionStorage.removeItem(KEY_STORE);
  } catch (e) { /* storage disabled: the key lasts until the page reloads */ }
  showKeyState();
}

function showKeyState() {
  document.getElementById('key-state').textContent = apiKey() ? 'key set' : 'no key';
}

function setUpKeyForm() {
  const form = document.getElementById('key-form');
  const input = document.getElementById('api-key');
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setAPIKey(input.value.trim());
    input.value = '';
    hideBanner();
    render(); // again, with the key
  });
  document.getElementById('key-forget').addEventListener('click', () => { setAPIKey(''); render(); });
  showKeyState();
}

// ---- API calls ------------------------------------------------------------------------------

class APIError extends Error {
  constructor(status, kind, message) {
    super(message);
    this.status = status;
    this.kind = kind;
  }
  toString() { return this.status ? `${this.status} ${this.kind}: ${this.message}` : this.message; }
}

// call sends a request to the API and returns {data, headers}; it throws an APIError with the
// API's error and message for any status that is not 2xx.
async function call(method, path, opts = {}) {
  const headers = new Headers(opts.headers || {});
  const key = apiKey();
  if (key) headers.set(KEY_HEADER, key);
  if (opts.body !== undefined) headers.set('Content-Type', 'application/json');
  let url = API + path;
  if (opts.query) {
    const q = opts.query.toString();
    if (q) url += '?' + q;
  }
  let res;
  try {
    res = await fetch(url, { method, headers, body: opts.body });
  } catch (e) {
    throw new APIError(0, 'NetworkError', 'the API did not answer: ' + e.message);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = text; }
  }
  if (!res.ok) {
    const kind = (data && data.error) || res.statusText || 'Error';
    const message = (data && data.message) || (typeof data === 'string' && data) || 'HTTP ' + res.status;
    const err = new APIError(res.status, kind, message);
    if (res.status === 401) askForKey();
    throw err;
  }
  return { data, headers: res.headers, status: res.status };
}

function instancePath(id, rest = '') { return '/instances/' + encodeURIComponent(id) + rest; }
function instanceURL(id) { return '/ui/instances/' + encodeURIComponent(id); }

// ---- DOM helpers ----------------------------------------------------------------------------

// el makes an element: attrs are attributes (on* keys add listeners; false/null skip), children
// are nodes or strings (as text).
function el(tag, attrs, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else if (k === 'text') n.textContent = v;
    else n.setAttribute(k, v === true ? '' : v);
  }
  return add(n, children);
}

// add appends children to n: nodes, strings (as text) and arrays of them; null, undefined and
// false are skipped.
function add(n, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    n.append(c instanceof Node ? c : String(c));
  }
  return n;
}

// changed reports whether data differs from what box last showed, and remembers it: a live
// refresh renders again only what changed, so focus and text selection survive it.
const shown = new WeakMap();
function changed(box, data) {
  const key = JSON.stringify(data);
  if (shown.get(box) === key) return false;
  shown.set(box, key);
  return true;
}

// fill replaces n's children.
function fill(n, ...children) {
  n.replaceChildren();
  return add(n, children);
}

function main() { return document.getElementById('main'); }

function showBanner(msg) {
  const b = document.getElementById('banner');
  b.textContent = msg;
  b.hidden = false;
}

function hideBanner() {
  const b = document.getElementById('banner');
  b.hidden = true;
  b.textContent = '';
}

function askForKey() {
  showBanner('The API requires a key: enter it in “API key” above.');
  document.getElementById('api-key').focus();
}

function badge(status) {
  return el('span', { class: 'badge status-' + String(status).toLowerCase(), 'data-status': status }, status);
}

function pretty(raw) {
  if (raw === null || raw === undefined) return '—';
  return typeof raw === 'string' ? JSON.stringify(raw) : JSON.stringify(raw, null, 2);
}

function jsonBlock(raw, id) {
  return el('pre', { class: 'json', id }, pretty(raw));
}

// utc writes a time as 2006-01-02 15:04:05.000Z; clock as 15:04:05.000.
function utc(t) {
  if (!t) return '—';
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toISOString().replace('T', ' ');
}
function clock(t) { return utc(t).slice(11); }

function ms(n) {
  if (n === undefined || n === null) return '—';
  if (n < 1000) return (Math.round(n * 10) / 10) + ' ms';
  if (n < 60000) return (Math.round(n / 100) / 10) + ' s';
  return (Math.round(n / 6000) / 10) + ' min';
}

// table makes a table; each cell gets its column's name in data-label, which a phone-width
// layout shows beside the value (each row a card).
function table(caption, headers, rows, attrs = {}) {
  for (const r of rows) {
    [...r.children].forEach((td, i) => td.setAttribute('data-label', headers[i] || ''));
  }
  return el('div', { class: 'scroll' },
    el('table', attrs,
      el('caption', {}, caption),
      el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, rows)));
}

function setTitle(t) { document.title = t + ' · jetflow'; }

// A timer that re-runs fn every ms while the page shows, replaced by the next page's.
let liveTimer = null;
function live(fn, ms) {
  stopLive();
  liveTimer = setInterval(() => { if (document.visibilityState === 'visible') fn(); }, ms);
}
function stopLive() {
  if (liveTimer) clearInterval(liveTimer);
  liveTimer = null;
}

// ---- Instances page -------------------------------------------------------------------------

// listQuery is the API query of the page's filters (from the URL, so a filtered list is a link).
function listQuery(params, withStatus) {
  const q = new URLSearchParams();
  if (withStatus) {
    const st = params.getAll('status').filter((s) => STATUSES.includes(s));
    if (st.length) q.set('runtimeStatus', st.join(','));
  }
  if (params.get('prefix')) q.set('instanceIdPrefix', params.get('prefix'));
  for (const [p, api] of [['from', 'createdTimeFrom'], ['to', 'createdTimeTo']]) {
    const v = params.get(p);
    if (!v) continue;
    const d = new Date(v);
    if (!isNaN(d)) q.set(api, d.toISOString());
  }
  return q;
}

function filterForm(params) {
  const chosen = new Set(params.getAll('status'));
  return el('form', { class: 'filters', id: 'filters', method: 'get', action: '/ui/', role: 'search' },
    el('fieldset', {},
      el('legend', {}, 'Status'),
      STATUSES.map((s) => el('label', { class: 'check' },
        el('input', { type: 'checkbox', name: 'status', value: s, checked: chosen.has(s) }), ' ', s))),
    el('div', { class: 'field' }, el('label', { for: 'f-prefix' }, 'ID prefix'),
      el('input', { id: 'f-prefix', name: 'prefix', value: params.get('prefix') || '', spellcheck: 'false' })),
    el('div', { class: 'field' }, el('label', { for: 'f-name' }, 'Name'),
      el('input', { id: 'f-name', name: 'name', value: params.get('name') || '', spellcheck: 'false' })),
    el('div', { class: 'field' }, el('label', { for: 'f-from' }, 'Created from'),
      el('input', { id: 'f-from', name: 'from', type: 'datetime-local', step: '1', value: params.get('from') || '' })),
    el('div', { class: 'field' }, el('label', { for: 'f-to' }, 'Created to'),
      el('input', { id: 'f-to', name: 'to', type: 'datetime-local', step: '1', value: params.get('to') || '' })),
    el('div', { class: 'field buttons' },
      el('button', { type: 'submit', id: 'f-apply' }, 'Apply'),
      el('a', { href: '/ui/', class: 'button-link' }, 'Clear')));
}

async function instancesPage() {
  setTitle('Instances');
  const params = new URLSearchParams(location.search);
  const liveBox = el('input', { type: 'checkbox', id: 'live', checked: true });
  const counts = el('div', { id: 'counts', class: 'counts', 'aria-live': 'polite' }, 'Counting…');
  const list = el('div', { id: 'instance-list' }, el('p', {}, 'Loading…'));
  fill(main(),
    el('h1', {}, 'Instances'),
    filterForm(params),
    el('p', { class: 'hint' }, 'Name filters the instances of the page shown (the API filters the rest). ',
      el('label', { class: 'check' }, liveBox, ' Live (refresh every ' + LIVE_LIST_MS / 1000 + ' s)')),
    counts, list);
  const refresh = () => Promise.all([renderCounts(params, counts), renderList(params, list)]);
  await refresh();
  live(() => { if (liveBox.checked) refresh(); }, LIVE_LIST_MS);
}

// renderCounts counts the instances by status under the prefix and time filters, reading up to
// COUNT_PAGES pages.
async function renderCounts(params, box) {
  const tally = {};
  let total = 0, token = '', pages = 0;
  try {
    do {
      const q = listQuery(params, false);
      q.set('top', '1000');
      q.set('showInput', 'false');
      const r = await call('GET', '/instances', { query: q, headers: token ? { [TOKEN_HEADER]: token } : {} });
      for (const s of r.data || []) {
        tally[s.runtimeStatus] = (tally[s.runtimeStatus] || 0) + 1;
        total++;
      }
      token = r.headers.get(TOKEN_HEADER) || '';
      pages++;
    } while (token && pages < COUNT_PAGES);
  } catch (e) {
    shown.delete(box);
    fill(box, el('span', { class: 'error' }, 'Counts: ' + e));
    return;
  }
  if (!changed(box, [tally, total, token])) return;
  const more = token ? '+' : '';
  const link = (status, n) => {
    const p = new URLSearchParams(params);
    p.delete('status');
    p.delete('page');
    if (status) p.append('status', status);
    const q = p.toString();
    return el('a', { href: '/ui/' + (q ? '?' + q : ''), class: 'count', 'data-count-status': status || 'all' },
      status ? badge(status) : el('span', { class: 'badge' }, 'All'), ' ', el('span', { class: 'n' }, n + more));
  };
  fill(box, el('h2', { class: 'visually-hidden' }, 'Counts by status'), link('', total),
    STATUSES.filter((s) => tally[s]).map((s) => link(s, tally[s])));
}

async function renderList(params, box) {
  const q = listQuery(params, true);
  q.set('top', params.get('top') || '50');
  q.set('showInput', 'false');
  const token = params.get('page') || '';
  let r;
  try {
    r = await call('GET', '/instances', { query: q, headers: token ? { [TOKEN_HEADER]: token } : {} });
  } catch (e) {
    shown.delete(box);
    fill(box, el('p', { class: 'error', role: 'alert' }, 'Listing instances failed: ' + e));
    return;
  }
  const next = r.headers.get(TOKEN_HEADER);
  if (!changed(box, [r.data, next])) return;
  const name = (params.get('name') || '').toLowerCase();
  const rows = (r.data || []).filter((s) => !name || s.name.toLowerCase().includes(name)).map((s) =>
    el('tr', { 'data-instance-id': s.instanceId },
      el('td', {}, el('a', { href: instanceURL(s.instanceId), class: 'mono' }, s.instanceId)),
      el('td', {}, s.name),
      el('td', {}, badge(s.runtimeStatus)),
      el('td', {}, utc(s.createdTime)),
      el('td', {}, utc(s.lastUpdatedTime))));
  const pager = el('nav', { class: 'pager', 'aria-label': 'Pages' },
    token ? el('a', { href: pageURL(params, ''), id: 'first-page' }, 'First page') : null,
    next ? el('a', { href: pageURL(params, next), id: 'next-page', rel: 'next' }, 'Next page') : null);
  fill(box,
    rows.length ? table('Instances, by ID', ['ID', 'Name', 'Status', 'Created', 'Updated'], rows, { id: 'instances' })
      : el('p', { id: 'no-instances' }, 'No instances match.'),
    pager);
}

function pageURL(params, token) {
  const p = new URLSearchParams(params);
  if (token) p.set('page', token); else p.delete('page');
  const q = p.toString();
  return '/ui/' + (q ? '?' + q : '');
}

// ---- One instance ---------------------------------------------------------------------------

async function instancePage(id) {
  setTitle(id);
  const view = {
    id,
    statusBox: el('section', { id: 'status', 'aria-labelledby': 'status-h' }, el('p', {}, 'Loading…')),
    timelineBox: el('section', { id: 'timeline', 'aria-labelledby': 'timeline-h' }),
    result: el('p', { id: 'action-result', role: 'status', class: 'ok' }),
    error: el('p', { id: 'action-error', role: 'alert', class: 'error' }),
    ended: false,
  };
  fill(main(),
    el('p', { class: 'crumbs' }, el('a', { href: '/ui/' }, 'Instances'), ' / '),
    el('h1', {}, 'Instance ', el('span', { class: 'mono', id: 'instance-id' }, id)),
    view.statusBox,
    actionsSection(view),
    view.timelineBox);
  await refreshInstance(view);
  live(() => { if (!view.ended) refreshInstance(view); }, LIVE_INSTANCE_MS);
}

async function refreshInstance(view) {
  let status, tl;
  try {
    [status, tl] = await Promise.all([
      call('GET', instancePath(view.id)).then((r) => r.data),
      call('GET', instancePath(view.id, '/timeline')).then((r) => r.data),
    ]);
  } catch (e) {
    shown.delete(view.statusBox);
    fill(view.statusBox, el('h2', { id: 'status-h' }, 'Status'),
      el('p', { class: 'error', id: 'status-error' }, e.status === 404 ? 'No such instance (it may have been purged).' : 'Loading failed: ' + e));
    view.ended = e.status === 404;
    return;
  }
  view.ended = TERMINAL.has(status.runtimeStatus);
  if (changed(view.statusBox, status)) renderStatus(view.statusBox, status);
  if (changed(view.timelineBox, tl)) renderTimeline(view.timelineBox, tl);
}

function renderStatus(box, s) {
  const w = s.waitingFor || {};
  const waits = [
    ...(w.events || []).map((e) => 'event ' + e),
    ...(w.timers || []).map((t) => 'timer at ' + utc(t)),
    ...(w.activities || []).map((a) => 'activity ' + a),
    ...(w.subOrchestrations || []).map((o) => 'sub-orchestration ' + o),
  ];
  const row = (k, v, id) => [el('dt', {}, k), el('dd', { id }, v)];
  fill(box,
    el('h2', { id: 'status-h' }, 'Status'),
    el('dl', { class: 'details' },
      row('Name', s.name, 'name-value'),
      row('Status', badge(s.runtimeStatus), 'status-value'),
      row('Created', utc(s.createdTime), 'created-value'),
      row('Updated', utc(s.lastUpdatedTime), 'updated-value'),
      row('Waiting for', waits.length ? el('ul', { class: 'plain' }, waits.map((x) => el('li', {}, x))) : '—', 'waiting-value'),
      row('Input', jsonBlock(s.input, 'input-value')),
      row(s.runtimeStatus === 'Failed' ? 'Failure' : 'Output', jsonBlock(s.output, 'output-value')),
      row('Custom status', jsonBlock(s.customStatus, 'custom-status-value'))));
}

function actionsSection(view) {
  const reason = el('input', { id: 'reason', name: 'reason', spellcheck: 'false' });
  const newID = el('input', { type: 'checkbox', id: 'restart-new-id', checked: true });
  const op = (label, id, fn) => el('button', { type: 'button', id, onclick: () => act(view, label, fn) }, label);
  const withReason = (name) => () => call('POST', instancePath(view.id, '/' + name), { query: new URLSearchParams({ reason: reason.value }) });
  return el('section', { id: 'actions', 'aria-labelledby': 'actions-h' },
    el('h2', { id: 'actions-h' }, 'Actions'),
    raiseForm(view),
    el('div', { class: 'ops' },
      el('div', { class: 'field' }, el('label', { for: 'reason' }, 'Reason (terminate, suspend, resume, rewind)'), reason),
      el('div', { class: 'buttons' },
        op('Terminate', 'terminate-button', withReason('terminate')),
        op('Suspend', 'suspend-button', withReason('suspend')),
        op('Resume', 'resume-button', withReason('resume')),
        op('Rewind', 'rewind-button', withReason('rewind'))),
      el('div', { class: 'buttons' },
        el('label', { class: 'check' }, newID, ' Restart with a new instance ID'),
        op('Restart', 'restart-button', async () => {
          const r = await call('POST', instancePath(view.id, '/restart'),
            { query: new URLSearchParams({ restartWithNewInstanceId: String(newID.checked) }) });
          return { link: r.data && r.data.id };
        }),
        op('Purge', 'purge-button', async () => {
          if (!confirm('Purge instance ' + view.id + '? Its state and history are deleted.')) return { cancelled: true };
          const r = await call('DELETE', instancePath(view.id));
          return { message: r.data && r.data.instancesDeleted === 0 ? 'Nothing purged: the instance has not ended.' : 'Purged.' };
        }))),
    view.result, view.error);
}

// act runs one action, says how it went, and refreshes the instance.
async function act(view, label, fn) {
  fill(view.result);
  view.error.textContent = '';
  try {
    const out = (await fn()) || {};
    if (out.cancelled) return;
    if (out.link) {
      fill(view.result, label + ' done: ', el('a', { href: instanceURL(out.link), id: 'restarted-link' }, out.link));
    } else {
      view.result.textContent = out.message || label + ' accepted.';
    }
  } catch (e) {
    view.error.textContent = label + ' failed: ' + e;
    return;
  }
  view.ended = false; // an action may bring it back (rewind, restart with the same ID)
  await refreshInstance(view);
}

function raiseForm(view) {
  const name = el('input', { id: 'event-name', name: 'event', required: true, spellcheck: 'false', autocomplete: 'off' });
  const data = el('textarea', { id: 'event-data', name: 'data', rows: '4', spellcheck: 'false', 'aria-describedby': 'event-data-error' }, 'null');
  const dataError = el('p', { id: 'event-data-error', class: 'error', 'aria-live': 'polite' });
  const button = el('button', { type: 'submit', id: 'raise-button' }, 'Raise event');
  const validate = () => {
    try {
      JSON.parse(data.value);
      data.removeAttribute('aria-invalid');
      dataError.textContent = '';
      button.disabled = false;
      return true;
    } catch (e) {
      data.setAttribute('aria-invalid', 'true');
      dataError.textContent = 'Not valid JSON: ' + e.message;
      button.disabled = true;
      return false;
    }
  };
  data.addEventListener('input', validate);
  const form = el('form', { id: 'raise-form', class: 'raise', onsubmit: (e) => {
    e.preventDefault();
    if (!validate() || !name.value.trim()) {
      if (!name.value.trim()) name.focus();
      return;
    }
    const ev = name.value.trim();
    act(view, 'Raise ' + ev, async () => {
      await call('POST', instancePath(view.id, '/raiseEvent/' + encodeURIComponent(ev)), { body: data.value });
      return { message: 'Raised ' + ev + '.' };
    });
  } },
  el('fieldset', {}, el('legend', {}, 'Raise an event'),
    el('div', { class: 'field' }, el('label', { for: 'event-name' }, 'Event name'), name),
    el('div', { class: 'field' }, el('label', { for: 'event-data' }, 'Data (JSON)'), data, dataError),
    button));
  return form;
}

// ---- Timeline -------------------------------------------------------------------------------

function renderTimeline(box, tl) {
  const byTurn = new Map();
  tl.entries.forEach((e, i) => {
    if (!byTurn.has(e.turn)) byTurn.set(e.turn, []);
    byTurn.get(e.turn).push([i, e]);
  });
  const turnTime = new Map(tl.turns.map((t) => [t.number, t]));
  const turns = [...byTurn.entries()].map(([n, entries]) => {
    const t = turnTime.get(n);
    const head = n === 0 ? 'Before the first turn'
      : `Turn ${n} · ${clock(t.time)} · +${ms(new Date(t.time) - new Date(tl.start))}` + (t.progressed ? '' : ' · no progress');
    return el('li', { class: 'turn', 'data-turn': n },
      el('h3', {}, head),
      el('ol', { class: 'entries' }, entries.map(([i, e]) =>
        el('li', { class: 'entry type-' + e.type, 'data-type': e.type, id: 'entry-' + i },
          el('span', { class: 'time' }, clock(e.time)),
          el('span', { class: 'etype' }, e.type),
          el('span', { class: 'summary' }, e.summary)))));
  });
  fill(box,
    el('h2', { id: 'timeline-h' }, 'Timeline'),
    el('p', { class: 'hint' }, `${tl.entries.length} events in ${tl.turns.length} turns. Which turn consumed an event is inferred (the history records no waits).`),
    activitiesTable(tl.activities), eventsTable(tl.events), timersTable(tl.timers), subsTable(tl.subOrchestrations),
    el('ol', { class: 'turns', id: 'turns' }, turns));
}

function outcome(o) { return el('span', { class: 'badge outcome-' + o }, o); }

function activitiesTable(list) {
  if (!list.length) return null;
  const rows = list.flatMap((a) => a.attempts.map((at, i) => el('tr', { 'data-activity': a.name },
    el('td', {}, a.name),
    el('td', {}, String(i + 1) + (at.retryTimer ? ` (after timer #${at.retryTimer})` : '') + (at.rewound ? ' · rewound' : '')),
    el('td', {}, '#' + at.taskId),
    el('td', {}, outcome(at.outcome)),
    el('td', {}, at.outcome === 'pending' ? '—' : ms(at.durationMs || 0)),
    el('td', {}, `${clock(at.scheduledAt)} (turn ${at.turn})`),
    el('td', {}, at.failure ? (at.failure.type ? at.failure.type + ': ' : '') + at.failure.message : at.result !== undefined ? pretty(at.result) : '—'))));
  return table('Activities', ['Activity', 'Attempt', 'Task', 'Outcome', 'Duration', 'Scheduled', 'Result or failure'], rows, { id: 'activities' });
}

function eventsTable(list) {
  if (!list.length) return null;
  const rows = list.map((e) => el('tr', { 'data-event': e.name },
    el('td', {}, e.name),
    el('td', {}, el('code', {}, pretty(e.data))),
    el('td', {}, e.eventId || '—'),
    el('td', {}, `${clock(e.arrivedAt)} (turn ${e.turn})`),
    el('td', { class: 'consumed' }, e.consumedTurn ? `turn ${e.consumedTurn} at ${clock(e.consumedAt)}` : 'not yet')));
  return table('Events raised', ['Event', 'Data', 'Event ID', 'Arrived', 'Consumed'], rows, { id: 'events' });
}

function timersTable(list) {
  if (!list.length) return null;
  const rows = list.map((t) => el('tr', {},
    el('td', {}, '#' + t.taskId),
    el('td', {}, utc(t.fireAt)),
    el('td', {}, outcome(t.outcome)),
    el('td', {}, t.firedAt ? `${clock(t.firedAt)} (turn ${t.firedTurn})` : '—'),
    el('td', {}, t.retryOf ? `delays the retry of #${t.retryOf}` : '')));
  return table('Timers', ['Timer', 'Fires at', 'Outcome', 'Fired', 'Purpose'], rows, { id: 'timers' });
}

function subsTable(list) {
  if (!list.length) return null;
  const rows = list.map((s) => el('tr', {},
    el('td', {}, '#' + s.taskId),
    el('td', {}, s.name),
    el('td', {}, el('a', { href: instanceURL(s.instanceId), class: 'mono' }, s.instanceId)),
    el('td', {}, outcome(s.outcome) , s.rewinds ? ` (rewound ${s.rewinds}×)` : ''),
    el('td', {}, s.outcome === 'pending' ? '—' : ms(s.durationMs || 0))));
  return table('Sub-orchestrations', ['Task', 'Orchestrator', 'Instance', 'Outcome', 'Duration'], rows, { id: 'sub-orchestrations' });
}

// ---- Dead letters ---------------------------------------------------------------------------

async function deadLettersPage() {
  stopLive();
  setTitle('Dead letters');
  const params = new URLSearchParams(location.search);
  const after = params.get('after') || '';
  const box = el('div', { id: 'dead-letter-list' }, el('p', {}, 'Loading…'));
  fill(main(), el('h1', {}, 'Dead letters'),
    el('p', { class: 'hint' }, 'Messages that could not be processed, oldest first, with the reason. ',
      el('code', {}, 'jetflow dlq'), ' replays and deletes them.'),
    box);
  const q = new URLSearchParams({ top: '50' });
  if (after) q.set('after', after);
  let page;
  try {
    page = (await call('GET', '/deadletters', { query: q })).data;
  } catch (e) {
    fill(box, el('p', { class: 'error', role: 'alert', id: 'dead-letters-error' }, 'Listing dead letters failed: ' + e));
    return;
  }
  const rows = page.deadLetters.map((d) => el('tr', { 'data-position': d.position },
    el('td', {}, String(d.position)),
    el('td', {}, utc(d.time)),
    el('td', {}, d.source + (d.queue ? ' (' + d.queue + ')' : '')),
    el('td', { class: 'mono' }, d.subject),
    el('td', { class: 'reason' }, d.reason),
    el('td', {}, el('details', {}, el('summary', {}, 'data'),
      el('pre', { class: 'json' }, d.dataBase64 ? '(base64) ' + d.dataBase64 : d.data)))));
  fill(box,
    rows.length ? table('Dead letters', ['Position', 'Time', 'Source', 'Subject', 'Reason', 'Data'], rows, { id: 'dead-letters' })
      : el('p', { id: 'no-dead-letters' }, after ? 'No more dead letters.' : 'No dead letters.'),
    el('nav', { class: 'pager', 'aria-label': 'Pages' },
      after ? el('a', { href: '/ui/dead-letters', id: 'first-page' }, 'First page') : null,
      page.next ? el('a', { href: '/ui/dead-letters?after=' + page.next, id: 'next-page', rel: 'next' }, 'Next page') : null));
}

// render shows the page of the URL; an error nobody caught goes to the banner.
function render() {
  Promise.resolve().then(route).catch((e) => showBanner('Something went wrong: ' + e));
}

// ---- Routing --------------------------------------------------------------------------------

function route() {
  stopLive();
  const p = location.pathname;
  for (const a of document.querySelectorAll('nav[aria-label="Main"] a')) {
    a.toggleAttribute('aria-current', a.getAttribute('href') === p);
  }
  if (p === '/ui/' || p === '/ui/index.html') return instancesPage();
  if (p.startsWith('/ui/instances/') && p.length > '/ui/instances/'.length) {
    return instancePage(decodeURIComponent(p.slice('/ui/instances/'.length)));
  }
  if (p === '/ui/dead-letters' || p === '/ui/dead-letters/') return deadLettersPage();
  setTitle('Not found');
  fill(main(), el('h1', {}, 'Not found'), el('p', {}, 'No page at ', el('code', {}, p), '. ', el('a', { href: '/ui/' }, 'Instances')));
}

document.addEventListener('DOMContentLoaded', () => {
  setUpKeyForm();
  render();
});
