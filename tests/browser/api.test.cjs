// Unit tests of the web client's API calls (npm run test:unit in tests/browser/).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client, newKey } = require('../../webclient/js/api.js').MoteyApi;

function fakeFetch(answers) {
  const sent = [];
  global.fetch = (url, init) => {
    sent.push({ url, init });
    const next = answers.shift();
    if (next === 'down') return Promise.reject(new TypeError('connection refused'));
    return Promise.resolve({
      ok: next < 400,
      status: next,
      headers: { get: () => '/v1/service/1' },
      text: () => Promise.resolve(JSON.stringify({ id: '1', message: 'no' }))
    });
  };
  return sent;
}

test('a deploy sends an Idempotency-Key', async () => {
  const sent = fakeFetch([201]);
  await new Client('http://n:5023').deploy('service_name: a\n');
  assert.match(sent[0].init.headers['Idempotency-Key'], /^[0-9a-f]{32}$/);
});

test('posting the same blueprint after no answer reuses the key', async () => {
  const sent = fakeFetch(['down', 201, 201]);
  const client = new Client('http://n:5023');
  await assert.rejects(client.deploy('service_name: a\n'), { kind: 'network' });
  await client.deploy('service_name: a\n');
  const key = sent[0].init.headers['Idempotency-Key'];
  assert.equal(sent[1].init.headers['Idempotency-Key'], key, 'the retry');
  await client.deploy('service_name: a\n');
  assert.notEqual(sent[2].init.headers['Idempotency-Key'], key, 'answered: a new deploy');
});

test('another blueprint or an answered error gets a new key', async () => {
  const sent = fakeFetch(['down', 400, 201]);
  const client = new Client('http://n:5023');
  await assert.rejects(client.deploy('service_name: a\n'));
  await assert.rejects(client.deploy('service_name: b\n'), { status: 400 });
  await client.deploy('service_name: b\n');
  const keys = sent.map((s) => s.init.headers['Idempotency-Key']);
  assert.equal(new Set(keys).size, 3);
});

test('keys are random', () => {
  assert.notEqual(newKey(), newKey());
});
