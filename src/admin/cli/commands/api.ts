/**
 * `mailbridge api user set <name> [--role reader|operator|admin]`: a local admin user of the console
 * (for installs without Entra ID). The password is asked for (twice on a terminal, one line from a
 * pipe) and only its scrypt hash is written to mailbridge.yaml (api.users.<name>.password, with the
 * role), through the same YAML editing that `secret set` uses, so comments and layout stay. A new
 * password also ends the user's open console sessions in the store.
 */
import { readRawConfig, storeSettings, loadConfig } from '../../../app/config.ts';
import { ROLES, type Role } from '../../../api/config.ts';
import { Sessions } from '../../../api/session.ts';
import { openStore } from '../../../store/index.ts';
import { hashPassword } from '../../../util/password.ts';
import { defineCommand } from '../command.ts';
import { noMoreArgs, subcommand, usageError } from '../args.ts';
import { askPassword } from './relay-user.ts';

export const command = defineCommand({
  name: 'api',
  summary: { en: 'Local admin users of the console and admin API', de: 'Lokale Admin-Benutzer der Konsole und Admin-API' },
  help: {
    en: `Usage: mailbridge api user set <name> [--role reader|operator|admin]

Local users sign in to the console at /login where there is no Entra ID sign-in. The command asks
for the password (twice on a terminal, one line from a pipe) and writes its scrypt hash and the role
to mailbridge.yaml under api.users.<name>; the clear password is stored nowhere. A new user needs
--role; for an existing one the role stays unless given. Open console sessions of the user end.
Restart mailbridge to apply: systemctl restart mailbridge

  reader     sees everything (scope read)
  operator   also retries, holds and releases messages, retries connectors (scope operate)
  admin      everything, including configuration and the audit log

{options}`,
    de: `Aufruf: mailbridge api user set <name> [--role reader|operator|admin]

Lokale Benutzer melden sich unter /login an der Konsole an, wo es keine Anmeldung mit Entra ID gibt.
Der Befehl fragt das Kennwort ab (am Terminal zweimal, aus einer Pipe eine Zeile) und schreibt
dessen scrypt-Hash und die Rolle unter api.users.<name> in mailbridge.yaml; das Kennwort selbst wird
nirgends gespeichert. Ein neuer Benutzer braucht --role; bei einem bestehenden bleibt die Rolle,
wenn keine angegeben ist. Offene Konsolensitzungen des Benutzers enden.
Zum Übernehmen mailbridge neu starten: systemctl restart mailbridge

  reader     sieht alles (Berechtigung read)
  operator   darf außerdem Nachrichten erneut senden, anhalten, freigeben und Konnektoren
             wiederholen (Berechtigung operate)
  admin      alles, auch Konfiguration und Audit-Protokoll

{options}`,
  },
  options: {
    role: {
      type: 'string',
      value: 'ROLE',
      help: { en: 'reader, operator or admin', de: 'reader, operator oder admin' },
    },
  },
  async run(ctx) {
    const [area, given, name, ...rest] = ctx.args;
    const usage = (en: string, de: string) => usageError('api', ctx.lang, { en, de });
    subcommand('api', ctx.lang, area, ['user']);
    subcommand('api', ctx.lang, given, ['set']);
    if (!name || !/^[A-Za-z0-9._@-]{1,64}$/.test(name)) {
      throw usage('a user name of 1 to 64 letters, digits, ".", "_", "@" or "-" is needed', 'ein Benutzername aus 1 bis 64 Buchstaben, Ziffern, „.“, „_“, „@“ oder „-“ fehlt');
    }
    noMoreArgs('api', ctx.lang, rest);
    const roleGiven = ctx.opts.role;
    if (roleGiven !== undefined && !(ROLES as readonly string[]).includes(roleGiven)) {
      throw usage(`--role must be reader, operator or admin, not "${roleGiven}"`, `--role muss reader, operator oder admin sein, nicht „${roleGiven}“`);
    }
    const raw = await readRawConfig(ctx.configPath, ctx.env);
    const users = (raw.raw.api as { users?: Record<string, { role?: string }> } | undefined)?.users ?? {};
    const existing = users[name];
    const role = (roleGiven ?? existing?.role) as Role | undefined;
    if (!role) throw usage(`${name} is a new user: give --role reader, operator or admin`, `${name} ist ein neuer Benutzer: geben Sie --role reader, operator oder admin an`);

    const hash = await hashPassword(await askPassword(ctx, 'api'));
    const base = ['api', 'users', name];
    const r = await storeSettings(ctx.configPath, [{ path: [...base, 'password'], value: hash }, { path: [...base, 'role'], value: role }], ctx.env);
    const de = ctx.lang === 'de';
    ctx.out.line(
      de
        ? `api.users.${name} (${role}) in ${r.file} ${existing ? 'geändert' : 'angelegt'}; nur der scrypt-Hash des Kennworts steht dort.`
        : `api.users.${name} (${role}) ${existing ? 'changed' : 'added'} in ${r.file}; only the password's scrypt hash is stored there.`,
    );
    if (existing) {
      // The old password may be known to someone: its sessions go, wherever they were opened.
      try {
        const { config } = await loadConfig(ctx.configPath, ctx.env);
        const store = await openStore(config.store);
        try {
          const ended = await new Sessions(store.kv, config.api?.session ?? { idleMinutes: 30, maxHours: 12 }).deleteUser(name);
          ctx.out.line(de ? `${ended} offene Konsolensitzung(en) von ${name} beendet.` : `Ended ${ended} open console session(s) of ${name}.`);
        } finally {
          await store.close();
        }
      } catch (err) {
        ctx.out.line(
          de
            ? `Offene Sitzungen von ${name} ließen sich nicht beenden (${(err as Error).message}); sie enden spätestens nach api.session.maxHours.`
            : `Could not end the open sessions of ${name} (${(err as Error).message}); they end after api.session.maxHours at the latest.`,
        );
      }
    }
    ctx.out.line(de ? 'Zum Übernehmen: systemctl restart mailbridge' : 'To apply: systemctl restart mailbridge');
    return 0;
  },
});
