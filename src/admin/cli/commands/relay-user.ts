import { MbError } from '../../../errors/index.ts';
import { registerSecret } from '../../../log/redact.ts';
import { hashPassword } from '../../../relay/password.ts';
import { isSenderPattern, parseCidr } from '../../../relay/policy.ts';
import type { Command, CommandContext } from '../command.ts';

/** Devices often cap password length near 16; 12 keeps guessing out of reach with the login back-off. */
const MIN_PASSWORD = 12;

export const command: Command = {
  name: 'relay-user',
  summary: { en: 'Create relay users and password hashes', de: 'Relay-Benutzer und Kennwort-Hashes erstellen' },
  help: {
    en: `Usage: mailbridge relay-user add <name> --sender <address|@domain> [--sender …] [--ip <cidr> …]
       mailbridge relay-user passwd <name>

Relay users are what applications log in as (SMTP AUTH) to send through the relay. mailbridge.yaml
keeps only a scrypt hash of the password. These commands ask for the password (twice on a terminal,
one line from a pipe) and print the YAML to put under relay.users; they do not change any file.

  add <name>      print a new user entry
    --sender S    an address (name@domain) or domain (@domain) the user may send as; repeatable
    --ip CIDR     allow logins only from this address or network; repeatable
  passwd <name>   print a new passwordHash for an existing user

Passwords need at least ${MIN_PASSWORD} characters.`,
    de: `Aufruf: mailbridge relay-user add <name> --sender <adresse|@domain> [--sender …] [--ip <cidr> …]
        mailbridge relay-user passwd <name>

Mit Relay-Benutzern melden sich Anwendungen (SMTP AUTH) am Relay an. mailbridge.yaml enthält nur
einen scrypt-Hash des Kennworts. Die Befehle fragen das Kennwort ab (am Terminal zweimal, aus einer
Pipe eine Zeile) und geben das YAML für relay.users aus; sie ändern keine Datei.

  add <name>      einen neuen Benutzereintrag ausgeben
    --sender S    eine Adresse (name@domain) oder Domain (@domain), als die der Benutzer senden
                  darf; mehrfach möglich
    --ip CIDR     Anmeldung nur von dieser Adresse bzw. diesem Netz erlauben; mehrfach möglich
  passwd <name>   einen neuen passwordHash für einen bestehenden Benutzer ausgeben

Kennwörter brauchen mindestens ${MIN_PASSWORD} Zeichen.`,
  },
  async run(ctx) {
    const [sub, name, ...rest] = ctx.args;
    if (sub !== 'add' && sub !== 'passwd') throw usage(sub ? `unknown subcommand "${sub}"` : 'add or passwd expected');
    if (!name || !/^[A-Za-z0-9._-]+$/.test(name)) throw usage('a user name of letters, digits, ".", "_" or "-" is needed');
    const senders: string[] = [];
    const ips: string[] = [];
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i]!;
      const v = rest[i + 1];
      if ((a === '--sender' || a === '--ip') && sub === 'add') {
        if (v === undefined) throw usage(`${a} needs a value`);
        if (a === '--sender' && !isSenderPattern(v)) throw usage(`"${v}" is not an address or @domain`);
        if (a === '--ip' && !parseCidr(v)) throw usage(`"${v}" is not an IP address or CIDR block`);
        (a === '--sender' ? senders : ips).push(v);
        i++;
      } else throw usage(`unknown option "${a}"`);
    }
    if (sub === 'add' && senders.length === 0) throw usage('at least one --sender is needed');

    const hash = await hashPassword(await askPassword(ctx));
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
};

async function askPassword(ctx: CommandContext): Promise<string> {
  const de = ctx.lang === 'de';
  const first = await ctx.prompt(de ? 'Kennwort: ' : 'Password: ', { secret: true });
  registerSecret(first);
  if (first.length < MIN_PASSWORD) throw usage(`the password needs at least ${MIN_PASSWORD} characters`);
  if (process.stdin.isTTY) {
    const again = await ctx.prompt(de ? 'Kennwort wiederholen: ' : 'Repeat password: ', { secret: true });
    if (again !== first) throw usage(de ? 'die Kennwörter stimmen nicht überein' : 'the passwords do not match');
  }
  return first;
}

function usage(detail: string): MbError {
  return new MbError('MB_CLI_USAGE', { command: 'relay-user', detail });
}
