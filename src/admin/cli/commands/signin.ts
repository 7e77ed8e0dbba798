/**
 * `mailbridge signin <connection> [--device-code]`: delegated sign-in of a mailbox user.
 *
 * Auth code (default): prints the sign-in link; the browser comes back to the redirect URI, which
 * the running gateway serves (`mailbridge serve`). When nothing answers there and the redirect URI
 * is on this machine (localhost, 127.0.0.1, ::1), the command serves it itself for the duration of
 * the sign-in. It waits until the code is redeemed (here or in the gateway: both share the store).
 * Device code (--device-code): prints Entra's message with the code and polls until the user has
 * signed in; for machines without a browser and without a reachable redirect URI.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { Agent, request } from '../../../net/undici.ts';
import { MbError, renderText } from '../../../errors/index.ts';
import type { SignInResult } from '../../../identity/index.ts';
import { signinRoutes } from '../../../server/signin.ts';
import { defineCommand, type CommandContext } from '../command.ts';
import { oneConnection, openIdentity } from './token.ts';
import { listenOn } from '../../../errors/listen.ts';

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

export const command = defineCommand({
  name: 'signin',
  summary: {
    en: 'Sign a mailbox user in for a delegated connection (link or device code)',
    de: 'Postfachbenutzer für eine delegierte Verbindung anmelden (Link oder Gerätecode)',
  },
  help: {
    en: `Usage: mailbridge signin <connection> [--device-code] [--account UPN] [--timeout MINUTES]

Signs a user in for a connection with flow auth-code or device-code; mailbridge keeps the
sign-in (encrypted) and renews it by itself from then on.

  (default)       Prints a sign-in link to open in a browser. Entra ID sends the browser back
                  to the connection's redirectUri (default: server.publicUrl or
                  http://localhost:<port> + /oauth/callback), which the gateway serves; if no
                  gateway runs and the redirect URI is on this machine, this command serves it
                  while it waits. The redirect URI must be registered on the app (Entra admin
                  center › App registrations › <app> › Authentication › Web).

{options}

Press Ctrl-C to cancel (exit status 130; 143 after SIGTERM).`,
    de: `Aufruf: mailbridge signin <verbindung> [--device-code] [--account UPN] [--timeout MINUTEN]

Meldet einen Benutzer für eine Verbindung mit dem Anmeldeverfahren auth-code oder device-code an;
mailbridge bewahrt die Anmeldung (verschlüsselt) auf und erneuert sie danach selbstständig.

  (Standard)      Gibt einen Anmeldelink zum Öffnen im Browser aus. Entra ID leitet den Browser
                  zur redirectUri der Verbindung zurück (Standard: server.publicUrl oder
                  http://localhost:<port> + /oauth/callback), die das Gateway bedient; läuft kein
                  Gateway und liegt die Umleitungs-URI auf diesem Rechner, bedient dieser Befehl
                  sie, während er wartet. Die Umleitungs-URI muss an der App registriert sein
                  (Entra Admin Center › App-Registrierungen › <App> › Authentifizierung › Web).

{options}

Abbrechen mit Strg-C (Exit-Status 130; 143 nach SIGTERM).`,
  },
  options: {
    'device-code': {
      type: 'boolean',
      help: {
        en: 'Print a code to enter at the verification page instead (the app needs\nAuthentication › Allow public client flows › Yes).',
        de: 'Stattdessen einen Code ausgeben, der auf der Bestätigungsseite einzugeben ist\n(die App braucht Authentifizierung › Öffentliche Clientflows zulassen › Ja).',
      },
    },
    account: { type: 'string', value: 'UPN', help: { en: 'Suggest this account on the sign-in page.', de: 'Dieses Konto auf der Anmeldeseite vorschlagen.' } },
    timeout: {
      type: 'integer',
      value: { en: 'MINUTES', de: 'MINUTEN' },
      min: 1,
      max: 1440,
      help: { en: 'Give up after this many minutes (default 15).', de: 'Nach so vielen Minuten aufgeben (Standard 15).' },
    },
  },
  async run(ctx) {
    const deviceCode = ctx.opts['device-code'];
    const account = ctx.opts.account;
    const timeoutMinutes = ctx.opts.timeout ?? 15;
    const name = oneConnection(ctx, 'signin');
    const de = ctx.lang === 'de';
    const opened = await openIdentity(ctx);
    const abort = new AbortController();
    let stopped: string | undefined;
    void ctx.stopSignal.then((signal) => {
      stopped = signal;
      abort.abort();
    });
    const timer = setTimeout(() => abort.abort(), timeoutMinutes * 60_000);
    let listener: FastifyInstance | undefined;
    let redirectUri: string | undefined;
    try {
      let result: SignInResult;
      if (deviceCode) {
        let toldPending = false;
        result = await opened.identity.signInWithDeviceCode(name, {
          signal: abort.signal,
          onCode: (info) => {
            ctx.out.line(info.message);
            ctx.out.line(
              de
                ? `\nÖffnen Sie ${info.verificationUri} und geben Sie den Code ${info.userCode} ein (gültig ${Math.round(info.expiresIn / 60)} Minuten).`
                : `\nOpen ${info.verificationUri} and enter the code ${info.userCode} (valid for ${Math.round(info.expiresIn / 60)} minutes).`,
            );
          },
          onPending: (notice) => {
            if (toldPending) return;
            toldPending = true;
            const ex = notice.explain(ctx.lang);
            ctx.out.line(`${ex.title} – ${ex.fix}`);
          },
        });
      } else {
        const link = await opened.identity.beginSignIn(name, { loginHint: account });
        redirectUri = link.redirectUri;
        listener = await serveRedirectIfNeeded(ctx, opened, link.redirectUri);
        ctx.out.line(de ? 'Öffnen Sie diesen Link im Browser und melden Sie sich mit dem Postfachkonto an:' : 'Open this link in a browser and sign in with the mailbox account:');
        ctx.out.line();
        ctx.out.line(link.url);
        ctx.out.line();
        ctx.out.line(
          listener
            ? de
              ? `Warte auf die Umleitung zu ${link.redirectUri} (von diesem Befehl bedient) …`
              : `Waiting for the redirect to ${link.redirectUri} (served by this command) …`
            : de
              ? `Warte auf die Umleitung zu ${link.redirectUri} (vom Gateway bedient) …`
              : `Waiting for the redirect to ${link.redirectUri} (served by the gateway) …`,
        );
        result = await opened.identity.waitForSignIn(link, { signal: abort.signal, timeoutMs: timeoutMinutes * 60_000 });
      }
      ctx.out.line(de ? `Angemeldet: ${result.account} (Verbindung ${result.connection}).` : `Signed in: ${result.account} (connection ${result.connection}).`);
      for (const w of result.warnings) ctx.out.line(renderText(w.explain(ctx.lang), ctx.lang));
      return 0;
    } catch (err) {
      if (abort.signal.aborted && !stopped && err instanceof MbError && err.code === 'MB_SIGNIN_CANCELLED') {
        // The timer fired, not Ctrl-C. A device code has no redirect to check, only a code not entered.
        if (redirectUri === undefined) throw new MbError('MB_SIGNIN_DEVICE_CODE_TIMEOUT', { connection: name, minutes: timeoutMinutes });
        throw new MbError('MB_SIGNIN_TIMEOUT', { connection: name, minutes: timeoutMinutes, redirectUri });
      }
      if (stopped && err instanceof MbError && err.code === 'MB_SIGNIN_CANCELLED') {
        // Cancelled by Ctrl-C or SIGTERM: say so, and exit as a shell reports a process ended by
        // that signal (128 + 2, 128 + 15), so scripts can tell a cancel from a failed sign-in.
        ctx.out.error(renderText(err.explain(ctx.lang), ctx.lang));
        return stopped === 'SIGINT' ? 130 : 143;
      }
      throw err;
    } finally {
      clearTimeout(timer);
      if (listener) await listener.close();
      await opened.close();
    }
  },
});

/** Serve the redirect URI here when nothing answers there and it is on this machine. */
async function serveRedirectIfNeeded(
  ctx: CommandContext,
  opened: Awaited<ReturnType<typeof openIdentity>>,
  redirectUri: string,
): Promise<FastifyInstance | undefined> {
  const target = new URL(redirectUri);
  if (await answers(new URL('/health', target.origin).href)) return undefined;
  if (!LOOPBACK.has(target.hostname) || target.protocol !== 'http:') return undefined;
  const http = Fastify({ loggerInstance: ctx.log as FastifyBaseLogger });
  await http.register(signinRoutes, { config: opened.config, identity: async () => opened.identity });
  const host = target.hostname === 'localhost' ? '127.0.0.1' : target.hostname.replace(/^\[|\]$/g, '');
  try {
    await listenOn('redirect URI', host, Number(target.port || 80), () => http.listen({ host, port: Number(target.port || 80) }));
  } catch (err) {
    await http.close();
    // MB_PORT_IN_USE names who holds the port, in the admin's language.
    const why = err instanceof MbError ? err.explain(ctx.lang).cause : (err as Error).message;
    ctx.out.error(
      ctx.lang === 'de'
        ? `Hinweis: ${target.host} ist belegt und antwortet nicht wie mailbridge (${why}).`
        : `Note: ${target.host} is taken and does not answer like mailbridge (${why}).`,
    );
    return undefined;
  }
  return http;
}

async function answers(url: string): Promise<boolean> {
  const agent = new Agent({ connectTimeout: 2000 });
  try {
    const res = await request(url, { dispatcher: agent, headersTimeout: 2000, bodyTimeout: 2000 });
    await res.body.dump();
    return res.statusCode < 500;
  } catch {
    return false;
  } finally {
    await agent.close();
  }
}
