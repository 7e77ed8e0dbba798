/**
 * The console's setup wizard in a real browser (Debian's Chromium via playwright-core) against the
 * sandbox from a tenant with no app, as test/server/ops.test.ts drives the same runs through the
 * API: the wizard shows the admin's device code (approved in the sandbox's Entra ID), then the app
 * it created, the Exchange script with its copy button, and the checks, where Exchange's part is
 * red with its MB code until the script ran; after the sandbox's PowerShell ran the script the
 * wizard's check run turns every check green. axe-core finds no serious violation on the way.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { loadConfig } from '../../src/app/config.ts';
import { createLogger } from '../../src/log/index.ts';
import type { Sandbox } from '../../src/sandbox/index.ts';
import { startGateway, type Gateway } from '../../src/server/index.ts';
import { setupWillCreate } from '../../src/setup/index.ts';
import { runCli } from '../admin/cli/harness.ts';
import { tempDir } from '../support/temp.ts';
import { EMPTY_TENANT, startEmptyTenant, writeConfigBeforeSetup } from '../support/empty-tenant.ts';
import { waitFor } from '../support/wait.ts';
import { axe, CHROMIUM } from './rig.ts';

const { admin: ADMIN } = EMPTY_TENANT;
const KEY = randomBytes(24).toString('base64url');
const dir = tempDir('mb-console-wizard-');
const file = join(dir.path, 'mailbridge.yaml');
let sandbox: Sandbox;
let gw: Gateway;
let browser: Browser;

before(async () => {
  sandbox = await startEmptyTenant(dir.path);
  // What an admin has before setup: the tenant, what mailbridge should do, and API keys.
  await writeConfigBeforeSetup(dir.path, sandbox, { wizard: { key: KEY, scopes: ['admin'] } });
  const loaded = await loadConfig(file, {}, { relax: setupWillCreate });
  gw = await startGateway(loaded.config, createLogger({ level: 'silent' }), { keyFile: loaded.keyFile, env: {}, configPath: file });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
});

after(async () => {
  await browser?.close();
  await gw?.close('test end');
  await sandbox?.close();
  dir.remove();
});

test('the setup wizard: device code, app, script with copy button, checks red until the script ran, then all green', { timeout: 300_000 }, async () => {
  const ctx = await browser.newContext({ baseURL: gw.url, locale: 'en-US', extraHTTPHeaders: { authorization: `Bearer ${KEY}` }, bypassCSP: true });
  try {
    const page = await ctx.newPage();
    await page.goto('/console/setup');
    assert.equal(await page.locator('#setup-connection').inputValue(), 'contoso');
    await page.locator('button[data-run="setup"]').click();

    // Step 1: the device code to enter as an Entra admin.
    const code = page.locator('#step-signin .user-code');
    await code.waitFor({ timeout: 60_000 });
    assert.equal(await page.locator('#step-signin').getAttribute('data-status'), 'current');
    const userCode = ((await code.textContent()) ?? '').trim();
    assert.match(await page.locator('#step-signin a').getAttribute('href') ?? '', /^https:\/\//);
    await noSerious(page, 'the wizard waiting for the sign-in');
    sandbox.entra.approveDeviceCode(userCode, ADMIN);

    // The app, the script with its copy button, the checks: the run ends with Exchange's part red.
    // The run ends (outcome line) or fails (the error box); either way the page says so.
    await page.locator('#setup-outcome:not(:empty), #action-error').first().waitFor({ timeout: 240_000 });
    if ((await page.locator('#action-error').count()) > 0) assert.fail(`the setup run failed: ${await page.locator('#action-error').textContent()}`);
    const app = sandbox.directory.data.tenants[0]!.apps[0]!;
    assert.match((await page.locator('#step-creating .step-body').textContent()) ?? '', new RegExp(app.appId));
    for (const s of ['signin', 'creating', 'script', 'checking']) assert.equal(await page.locator(`#step-${s}`).getAttribute('data-status'), 'done', s);
    const script = (await page.locator('#step-script pre.script').textContent()) ?? '';
    assert.ok(script.includes(`New-ServicePrincipal -AppId '${app.appId}'`), script);
    assert.equal(await page.locator('#step-script button.copy').getAttribute('data-copy'), script);
    const red = page.locator('#step-checking li.check[data-status="fail"]');
    assert.ok((await red.count()) > 0, 'Exchange does not know the app yet');
    assert.match((await red.first().locator('.problem code').textContent()) ?? '', /^MB_/);
    assert.match(await page.locator('#setup-outcome').textContent() ?? '', /with problems/);
    assert.ok((await page.locator('#step-checking li.check[data-status="ok"]').count()) > 0, 'the token works already');
    await noSerious(page, 'the wizard with red checks');

    // The admin runs the copied script in Exchange (the sandbox's PowerShell); the checks run again.
    const scriptFile = join(dir.path, 'exchange-contoso.ps1');
    writeFileSync(scriptFile, script);
    const ps = await runCli(['sandbox-admin', 'powershell', scriptFile, '--dir', sandbox.dir], { cwd: dir.path });
    assert.equal(ps.code, 0, ps.stdout + ps.stderr);
    await page.locator('button[data-run="check"]').click();
    let seen = '';
    await waitFor(
      async () => {
        seen = await page.locator('#step-checking li.check').evaluateAll((lis) => lis.map((li) => `${li.id}=${li.getAttribute('data-status')}`).join(', '));
        return /every check is green/.test((await page.locator('#setup-outcome').textContent()) ?? '');
      },
      120_000,
      () => `all checks green (now: ${seen})`,
      500,
    );
    assert.equal(await page.locator('#step-checking li.check[data-status="fail"], #step-checking li.check[data-status="pending"]').count(), 0);
    await noSerious(page, 'the wizard with green checks');
  } finally {
    await ctx.close();
  }
});

async function noSerious(page: Parameters<typeof axe>[0], what: string): Promise<void> {
  const v = await axe(page);
  assert.deepEqual(v.map((x) => `${x.id} (${x.impact}): ${x.help} at ${x.nodes.map((n) => n.target.join(' ')).join(', ')}`), [], `axe on ${what}`);
}
