/*
 * Talking to a Motey node's REST API (see motey/communication/api/openapi.yaml).
 * Every request has a timeout, so that a node that went away is noticed quickly.
 */
(function (root) {
  'use strict';

  var DEFAULT_PORT = 5023;

  function ApiError(message, info) {
    this.name = 'ApiError';
    this.message = message;
    info = info || {};
    this.kind = info.kind || 'http';      // 'network' | 'http'
    this.status = info.status || null;    // HTTP status
    this.error = info.error || null;      // the node's error class, e.g. ValidationError
    this.field = info.field || null;      // the offending field, e.g. images[0].name
    this.retryAfter = info.retryAfter || null;  // seconds, with a 429
  }
  ApiError.prototype = Object.create(Error.prototype);
  ApiError.prototype.constructor = ApiError;

  /* "node1:5023/" -> "http://node1:5023"; throws on something that is no URL. */
  function normalizeBase(text) {
    var value = String(text || '').trim();
    if (!value) throw new Error('enter the address of a Motey node, e.g. http://192.168.1.20:5023');
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) value = 'http://' + value;
    var url = new URL(value);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new Error('the address must start with http:// or https://');
    }
    var path = url.pathname.replace(/\/+$/, '');
    return url.origin + path;
  }

  /* The API this page talks to when nothing else was chosen: the node that served it. */
  function defaultBase(location) {
    if (location.protocol === 'http:' || location.protocol === 'https:') return location.origin;
    return 'http://127.0.0.1:' + DEFAULT_PORT;
  }

  /* A random Idempotency-Key (crypto.randomUUID needs a secure context; this does not). */
  function newKey() {
    var bytes = new Uint8Array(16);
    globalThis.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return (b + 0x100).toString(16).slice(1);
    }).join('');
  }

  /*
   * auth (optional): { token: function () -> token or null, onUnauthorized: function (err) }.
   * The token is sent as "Authorization: Bearer"; a 401 answer calls onUnauthorized.
   */
  function Client(base, timeoutMs, auth) {
    this.base = base;
    this.timeoutMs = timeoutMs || 5000;
    this.auth = auth || null;
    // The blueprint whose POST got no answer, and the key it was sent with: posting the
    // same text again is a retry and reuses the key, so the node creates one service.
    this.unanswered = null;
  }

  Client.prototype.request = function (method, path, options) {
    options = options || {};
    var timeoutMs = options.timeoutMs || this.timeoutMs;
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, timeoutMs);
    var init = { method: method, cache: 'no-store', signal: controller.signal, headers: {} };
    if (options.idempotencyKey) init.headers['Idempotency-Key'] = options.idempotencyKey;
    var auth = this.auth;
    var token = options.token !== undefined ? options.token : (auth && auth.token ? auth.token() : null);
    if (token) init.headers['Authorization'] = 'Bearer ' + token;
    if (options.body !== undefined) {
      init.body = options.body;
      init.headers['Content-Type'] = options.contentType || 'application/json';
    }
    var url = this.base + path;
    return fetch(url, init).then(function (response) {
      return response.text().then(function (text) {
        clearTimeout(timer);
        var data = null;
        if (text) {
          try { data = JSON.parse(text); } catch (e) { data = text; }
        }
        if (!response.ok && response.status !== 304) {
          var body = data && typeof data === 'object' ? data : {};
          var error = new ApiError(body.message || ('HTTP ' + response.status + ' from ' + url), {
            kind: 'http',
            status: response.status,
            error: body.error,
            field: body.field,
            retryAfter: Number(response.headers.get('Retry-After')) || null
          });
          if (response.status === 401 && auth && auth.onUnauthorized && !options.token) {
            auth.onUnauthorized(error);
          }
          throw error;
        }
        return {
          status: response.status,
          data: data,
          location: response.headers.get('Location')
        };
      });
    }, function (err) {
      clearTimeout(timer);
      var message = err && err.name === 'AbortError'
        ? 'no answer within ' + (timeoutMs / 1000) + ' s'
        : 'cannot connect: ' + (err && err.message ? err.message : err);
      throw new ApiError(message, { kind: 'network' });
    });
  };

  Client.prototype.get = function (path) {
    return this.request('GET', path).then(function (r) { return r.data; });
  };
  /* Who a token belongs to; with token given, that one is tried (the login form). */
  Client.prototype.whoami = function (token) {
    return this.request('GET', '/v1/whoami', token ? { token: token } : {})
      .then(function (r) { return r.data; });
  };
  Client.prototype.deploy = function (yamlText, contentType) {
    var self = this;
    var retry = self.unanswered && self.unanswered.text === yamlText &&
      self.unanswered.contentType === contentType;
    var key = retry ? self.unanswered.key : newKey();
    self.unanswered = { text: yamlText, contentType: contentType, key: key };
    return this.request('POST', '/v1/service', {
      body: yamlText, contentType: contentType || 'application/x-yaml', timeoutMs: 60000, idempotencyKey: key
    }).then(function (result) {
      self.unanswered = null;
      return result;
    }, function (err) {
      if (err.kind !== 'network') self.unanswered = null;  // the node answered: no retry
      throw err;
    });
  };
  Client.prototype.terminate = function (serviceId) {
    return this.request('DELETE', '/v1/service/' + encodeURIComponent(serviceId),
      { timeoutMs: 30000 });
  };
  Client.prototype.addCapabilities = function (entries) {
    return this.request('PUT', '/v1/capabilities', { body: JSON.stringify(entries) });
  };
  Client.prototype.removeCapabilities = function (entries) {
    return this.request('DELETE', '/v1/capabilities', { body: JSON.stringify(entries) });
  };

  /*
   * A streaming GET (followed logs, the event stream): onText gets each piece of text as
   * it arrives, onEnd(error or null) once it ends. fetch, not EventSource, so the request
   * carries the same headers as every other one. Returns { close() }.
   */
  Client.prototype.stream = function (path, onText, onEnd, accept) {
    var controller = new AbortController();
    var closed = false;
    var url = this.base + path;
    var headers = { Accept: accept || 'text/event-stream' };
    var token = this.auth && this.auth.token ? this.auth.token() : null;
    if (token) headers['Authorization'] = 'Bearer ' + token;
    fetch(url, { cache: 'no-store', signal: controller.signal, headers: headers }).then(function (response) {
      if (!response.ok) {
        return response.text().then(function (text) {
          var body = {};
          try { body = JSON.parse(text); } catch (e) { /* not JSON */ }
          throw new ApiError(body.message || ('HTTP ' + response.status + ' from ' + url),
            { kind: 'http', status: response.status });
        });
      }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      function pump() {
        return reader.read().then(function (part) {
          if (part.done) return null;
          onText(decoder.decode(part.value, { stream: true }));
          return pump();
        });
      }
      return pump();
    }).then(function () {
      if (!closed && onEnd) onEnd(null);
    }, function (err) {
      if (!closed && onEnd) onEnd(err);
    });
    return { close: function () { closed = true; controller.abort(); } };
  };

  /*
   * A Server-Sent Events stream: onEvent(kind, text) for each event (its data lines joined
   * by newlines), onOpen() at the first bytes, onEnd(error or null), onBytes() whenever
   * anything arrives (comment lines included: a watchdog's sign of life). Returns { close() }.
   */
  Client.prototype.sse = function (path, onEvent, onOpen, onEnd, onBytes) {
    var buffer = '';
    var opened = false;
    return this.stream(path, function (text) {
      if (!opened) { opened = true; if (onOpen) onOpen(); }
      if (onBytes) onBytes();
      buffer += text;
      var blocks = buffer.split('\n\n');
      buffer = blocks.pop();
      blocks.forEach(function (block) {
        var kind = 'message';
        var data = [];
        block.split('\n').forEach(function (line) {
          if (line.indexOf('event:') === 0) kind = line.slice(6).trim();
          else if (line.indexOf('data:') === 0) data.push(line.slice(line.charAt(5) === ' ' ? 6 : 5));
        });
        if (data.length) onEvent(kind, data.join('\n'));
      });
    }, onEnd, 'text/event-stream');
  };

  /* The events of /v1/events: onEvent(kind, object) for each; returns { close() }. */
  Client.prototype.events = function (onEvent, onOpen, onEnd, onBytes) {
    return this.sse('/v1/events', function (kind, text) {
      var data;
      try { data = JSON.parse(text); } catch (e) { return; /* a malformed event is skipped */ }
      onEvent(kind, data);
    }, onOpen, onEnd, onBytes);
  };

  root.MoteyApi = {
    ApiError: ApiError,
    Client: Client,
    ROLES: ['viewer', 'operator', 'admin'],
    normalizeBase: normalizeBase,
    defaultBase: defaultBase,
    newKey: newKey,
    DEFAULT_PORT: DEFAULT_PORT
  };
})(typeof self !== 'undefined' ? self : this);
