/**
 * Screenshots of the console's main pages in English and German for docs/screenshots/ and the
 * README, taken from a gateway on the sandbox tenant in Debian's Chromium (the browser tests' rig,
 * test/console/rig.ts): a message the relay could not deliver in the queue, the connection whose
 * secret the sandbox revoked on the overview, a config edit with its error.
 *   npm run screenshots          (needs Dovecot and Chromium: scripts/dovecot/install.sh, scripts/chromium/install.sh)
 */
import { mkdirSync } from 'node:fs';
import { removeSecret } from '../src/sandbox/entra/ops.ts';
import { startConsoleRig, STUCK } from '../test/console/rig.ts';
import { readUntil } from '../test/support/wait.ts';

const OUT = new URL('../docs/screenshots/', import.meta.url);
mkdirSync(OUT, { recursive: true });

const rig = await startConsoleRig('screenshots');
try {
  await rig.send(STUCK, 'alice@contoso.test', 'Invoice 4711');
  await rig.send('scanner@contoso.test', 'bob@contoso.test', 'Scan 0815');
  const q = await readUntil(
    'the stuck message deferred',
    () => rig.api<{ messages: Array<{ id: string; sender: string; state: string }> }>('GET', '/api/v1/relay/queue'),
    (x) => x.messages.some((m) => m.sender === STUCK && m.state === 'deferred'),
  );
  const id = q.messages.find((m) => m.sender === STUCK)!.id;
  const tenant = rig.s.sandbox.directory.data.tenants[0]!;
  const app = tenant.apps[0]!;
  for (const secret of [...app.secrets]) removeSecret(rig.s.sandbox.directory, tenant.id, app.appId, secret.keyId);
  await rig.gw.identity!.getToken('sandbox', 'exchange', { forceRefresh: true }).catch(() => undefined);

  for (const lang of ['en', 'de'] as const) {
    const ctx = await rig.context(lang, { width: 1280, height: 900 });
    const page = await ctx.newPage();
    const shot = async (name: string) => {
      const file = new URL(`${name}.${lang}.png`, OUT);
      await page.screenshot({ path: file.pathname, fullPage: true });
      process.stdout.write(`wrote docs/screenshots/${name}.${lang}.png\n`);
    };
    await page.goto('/console/');
    await shot('overview');
    await page.goto('/console/queue');
    await shot('queue');
    await page.goto(`/console/queue/${id}`);
    await shot('message');
    await page.goto('/console/config');
    const editor = page.locator('#config-editor');
    await editor.fill('server:\n  listen: 127.0.0.1\n  port: 99999\n');
    await editor.press('End');
    await page.locator('#config-problems li[data-line="3"]').waitFor({ timeout: 15_000 });
    await shot('config');
    await page.goto('/console/audit');
    await shot('audit');
    await page.goto('/console/setup');
    await shot('setup');
    await ctx.close();
  }
} finally {
  await rig.close();
}
