/**
 * The run bookkeeping of check and setup runs, with the gateway's side (ApiContext.ops) driven by
 * the test, so each moment of a run can be looked at: a check run shows each result as soon as it
 * is told, before the run ends; a second start for the same target while one runs names the running
 * one; a run that fails shows its MB code in the caller's language; a setup run shows the device
 * code only while it waits for the sign-in; a run it does not have is a 404 naming its kind. The real work behind them is test/server/ops.test.ts's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import type { CheckItem, OpsTools, SetupProgress } from '../../../src/api/context.ts';
import { registerAdminApi } from '../../../src/api/index.ts';
import { configSchema } from '../../../src/app/schema.ts';
import { MbError } from '../../../src/errors/index.ts';
import { tempStore } from '../../notify/helpers.ts';
import { readUntil } from '../../support/wait.ts';

const KEY = randomBytes(24).toString('base64url');

/** A promise the test resolves or rejects when it wants the run to go on. */
function gate(): { wait: Promise<void>; open(): void; fail(e: Error): void } {
  let open!: () => void;
  let fail!: (e: Error) => void;
  const wait = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { wait, open, fail };
}

test('check and setup runs show what is known while they run, and how they ended', async () => {
  const t = await tempStore();
  const checkGate = gate();
  const setupGate = gate();
  const checkedFor: Array<string | undefined> = [];
  let progress: SetupProgress | undefined;
  const ops: OpsTools = {
    async check(connection, onResult) {
      checkedFor.push(connection);
      const item: CheckItem = { id: `${connection}/token/exchange`, title: { en: `${connection}: token exchange`, de: `${connection}: Token exchange` }, status: 'ok' };
      onResult(item);
      await checkGate.wait;
      onResult({
        id: `${connection}/full-access/info@contoso.com`,
        title: { en: 'FullAccess', de: 'Vollzugriff' },
        status: 'fail',
        error: new MbError('MB_CHECK_SCOPE_MISSING', { connection: 'contoso', permission: 'IMAP.AccessAsUser.All', api: 'Office 365 Exchange Online', usedBy: 'x', appName: 'a', clientId: 'c', tenantId: 't', portal: 'p' }),
      });
    },
    async setup(_o, p) {
      progress = p;
      p.step('signin');
      p.deviceCode({ userCode: 'ABCD-EFGH', verificationUri: 'https://microsoft.com/devicelogin' });
      await setupGate.wait;
    },
    async apply() {
      throw new Error('not used here');
    },
  };
  const config = configSchema.parse({ connections: { contoso: { tenantId: 'contoso.onmicrosoft.com', clientId: '00000000-0000-0000-0000-000000000001', clientSecret: 'x' } } });
  const http = Fastify();
  try {
    await registerAdminApi(http, { config, store: t.store, ops, keys: [{ name: 'ops', key: KEY, scopes: ['admin'] }] });
    const call = async <T>(method: 'GET' | 'POST', url: string, payload?: object, lang = 'en') => {
      const r = await http.inject({ method, url, headers: { authorization: `Bearer ${KEY}`, 'accept-language': lang }, ...(payload ? { payload } : {}) });
      return { status: r.statusCode, body: r.json() as T };
    };
    type Run = { state: string; results: Array<{ id: string; status: string; title: string; code?: string; command?: string }>; finishedAt?: string };

    const started = await call<{ id: string }>('POST', '/api/v1/check/runs', { connection: 'contoso' });
    assert.equal(started.status, 202);
    // The first result is there while the run goes on.
    const partial = await readUntil('the first result', async () => (await call<Run>('GET', `/api/v1/check/runs/${started.body.id}`)).body, (r) => r.results.length > 0);
    assert.equal(partial.state, 'running');
    assert.deepEqual(partial.results.map((r) => [r.id, r.status]), [['contoso/token/exchange', 'ok']]);
    assert.equal(partial.finishedAt, undefined);
    // Started again for the same connection while it runs: the same run, not a second one.
    assert.equal((await call<{ id: string }>('POST', '/api/v1/check/runs', { connection: 'contoso' })).body.id, started.body.id);
    assert.deepEqual(checkedFor, ['contoso']);
    checkGate.open();
    const done = await readUntil('the end of the run', async () => (await call<Run>('GET', `/api/v1/check/runs/${started.body.id}`, undefined, 'de')).body, (r) => r.state !== 'running');
    assert.equal(done.state, 'done');
    assert.deepEqual(done.results.map((r) => [r.title, r.status, r.code]), [
      ['contoso: Token exchange', 'ok', undefined],
      ['Vollzugriff', 'fail', 'MB_CHECK_SCOPE_MISSING'],
    ]);
    assert.equal(done.results[1]!.command, 'mailbridge signin contoso');
    assert.ok(done.finishedAt);
    // Without a body: every connection.
    const all = await http.inject({ method: 'POST', url: '/api/v1/check/runs', headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(all.statusCode, 202, all.body);
    const allDone = await readUntil('the run of every connection', async () => (await call<Run & { connection?: string }>('GET', `/api/v1/check/runs/${(all.json() as { id: string }).id}`)).body, (r) => r.state !== 'running');
    assert.equal(allDone.state, 'done');
    assert.equal(allDone.connection, undefined);
    assert.deepEqual(checkedFor, ['contoso', undefined]);

    // A setup run: the device code while it waits for the sign-in, then a failure with its MB code.
    const setup = await call<{ id: string }>('POST', '/api/v1/setup/runs', { connection: 'contoso' });
    assert.equal(setup.status, 202);
    type SetupRun = { state: string; step: string; deviceCode?: { userCode: string }; error?: { code: string; title: string } };
    const waiting = await readUntil('the device code', async () => (await call<SetupRun>('GET', `/api/v1/setup/runs/${setup.body.id}`)).body, (r) => r.deviceCode !== undefined);
    assert.deepEqual([waiting.state, waiting.step, waiting.deviceCode!.userCode], ['running', 'signin', 'ABCD-EFGH']);
    progress!.step('creating');
    assert.equal((await call<SetupRun>('GET', `/api/v1/setup/runs/${setup.body.id}`)).body.deviceCode, undefined, 'the code is gone once signed in');
    setupGate.fail(new MbError('MB_SETUP_ADMIN_DENIED', { request: 'POST /applications', message: 'denied', account: 'carol@contoso.test', role: 'Application Administrator', connection: 'contoso' }));
    const failed = await readUntil('the failed setup run', async () => (await call<SetupRun>('GET', `/api/v1/setup/runs/${setup.body.id}`, undefined, 'de')).body, (r) => r.state !== 'running');
    assert.deepEqual([failed.state, failed.step, failed.error?.code], ['failed', 'failed', 'MB_SETUP_ADMIN_DENIED']);
    assert.match(failed.error!.title, /Entra ID hat den angemeldeten Administrator abgewiesen/);

    // A run this gateway does not have: 404, naming its kind and where the runs of that kind are listed.
    type Problem = { error: { code: string; title: string; fix: string } };
    const noCheck = await call<Problem>('GET', '/api/v1/check/runs/0123456789abcdef', undefined, 'de');
    assert.deepEqual([noCheck.status, noCheck.body.error.code, noCheck.body.error.title], [404, 'MB_API_RUN_NOT_FOUND', 'Diesen Prüflauf gibt es nicht']);
    assert.match(noCheck.body.error.fix, /GET \/api\/v1\/check\/runs auflisten/);
    const noSetup = await call<Problem>('GET', '/api/v1/setup/runs/0123456789abcdef');
    assert.deepEqual([noSetup.status, noSetup.body.error.code, noSetup.body.error.title], [404, 'MB_API_RUN_NOT_FOUND', 'No such setup run']);
    assert.match(noSetup.body.error.fix, /GET \/api\/v1\/setup\/runs/);
  } finally {
    await http.close();
    await t.cleanup();
  }
});
