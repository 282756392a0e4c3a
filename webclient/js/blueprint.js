/*
 * Client-side check of a Motey service blueprint, before it is sent to a node.
 *
 * Mirrors motey/schemas/blueprint.py (BLUEPRINT_SCHEMA) and names fields the way the
 * node does ("images[0].name"), so that an error looks the same before and after
 * sending. Engine-specific checks (which docker parameters exist, whether an image is
 * present) stay with the node. Works in the browser (window.MoteyBlueprint, needs
 * window.jsyaml) and in Node.js (module.exports, requires js-yaml) for unit tests.
 */
(function (root, factory) {
  'use strict';
  if (typeof module === 'object' && module.exports) {
    module.exports = factory(require('js-yaml'));
  } else {
    root.MoteyBlueprint = factory(root.jsyaml);
  }
})(typeof self !== 'undefined' ? self : this, function (jsyaml) {
  'use strict';

  var SERVICE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
  var TOP_KEYS = ['service_name', 'node_type', 'images'];
  var IMAGE_KEYS = ['name', 'engine', 'parameters', 'capabilities'];

  var EXAMPLE = [
    '# A service with one image; every image runs on a node that has all of its',
    '# capabilities (none here, so any node of the cluster will do).',
    'service_name: demo_service',
    'images:',
    '  - name: busybox:latest',
    '    engine: docker',
    '    parameters:',
    '      command: "sleep 3600"',
    '    capabilities: []',
    ''
  ].join('\n');

  function typeName(value) {
    if (value === null || value === undefined) return 'null';
    if (Array.isArray(value)) return 'a list';
    if (typeof value === 'object') return 'a mapping';
    if (typeof value === 'string') return 'a string';
    if (typeof value === 'number') return 'a number';
    if (typeof value === 'boolean') return 'a boolean';
    return typeof value;
  }

  function isMapping(value) {
    return value !== null && typeof value === 'object' && !Array.isArray(value) &&
      !(value instanceof Date);
  }

  function indentOf(line) { return /^\s*/.exec(line)[0].length; }
  function isBlank(line) { return /^\s*(#.*)?$/.test(line); }
  function escapeRe(text) { return String(text).replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }

  /*
   * The line (1-based) of a field in block-style YAML, best effort: follows the path
   * key by key and item by item; stops at the deepest part it can find (flow-style
   * parts are not followed). null when not even the first key is found.
   */
  function locate(lines, path) {
    var start = 0;
    var end = lines.length;
    var parentIndent = -1;
    var found = null;
    for (var p = 0; p < path.length; p++) {
      var part = path[p];
      var i;
      if (typeof part === 'number') {
        // The part-th "- " item of the block, at the block's item indentation.
        var itemIndent = -1;
        var seen = -1;
        var itemLine = -1;
        for (i = start; i < end; i++) {
          var m = /^(\s*)-(\s|$)/.exec(lines[i]);
          if (!m) continue;
          if (itemIndent < 0) itemIndent = m[1].length;
          if (m[1].length !== itemIndent) continue;
          seen += 1;
          if (seen === part) { itemLine = i; break; }
        }
        if (itemLine < 0) break;
        found = itemLine;
        var itemEnd = end;
        for (i = itemLine + 1; i < end; i++) {
          if (isBlank(lines[i])) continue;
          var ind = indentOf(lines[i]);
          if (ind < itemIndent || (ind === itemIndent && /^\s*-(\s|$)/.test(lines[i]))) {
            itemEnd = i;
            break;
          }
        }
        start = itemLine;
        end = itemEnd;
        parentIndent = itemIndent;
      } else {
        var keyRe = new RegExp('^(\\s*)(-\\s+)?' + escapeRe(part) + '\\s*:');
        var keyLine = -1;
        var keyIndent = -1;
        for (i = start; i < end; i++) {
          var k = keyRe.exec(lines[i]);
          if (!k) continue;
          var effective = k[1].length + (k[2] ? k[2].length : 0);
          if (effective > parentIndent) { keyLine = i; keyIndent = effective; break; }
        }
        if (keyLine < 0) break;
        found = keyLine;
        var keyEnd = end;
        for (i = keyLine + 1; i < end; i++) {
          if (isBlank(lines[i])) continue;
          var indent = indentOf(lines[i]);
          if (indent < keyIndent || (indent === keyIndent && !/^\s*-(\s|$)/.test(lines[i]))) {
            keyEnd = i;
            break;
          }
        }
        start = keyLine + 1;
        end = keyEnd;
        parentIndent = keyIndent;
      }
    }
    return found === null ? null : found + 1;
  }

  function fieldName(path) {
    var text = '';
    path.forEach(function (part) {
      if (typeof part === 'number') text += '[' + part + ']';
      else text += (text ? '.' : '') + part;
    });
    return text || '(document)';
  }

  function checkData(data) {
    var errors = [];
    function add(path, message) {
      errors.push({ field: fieldName(path), path: path, message: message });
    }
    if (!isMapping(data)) {
      add([], 'a blueprint must be a mapping with service_name and images, not ' +
        typeName(data));
      return errors;
    }
    Object.keys(data).forEach(function (key) {
      if (TOP_KEYS.indexOf(key) < 0) {
        add([key], 'unknown field (allowed: ' + TOP_KEYS.join(', ') + ')');
      }
    });
    if (!('service_name' in data)) {
      add(['service_name'], 'required: the name of the service');
    } else if (typeof data.service_name !== 'string') {
      add(['service_name'], 'must be a string, not ' + typeName(data.service_name));
    } else if (data.service_name.length < 1 || data.service_name.length > 128) {
      add(['service_name'], 'must have 1 to 128 characters');
    } else if (!SERVICE_NAME_PATTERN.test(data.service_name)) {
      add(['service_name'], 'may hold letters, digits, "_", "." and "-" and must start ' +
        'with a letter or digit');
    }
    if ('node_type' in data && data.node_type !== null &&
        (typeof data.node_type !== 'string' || data.node_type.length > 64)) {
      add(['node_type'], 'must be a string of at most 64 characters');
    }
    if (!('images' in data)) {
      add(['images'], 'required: a list of the images to run');
      return errors;
    }
    if (!Array.isArray(data.images)) {
      add(['images'], 'must be a list of images, not ' + typeName(data.images));
      return errors;
    }
    if (data.images.length < 1) add(['images'], 'must list at least one image');
    if (data.images.length > 64) add(['images'], 'may list at most 64 images');
    data.images.forEach(function (image, index) {
      var at = ['images', index];
      if (!isMapping(image)) {
        add(at, 'an image must be a mapping with at least a name, not ' + typeName(image));
        return;
      }
      Object.keys(image).forEach(function (key) {
        if (IMAGE_KEYS.indexOf(key) < 0) {
          add(at.concat([key]), 'unknown field (allowed: ' + IMAGE_KEYS.join(', ') + ')');
        }
      });
      if (!('name' in image)) {
        add(at.concat(['name']), 'required: the image reference, e.g. busybox:latest');
      } else if (typeof image.name !== 'string' || image.name.length < 1 ||
                 image.name.length > 255) {
        add(at.concat(['name']), 'must be a non-empty string of at most 255 characters');
      }
      if ('engine' in image && (typeof image.engine !== 'string' || image.engine.length < 1 ||
                                image.engine.length > 64)) {
        add(at.concat(['engine']), 'must be the name of an engine, e.g. docker');
      }
      if ('parameters' in image && !isMapping(image.parameters)) {
        add(at.concat(['parameters']), 'must be a mapping of engine options, not ' +
          typeName(image.parameters));
      }
      if ('capabilities' in image) {
        var caps = image.capabilities;
        if (!Array.isArray(caps)) {
          add(at.concat(['capabilities']), 'must be a list of capabilities, not ' +
            typeName(caps));
        } else {
          if (caps.length > 64) add(at.concat(['capabilities']), 'at most 64 capabilities');
          caps.forEach(function (cap, ci) {
            // The requirement grammar itself (zigbee, !camera, arch=arm64, ...) is the
            // node's to judge; it names the entry if it does not parse.
            if (typeof cap !== 'string' || !cap.trim() || cap.length > 512) {
              add(at.concat(['capabilities', ci]), 'must be a requirement such as zigbee, ' +
                '!camera or arch=arm64, not ' + JSON.stringify(cap));
            }
          });
        }
      }
    });
    return errors;
  }

  /*
   * Check a blueprint text. Returns {data, errors}; each error has field, message and,
   * where it can be found, line (1-based).
   */
  function check(text) {
    if (!text || !text.trim()) {
      return {
        data: null,
        errors: [{ field: '(document)', path: [], message: 'the blueprint is empty', line: null }]
      };
    }
    var data;
    try {
      data = jsyaml.load(text);
    } catch (e) {
      var mark = e.mark || {};
      var line = typeof mark.line === 'number' ? mark.line + 1 : null;
      var column = typeof mark.column === 'number' ? mark.column + 1 : null;
      var reason = e.reason || e.message;
      return {
        data: null,
        errors: [{
          field: '(document)',
          path: [],
          message: 'invalid YAML' + (line ? ' at line ' + line + ', column ' + column : '') +
            ': ' + reason,
          line: line
        }]
      };
    }
    var lines = text.split(/\r?\n/);
    var errors = checkData(data).map(function (err) {
      err.line = err.path.length ? locate(lines, err.path) : null;
      return err;
    });
    return { data: errors.length ? null : data, errors: errors };
  }

  /* "images[0].parameters.comand" -> ['images', 0, 'parameters', 'comand'] */
  function parseField(field) {
    var path = [];
    var re = /([^.[\]]+)|\[(\d+)\]/g;
    var m;
    while ((m = re.exec(field || '')) !== null) {
      path.push(m[2] !== undefined ? Number(m[2]) : m[1]);
    }
    return path;
  }

  /* The line (1-based) where a field named by the node sits in the text, or null. */
  function locateField(text, field) {
    if (!field || field === '(document)' || !text) return null;
    var path = parseField(field);
    if (!path.length) return null;
    return locate(text.split(/\r?\n/), path);
  }

  return {
    check: check,
    locateField: locateField,
    parseField: parseField,
    checkData: checkData,
    fieldName: fieldName,
    EXAMPLE: EXAMPLE
  };
});
