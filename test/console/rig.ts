/**
 * The console's browser rig: the whole sandbox (startFullSandbox), a gateway with a relay on the
 * sandbox connection and an admin API key, and Debian's Chromium driven by playwright-core
 * (executablePath /usr/bin/chromium, installed by scripts/chromium/install.sh; playwright's own
 * browser download is not used). A context signs in as a person (local user `ops`, or an Entra
 * user through the sandbox's sign-in page), or carries the admin API key in every request's header
 * (extraHTTPHeaders) where the test is about a page, not about signing in.
 *
 * Relay routes: mail from `stuck@contoso.test` goes to a port where nothing listens (it is
 * deferred, for the queue's buttons); every other sender goes to the sandbox's Exchange SMTP front.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import nodemailer from 'nodemailer';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { loadConfig } from '../../src/app/config.ts';
import { createLogger } from '../../src/log/index.ts';
import { startGateway, type Gateway } from '../../src/server/index.ts';
import { startFullSandbox, type FullSandbox } from '../relay/transports/full-sandbox.ts';
import { freePort } from '../support/ports.ts';
import { hashPassword } from '../../src/util/password.ts';

export const CHROMIUM = '/usr/bin/chromium';
export const STUCK = 'stuck@contoso.test';
const PASSWORD = 'scanner password 1';
/** The console's local admin user (api.users.ops). */
export const OPS = { user: 'ops', password: 'console password 9' };

export interface ConsoleRig {
  s: FullSandbox;
  gw: Gateway;
  key: string;
  browser: Browser;
  /** A browser context in a language, authenticated with the admin key (auth: 'key') or not at all, to sign in (auth: 'none'). */
  context(lang: 'en' | 'de', viewport?: { width: number; height: number }, auth?: 'key' | 'none'): Promise<BrowserContext>;
  /** Hands a mail to the relay as the scanner user. */
  send(from: string, to: string, subject: string): Promise<void>;
  /** The gateway's mailbridge.yaml (config apply writes it) and the key its secrets are sealed with. */
  configFile: string;
  keyFile: string;
  /** Every line the gateway logged. */
  logged: string[];
  /** The admin API as the test (not the browser) calls it. */
  api<T>(method: string, path: string): Promise<T>;
  close(): Promise<void>;
}

export async function startConsoleRig(name: string): Promise<ConsoleRig> {
  const s = await startFullSandbox();
  let gw: Gateway | undefined;
  let browser: Browser | undefined;
  try {
    const key = randomBytes(24).toString('base64url');
    // A fixed port: Entra's redirect URI must be registered before the gateway starts.
    const port = await freePort();
    const callback = `http://127.0.0.1:${port}/login/entra/callback`;
    const tenant = s.sandbox.directory.data.tenants[0]!;
    tenant.apps[0]!.redirectUris.push(callback);
    const file = s.writeConfig(`mailbridge-${name}.yaml`, {
      log: { level: 'info' },
      server: { listen: '127.0.0.1', port },
      relay: await s.relay(`relay-${name}`, PASSWORD, [
        { name: 'nowhere', senders: [STUCK], connection: 'sandbox', smtp: { host: '127.0.0.1', port: await freePort() } },
        { name: 'exo', senders: ['@contoso.test'], connection: 'sandbox', smtp: { host: '127.0.0.1', port: s.sandbox.smtp.port } },
      ]),
      api: {
        keys: { 'console-admin': { key, scopes: ['admin'] } },
        users: { [OPS.user]: { password: await hashPassword(OPS.password, 10), role: 'operator' } },
        signin: { entra: { connection: 'sandbox', redirectUri: callback } },
      },
    });
    const { config, keyFile } = await loadConfig(file, {});
    const logged: string[] = [];
    // The level follows log.level, which the config editor's test changes through the console.
    gw = await startGateway(config, createLogger({ level: config.log.level, destination: { write: (line: string) => logged.push(line) } }), { keyFile, env: {}, configPath: file });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    const g = gw;
    const b = browser;
    const listener = g.relay!.relay.listeners[0]!;
    return {
      s,
      gw: g,
      key,
      browser: b,
      configFile: file,
      keyFile,
      logged,
      context: (lang, viewport = { width: 1280, height: 900 }, auth = 'key') =>
        b.newContext({
          baseURL: g.url,
          locale: lang === 'de' ? 'de-DE' : 'en-US',
          viewport,
          ...(auth === 'key' ? { extraHTTPHeaders: { authorization: `Bearer ${key}` } } : {}),
          // The sandbox's Entra ID answers over TLS with the sandbox's own CA.
          ignoreHTTPSErrors: true,
          // axe-core is injected as a script; the console's CSP (script-src 'self') would refuse it.
          bypassCSP: true,
        }),
      async send(from, to, subject) {
        const t = nodemailer.createTransport({
          host: listener.host,
          port: listener.port,
          secure: false,
          requireTLS: true,
          tls: { ca: g.relay!.relay.tls.cert, checkServerIdentity: () => undefined },
          auth: { user: 'scanner', pass: PASSWORD },
        });
        await t.sendMail({ from, to, subject, text: `${subject}\r\n` });
        t.close();
      },
      async api<T>(method: string, path: string) {
        const res = await fetch(`${g.url}${path}`, { method, headers: { authorization: `Bearer ${key}` } });
        const text = await res.text();
        if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
        return (text ? JSON.parse(text) : undefined) as T;
      },
      async close() {
        await b.close();
        await g.close('test end');
        await s.close();
      },
    };
  } catch (err) {
    await browser?.close();
    await gw?.close('start failed');
    await s.close();
    throw err;
  }
}

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: string[]; html: string }>;
}

/** axe-core's WCAG 2.x A/AA rules on the page as it is now; the serious and critical violations. */
export async function axe(page: Page): Promise<AxeViolation[]> {
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(async () => {
    const w = globalThis as unknown as { axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: AxeViolation[] }> } };
    return w.axe.run((globalThis as unknown as { document: unknown }).document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
  });
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}
