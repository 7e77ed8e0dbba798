/**
 * Windows authentication for on-premises EWS (issue 11 item 1): against the sandbox's Exchange 2019
 * configured to require NTLM (Basic refused, as Exchange's EWS virtual directory ships), an EWS
 * watcher signing in with DOMAIN\user and a password over NTLMv2 gets its events; a wrong password
 * and Basic are refused. The sandbox checks the NTLMv2 response by hand (MS-NLMP), independent of
 * the client library.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { EwsClient, ntlmCredentials } from '../../../../src/m365/ews/client.ts';
import { EwsError, getFolder } from '../../../../src/m365/ews/soap.ts';
import { createEwsWatcher, ewsWatchSchema, type EwsWatcher } from '../../../../src/notify/watchers/ews/index.ts';
import { md4 } from '../../../../src/sandbox/ews/ntlm.ts';
import { startRig, type Rig } from './rig.ts';
import { waitFor } from '../../../support/wait.ts';

let rig: Rig;
const watchers: EwsWatcher[] = [];
const ANNA = 'anna@contoso.test';

before(async () => {
  rig = await startRig();
  rig.ews.requireNtlm(true);
});
after(async () => {
  for (const w of watchers) await w.close();
  await rig?.close();
});

test("the sandbox's MD4 matches RFC 1320 (OpenSSL 3 has none)", () => {
  assert.equal(md4(Buffer.from('')).toString('hex'), '31d6cfe0d16ae931b73c59d7e0c089c0');
  assert.equal(md4(Buffer.from('abc')).toString('hex'), 'a448017aaf21d8525fc10ae87aa6729d');
  assert.equal(md4(Buffer.from('1234567890'.repeat(8))).toString('hex'), 'e33b4ddc9c38f2199c3e7b164fcc0536');
});

test('an EWS watcher signing in with CONTOSO\\anna over NTLM gets its events', async () => {
  const w = createEwsWatcher({
    listener: 'ntlm-test',
    mailboxes: [{ address: ANNA, folders: ['inbox'] }],
    authorization: async () => {
      throw new Error('NTLM listeners send no Authorization of their own');
    },
    ntlm: ntlmCredentials('CONTOSO\\anna', 'sandbox'),
    options: ewsWatchSchema.parse({ url: rig.ews.url, impersonation: false, authentication: 'ntlm' }),
    ctx: rig.ctx,
    ca: rig.ca.certPem,
  });
  watchers.push(w);
  await w.start();
  assert.deepEqual(
    w.status().map((s) => [s.mailbox, s.state]),
    [[ANNA, 'watching']],
    JSON.stringify(rig.problems.map((p) => p.error.message)),
  );
  await rig.deliver(ANNA, 'Bestellung über NTLM');
  await waitFor(() => rig.at(ANNA, 'message.new').some((e) => e.type === 'message.new' && e.subject === 'Bestellung über NTLM'), 15_000, 'message.new over NTLM');
});

test('a wrong password is refused with HTTP 401; Basic is not offered while NTLM is required', async () => {
  const client = new EwsClient({
    version: 'Exchange2013',
    impersonation: false,
    authorization: async () => '',
    ntlm: ntlmCredentials('CONTOSO\\anna', 'not-the-password'),
    ca: rig.ca.certPem,
    timeoutMs: 10_000,
    maxBackOffMs: 1000,
    busyRetries: 0,
    signal: new AbortController().signal,
    secretSlot: 'ntlm-test-wrong',
  });
  try {
    await assert.rejects(client.call({ url: rig.ews.url, mailbox: ANNA }, getFolder(['inbox'])), (e: unknown) => e instanceof EwsError && e.code === 'Http401');
  } finally {
    await client.close();
  }
  const agent = new Agent({ connect: { ca: rig.ca.certPem } });
  try {
    const res = await request(rig.ews.url, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'text/xml; charset=utf-8', authorization: `Basic ${Buffer.from(`${ANNA}:sandbox`).toString('base64')}` },
      body: '<x/>',
    });
    await res.body.dump();
    assert.equal(res.statusCode, 401);
    const offered = String(res.headers['www-authenticate']);
    assert.match(offered, /NTLM/);
    assert.doesNotMatch(offered, /Basic/);
  } finally {
    await agent.close();
  }
});
