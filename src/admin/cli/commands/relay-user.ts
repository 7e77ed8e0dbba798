import type { Text } from '../../../i18n/index.ts';
import { registerSecret } from '../../../log/redact.ts';
import { hashPassword } from '../../../util/password.ts';
import { isSenderPattern, parseCidr } from '../../../relay/policy.ts';
import { defineCommand, type CommandContext } from '../command.ts';
import { noMoreArgs, subcommand, usageError } from '../args.ts';

/** Devices often cap password length near 16; 12 keeps guessing out of reach with the login back-off. */
const MIN_PASSWORD = 12;

export const command = defineCommand({
  name: 'relay-user',
  summary: { en: 'Create relay users and password hashes', de: 'Relay-Benutzer und Kennwort-Hashes erstellen' },
  help: {
    en: `Usage: mailbridge relay-user add <name> --sender <address|@domain> [--sender …] [--ip <cidr> …]
       mailbridge relay-user passwd <name>

Relay users are what applications log in as (SMTP AUTH) to send through the relay. mailbridge.yaml
keeps only a scrypt hash of the password. These commands ask for the password (twice on a terminal,
one line from a pipe) and print the YAML to put under relay.users; they do not change any file.

  add <name>      print a new user entry (with --sender, and --ip)
  passwd <name>   print a new passwordHash for an existing user

{options}

Passwords need at least ${MIN_PASSWORD} characters.`,
    de: `Aufruf: mailbridge relay-user add <name> --sender <adresse|@domain> [--sender …] [--ip <cidr> …]
        mailbridge relay-user passwd <name>

Mit Relay-Benutzern melden sich Anwendungen (SMTP AUTH) am Relay an. mailbridge.yaml enthält nur
einen scrypt-Hash des Kennworts. Die Befehle fragen das Kennwort ab (am Terminal zweimal, aus einer
Pipe eine Zeile) und geben das YAML für relay.users aus; sie ändern keine Datei.

  add <name>      einen neuen Benutzereintrag ausgeben (mit --sender, und --ip)
  passwd <name>   einen neuen passwordHash für einen bestehenden Benutzer ausgeben

{options}

Kennwörter brauchen mindestens ${MIN_PASSWORD} Zeichen.`,
  },
  options: {
    sender: {
      type: 'string',
      value: 'S',
      multiple: true,
      help: {
        en: 'add: an address (name@domain) or domain (@domain) the user may send as; repeatable',
        de: 'add: eine Adresse (name@domain) oder Domain (@domain), als die der Benutzer senden\ndarf; mehrfach möglich',
      },
    },
    ip: {
      type: 'string',
      value: 'CIDR',
      multiple: true,
      help: {
        en: 'add: allow logins only from this address or network; repeatable',
        de: 'add: Anmeldung nur von dieser Adresse bzw. diesem Netz erlauben; mehrfach möglich',
      },
    },
  },
  async run(ctx) {
    const [given, name, ...rest] = ctx.args;
    const usage = (detail: Text, params?: Record<string, unknown>) => usageError('relay-user', ctx.lang, detail, params);
    const sub = subcommand('relay-user', ctx.lang, given, ['add', 'passwd']);
    if (!name || !/^[A-Za-z0-9._-]+$/.test(name)) {
      throw usage({ en: 'a user name of letters, digits, ".", "_" or "-" is needed', de: 'ein Benutzername aus Buchstaben, Ziffern, „.“, „_“ oder „-“ fehlt' });
    }
    noMoreArgs('relay-user', ctx.lang, rest);
    const senders = ctx.opts.sender;
    const ips = ctx.opts.ip;
    if (sub === 'passwd' && (senders.length || ips.length)) throw usage({ en: 'passwd takes no --sender or --ip', de: 'passwd nimmt kein --sender oder --ip' });
    for (const v of senders) if (!isSenderPattern(v)) throw usage({ en: '"{v}" is not an address or @domain', de: '„{v}“ ist keine Adresse und keine @domain' }, { v });
    for (const v of ips) if (!parseCidr(v)) throw usage({ en: '"{v}" is not an IP address or CIDR block', de: '„{v}“ ist keine IP-Adresse und kein CIDR-Block' }, { v });
    if (sub === 'add' && senders.length === 0) throw usage({ en: 'at least one --sender is needed', de: 'mindestens ein --sender ist nötig' });

    const hash = await hashPassword(await askPassword(ctx, 'relay-user'));
    if (sub === 'passwd') {
      ctx.out.line(ctx.lang === 'de' ? `# In mailbridge.yaml unter relay.users.${name} ersetzen:` : `# Replace in mailbridge.yaml under relay.users.${name}:`);
      ctx.out.line(`passwordHash: '${hash}'`);
      return 0;
    }
    ctx.out.line(ctx.lang === 'de' ? '# In mailbridge.yaml einfügen (unter relay.users, falls schon vorhanden):' : '# Add to mailbridge.yaml (under relay.users if it exists):');
    const lines = ['relay:', '  users:', `    ${name}:`, `      passwordHash: '${hash}'`, '      allowedSenders:', ...senders.map((s) => `        - '${s}'`)];
    if (ips.length) lines.push('      allowedIps:', ...ips.map((c) => `        - '${c}'`));
    for (const l of lines) ctx.out.line(l);
    return 0;
  },
});

/** A new password: asked twice on a terminal, one line from a pipe; at least MIN_PASSWORD characters. */
export async function askPassword(ctx: CommandContext, command: string): Promise<string> {
  const de = ctx.lang === 'de';
  const first = await ctx.prompt(de ? 'Kennwort: ' : 'Password: ', { secret: true });
  registerSecret(first);
  if (first.length < MIN_PASSWORD) {
    throw usageError(command, ctx.lang, { en: 'the password needs at least {n} characters', de: 'das Kennwort braucht mindestens {n} Zeichen' }, { n: MIN_PASSWORD });
  }
  if (process.stdin.isTTY) {
    const again = await ctx.prompt(de ? 'Kennwort wiederholen: ' : 'Repeat password: ', { secret: true });
    if (again !== first) throw usageError(command, ctx.lang, { en: 'the passwords do not match', de: 'die Kennwörter stimmen nicht überein' });
  }
  return first;
}
