// Drives Debian's chromium through the Motey web client with playwright-core.
//
// Usage: node tests/drive.mjs SCENARIO CONFIG_JSON
//
// Run by tests/test_webclient.py, which starts the real nodes. When a scenario needs
// something done outside the browser (check the node over REST, stop a node), it
// prints one line `@@ask {"action": ..., "data": ...}` and waits for one JSON line on
// stdin: {"ok": true, "data": ...} or {"ok": false, "error": "..."}.
// Every request the page makes to anything but a loopback address is blocked and fails
// the scenario: the page must work with no internet.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [scenarioName, configJson] = process.argv.slice(2);
const config = JSON.parse(configJson || '{}');
const TIMEOUT = config.timeoutMs || 30000;
const STARTED = Date.now();

function log(...parts) {
  const t = ((Date.now() - STARTED) / 1000).toFixed(1).padStart(5);
  console.log(`[${t}s] ${parts.join(' ')}`);
}

// ------------------------------------------------------------------ asking pytest

const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function ask(action, data = {}) {
  console.log('@@ask ' + JSON.stringify({ action, data }));
  const { value, done } = await stdinLines.next();
  if (done) throw new Error(`no answer to ${action}: stdin closed`);
  const answer = JSON.parse(value);
  if (!answer.ok) throw new Error(`${action} failed in the test: ${answer.error}`);
  return answer.data;
}

// ------------------------------------------------------------------ helpers

function isLoopback(url) {
  try {
    const u = new URL(url);
    if (['data:', 'blob:', 'about:', 'file:'].includes(u.protocol)) return true;
    return /^127\./.test(u.hostname) || u.hostname === 'localhost' || u.hostname === '[::1]';
  } catch {
    return false;
  }
}

function check(condition, message) {
  if (!condition) throw new Error('check failed: ' + message);
}

const tid = (id) => `[data-testid="${id}"]`;

async function shot(page, name) {
  if (!config.screenshots) return;
  mkdirSync(config.screenshots, { recursive: true });
  const path = join(config.screenshots, name);
  // Let toasts and transitions settle so that the picture shows the steady page.
  await page.waitForTimeout(300);
  await page.screenshot({ path, fullPage: true });
  log('screenshot', path);
}

async function waitConnected(page) {
  await page.locator(`${tid('connection')} .conn-dot.ok`).waitFor({ timeout: TIMEOUT });
}

async function go(page, pageId) {
  await page.locator(tid('nav-' + pageId)).click();
  await page.locator(tid('page-' + pageId)).waitFor();
}

function serviceCard(page, name) {
  return page.locator(`${tid('service-card')}[data-service-name="${name}"]`);
}

// ------------------------------------------------------------------ scenarios

const scenarios = {};

// Deploy through the form, watch the service reach RUNNING, terminate it with confirmation.
scenarios.deploy = async (page) => {
  const name = config.serviceName;
  await page.goto(config.url + '#/deploy');
  await waitConnected(page);
  const editor = page.locator(tid('blueprint-text'));
  await editor.fill(config.blueprint);
  await page.locator(tid('client-ok')).waitFor();
  check(await page.locator(tid('deploy')).isEnabled(), 'deploy button enabled for a valid blueprint');
  await page.locator(tid('deploy')).click();

  // Watch the deployed service's badge change without reloading the page.
  const badge = page.locator(`${tid('deployed')} ${tid('deployed-state')}`);
  await badge.waitFor();
  const seen = [];
  const deadline = Date.now() + (config.runningTimeoutMs || 60000);
  for (;;) {
    const state = await badge.getAttribute('data-state');
    if (seen[seen.length - 1] !== state) { seen.push(state); log('deployed service state', state); }
    if (state === 'RUNNING') break;
    check(state !== 'ERROR', 'service went to ERROR: ' + (await page.locator(tid('deployed')).innerText()));
    check(Date.now() < deadline, 'service did not reach RUNNING; states seen: ' + seen.join(' → '));
    await page.waitForTimeout(100);
  }
  await shot(page, 'deploy.png');
  const service = await ask('service-running', { name });
  log('node says', service.id, service.state);

  await go(page, 'services');
  const card = serviceCard(page, name);
  await card.locator(`${tid('service-state')}[data-state="RUNNING"]`).waitFor();
  check(await card.getAttribute('data-service-id') === service.id, 'card shows the service id');
  const image = card.locator(tid('image-row')).first();
  await image.locator(`${tid('image-state')}[data-state="RUNNING"]`).waitFor();
  const nodeCell = await image.locator(tid('image-node')).innerText();
  check(nodeCell.includes(config.nodeIp), `image node cell "${nodeCell}" names ${config.nodeIp}`);
  check((await image.innerText()).includes('docker'), 'image row shows its engine');
  await shot(page, 'services.png');

  await go(page, 'overview');
  await page.locator(`${tid('services-RUNNING')}`).filter({ hasText: /^1 RUNNING$/ }).waitFor();
  const nodeName = await page.locator(tid('this-node-name')).innerText();
  check(nodeName === config.nodeName, `overview names this node (${nodeName})`);
  await page.locator(tid('events')).filter({ hasText: name }).waitFor();
  await shot(page, 'overview.png');

  // Terminate: cancelling the confirmation changes nothing; confirming terminates.
  await go(page, 'services');
  await card.locator(tid('terminate')).click();
  const dialog = page.locator(tid('confirm-dialog'));
  await dialog.filter({ hasText: `Terminate service ${name}?` }).waitFor();
  await page.locator(tid('confirm-cancel')).click();
  await dialog.waitFor({ state: 'detached' });
  await page.waitForTimeout(1000);
  check(await card.locator(tid('service-state')).getAttribute('data-state') === 'RUNNING',
    'service still RUNNING after cancelling');
  await ask('service-state', { id: service.id, state: 'RUNNING' });

  await card.locator(tid('terminate')).click();
  await dialog.waitFor();
  await shot(page, 'terminate-confirm.png');
  await page.locator(tid('confirm-ok')).click();
  await dialog.waitFor({ state: 'detached' });
  const states = [];
  const stateBadge = card.locator(tid('service-state'));
  const end = Date.now() + 30000;
  for (;;) {
    const state = await stateBadge.getAttribute('data-state');
    if (states[states.length - 1] !== state) { states.push(state); log('terminating service state', state); }
    if (state === 'TERMINATED') break;
    check(Date.now() < end, 'service did not reach TERMINATED; states seen: ' + states.join(' → '));
    await page.waitForTimeout(100);
  }
  check(await card.locator(tid('terminate')).isDisabled(), 'terminate disabled once TERMINATED');
  await ask('service-terminated', { id: service.id });
  log('states while deploying:', seen.join(' → '), '| while terminating:', states.join(' → '));
};

// Schema errors: shown next to the text before sending (client) and after (node).
scenarios.schema_errors = async (page) => {
  await page.goto(config.url + '#/deploy');
  await waitConnected(page);
  const editor = page.locator(tid('blueprint-text'));
  const deploy = page.locator(tid('deploy'));

  // A missing image name and an unknown field, found before anything is sent.
  await editor.fill('service_name: broken\nimages:\n  - engine: docker\n    parametres: {}\n');
  const nameError = page.locator(`${tid('client-error')}[data-field="images[0].name"]`);
  await nameError.waitFor();
  await page.locator(`${tid('client-error')}[data-field="images[0].parametres"]`).waitFor();
  check((await nameError.innerText()).includes('line 3'), 'client error names line 3');
  check(await deploy.isDisabled(), 'deploy disabled while the blueprint has errors');
  check(await page.locator('.gutter .error-line').count() === 2, 'two error lines marked in the gutter');
  await shot(page, 'deploy-client-error.png');

  // YAML syntax error.
  await editor.fill('service_name: broken\nimages: [}\n');
  await page.locator(tid('client-error')).filter({ hasText: /invalid YAML at line 2/ }).waitFor();

  // Upload a file whose engine parameter only the node can judge: the node answers 400
  // and names the field; the page shows it next to the text.
  await page.locator(tid('blueprint-file')).setInputFiles({
    name: 'typo.yaml',
    mimeType: 'application/x-yaml',
    buffer: Buffer.from(config.serverRejectedBlueprint)
  });
  await page.locator(tid('client-ok')).waitFor();
  check((await editor.inputValue()) === config.serverRejectedBlueprint, 'uploaded file is in the editor');
  await page.getByText('from typo.yaml').waitFor();
  await deploy.click();
  const serverError = page.locator(tid('server-error'));
  await serverError.waitFor();
  const field = await page.locator(tid('server-error-field')).innerText();
  check(field === config.serverRejectedField, `server error names ${config.serverRejectedField}, got ${field}`);
  check((await serverError.innerText()).includes('HTTP 400'), 'server error shows HTTP 400');
  check(await page.locator('.gutter .error-line').count() === 1, 'server error line marked');
  await shot(page, 'deploy-server-error.png');

  // Editing the text clears the node's verdict.
  await editor.fill(config.serverRejectedBlueprint + '\n');
  await serverError.waitFor({ state: 'detached' });
  await ask('no-services');
};

// Add and remove a capability of this node.
scenarios.capabilities = async (page) => {
  await page.goto(config.url + '#/capabilities');
  await waitConnected(page);
  const row = (name) => page.locator(`${tid('capability-row')}[data-capability="${name}"]`);
  for (const name of config.configCapabilities) {
    await row(name).waitFor();
    check(await row(name).locator(tid('remove-capability')).count() === 0,
      `${name} from config cannot be removed here`);
  }
  // An invalid name is refused before sending.
  await page.locator(tid('capability-name')).fill('bad name!');
  await page.locator(tid('add-capability')).click();
  await page.locator(tid('capability-error')).waitFor();

  await page.locator(tid('capability-name')).fill(config.newCapability);
  await page.locator(tid('capability-type')).fill('hardware');
  await page.locator(tid('add-capability')).click();
  await row(config.newCapability).and(page.locator('[data-source="rest"]')).waitFor();
  await ask('capability', { name: config.newCapability, present: true });
  await shot(page, 'capabilities.png');

  // Adding it again changes nothing (the node answers 304).
  await page.locator(tid('capability-name')).fill(config.newCapability);
  await page.locator(tid('add-capability')).click();
  await page.locator(tid('toast')).filter({ hasText: 'already has' }).waitFor();

  await row(config.newCapability).locator(tid('remove-capability')).click();
  await page.locator(tid('confirm-ok')).click();
  await row(config.newCapability).waitFor({ state: 'detached' });
  await ask('capability', { name: config.newCapability, present: false });
};

// The nodes page lists every node the node knows, with its metadata.
scenarios.nodes = async (page) => {
  await page.goto(config.url + '#/nodes');
  await waitConnected(page);
  const rows = page.locator(tid('node-row'));
  const deadline = Date.now() + (config.discoveryTimeoutMs || 30000);
  while ((await rows.count()) !== config.nodes.length) {
    check(Date.now() < deadline, `expected ${config.nodes.length} nodes, see ${await rows.count()}`);
    await page.waitForTimeout(200);
  }
  for (const [index, expected] of config.nodes.entries()) {
    const row = page.locator(`${tid('node-row')}[data-node-id="${expected.id}"]`);
    await row.waitFor();
    await row.locator(`${tid('node-state')}[data-state="REACHABLE"]`).waitFor();
    await row.locator(`${tid('node-lifecycle')}[data-state="OPERATE"]`).waitFor();
    const text = await row.innerText();
    check(text.includes(expected.name), `row shows name ${expected.name}`);
    check(text.includes(expected.id), `row shows id ${expected.id}`);
    check((await row.locator(tid('node-address')).innerText()).startsWith(expected.ip),
      `row shows address ${expected.ip}`);
    for (const cap of expected.capabilities || []) {
      check(text.includes(cap), `row of ${expected.name} shows capability ${cap}`);
    }
    check(/ago|just now/.test(await row.locator(tid('node-last-seen')).innerText()), 'last seen shown');
    check(text.includes('this node') === (index === 0), 'only the first row is this node');
  }
  await shot(page, 'nodes.png');
  await go(page, 'overview');
  await page.locator(tid('nodes-total')).filter({ hasText: new RegExp(`^${config.nodes.length}$`) }).waitFor();
  await page.locator(tid('nodes-reachable')).filter({ hasText: `${config.nodes.length} reachable` }).waitFor();
  if (config.remote) {
    // Deploy an image that only another node can run; the services page names that node.
    const { serviceName, blueprint, nodeName, nodeIp } = config.remote;
    await go(page, 'deploy');
    await page.locator(tid('blueprint-text')).fill(blueprint);
    await page.locator(tid('client-ok')).waitFor();
    await page.locator(tid('deploy')).click();
    await page.locator(`${tid('deployed-state')}[data-state="RUNNING"]`).waitFor({ timeout: 60000 });
    await go(page, 'services');
    const card = serviceCard(page, serviceName);
    await card.locator(`${tid('service-state')}[data-state="RUNNING"]`).waitFor();
    const cell = await card.locator(tid('image-node')).first().innerText();
    check(cell.includes(nodeName) && cell.includes(nodeIp), `image runs on ${nodeName} (${cell})`);
    await ask('remote-running', { name: serviceName });
    await shot(page, 'services-cluster.png');
  }
  if (config.stopOne) {
    // A node that goes away is shown UNREACHABLE in the list and in the summary.
    const gone = config.stopOne;
    await go(page, 'overview');
    await ask('kill-node', { id: gone.id });
    await page.locator(tid('nodes-unreachable')).filter({ hasText: '1 unreachable' })
      .waitFor({ timeout: config.unreachableTimeoutMs || 30000 });
    await go(page, 'nodes');
    await page.locator(`${tid('node-row')}[data-node-id="${gone.id}"] ${tid('node-state')}[data-state="UNREACHABLE"]`).waitFor();
    await shot(page, 'nodes-one-unreachable.png');
    await go(page, 'overview');
    await shot(page, 'overview-cluster.png');
  }
  if (config.openNode) {
    // "Open" on the nodes page points the page at that node's API.
    const { id, name, apiBase } = config.openNode;
    await go(page, 'nodes');
    await page.locator(`${tid('node-row')}[data-node-id="${id}"] button`).filter({ hasText: 'Open' }).click();
    await page.locator(tid('this-node-name')).filter({ hasText: new RegExp(`^${name}$`) }).waitFor();
    await waitConnected(page);
    check(new URL(page.url()).searchParams.get('api') === apiBase, 'the URL names the other node');
    await go(page, 'nodes');
    const first = page.locator(tid('node-row')).first();
    check((await first.getAttribute('data-node-id')) === id, 'the other node lists itself first');
  }
};

// The page says clearly when its node is unreachable, and recovers when it is back.
scenarios.unreachable = async (page) => {
  await page.goto(config.url + '#/overview');
  await waitConnected(page);
  await page.locator(tid('this-node-name')).waitFor();
  await ask('stop-node');
  const banner = page.locator(tid('unreachable-banner'));
  await banner.waitFor({ timeout: 10000 });
  const text = await banner.innerText();
  check(text.includes('Node unreachable'), 'banner says the node is unreachable');
  check(text.includes(config.apiBase), 'banner names the node address');
  check(await page.locator(`${tid('connection')} .conn-dot.bad`).count() === 1, 'navbar dot red');
  // The last data stays visible (greyed), so the operator still sees what was there.
  check((await page.locator(tid('this-node-name')).innerText()) === config.nodeName, 'old data kept');
  await shot(page, 'unreachable.png');
  await ask('start-node');
  await banner.waitFor({ state: 'detached', timeout: 30000 });
  await waitConnected(page);
};

// The page opened from another origin, pointed at the node with ?api=, and then at
// the same node through the settings page.
scenarios.cross_origin = async (page) => {
  await page.goto(config.url + '&poll=500#/overview');
  await waitConnected(page);
  const name = await page.locator(tid('this-node-name')).innerText();
  check(name === config.nodeName, `page from ${config.url} shows node ${config.nodeName} (${name})`);
  // PUT and DELETE with JSON bodies need a CORS preflight; they must pass.
  await go(page, 'capabilities');
  await page.locator(tid('capability-name')).fill(config.newCapability);
  await page.locator(tid('add-capability')).click();
  await page.locator(`${tid('capability-row')}[data-capability="${config.newCapability}"]`).waitFor();
  await ask('capability', { name: config.newCapability, present: true });
  // A POST of YAML (also preflighted) deploys from the other origin.
  await go(page, 'deploy');
  await page.locator(tid('blueprint-text')).fill(config.blueprint);
  await page.locator(tid('client-ok')).waitFor();
  await page.locator(tid('deploy')).click();
  await page.locator(`${tid('deployed-state')}[data-state="RUNNING"]`).waitFor({ timeout: 60000 });
  // Settings: pointing at an address where nothing listens shows the banner; back again.
  await go(page, 'settings');
  check((await page.locator(tid('api-base')).inputValue()) === config.apiBase, 'settings show the API');
  await page.locator(tid('api-base')).fill(config.deadApi);
  await page.locator(tid('save-settings')).click();
  await page.locator(tid('unreachable-banner')).filter({ hasText: config.deadApi }).waitFor();
  check(new URL(page.url()).searchParams.get('api') === config.deadApi, 'address kept in the URL');
  await page.locator(tid('api-base')).fill(config.apiBase);
  await page.locator(tid('save-settings')).click();
  await page.locator(tid('unreachable-banner')).waitFor({ state: 'detached' });
  await waitConnected(page);
  await shot(page, 'settings.png');
  // Straight from the file system, pointed at the node.
  await page.goto(config.fileUrl);
  await waitConnected(page);
  await page.locator(tid('this-node-name')).filter({ hasText: new RegExp(`^${config.nodeName}$`) }).waitFor();
};

// Login and roles: a viewer sees no action it may not take, an operator deploys, and a
// token revoked while the page is open brings the login page back.
scenarios.login_roles = async (page) => {
  await page.goto(config.url + '#/overview');
  const login = page.locator(tid('page-login'));
  await login.waitFor();
  await shot(page, 'login.png');
  // A wrong token is refused on the login page itself.
  await page.locator(tid('login-token')).fill('motey_not-a-token');
  await page.locator(tid('login-submit')).click();
  await page.locator(tid('login-error')).filter({ hasText: 'does not accept' }).waitFor();

  // Viewer: sees everything, may do nothing.
  await page.locator(tid('login-token')).fill(config.viewerToken);
  await page.locator(tid('login-submit')).click();
  await waitConnected(page);
  await page.locator(`${tid('whoami')}[data-role="viewer"]`).waitFor();
  check((await page.locator(tid('whoami')).innerText()).includes(config.viewerName), 'navbar names the token');
  check(await page.locator(tid('nav-deploy')).count() === 0, 'viewer: no Deploy in the navigation');
  await go(page, 'services');
  const card = serviceCard(page, config.existingService);
  await card.waitFor();
  check(await page.locator(tid('terminate')).count() === 0, 'viewer: no Terminate button');
  await go(page, 'capabilities');
  await page.locator(tid('capability-row')).first().waitFor();
  check(await page.locator(tid('add-capability-form')).count() === 0, 'viewer: no capability form');
  await page.goto(config.url + '#/deploy');
  await page.locator(tid('page-deploy')).waitFor();
  await page.locator(tid('deploy-not-allowed')).waitFor();
  check(await page.locator(tid('deploy')).count() === 0, 'viewer: no Deploy button');
  await shot(page, 'viewer-deploy.png');

  // Log out, log in as operator: the actions appear and a deploy works.
  await page.locator(tid('logout')).click();
  await login.waitFor();
  await page.locator(tid('login-reason')).filter({ hasText: 'Logged out' }).waitFor();
  await page.locator(tid('login-token')).fill(config.operatorToken);
  await page.locator(tid('login-submit')).click();
  await waitConnected(page);
  await page.locator(`${tid('whoami')}[data-role="operator"]`).waitFor();
  await go(page, 'deploy');
  await page.locator(tid('blueprint-text')).fill(config.blueprint);
  await page.locator(tid('client-ok')).waitFor();
  await page.locator(tid('deploy')).click();
  await page.locator(`${tid('deployed-state')}[data-state="RUNNING"]`).waitFor({ timeout: 60000 });
  await ask('service-running', { name: config.serviceName });
  await go(page, 'services');
  check(await serviceCard(page, config.serviceName).locator(tid('terminate')).count() === 1,
    'operator: Terminate button shown');

  // The token is revoked on the node while the page is open: the next poll is a 401.
  await ask('revoke-operator');
  await login.waitFor({ timeout: 15000 });
  await page.locator(tid('login-reason')).filter({ hasText: 'no longer accepts' }).waitFor();
  check(await page.evaluate(() => window.sessionStorage.getItem('motey.token')) === null,
    'the revoked token is gone from the session');
  await shot(page, 'login-after-401.png');
};

// ------------------------------------------------------------------ main

// Live page: state changes arrive over GET /v1/events (polling is set to a minute, so
// only the stream can explain them), an image's logs follow live, the cell switch.
scenarios.live = async (page) => {
  await page.goto(config.url + '#/services');
  await waitConnected(page);
  await page.locator(tid('live')).waitFor();
  const service = await ask('deploy');
  const card = serviceCard(page, service.name);
  await card.locator(`${tid('service-state')}[data-state="RUNNING"]`).waitFor({ timeout: 20000 });
  log('service appeared and reached RUNNING without a reload');

  await card.locator(tid('logs-toggle')).first().click();
  const output = card.locator(tid('log-output'));
  await output.filter({ hasText: 'hello-from-the-container' }).waitFor();
  await ask('print-line');
  await output.filter({ hasText: 'printed-while-following' }).waitFor();
  log('followed log line arrived');
  await shot(page, 'services-live-logs.png');

  await page.locator(tid('cell-scope')).check();
  await card.locator(tid('service-owner')).filter({ hasText: config.nodeName }).waitFor();
  await page.locator(tid('cell-scope')).uncheck();
  await card.locator(tid('service-owner')).waitFor({ state: 'detached' });

  await ask('terminate');
  await card.locator(`${tid('service-state')}[data-state="TERMINATED"]`).waitFor({ timeout: 20000 });
  log('termination appeared without a reload');
};

// An image no node can run shows "awaiting placement" and what it waits for; once the
// node gains the capability, the same row turns RUNNING without a reload.
scenarios.awaiting = async (page) => {
  await page.goto(config.url + '#/services');
  await waitConnected(page);
  const card = serviceCard(page, config.serviceName);
  const image = card.locator(tid('image-row')).first();
  await image.locator(tid('image-awaiting')).waitFor();
  check((await image.innerText()).includes('no node has camera'), 'the row says what it waits for');
  check(await card.locator(tid('service-state')).getAttribute('data-state') === 'INSTANTIATING',
    'a waiting service is INSTANTIATING, not ERROR');
  await shot(page, 'awaiting.png');
  await ask('add-camera');
  await image.locator(`${tid('image-state')}[data-state="RUNNING"]`).waitFor();
  check(await image.locator(tid('image-awaiting')).count() === 0, 'badge gone once placed');
};

async function main() {
  const scenario = scenarios[scenarioName];
  if (!scenario) throw new Error(`unknown scenario ${scenarioName}; known: ${Object.keys(scenarios)}`);
  const browser = await chromium.launch({
    executablePath: config.chromium || '/usr/bin/chromium',
    headless: true,
    timeout: 60000,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage',
      // The test nodes' certificates come from the cell's own CA. ignoreHTTPSErrors
      // alone lets each handshake fail first ("certificate unknown") and be retried; a
      // page opened from file:// once stalled in that dance until its polls timed out.
      '--ignore-certificate-errors'
    ]
  });
  let failed = null;
  const blocked = [];
  const pageErrors = [];
  let page;
  try {
    // Test nodes serve HTTPS with their cell's own CA, which this browser does not know.
    const context = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      ignoreHTTPSErrors: true
    });
    if (config.token) {
      // Logged in already: the token in this tab's session, as the login page keeps it.
      await context.addInitScript((token) => {
        try {
          if (!window.sessionStorage.getItem('motey.token')) window.sessionStorage.setItem('motey.token', token);
        } catch { /* an origin without storage logs in on the page */ }
      }, config.token);
    }
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (isLoopback(url)) return route.continue();
      blocked.push(url);
      return route.abort('blockedbyclient');
    });
    page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    page.on('pageerror', (err) => { pageErrors.push(String(err)); log('PAGE ERROR', err); });
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') log(`console.${msg.type()}:`, msg.text());
    });
    log('scenario', scenarioName, 'chromium', browser.version());
    await scenario(page);
    check(pageErrors.length === 0, 'uncaught errors in the page: ' + pageErrors.join('; '));
    check(blocked.length === 0, 'the page asked for non-loopback URLs: ' + blocked.join(', '));
  } catch (err) {
    failed = err;
    if (page && config.screenshots) {
      try {
        await page.screenshot({ path: join(config.screenshots, `FAILED-${scenarioName}.png`), fullPage: true });
      } catch { /* the page may be gone */ }
    }
  } finally {
    await browser.close();
  }
  if (failed) {
    console.log('FAILED: ' + (failed.stack || failed));
    process.exit(1);
  }
  log('scenario', scenarioName, 'passed');
  process.exit(0);
}

const watchdog = setTimeout(() => {
  console.log(`FAILED: scenario ${scenarioName} took longer than ${config.totalTimeoutMs || 150000} ms`);
  process.exit(2);
}, config.totalTimeoutMs || 150000);
watchdog.unref();
process.on('SIGTERM', () => { console.log('FAILED: terminated'); process.exit(3); });
main();
