/*
 * Motey web GUI: one Vue 3 application, no build step (templates are compiled by
 * vendor/vue.global.prod.js in the browser). Pages are chosen by the URL's hash
 * (#/overview, #/services, #/nodes, #/capabilities, #/deploy, #/settings); data comes
 * from polling the node's REST API, whose address is configurable (?api=URL, or the
 * settings page), defaulting to the node that served the page. A node in secure mode
 * asks for a bearer token first (login page, token kept in sessionStorage); the page
 * offers only what the token's role may do and returns to the login on a 401.
 */
(function () {
  'use strict';

  var Vue = window.Vue;
  var MoteyApi = window.MoteyApi;
  var MoteyBlueprint = window.MoteyBlueprint;

  var STORAGE_API = 'motey.apiBase';
  var STORAGE_POLL = 'motey.pollMs';
  var STORAGE_TOKEN = 'motey.token';  // sessionStorage: gone when the browser session ends
  var SERVICE_STATES = ['INITIAL', 'INSTANTIATING', 'RUNNING', 'STOPPING', 'TERMINATED', 'ERROR'];
  var LIFECYCLE_PHASES = ['COMMISSION', 'PROVISION', 'OPERATE', 'RECOVER', 'DECOMMISSION'];
  var PAGES = [
    { id: 'overview', title: 'Overview' },
    { id: 'services', title: 'Services' },
    { id: 'nodes', title: 'Nodes' },
    { id: 'capabilities', title: 'Capabilities' },
    { id: 'deploy', title: 'Deploy' }
  ];

  // ---------------------------------------------------------------- helpers

  function storageGet(key) {
    try { return window.localStorage.getItem(key); } catch (e) { return null; }
  }
  function sessionGet(key) {
    try { return window.sessionStorage.getItem(key); } catch (e) { return null; }
  }
  function sessionSet(key, value) {
    try {
      if (value === null) window.sessionStorage.removeItem(key);
      else window.sessionStorage.setItem(key, value);
    } catch (e) { /* storage refused: the token lasts for this page only */ }
  }
  function storageSet(key, value) {
    try {
      if (value === null) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, value);
    } catch (e) { /* private mode: settings last for this page only */ }
  }

  var STATE_CLASS = {
    RUNNING: 'text-bg-success',
    INITIAL: 'text-bg-light border',
    INSTANTIATING: 'text-bg-info',
    STOPPING: 'text-bg-warning',
    TERMINATED: 'text-bg-secondary',
    ERROR: 'text-bg-danger',
    REACHABLE: 'text-bg-success',
    UNREACHABLE: 'text-bg-danger',
    OPERATE: 'text-bg-success',
    COMMISSION: 'text-bg-info',
    PROVISION: 'text-bg-info',
    RECOVER: 'text-bg-warning',
    DECOMMISSION: 'text-bg-secondary'
  };
  function stateClass(state) {
    return STATE_CLASS[state] || 'text-bg-light border';
  }

  function pad(n) { return n < 10 ? '0' + n : String(n); }
  function fmtTime(epochSeconds) {
    if (!epochSeconds) return '—';
    var d = new Date(epochSeconds * 1000);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }
  function fmtClock(ms) {
    if (!ms) return '—';
    var d = new Date(ms);
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }
  function fmtAgo(epochSeconds, nowMs) {
    if (!epochSeconds) return 'never';
    var s = Math.max(0, Math.round(nowMs / 1000 - epochSeconds));
    if (s < 5) return 'just now';
    if (s < 90) return s + ' s ago';
    if (s < 5400) return Math.round(s / 60) + ' min ago';
    if (s < 172800) return Math.round(s / 3600) + ' h ago';
    return Math.round(s / 86400) + ' days ago';
  }
  function fmtBytes(n) {
    if (n === null || n === undefined) return '—';
    var units = ['B', 'KB', 'MB', 'GB', 'TB'];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : n) + ' ' + units[i];
  }
  function capabilityLabel(cap) {
    if (typeof cap === 'string') return cap;
    if (!cap) return '';
    return cap.value !== undefined && cap.value !== null
      ? cap.capability + '=' + cap.value : cap.capability;
  }
  function capabilityTitle(cap) {
    if (typeof cap === 'string') return cap;
    return capabilityLabel(cap) + ' (' + cap.capability_type +
      (cap.source ? ', from ' + cap.source : '') + ')';
  }
  /* Capabilities for display: one badge per label, its types and sources in the title. */
  function capabilityBadges(list) {
    var byLabel = {};
    var order = [];
    (list || []).forEach(function (cap) {
      var label = capabilityLabel(cap);
      if (!label) return;
      if (!byLabel[label]) { byLabel[label] = []; order.push(label); }
      byLabel[label].push(capabilityTitle(cap));
    });
    order.sort();
    return order.map(function (label) { return { label: label, title: byLabel[label].join('; ') }; });
  }

  function countBy(items, key, order) {
    var counts = {};
    (order || []).forEach(function (k) { counts[k] = 0; });
    items.forEach(function (item) {
      var k = item[key] || 'UNKNOWN';
      counts[k] = (counts[k] || 0) + 1;
    });
    return counts;
  }
  function shortId(id) { return id ? String(id).slice(0, 8) : '—'; }

  // ---------------------------------------------------------------- store

  var params = new URLSearchParams(window.location.search);

  function initialBase() {
    var candidates = [params.get('api'), storageGet(STORAGE_API)];
    for (var i = 0; i < candidates.length; i++) {
      if (candidates[i]) {
        try { return MoteyApi.normalizeBase(candidates[i]); } catch (e) { /* next */ }
      }
    }
    return MoteyApi.defaultBase(window.location);
  }
  function initialPoll() {
    var value = Number(params.get('poll') || storageGet(STORAGE_POLL) || 2000);
    return value >= 200 && value <= 60000 ? value : 2000;
  }

  var store = Vue.reactive({
    apiBase: initialBase(),
    defaultBase: MoteyApi.defaultBase(window.location),
    pollMs: initialPoll(),
    page: 'overview',
    now: Date.now(),
    // connection: null = not known yet, true = answering, false = unreachable
    connected: null,
    connectionError: '',
    connectionErrorKind: '',
    unreachableSince: null,
    lastOk: null,
    // data from the node
    node: null,
    nodes: [],
    services: [],
    capabilities: [],
    status: null,
    // operator views: the live event stream, the whole cell's services
    live: false,
    cellScope: storageGet('motey.cellScope') === '1',
    owners: [],
    // who is logged in (GET /v1/whoami); needLogin shows the login page
    auth: {
      token: sessionGet(STORAGE_TOKEN),
      name: null,
      role: null,
      mode: null,
      needLogin: false,
      reason: ''
    },
    // UI
    highlight: null,
    toasts: [],
    confirm: null
  });

  // ---------------------------------------------------------------- login and roles

  var authHooks = {
    token: function () { return store.auth.token; },
    onUnauthorized: function () {
      if (store.auth.needLogin) return;  // several requests of one poll may say 401
      requireLogin(store.auth.token
        ? 'The node no longer accepts your token (revoked, made on another node, or of another cell). Log in again.'
        : '');
    }
  };

  /* Show the login page and stop polling until someone logs in. */
  function requireLogin(reason) {
    store.auth.token = null;
    store.auth.role = null;
    store.auth.name = null;
    store.auth.needLogin = true;
    store.auth.reason = reason || '';
    sessionSet(STORAGE_TOKEN, null);
    pollGeneration += 1;  // answers still on their way are dropped
    if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; }
  }

  function acceptLogin(token, who) {
    store.auth.token = token;
    sessionSet(STORAGE_TOKEN, token);
    store.auth.needLogin = false;
    store.auth.reason = '';
    setWho(who);
    pollNow();
  }

  function setWho(who) {
    store.auth.name = who.name || null;
    store.auth.role = who.role || null;
    store.auth.mode = who.mode || null;
  }

  /* A node without /v1/whoami (an original Motey) asks for no token at all. */
  function whoami(api) {
    return api.whoami().catch(function (err) {
      if (err.status === 404) return { name: null, role: 'admin', mode: 'open' };
      throw err;
    });
  }

  /* Whether the logged-in role may do what `needed` may (viewer < operator < admin). */
  function can(needed) {
    var have = MoteyApi.ROLES.indexOf(store.auth.role);
    return have >= 0 && have >= MoteyApi.ROLES.indexOf(needed);
  }

  function logout() {
    requireLogin('Logged out.');
  }

  var client = new MoteyApi.Client(store.apiBase, undefined, authHooks);
  var pollTimer = null;
  var pollGeneration = 0;

  function schedulePoll(delay) {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, delay);
  }

  function poll() {
    var generation = ++pollGeneration;
    var base = store.apiBase;
    var api = client;
    pollTimer = null;
    if (store.auth.needLogin) return Promise.resolve();
    return Promise.all([
      whoami(api),
      api.get('/v1/node'),
      api.get('/v1/nodes'),
      api.get(store.cellScope ? '/v1/service?scope=cell' : '/v1/service'),
      api.get('/v1/capabilities'),
      api.get('/v1/nodestatus')
    ]).then(function (results) {
      if (generation !== pollGeneration || base !== store.apiBase) return;
      setWho(results.shift());
      store.node = results[0];
      store.nodes = Array.isArray(results[1]) ? results[1] : [];
      var listed = results[2] && !Array.isArray(results[2]) ? results[2].services : results[2];
      store.services = Array.isArray(listed) ? listed : [];
      store.owners = (results[2] && results[2].owners) || [];
      store.capabilities = Array.isArray(results[3]) ? results[3] : [];
      store.status = results[4];
      store.connected = true;
      store.connectionError = '';
      store.connectionErrorKind = '';
      store.unreachableSince = null;
      store.lastOk = Date.now();
    }, function (err) {
      if (generation !== pollGeneration || base !== store.apiBase) return;
      if (store.auth.needLogin) return;  // a 401: the login page says why
      store.connected = false;
      store.connectionError = err.message;
      store.connectionErrorKind = err.kind;
      if (!store.unreachableSince) store.unreachableSince = Date.now();
    }).then(function () {
      // While the event stream is open it says when to look again; polling stays as a
      // slow safety net.
      if (generation === pollGeneration) {
        // (other owners' changes are not on this node's stream: the cell view keeps polling)
        schedulePoll(store.live && !store.cellScope ? Math.max(store.pollMs, 30000) : store.pollMs);
      }
    });
  }

  // ------------------------------------------------ the event stream (GET /v1/events)
  var eventStream = null;
  var eventTimer = null;
  var eventRetry = null;
  var eventSeen = 0;
  function connectEvents() {
    if (eventStream) eventStream.close();
    if (eventRetry) clearTimeout(eventRetry);
    var base = store.apiBase;
    var ended = false;
    function end() {
      if (ended || base !== store.apiBase) return;
      ended = true;
      if (eventStream) eventStream.close();
      store.live = false;
      pollNow();  // the stream ending may mean the node went away: look at once
      eventRetry = setTimeout(connectEvents, 3000);
    }
    eventSeen = Date.now();
    eventStream = client.events(function () {
      if (eventTimer) return;  // a burst of changes becomes one refresh
      eventTimer = setTimeout(function () { eventTimer = null; pollNow(); }, 100);
    }, function () {
      store.live = true;
      pollNow();
    }, end, function () { eventSeen = Date.now(); });
    eventStream.end = end;
  }
  // The node writes a comment line every 5 s; a stream silent for 12 s (a frozen node, a
  // cut cable) is treated as gone.
  setInterval(function () {
    if (store.live && eventStream && Date.now() - eventSeen > 12000) eventStream.end();
  }, 2000);

  function pollNow() {
    pollGeneration += 1;  // an answer still on its way is dropped
    return poll();
  }

  function setApiBase(base, persist) {
    var normalized = MoteyApi.normalizeBase(base);
    store.apiBase = normalized;
    client = new MoteyApi.Client(normalized, undefined, authHooks);
    store.auth.needLogin = false;  // try the token with this node; a 401 asks again
    store.node = null;
    store.nodes = [];
    store.services = [];
    store.capabilities = [];
    store.status = null;
    store.connected = null;
    store.connectionError = '';
    store.unreachableSince = null;
    store.lastOk = null;
    store.owners = [];
    store.live = false;
    connectEvents();
    if (persist) {
      var isDefault = normalized === store.defaultBase;
      storageSet(STORAGE_API, isDefault ? null : normalized);
      var url = new URL(window.location.href);
      if (isDefault) url.searchParams.delete('api');
      else url.searchParams.set('api', normalized);
      window.history.replaceState(null, '', url.toString());
    }
    pollNow();
  }

  function setPollMs(ms) {
    store.pollMs = ms;
    storageSet(STORAGE_POLL, String(ms));
    var url = new URL(window.location.href);
    if (url.searchParams.has('poll')) {
      url.searchParams.set('poll', String(ms));
      window.history.replaceState(null, '', url.toString());
    }
    schedulePoll(ms);
  }

  var toastCounter = 0;
  function toast(kind, text) {
    var id = ++toastCounter;
    store.toasts.push({ id: id, kind: kind, text: text });
    while (store.toasts.length > 3) store.toasts.shift();
    setTimeout(function () {
      var i = store.toasts.findIndex(function (t) { return t.id === id; });
      if (i >= 0) store.toasts.splice(i, 1);
    }, 6000);
  }

  function confirmAction(options) {
    return new Promise(function (resolve) {
      store.confirm = {
        title: options.title,
        body: options.body,
        confirmLabel: options.confirmLabel || 'OK',
        danger: options.danger !== false,
        resolve: function (answer) { store.confirm = null; resolve(answer); }
      };
    });
  }

  function nodeLabel(ip) {
    if (!ip) return null;
    var node = store.nodes.find(function (n) { return n.ip === ip; });
    return node && node.name ? node.name : null;
  }

  function routeFromHash() {
    var id = (window.location.hash || '').replace(/^#\/?/, '').split(/[/?]/)[0];
    var known = PAGES.some(function (p) { return p.id === id; }) || id === 'settings';
    store.page = known ? id : 'overview';
  }

  // ---------------------------------------------------------------- components

  var common = {
    methods: {
      stateClass: stateClass,
      fmtTime: fmtTime,
      fmtAgo: function (t) { return fmtAgo(t, store.now); },
      fmtClock: fmtClock,
      fmtBytes: fmtBytes,
      shortId: shortId,
      capabilityLabel: capabilityLabel,
      capabilityTitle: capabilityTitle,
      capabilityBadges: capabilityBadges,
      nodeLabel: nodeLabel,
      can: can
    }
  };

  var StateBadge = {
    props: { state: String },
    template: '<span class="badge state-badge" :class="cls" :data-state="state">{{ state || "—" }}</span>',
    computed: { cls: function () { return stateClass(this.state); } }
  };

  var OverviewPage = {
    mixins: [common],
    components: { StateBadge: StateBadge },
    setup: function () { return { store: store, SERVICE_STATES: SERVICE_STATES }; },
    computed: {
      self: function () { return store.node; },
      reachability: function () { return countBy(store.nodes, 'state', ['REACHABLE', 'UNREACHABLE']); },
      lifecycles: function () {
        var counts = countBy(store.nodes, 'lifecycle', []);
        return LIFECYCLE_PHASES.concat(Object.keys(counts).filter(function (k) {
          return LIFECYCLE_PHASES.indexOf(k) < 0;
        })).filter(function (k) { return counts[k]; }).map(function (k) {
          return { phase: k, count: counts[k] };
        });
      },
      serviceCounts: function () { return countBy(store.services, 'state', SERVICE_STATES); },
      activeServices: function () {
        return store.services.filter(function (s) { return s.state !== 'TERMINATED'; }).length;
      },
      localImages: function () {
        var ip = store.node && store.node.ip;
        var n = 0;
        store.services.forEach(function (s) {
          (s.images || []).forEach(function (img) {
            if (img.node === ip && img.state === 'RUNNING') n += 1;
          });
        });
        return n;
      },
      resources: function () {
        var st = store.status;
        if (!st) return [];
        return [
          { name: 'CPU', percent: st.cpu && st.cpu.percent,
            detail: st.cpu ? st.cpu.count + ' cores' : '' },
          { name: 'Memory', percent: st.memory && st.memory.percent,
            detail: st.memory ? fmtBytes(st.memory.used) + ' of ' + fmtBytes(st.memory.total) : '' },
          { name: 'Disk', percent: st.disk && st.disk.percent,
            detail: st.disk ? fmtBytes(st.disk.free) + ' free of ' + fmtBytes(st.disk.total) : '' }
        ].filter(function (r) { return typeof r.percent === 'number'; });
      },
      events: function () {
        var list = [];
        store.services.forEach(function (s) {
          (s.history || []).forEach(function (h) {
            list.push({ at: h.at, state: h.state, message: h.message, service: s.service_name, id: s.id });
          });
        });
        list.sort(function (a, b) { return b.at - a.at; });
        return list.slice(0, 8);
      }
    },
    methods: {
      barClass: function (p) { return p >= 90 ? 'bg-danger' : (p >= 70 ? 'bg-warning' : 'bg-success'); }
    },
    template: `
<div data-testid="page-overview">
  <div class="row g-3">
    <div class="col-lg-5">
      <div class="card h-100" data-testid="this-node">
        <div class="card-header d-flex align-items-center">
          <span class="fw-semibold">This node</span>
          <span v-if="self" class="ms-auto d-flex gap-1">
            <state-badge :state="self.lifecycle"></state-badge>
          </span>
        </div>
        <div class="card-body" v-if="self">
          <h3 class="h4 mb-1" data-testid="this-node-name">{{ self.name }}</h3>
          <div class="text-body-secondary small mb-3 font-monospace">{{ self.id }}</div>
          <div v-if="self.lifecycle_reason" class="alert alert-warning py-1 px-2 small">
            {{ self.lifecycle }}: {{ self.lifecycle_reason }}
          </div>
          <dl class="row small mb-3">
            <dt class="col-4">Address</dt><dd class="col-8 font-monospace">{{ self.ip }}<span v-if="self.ports && self.ports.api">:{{ self.ports.api }}</span></dd>
            <dt class="col-4">Version</dt><dd class="col-8">{{ self.version || '—' }}</dd>
            <dt class="col-4">Capabilities</dt>
            <dd class="col-8">
              <span v-for="c in capabilityBadges(self.capabilities)" :key="c.label" class="badge text-bg-light border me-1" :title="c.title">{{ c.label }}</span>
              <span v-if="!self.capabilities || !self.capabilities.length" class="text-body-secondary">none</span>
            </dd>
            <dt class="col-4">Images here</dt><dd class="col-8">{{ localImages }} running</dd>
          </dl>
          <div v-for="r in resources" :key="r.name" class="mb-2">
            <div class="d-flex small"><span>{{ r.name }}</span><span class="ms-auto text-body-secondary">{{ r.percent.toFixed(0) }} % · {{ r.detail }}</span></div>
            <div class="progress" role="progressbar" :aria-label="r.name" :aria-valuenow="r.percent" aria-valuemin="0" aria-valuemax="100" style="height: .6rem">
              <div class="progress-bar" :class="barClass(r.percent)" :style="{ width: r.percent + '%' }"></div>
            </div>
          </div>
        </div>
        <div class="card-body text-body-secondary" v-else>Waiting for the node…</div>
      </div>
    </div>
    <div class="col-lg-7">
      <div class="row g-3">
        <div class="col-md-6">
          <a class="card h-100 text-decoration-none summary-card" href="#/nodes" data-testid="summary-nodes">
            <div class="card-header fw-semibold">Cluster nodes</div>
            <div class="card-body">
              <div class="display-6 mb-2" data-testid="nodes-total">{{ store.nodes.length }}</div>
              <div class="d-flex flex-wrap gap-2 mb-2">
                <span class="badge text-bg-success" data-testid="nodes-reachable">{{ reachability.REACHABLE || 0 }} reachable</span>
                <span class="badge" :class="reachability.UNREACHABLE ? 'text-bg-danger' : 'text-bg-light border'" data-testid="nodes-unreachable">{{ reachability.UNREACHABLE || 0 }} unreachable</span>
              </div>
              <div class="d-flex flex-wrap gap-2">
                <span v-for="l in lifecycles" :key="l.phase" class="badge" :class="stateClass(l.phase)">{{ l.count }} {{ l.phase }}</span>
              </div>
            </div>
          </a>
        </div>
        <div class="col-md-6">
          <a class="card h-100 text-decoration-none summary-card" href="#/services" data-testid="summary-services">
            <div class="card-header fw-semibold">Services</div>
            <div class="card-body">
              <div class="display-6 mb-2">{{ store.services.length }} <small class="fs-6 text-body-secondary">{{ activeServices }} active</small></div>
              <div class="d-flex flex-wrap gap-2">
                <span v-for="s in SERVICE_STATES" :key="s" class="badge" :class="serviceCounts[s] ? stateClass(s) : 'text-bg-light border text-body-tertiary'" :data-testid="'services-' + s">{{ serviceCounts[s] }} {{ s }}</span>
              </div>
            </div>
          </a>
        </div>
        <div class="col-12">
          <div class="card">
            <div class="card-header fw-semibold">Recent events</div>
            <ul class="list-group list-group-flush small" data-testid="events">
              <li v-for="e in events" :key="e.id + e.at + e.state" class="list-group-item d-flex gap-2 align-items-center">
                <span class="text-body-secondary font-monospace" :title="fmtTime(e.at)">{{ fmtAgo(e.at) }}</span>
                <state-badge :state="e.state"></state-badge>
                <span class="fw-semibold">{{ e.service }}</span>
                <span class="text-body-secondary text-truncate">{{ e.message }}</span>
              </li>
              <li v-if="!events.length" class="list-group-item text-body-secondary">No services yet — <a href="#/deploy">deploy one</a>.</li>
            </ul>
          </div>
        </div>
      </div>
    </div>
  </div>
</div>`
  };

  // An image's output, followed live (GET .../logs?follow=1) while the panel is open.
  var LOG_LIMIT = 200000;
  var LogPanel = {
    props: ['serviceId', 'imageId'],
    setup: function () { return { text: Vue.ref(''), ended: Vue.ref(''), handle: null }; },
    mounted: function () {
      var self = this;
      var path = '/v1/service/' + encodeURIComponent(this.serviceId) + '/images/' +
        encodeURIComponent(this.imageId) + '/logs?tail=200&follow=1';
      // Server-Sent Events: the node's comment lines let it notice a closed panel.
      this.handle = client.sse(path, function (kind, data) {
        if (kind === 'end') {
          var reason = data;
          try { reason = JSON.parse(data); } catch (e) { /* plain text */ }
          self.ended = 'log stream ended: ' + reason;
          return;
        }
        var text = self.text + data + '\n';
        self.text = text.length > LOG_LIMIT ? text.slice(text.length - LOG_LIMIT) : text;
        Vue.nextTick(function () {
          var pre = self.$refs.pre;
          if (pre) pre.scrollTop = pre.scrollHeight;
        });
      }, null, function (err) {
        if (!self.ended) self.ended = err ? 'log stream ended: ' + err.message : 'log stream ended';
      });
    },
    beforeUnmount: function () { if (this.handle) this.handle.close(); },
    template: `
<div class="log-panel">
  <pre ref="pre" class="bg-dark text-light small p-2 mb-1" style="max-height: 20rem; overflow: auto" data-testid="log-output">{{ text }}</pre>
  <div v-if="ended" class="small text-body-secondary" data-testid="log-ended">{{ ended }}</div>
</div>`
  };

  var ServicesPage = {
    mixins: [common],
    components: { StateBadge: StateBadge, LogPanel: LogPanel },
    setup: function () {
      return {
        store: store,
        filter: Vue.ref(''),
        hideTerminated: Vue.ref(storageGet('motey.hideTerminated') === '1'),
        busy: Vue.reactive({}),
        logsOpen: Vue.reactive({})
      };
    },
    watch: {
      hideTerminated: function (v) { storageSet('motey.hideTerminated', v ? '1' : null); }
    },
    computed: {
      shown: function () {
        var text = this.filter.trim().toLowerCase();
        var hide = this.hideTerminated;
        return store.services.filter(function (s) {
          if (hide && s.state === 'TERMINATED') return false;
          if (!text) return true;
          return (s.service_name + ' ' + s.id + ' ' + s.state).toLowerCase().indexOf(text) >= 0;
        }).slice().sort(function (a, b) {
          var ta = a.state === 'TERMINATED' ? 1 : 0;
          var tb = b.state === 'TERMINATED' ? 1 : 0;
          if (ta !== tb) return ta - tb;
          return (b.created_at || 0) - (a.created_at || 0);
        });
      }
    },
    methods: {
      setCellScope: function (on) {
        store.cellScope = on;
        storageSet('motey.cellScope', on ? '1' : null);
        pollNow();
      },
      foreign: function (s) { return !!(s.owner && store.node && s.owner.id !== store.node.id); },
      silentOwners: function () { return store.owners.filter(function (o) { return !o.answered; }); },
      toggleLogs: function (img) { this.logsOpen[img.id] = !this.logsOpen[img.id]; },
      canTerminate: function (s) {
        return s.state !== 'TERMINATED' && s.state !== 'STOPPING' && !this.foreign(s);
      },
      terminate: function (s) {
        var self = this;
        var running = (s.images || []).filter(function (i) { return i.node; });
        var nodes = Array.from(new Set(running.map(function (i) {
          return nodeLabel(i.node) || i.node;
        })));
        confirmAction({
          title: 'Terminate service ' + s.service_name + '?',
          body: 'Its ' + (s.images || []).length + ' image(s) will be stopped and removed' +
            (nodes.length ? ' on ' + nodes.join(', ') : '') + '. This cannot be undone.',
          confirmLabel: 'Terminate'
        }).then(function (yes) {
          if (!yes) return;
          self.busy[s.id] = true;
          client.terminate(s.id).then(function () {
            toast('success', 'Termination of ' + s.service_name + ' started.');
            pollNow();
          }, function (err) {
            toast('danger', 'Could not terminate ' + s.service_name + ': ' + err.message);
          }).then(function () { delete self.busy[s.id]; });
        });
      }
    },
    template: `
<div data-testid="page-services">
  <div class="d-flex flex-wrap gap-2 align-items-center mb-3">
    <h2 class="h4 mb-0 me-auto">Services <small class="text-body-secondary fs-6">{{ store.cellScope ? 'of the whole cell' : 'owned by this node' }}</small>
      <span v-if="store.live" class="badge text-bg-light border fw-normal align-middle" style="font-size: .7rem" title="changes arrive over GET /v1/events" data-testid="live">live</span></h2>
    <div class="form-check form-switch mb-0">
      <input class="form-check-input" type="checkbox" id="cell-scope" data-testid="cell-scope" :checked="store.cellScope" @change="setCellScope($event.target.checked)">
      <label class="form-check-label small" for="cell-scope">Whole cell</label>
    </div>
    <input class="form-control form-control-sm w-auto" type="search" placeholder="Filter by name, id or state" v-model="filter" aria-label="Filter services">
    <div class="form-check form-switch mb-0">
      <input class="form-check-input" type="checkbox" id="hide-terminated" v-model="hideTerminated">
      <label class="form-check-label small" for="hide-terminated">Hide terminated</label>
    </div>
    <a v-if="can('operator')" class="btn btn-primary btn-sm" href="#/deploy">Deploy…</a>
  </div>
  <div v-for="o in silentOwners()" :key="o.ip" class="alert alert-warning py-2" data-testid="silent-owner">
    Owner {{ o.name || o.ip }} ({{ o.ip }}) did not answer: {{ o.message }}
  </div>
  <div v-if="!store.services.length" class="text-body-secondary border rounded p-4 text-center">
    No services on this node yet. <a href="#/deploy">Deploy a blueprint.</a>
  </div>
  <div v-else-if="!shown.length" class="text-body-secondary">No service matches.</div>
  <div v-for="s in shown" :key="s.id" class="card mb-3 service-card" :class="{ 'border-primary': store.highlight === s.id, 'opacity-75': s.state === 'TERMINATED' }"
       data-testid="service-card" :data-service-id="s.id" :data-service-name="s.service_name">
    <div class="card-header d-flex flex-wrap align-items-center gap-2">
      <span class="fw-semibold fs-5">{{ s.service_name }}</span>
      <state-badge :state="s.state" data-testid="service-state"></state-badge>
      <span class="text-body-secondary small" data-testid="service-message">{{ s.state_message }}</span>
      <span v-if="s.owner" class="badge text-bg-light border" data-testid="service-owner" :title="'owned by ' + s.owner.ip">owner {{ s.owner.name || s.owner.ip }}</span>
      <span class="ms-auto small text-body-secondary font-monospace" :title="s.id">{{ shortId(s.id) }}</span>
      <span class="small text-body-secondary" :title="fmtTime(s.created_at)">{{ fmtAgo(s.created_at) }}</span>
      <button v-if="can('operator')" class="btn btn-outline-danger btn-sm" data-testid="terminate" :disabled="!canTerminate(s) || busy[s.id]" @click="terminate(s)">Terminate</button>
    </div>
    <div class="table-responsive">
      <table class="table table-sm mb-0 align-middle">
        <thead><tr class="small text-body-secondary"><th>Image</th><th>Engine</th><th>Node</th><th>State</th><th>Message</th><th></th></tr></thead>
        <tbody>
          <template v-for="img in s.images" :key="img.id">
          <tr data-testid="image-row" :data-image-id="img.id">
            <td class="font-monospace">{{ img.name }}
              <span v-for="(c, ci) in img.capabilities" :key="ci" class="badge text-bg-light border ms-1" title="required capability">{{ c }}</span>
            </td>
            <td>{{ img.engine }}</td>
            <td data-testid="image-node">
              <template v-if="img.node"><span v-if="nodeLabel(img.node)" class="me-2">{{ nodeLabel(img.node) }}</span><span class="font-monospace text-body-secondary small">{{ img.node }}</span></template>
              <span v-else-if="img.awaiting_placement" class="badge text-bg-warning" data-testid="image-awaiting" title="no node can run it yet; it is placed as soon as one qualifies">awaiting placement</span>
              <span v-else class="text-body-secondary small">not placed</span>
            </td>
            <td><state-badge :state="img.state" data-testid="image-state"></state-badge></td>
            <td class="small text-body-secondary">{{ img.state_message }}</td>
            <td><button class="btn btn-outline-secondary btn-sm" data-testid="logs-toggle" :disabled="foreign(s) || !img.node" @click="toggleLogs(img)">{{ logsOpen[img.id] ? 'Hide logs' : 'Logs' }}</button></td>
          </tr>
          <tr v-if="logsOpen[img.id]" data-testid="log-row"><td colspan="6"><log-panel :service-id="s.id" :image-id="img.id"></log-panel></td></tr>
          </template>
        </tbody>
      </table>
    </div>
    <details class="card-footer small">
      <summary class="text-body-secondary">History ({{ (s.history || []).length }})</summary>
      <ol class="list-unstyled mb-0 mt-2">
        <li v-for="h in s.history" :key="h.at + h.state" class="d-flex gap-2 mb-1">
          <span class="font-monospace text-body-secondary">{{ fmtTime(h.at) }}</span>
          <state-badge :state="h.state"></state-badge>
          <span>{{ h.message }}</span>
        </li>
      </ol>
    </details>
  </div>
</div>`
  };

  var NodesPage = {
    mixins: [common],
    components: { StateBadge: StateBadge },
    setup: function () { return { store: store }; },
    methods: {
      apiOf: function (n) {
        var port = (n.ports && n.ports.api) || MoteyApi.DEFAULT_PORT;
        var host = n.ip && n.ip.indexOf(':') >= 0 ? '[' + n.ip + ']' : n.ip;
        // The nodes of a cell all speak what this one does (https in secure mode).
        var scheme = /^https:/.test(store.apiBase) ? 'https://' : 'http://';
        return scheme + host + ':' + port;
      },
      portsTitle: function (n) {
        return Object.keys(n.ports || {}).map(function (k) { return k + ' ' + n.ports[k]; }).join(', ');
      },
      open: function (n) {
        setApiBase(this.apiOf(n), true);
        toast('info', 'Now showing node ' + (n.name || n.ip) + '.');
        window.location.hash = '#/overview';
      }
    },
    template: `
<div data-testid="page-nodes">
  <div class="d-flex align-items-center mb-3">
    <h2 class="h4 mb-0 me-auto">Nodes <small class="text-body-secondary fs-6">known to this node</small></h2>
    <span class="small text-body-secondary">{{ store.nodes.length }} node(s)</span>
  </div>
  <div class="card table-responsive">
    <table class="table table-hover align-middle mb-0" data-testid="nodes-table">
      <thead><tr class="small text-body-secondary"><th>Name</th><th>ID</th><th>Address</th><th>Lifecycle</th><th>Reachability</th><th class="text-nowrap" title="when its last presence arrived: a node announces itself when it changes; while its broker session lasts it is reachable">Last presence</th><th title="images the node runs, as it last said">Images</th><th>Capabilities</th><th></th></tr></thead>
      <tbody>
        <tr v-for="n in store.nodes" :key="n.id || n.ip" data-testid="node-row" :data-node-id="n.id" :data-node-name="n.name" :class="{ 'table-danger': n.state === 'UNREACHABLE' }">
          <td class="fw-semibold text-nowrap">{{ n.name || '—' }} <span v-if="n.self" class="badge text-bg-primary ms-1">this node</span></td>
          <td class="font-monospace small text-nowrap node-id" :title="n.id">{{ n.id || '—' }}</td>
          <td class="font-monospace small" :title="portsTitle(n)" data-testid="node-address">{{ n.ip }}<span v-if="n.ports && n.ports.api">:{{ n.ports.api }}</span></td>
          <td><state-badge :state="n.lifecycle" data-testid="node-lifecycle"></state-badge>
            <div v-if="n.lifecycle_reason" class="small text-body-secondary">{{ n.lifecycle_reason }}</div></td>
          <td><state-badge :state="n.state" data-testid="node-state"></state-badge></td>
          <td class="small text-nowrap" :title="fmtTime(n.last_seen)" data-testid="node-last-seen">{{ fmtAgo(n.last_seen) }}</td>
          <td class="small text-end" data-testid="node-images">{{ n.images == null ? '—' : n.images }}</td>
          <td class="small">
            <span v-for="c in capabilityBadges(n.capabilities)" :key="c.label" class="badge text-bg-light border me-1" :title="c.title">{{ c.label }}</span>
            <span v-if="!n.capabilities || !n.capabilities.length" class="text-body-secondary">none</span>
          </td>
          <td><button v-if="!n.self" class="btn btn-outline-secondary btn-sm" @click="open(n)" :title="'Point this page at ' + apiOf(n)">Open</button></td>
        </tr>
      </tbody>
    </table>
  </div>
</div>`
  };

  // Same rule as motey/schemas/capability.py: words separated by single spaces.
  var CAPABILITY_NAME = /^(?=.{1,128}$)[A-Za-z0-9_.:/-]+(?: [A-Za-z0-9_.:/-]+)*$/;

  var CapabilitiesPage = {
    mixins: [common],
    setup: function () {
      return {
        store: store,
        form: Vue.reactive({ capability: '', capability_type: 'static', value: '' }),
        formError: Vue.ref(''),
        sending: Vue.ref(false)
      };
    },
    computed: {
      sorted: function () {
        return store.capabilities.slice().sort(function (a, b) {
          return a.capability.localeCompare(b.capability);
        });
      },
      nameProblem: function () {
        var v = this.form.capability.trim();
        if (!v) return '';
        return CAPABILITY_NAME.test(v) ? '' : 'letters, digits and _ . : / - in words separated by single spaces, at most 128';
      }
    },
    methods: {
      add: function () {
        var self = this;
        var entry = {
          capability: this.form.capability.trim(),
          capability_type: this.form.capability_type.trim()
        };
        if (this.form.value.trim()) entry.value = this.form.value.trim();
        if (!entry.capability || this.nameProblem) { this.formError = 'Enter a valid capability name.'; return; }
        if (!entry.capability_type) { this.formError = 'Enter a capability type.'; return; }
        this.formError = '';
        this.sending = true;
        client.addCapabilities([entry]).then(function (r) {
          if (r.status === 304) {
            toast('info', 'This node already has ' + entry.capability + '.');
          } else {
            toast('success', 'Capability ' + entry.capability + ' added.');
            self.form.capability = '';
            self.form.value = '';
          }
          pollNow();
        }, function (err) {
          self.formError = (err.field ? err.field + ': ' : '') + err.message;
        }).then(function () { self.sending = false; });
      },
      remove: function (cap) {
        confirmAction({
          title: 'Remove capability ' + cap.capability + '?',
          body: 'Images that need ' + cap.capability + ' will no longer be placed on this node.',
          confirmLabel: 'Remove'
        }).then(function (yes) {
          if (!yes) return;
          client.removeCapabilities([{ capability: cap.capability, capability_type: cap.capability_type }])
            .then(function (r) {
              toast(r.status === 304 ? 'info' : 'success', r.status === 304
                ? cap.capability + ' was not removed (it does not come from REST).'
                : 'Capability ' + cap.capability + ' removed.');
              pollNow();
            }, function (err) { toast('danger', 'Could not remove ' + cap.capability + ': ' + err.message); });
        });
      }
    },
    template: `
<div data-testid="page-capabilities">
  <h2 class="h4 mb-3">Capabilities <small class="text-body-secondary fs-6">of {{ store.node ? store.node.name : 'this node' }}</small></h2>
  <div class="row g-3">
    <div class="col-lg-8">
      <div class="card table-responsive">
        <table class="table align-middle mb-0" data-testid="capabilities-table">
          <thead><tr class="small text-body-secondary"><th>Capability</th><th>Type</th><th>Value</th><th>Source</th><th></th></tr></thead>
          <tbody>
            <tr v-for="c in sorted" :key="c.capability + '|' + c.source + '|' + c.value" data-testid="capability-row" :data-capability="c.capability" :data-source="c.source">
              <td class="font-monospace">{{ c.capability }}</td>
              <td>{{ c.capability_type }}</td>
              <td class="font-monospace">{{ c.value === undefined || c.value === null ? '' : c.value }}</td>
              <td><span class="badge text-bg-light border">{{ c.source }}</span></td>
              <td class="text-end">
                <button v-if="c.source === 'rest' && can('operator')" class="btn btn-outline-danger btn-sm" data-testid="remove-capability" @click="remove(c)">Remove</button>
                <span v-else class="small text-body-secondary" :title="'Managed by ' + c.source + '; change it there'">managed by {{ c.source }}</span>
              </td>
            </tr>
            <tr v-if="!sorted.length"><td colspan="5" class="text-body-secondary">This node has no capabilities.</td></tr>
          </tbody>
        </table>
      </div>
    </div>
    <div class="col-lg-4">
      <form v-if="can('operator')" class="card" @submit.prevent="add" data-testid="add-capability-form" novalidate>
        <div class="card-header fw-semibold">Add a capability</div>
        <div class="card-body">
          <div class="mb-2">
            <label class="form-label small" for="cap-name">Capability</label>
            <input id="cap-name" class="form-control font-monospace" :class="{ 'is-invalid': nameProblem }" v-model="form.capability" placeholder="e.g. zigbee" autocomplete="off" data-testid="capability-name">
            <div class="invalid-feedback">{{ nameProblem }}</div>
          </div>
          <div class="mb-2">
            <label class="form-label small" for="cap-type">Type</label>
            <input id="cap-type" class="form-control" v-model="form.capability_type" list="cap-types" data-testid="capability-type">
            <datalist id="cap-types"><option value="static"></option><option value="hardware"></option><option value="network"></option><option value="sensor"></option><option value="engine"></option></datalist>
          </div>
          <div class="mb-3">
            <label class="form-label small" for="cap-value">Value <span class="text-body-secondary">(optional, for requirements like arch=arm64)</span></label>
            <input id="cap-value" class="form-control font-monospace" v-model="form.value" autocomplete="off">
          </div>
          <div v-if="formError" class="alert alert-danger py-1 px-2 small" data-testid="capability-error">{{ formError }}</div>
          <button class="btn btn-primary" type="submit" :disabled="sending" data-testid="add-capability">Add</button>
        </div>
      </form>
    </div>
  </div>
</div>`
  };

  var DeployPage = {
    mixins: [common],
    components: { StateBadge: StateBadge },
    setup: function () {
      return {
        store: store,
        text: Vue.ref(storageGet('motey.draft') || ''),
        fileName: Vue.ref(''),
        clientErrors: Vue.ref([]),
        checkedData: Vue.ref(null),
        serverError: Vue.ref(null),
        sending: Vue.ref(false),
        dragging: Vue.ref(false)
      };
    },
    created: function () {
      this.checkTimer = null;
      if (this.text) this.runCheck();
    },
    computed: {
      lineCount: function () { return Math.max(1, this.text.split('\n').length); },
      errorLines: function () {
        var lines = {};
        this.clientErrors.forEach(function (e) { if (e.line) lines[e.line] = true; });
        if (this.serverError && this.serverError.line) lines[this.serverError.line] = true;
        return lines;
      },
      deployed: function () {
        // The service deployed last from this page; kept while the page is open.
        var id = store.highlight;
        return id ? store.services.find(function (s) { return s.id === id; }) || null : null;
      },
      canDeploy: function () {
        return !this.sending && this.text.trim() && !this.clientErrors.length && store.connected !== false;
      },
      serverHeadline: function () {
        var e = this.serverError;
        if (!e) return '';
        if (e.kind === 'network') return 'Not sent: the node does not answer';
        return 'Rejected by the node (HTTP ' + e.status + (e.error ? ', ' + e.error : '') + ')';
      }
    },
    watch: {
      text: function (value) {
        var self = this;
        storageSet('motey.draft', value || null);
        this.serverError = null;
        if (this.checkTimer) clearTimeout(this.checkTimer);
        this.checkTimer = setTimeout(function () { self.runCheck(); }, 200);
      }
    },
    methods: {
      runCheck: function () {
        if (this.checkTimer) { clearTimeout(this.checkTimer); this.checkTimer = null; }
        if (!this.text.trim()) { this.clientErrors = []; this.checkedData = null; return; }
        var result = MoteyBlueprint.check(this.text);
        this.clientErrors = result.errors;
        this.checkedData = result.data;
      },
      loadExample: function () { this.text = MoteyBlueprint.EXAMPLE; this.fileName = ''; },
      readFile: function (file) {
        var self = this;
        if (!file) return;
        if (file.size > 1024 * 1024) { toast('danger', file.name + ' is larger than 1 MB.'); return; }
        file.text().then(function (content) {
          self.text = content;
          self.fileName = file.name;
          self.runCheck();
        });
      },
      onFile: function (event) {
        this.readFile(event.target.files && event.target.files[0]);
        event.target.value = '';
      },
      onDrop: function (event) {
        this.dragging = false;
        this.readFile(event.dataTransfer && event.dataTransfer.files && event.dataTransfer.files[0]);
      },
      syncScroll: function (event) {
        this.$refs.gutter.scrollTop = event.target.scrollTop;
      },
      goToLine: function (line) {
        if (!line) return;
        var area = this.$refs.editor;
        var lines = this.text.split('\n');
        var start = 0;
        for (var i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
        var end = start + (lines[line - 1] || '').length;
        area.focus();
        area.setSelectionRange(start, end);
      },
      deploy: function () {
        var self = this;
        this.runCheck();
        if (this.clientErrors.length || !this.text.trim()) return;
        this.sending = true;
        this.serverError = null;
        var text = this.text;
        client.deploy(text).then(function (r) {
          var service = r.data || {};
          store.highlight = service.id;
          if (service.id && !store.services.some(function (s) { return s.id === service.id; })) {
            store.services.push(service);
          }
          toast('success', 'Service ' + service.service_name + ' accepted by the node.');
          pollNow();
        }, function (err) {
          self.serverError = {
            kind: err.kind,
            status: err.status,
            error: err.error,
            field: err.field,
            message: err.message,
            line: MoteyBlueprint.locateField(text, err.field)
          };
        }).then(function () { self.sending = false; });
      },
      clear: function () { this.text = ''; this.fileName = ''; store.highlight = null; }
    },
    template: `
<div data-testid="page-deploy">
  <h2 class="h4 mb-1">Deploy a service</h2>
  <p class="text-body-secondary small mb-3">This node places each image on a node of the cluster that has all the image's capabilities, starts it there, and reports its state here.</p>
  <div class="row g-3">
    <div class="col-lg-7">
      <div class="d-flex flex-wrap gap-2 mb-2 align-items-center">
        <label class="btn btn-outline-secondary btn-sm mb-0">Upload YAML…
          <input type="file" accept=".yaml,.yml,application/x-yaml,text/yaml,text/plain" class="d-none" @change="onFile" data-testid="blueprint-file">
        </label>
        <button class="btn btn-outline-secondary btn-sm" type="button" @click="loadExample" data-testid="load-example">Load example</button>
        <button class="btn btn-outline-secondary btn-sm" type="button" @click="clear">Clear</button>
        <span v-if="fileName" class="small text-body-secondary">from {{ fileName }}</span>
      </div>
      <div class="editor border rounded" :class="{ 'border-primary': dragging, 'border-danger': clientErrors.length || serverError }"
           @dragover.prevent="dragging = true" @dragleave="dragging = false" @drop.prevent="onDrop">
        <div class="gutter font-monospace" ref="gutter" aria-hidden="true">
          <div v-for="n in lineCount" :key="n" :class="{ 'error-line': errorLines[n] }">{{ n }}</div>
        </div>
        <textarea ref="editor" class="font-monospace" v-model="text" @scroll="syncScroll" spellcheck="false"
                  placeholder="Paste a blueprint here, drop a .yaml file, or load the example." aria-label="Blueprint (YAML)" data-testid="blueprint-text"></textarea>
      </div>
      <div class="d-flex gap-2 mt-2 align-items-center">
        <button v-if="can('operator')" class="btn btn-primary" type="button" :disabled="!canDeploy" @click="deploy" data-testid="deploy">
          <span v-if="sending" class="spinner-border spinner-border-sm me-1"></span>Deploy
        </button>
        <span v-else class="small text-body-secondary" data-testid="deploy-not-allowed">Your role ({{ store.auth.role || 'none' }}) may not deploy.</span>
        <span class="small text-body-secondary">POST {{ store.apiBase }}/v1/service</span>
      </div>
    </div>
    <div class="col-lg-5">
      <div class="card mb-3" data-testid="check-panel">
        <div class="card-header fw-semibold">Check</div>
        <div class="card-body small">
          <div v-if="serverError" class="alert alert-danger" data-testid="server-error">
            <div class="fw-semibold">{{ serverHeadline }}</div>
            <div v-if="serverError.field" class="mt-1">Field <code class="mx-1" data-testid="server-error-field">{{ serverError.field }}</code><a v-if="serverError.line" href="#" @click.prevent="goToLine(serverError.line)">line {{ serverError.line }}</a></div>
            <div class="mt-1" data-testid="server-error-message">{{ serverError.message }}</div>
          </div>
          <div v-if="!text.trim()" class="text-body-secondary">Paste or upload a blueprint; it is checked as you type.</div>
          <ul v-else-if="clientErrors.length" class="list-unstyled mb-0" data-testid="client-errors">
            <li v-for="e in clientErrors" :key="e.field + e.message" class="mb-2 text-danger" data-testid="client-error" :data-field="e.field">
              <code class="me-1">{{ e.field }}</code>
              <a v-if="e.line" href="#" class="small me-1" @click.prevent="goToLine(e.line)">line {{ e.line }}</a>
              <div class="text-body">{{ e.message }}</div>
            </li>
          </ul>
          <div v-else-if="checkedData && !serverError" data-testid="client-ok">
            <div class="text-success fw-semibold mb-2">Blueprint looks valid.</div>
            <div>Service <code>{{ checkedData.service_name }}</code> with {{ checkedData.images.length }} image(s):</div>
            <ul class="mb-0">
              <li v-for="(img, i) in checkedData.images" :key="i"><code>{{ img.name }}</code> on {{ img.engine || 'the default engine' }}<span v-if="img.capabilities && img.capabilities.length">, needs {{ img.capabilities.join(', ') }}</span></li>
            </ul>
            <div class="text-body-secondary mt-2">The node checks the engine's parameters and the image when you deploy.</div>
          </div>
        </div>
      </div>
      <div v-if="deployed" class="card border-primary" data-testid="deployed">
        <div class="card-header d-flex align-items-center gap-2">
          <span class="fw-semibold">{{ deployed.service_name }}</span>
          <state-badge :state="deployed.state" data-testid="deployed-state"></state-badge>
          <a class="ms-auto small" href="#/services">Services page</a>
        </div>
        <div class="card-body small">
          <div class="text-body-secondary mb-2">{{ deployed.state_message || 'accepted' }} · <span class="font-monospace">{{ deployed.id }}</span></div>
          <div v-for="img in deployed.images" :key="img.id" class="d-flex gap-2 align-items-center mb-1">
            <state-badge :state="img.state"></state-badge>
            <code>{{ img.name }}</code>
            <span class="text-body-secondary">{{ img.node ? 'on ' + (nodeLabel(img.node) || img.node) : 'not placed yet' }}</span>
          </div>
        </div>
      </div>
    </div>
  </div>
</div>`
  };

  var SettingsPage = {
    setup: function () {
      return {
        store: store,
        base: Vue.ref(store.apiBase),
        poll: Vue.ref(store.pollMs),
        error: Vue.ref(''),
        probe: Vue.ref('')
      };
    },
    methods: {
      save: function () {
        try {
          setApiBase(this.base, true);
          this.base = store.apiBase;
          setPollMs(Number(this.poll));
          this.error = '';
          toast('success', 'Now talking to ' + store.apiBase + '.');
        } catch (e) { this.error = e.message; }
      },
      useDefault: function () { this.base = store.defaultBase; this.save(); },
      test: function () {
        var self = this;
        var base;
        try { base = MoteyApi.normalizeBase(this.base); } catch (e) { this.error = e.message; return; }
        this.error = '';
        this.probe = 'asking ' + base + ' …';
        new MoteyApi.Client(base, 4000, { token: authHooks.token }).get('/v1/node').then(function (n) {
          self.probe = 'answers: node ' + n.name + ' (' + n.ip + '), ' + n.lifecycle;
        }, function (err) { self.probe = 'no answer: ' + err.message; });
      }
    },
    template: `
<div data-testid="page-settings" class="col-lg-8">
  <h2 class="h4 mb-3">Settings</h2>
  <form class="card" @submit.prevent="save">
    <div class="card-body">
      <label class="form-label" for="api-base">Node API address</label>
      <div class="input-group mb-1">
        <input id="api-base" class="form-control font-monospace" v-model="base" placeholder="http://192.168.1.20:5023" data-testid="api-base">
        <button class="btn btn-outline-secondary" type="button" @click="test">Test</button>
      </div>
      <div class="form-text mb-1">Any node of the cluster; the page itself may come from elsewhere (the node must allow this page's origin in <code>[WEBSERVER] cors_origins</code>). Default: <code>{{ store.defaultBase }}</code>, where this page came from.</div>
      <div v-if="probe" class="small mb-2" data-testid="api-probe">{{ probe }}</div>
      <label class="form-label mt-2" for="poll">Refresh every</label>
      <select id="poll" class="form-select w-auto mb-3" v-model="poll">
        <option :value="500">0.5 s</option><option :value="1000">1 s</option><option :value="2000">2 s</option>
        <option :value="5000">5 s</option><option :value="10000">10 s</option>
        <option v-if="[500,1000,2000,5000,10000].indexOf(Number(poll)) < 0" :value="poll">{{ poll }} ms</option>
      </select>
      <div v-if="error" class="alert alert-danger py-1 px-2 small">{{ error }}</div>
      <div class="d-flex gap-2">
        <button class="btn btn-primary" type="submit" data-testid="save-settings">Save</button>
        <button class="btn btn-outline-secondary" type="button" @click="useDefault">Use the address this page came from</button>
      </div>
    </div>
  </form>
</div>`
  };

  var LoginPage = {
    setup: function () {
      return { store: store, token: Vue.ref(''), error: Vue.ref(''), sending: Vue.ref(false) };
    },
    methods: {
      submit: function () {
        var self = this;
        var token = this.token.trim();
        if (!token) { this.error = 'Enter an API token.'; return; }
        this.sending = true;
        this.error = '';
        client.whoami(token).then(function (who) {
          self.token = '';
          acceptLogin(token, who);
        }, function (err) {
          if (err.status === 401) self.error = 'This node does not accept that token.';
          else if (err.status === 429) {
            self.error = 'Too many failed attempts from this address; try again in ' +
              (err.retryAfter || 60) + ' s.';
          } else self.error = err.message;
        }).then(function () { self.sending = false; });
      }
    },
    template: `
<div class="container py-5" data-testid="page-login" style="max-width: 32rem">
  <h1 class="h3 mb-1"><img src="favicon.svg" alt="" width="28" height="28" class="me-2 align-text-top">Motey</h1>
  <p class="text-body-secondary mb-4">Node <code>{{ store.apiBase }}</code> asks for an API token.</p>
  <div v-if="store.auth.reason" class="alert alert-warning py-2 small" data-testid="login-reason">{{ store.auth.reason }}</div>
  <form class="card" @submit.prevent="submit">
    <div class="card-body">
      <label class="form-label" for="login-token">API token</label>
      <input id="login-token" type="password" class="form-control font-monospace mb-2" v-model="token" autocomplete="off" placeholder="motey_…" data-testid="login-token">
      <div class="form-text mb-3">From <code>motey cell init</code> (the cell's admin token) or <code>motey token create</code> on the node. It is kept in this browser tab only until you close it.</div>
      <div v-if="error" class="alert alert-danger py-1 px-2 small" data-testid="login-error">{{ error }}</div>
      <div class="d-flex gap-2 align-items-center">
        <button class="btn btn-primary" type="submit" :disabled="sending" data-testid="login-submit">Log in</button>
        <a class="small ms-auto" href="#/settings">Another node…</a>
      </div>
    </div>
  </form>
</div>`
  };

  var App = {
    mixins: [common],
    components: {
      OverviewPage: OverviewPage,
      ServicesPage: ServicesPage,
      NodesPage: NodesPage,
      CapabilitiesPage: CapabilitiesPage,
      DeployPage: DeployPage,
      SettingsPage: SettingsPage,
      LoginPage: LoginPage
    },
    setup: function () { return { store: store, PAGES: PAGES }; },
    computed: {
      pages: function () {
        return PAGES.filter(function (p) { return p.id !== 'deploy' || can('operator'); });
      },
      pageComponent: function () { return store.page + '-page'; },
      pollSeconds: function () { return store.pollMs / 1000; },
      apiHost: function () { return store.apiBase.replace(/^https?:\/\//, ''); }
    },
    methods: {
      retry: function () { pollNow(); },
      logout: logout,
      keydown: function (e) { if (e.key === 'Escape' && store.confirm) store.confirm.resolve(false); }
    },
    mounted: function () { window.addEventListener('keydown', this.keydown); },
    template: `
<login-page v-if="store.auth.needLogin && store.page !== 'settings'"></login-page>
<template v-else>
<nav class="navbar navbar-expand-md bg-dark border-bottom border-body sticky-top" data-bs-theme="dark">
  <div class="container-fluid">
    <a class="navbar-brand fw-semibold" href="#/overview"><img src="favicon.svg" alt="" width="24" height="24" class="me-2 align-text-top">Motey</a>
    <ul class="navbar-nav me-auto flex-row flex-wrap">
      <li class="nav-item" v-for="p in pages" :key="p.id">
        <a class="nav-link px-2" :class="{ active: store.page === p.id }" :href="'#/' + p.id" :data-testid="'nav-' + p.id">{{ p.title }}</a>
      </li>
    </ul>
    <span class="navbar-text small d-flex align-items-center gap-2" data-testid="connection">
      <span class="conn-dot" :class="store.connected === true ? 'ok' : (store.connected === false ? 'bad' : 'unknown')"></span>
      <span v-if="store.connected === true && store.node">{{ store.node.name }} · <span class="font-monospace">{{ apiHost }}</span></span>
      <span v-else-if="store.connected === false" class="text-danger-emphasis">unreachable · <span class="font-monospace">{{ apiHost }}</span></span>
      <span v-else>connecting…</span>
      <a class="nav-link px-2" :class="{ active: store.page === 'settings' }" href="#/settings" data-testid="nav-settings">Settings</a>
      <span v-if="store.auth.role && store.auth.mode !== 'open'" class="badge text-bg-secondary" data-testid="whoami" :data-role="store.auth.role" :title="'token ' + store.auth.name">{{ store.auth.name }} · {{ store.auth.role }}</span>
      <span v-else-if="store.auth.mode === 'open'" class="badge text-bg-warning" data-testid="whoami" data-role="open" title="[SECURITY] mode = open: this node asks for no token">open mode</span>
      <button v-if="store.auth.token" class="btn btn-sm btn-outline-light" type="button" @click="logout" data-testid="logout">Log out</button>
    </span>
  </div>
</nav>
<div v-if="store.connected === false" class="alert alert-danger rounded-0 mb-0 d-flex flex-wrap align-items-center gap-2 sticky-banner" role="alert" data-testid="unreachable-banner">
  <div class="me-auto">
    <strong>Node unreachable.</strong>
    The Motey node at <code>{{ store.apiBase }}</code> {{ store.connectionErrorKind === 'http' ? 'answers with an error' : 'does not answer' }} since {{ fmtClock(store.unreachableSince) }} ({{ store.connectionError }}).
    Retrying every {{ pollSeconds }} s.
    <span v-if="store.lastOk">What you see is from {{ fmtClock(store.lastOk) }} and may be out of date.</span>
    <span v-else>Nothing could be loaded yet.</span>
  </div>
  <button class="btn btn-sm btn-light" @click="retry" data-testid="retry">Retry now</button>
  <a class="btn btn-sm btn-outline-danger" href="#/settings">Choose another node</a>
</div>
<div v-if="store.node && store.node.security_mode === 'open'" class="alert alert-warning rounded-0 mb-0 py-1 small" role="alert" data-testid="open-mode-banner">
  <strong>Open mode:</strong> this node runs with <code>[SECURITY] mode = open</code> &mdash; no authentication, no encryption; anyone on the network controls it. See docs/security.md.
</div>
<main class="container-fluid py-3" :class="{ stale: store.connected === false }">
  <component :is="pageComponent"></component>
</main>
<div class="toast-container position-fixed bottom-0 end-0 p-3">
  <div v-for="t in store.toasts" :key="t.id" class="toast show align-items-center border-0" :class="'text-bg-' + t.kind" role="status" data-testid="toast">
    <div class="d-flex"><div class="toast-body">{{ t.text }}</div>
      <button type="button" class="btn-close btn-close-white me-2 m-auto" aria-label="Close" @click="store.toasts.splice(store.toasts.indexOf(t), 1)"></button></div>
  </div>
</div>
<template v-if="store.confirm">
  <div class="modal d-block" tabindex="-1" role="dialog" aria-modal="true" data-testid="confirm-dialog" @click.self="store.confirm.resolve(false)">
    <div class="modal-dialog modal-dialog-centered">
      <div class="modal-content">
        <div class="modal-header"><h5 class="modal-title">{{ store.confirm.title }}</h5>
          <button type="button" class="btn-close" aria-label="Close" @click="store.confirm.resolve(false)"></button></div>
        <div class="modal-body">{{ store.confirm.body }}</div>
        <div class="modal-footer">
          <button type="button" class="btn btn-secondary" @click="store.confirm.resolve(false)" data-testid="confirm-cancel">Cancel</button>
          <button type="button" class="btn" :class="store.confirm.danger ? 'btn-danger' : 'btn-primary'" @click="store.confirm.resolve(true)" data-testid="confirm-ok">{{ store.confirm.confirmLabel }}</button>
        </div>
      </div>
    </div>
  </div>
  <div class="modal-backdrop show"></div>
</template>
</template>`
  };

  // ---------------------------------------------------------------- start

  routeFromHash();
  window.addEventListener('hashchange', routeFromHash);
  setInterval(function () { store.now = Date.now(); }, 1000);
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden) pollNow();
  });
  Vue.createApp(App).mount('#app');
  pollNow();
  connectEvents();

  // For the browser tests and for the curious operator's console.
  window.Motey = { store: store, setApiBase: setApiBase, pollNow: pollNow, logout: logout };
})();
