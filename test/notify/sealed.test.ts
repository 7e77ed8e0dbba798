/** Subscribers' secrets are sealed in the store and clear only to the code that delivers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { openSecretBox } from '../../src/config/secrets.ts';
import { sealedNotifyRepository } from '../../src/notify/sealed.ts';
import { scrub } from '../../src/log/redact.ts';
import { mail, subscription, tempStore } from './helpers.ts';

test('webhook secret and push keys: sealed at rest, clear through the wrapper (get, list, due), scrubbed from logs', async () => {
  const t = await tempStore();
  try {
    const box = await openSecretBox({ keyFile: join(dirname(t.path), 'mailbridge.key'), env: {} });
    const repo = sealedNotifyRepository(t.store.notify, box);
    const secret = `whsec_${randomBytes(24).toString('base64')}`;
    const auth = randomBytes(16).toString('base64url');
    const hook = subscription('webhook', ['anna@contoso.com'], { url: 'https://hooks.contoso.com/mail', secret });
    const push = subscription('webpush', ['anna@contoso.com'], { endpoint: 'https://push.example/abc', keys: { p256dh: 'BPublicKey', auth } }, { id: 'sub_push' });
    await repo.createSubscription(hook);
    await repo.createSubscription(push);

    // At rest: neither the raw row nor the database file holds a secret.
    const raw = await t.store.notify.getSubscription(hook.id);
    assert.deepEqual(Object.keys(raw!.params), ['$sealed']);
    assert.match(String(raw!.params.$sealed), /^enc:v1:/);
    await t.store.close();
    const file = readFileSync(t.path).toString('latin1'); // closed: the WAL is checkpointed into the file
    assert.ok(!file.includes(secret), 'the signing secret is not in the database');
    assert.ok(!file.includes(auth), 'the push auth secret is not in the database');
    assert.ok(!file.includes('hooks.contoso.com'), 'nor the receiver URL');
    const store = await t.reopen();
    const again = sealedNotifyRepository(store.notify, box);

    assert.deepEqual((await again.getSubscription(hook.id))?.params, { url: 'https://hooks.contoso.com/mail', secret });
    assert.deepEqual((await again.listSubscriptions()).map((s) => s.id).sort(), [hook.id, push.id].sort());
    const listed = (await again.listSubscriptions()).find((s) => s.id === push.id);
    assert.equal((listed?.params.keys as { auth: string }).auth, auth);
    const e = mail('anna@contoso.com', 'm1');
    await again.publish({ id: e.id, mailbox: e.mailbox, type: e.type, body: JSON.stringify(e) }, Date.now());
    const due = await again.due(Date.now(), 10);
    assert.equal(due.length, 2);
    assert.equal(due.find((d) => d.subscription.id === hook.id)?.subscription.params.secret, secret);

    // Opened secrets are known to the scrubber.
    assert.ok(!scrub(`delivery failed with ${secret} and ${auth}`).includes(secret));
    assert.ok(!scrub(`x ${auth}`).includes(auth));

    // Rows written before sealing existed are read as they are.
    const legacy = subscription('webhook', ['ben@contoso.com'], { url: 'https://old.example/h', secret: 'whsec_old' }, { id: 'sub_legacy' });
    await store.notify.createSubscription(legacy);
    assert.equal((await again.getSubscription('sub_legacy'))?.params.url, 'https://old.example/h');
  } finally {
    await t.cleanup();
  }
});
