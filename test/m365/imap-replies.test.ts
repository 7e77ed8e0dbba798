/**
 * Exchange's IMAP replies mapped to MB codes without the sandbox (the sandbox front's own replies
 * are in test/connector/exchange.test.ts and test/notify/watchers/imap/exchange.test.ts), and the
 * rule that keeps this mapping in the Microsoft 365 layer: the watchers never reach into the
 * connector for it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, generateKeyPair } from 'jose';
import { classifyImapError, throttleHint } from '../../src/m365/imap-replies.ts';
import { tokenFacts } from '../../src/m365/token-facts.ts';

test("Exchange's reply texts map to MB codes without the sandbox: not connected, throttled, refused token, network, TLS, missing folder", async () => {
  const { privateKey } = await generateKeyPair('RS256');
  const sp = '11111111-2222-3333-4444-555555555555';
  const appToken = await new SignJWT({ appid: 'app-guid', oid: sp, tid: 'tenant-guid', roles: ['IMAP.AccessAsApp'] }).setProtectedHeader({ alg: 'RS256' }).sign(privateKey);
  const facts = tokenFacts(appToken)!;
  assert.deepEqual([facts.appOnly, facts.appId, facts.objectId, facts.tenantId], [true, 'app-guid', sp, 'tenant-guid']);
  const ctx = { connector: 'scans', mailbox: 'info@contoso.com', host: 'outlook.office365.com', port: 993, token: appToken };

  // imapflow turns the BAD after AUTHENTICATE into an AuthenticationFailure carrying the text.
  const nc = classifyImapError(Object.assign(new Error('Authentication failed'), { authenticationFailed: true, response: 'BAD User is authenticated but not connected.' }), ctx);
  assert.equal(nc.code, 'MB_CONNECTOR_NOT_CONNECTED');
  assert.ok(nc.explain('en').fix.includes(`New-ServicePrincipal -AppId app-guid -ObjectId ${sp}`));
  assert.ok(nc.explain('de').fix.includes(`Add-MailboxPermission -Identity info@contoso.com -User ${sp} -AccessRights FullAccess`));
  assert.ok((nc.retryAfterMs ?? 0) >= 60_000);
  const unknownToken = classifyImapError(new Error('BAD User is authenticated but not connected.'), { ...ctx, token: 'opaque' });
  assert.match(unknownToken.explain('en').fix, /-ObjectId <Enterprise application object ID>/);

  assert.equal(throttleHint('A7 BAD Request is throttled. Suggested Backoff Time: 299961 milliseconds'), 299961);
  const thr = classifyImapError(Object.assign(new Error('Command failed'), { code: 'ETHROTTLE', throttleReset: 299961, throttleWaited: 150_000, responseText: 'Request is throttled. Suggested Backoff Time: 299961 milliseconds' }), ctx);
  assert.equal(thr.code, 'MB_CONNECTOR_THROTTLED');
  assert.equal(thr.retryAfterMs, 149_961, 'the rest of the suggested time after what imapflow already waited');
  assert.match(thr.explain('en').cause, /suggested waiting 300 seconds/);
  // The server hung up during imapflow's wait: the hint seen in the log still decides.
  const hungUp = classifyImapError(Object.assign(new Error('Connection not available'), { code: 'NoConnection' }), { ...ctx, throttleHintMs: 5000, byeReason: 'Connection closed. 14' });
  assert.equal(hungUp.code, 'MB_CONNECTOR_THROTTLED');
  assert.equal(hungUp.retryAfterMs, 5000);

  const refused = classifyImapError(Object.assign(new Error('Authentication failed'), { authenticationFailed: true, response: 'A1 NO AUTHENTICATE failed.' }), ctx);
  assert.equal(refused.code, 'MB_CONNECTOR_AUTH_FAILED');
  assert.match(refused.explain('en').cause, /A1 NO AUTHENTICATE failed\./);
  assert.equal(classifyImapError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), ctx).code, 'MB_CONNECTOR_SOURCE_UNREACHABLE');
  assert.equal(classifyImapError(Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), ctx).code, 'MB_CONNECTOR_SOURCE_TLS');
  assert.equal(classifyImapError(Object.assign(new Error('Command failed'), { mailboxMissing: true }), { ...ctx, folder: 'Inbox/Scans' }).code, 'MB_CONNECTOR_FOLDER_MISSING');
  const bye = classifyImapError(Object.assign(new Error('Connection not available'), { code: 'NoConnection' }), { ...ctx, byeReason: 'Connection is closed. 13' });
  assert.equal(bye.code, 'MB_CONNECTOR_SESSION_LOST');
  assert.match(bye.message, /BYE Connection is closed\. 13/);
  // Tokens never reach an error text.
  assert.ok(!nc.message.includes(appToken) && !JSON.stringify(nc.explain('en')).includes(appToken));
});

test('nothing under notify/ imports the connector (the IMAP watcher takes the reply mapping from m365/)', () => {
  const root = join(import.meta.dirname, '..', '..', 'src', 'notify');
  const offenders: string[] = [];
  for (const file of readdirSync(root, { recursive: true, encoding: 'utf8' })) {
    if (!file.endsWith('.ts')) continue;
    const text = readFileSync(join(root, file), 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+'([^']+)'/gms)) {
      if (/(^|\/)connector\//.test(m[1]!)) offenders.push(`src/notify/${file}: ${m[1]}`);
    }
  }
  assert.deepEqual(offenders, []);
});
