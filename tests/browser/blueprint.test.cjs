// Unit tests of the client-side blueprint check (npm run test:unit in tests/browser/).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { check, EXAMPLE } = require('../../webclient/js/blueprint.js');

function fields(text) {
  return check(text).errors.map((e) => e.field);
}

test('the example blueprint is valid', () => {
  const result = check(EXAMPLE);
  assert.deepEqual(result.errors, []);
  assert.equal(result.data.service_name, 'demo_service');
  assert.equal(result.data.images[0].engine, 'docker');
});

test('an empty text is reported', () => {
  assert.deepEqual(fields('   \n'), ['(document)']);
});

test('a YAML syntax error names its line and column', () => {
  const { errors } = check('service_name: x\nimages: [}\n');
  assert.equal(errors.length, 1);
  assert.equal(errors[0].field, '(document)');
  assert.equal(errors[0].line, 2);
  assert.match(errors[0].message, /invalid YAML at line 2, column \d+/);
});

test('a document that is not a mapping is refused', () => {
  assert.deepEqual(fields('- a\n- b\n'), ['(document)']);
});

test('missing required fields are named like the node names them', () => {
  assert.deepEqual(fields('node_type: master\n'), ['service_name', 'images']);
  const { errors } = check('service_name: s\nimages:\n  - engine: docker\n');
  assert.equal(errors.length, 1);
  assert.equal(errors[0].field, 'images[0].name');
  assert.equal(errors[0].line, 3);
});

test('unknown fields at the top and in an image are refused', () => {
  const text = 'service_name: s\nservice: x\nimages:\n  - name: a\n  - name: b\n    enigne: docker\n';
  const { errors } = check(text);
  assert.deepEqual(errors.map((e) => e.field), ['service', 'images[1].enigne']);
  assert.deepEqual(errors.map((e) => e.line), [2, 6]);
});

test('types, lengths and patterns are checked', () => {
  assert.deepEqual(fields('service_name: 12\nimages: []\n'), ['service_name', 'images']);
  assert.deepEqual(fields('service_name: "-bad"\nimages: busybox\n'), ['service_name', 'images']);
  assert.deepEqual(
    fields('service_name: s\nimages:\n  - name: a\n    parameters: [1]\n    capabilities: zigbee\n'),
    ['images[0].parameters', 'images[0].capabilities']
  );
  assert.deepEqual(
    fields('service_name: s\nimages:\n  - name: a\n    capabilities: [zigbee, 12, "", "!camera"]\n'),
    ['images[0].capabilities[1]', 'images[0].capabilities[2]']
  );
  assert.deepEqual(fields('service_name: s\nimages:\n  - just-a-string\n'), ['images[0]']);
});

test('requirements with comparisons and negations are accepted', () => {
  const text = 'service_name: s\nimages:\n  - name: a\n    capabilities: [zigbee, "!camera", arch=arm64, memory_mb>=512]\n';
  assert.deepEqual(check(text).errors, []);
});

test('flow-style blueprints are checked too', () => {
  assert.deepEqual(check('{service_name: s, images: [{name: a, engine: docker}]}').errors, []);
  assert.deepEqual(fields('{service_name: s, images: [{engine: docker}]}'), ['images[0].name']);
});

test('a field named by the node is found in the text', () => {
  const { locateField, parseField } = require('../../webclient/js/blueprint.js');
  assert.deepEqual(parseField('images[0].parameters.comand'), ['images', 0, 'parameters', 'comand']);
  const text = 'service_name: s\nimages:\n  - name: a\n    engine: docker\n    parameters:\n      comand: x\n';
  assert.equal(locateField(text, 'images[0].parameters.comand'), 6);
  assert.equal(locateField(text, 'images[0].parameters'), 5);
  assert.equal(locateField(text, 'images[3].name'), 2);
  assert.equal(locateField(text, 'images[0].engine'), 4);
  assert.equal(locateField(text, 'service_name'), 1);
  assert.equal(locateField(text, '(document)'), null);
});

test('items at the parent key\'s indentation and later images are found', () => {
  const { locateField } = require('../../webclient/js/blueprint.js');
  const text = [
    'service_name: s', 'images:', '- name: a', '  engine: docker', '- name: b', '  parameters:',
    '    ports: {"80/tcp": 8080}', '    name: x', 'node_type: master'
  ].join('\n');
  assert.equal(locateField(text, 'images[1].parameters.name'), 8);
  assert.equal(locateField(text, 'images[1].name'), 5);
  assert.equal(locateField(text, 'images[0].engine'), 4);
  assert.equal(locateField(text, 'node_type'), 9);
});
