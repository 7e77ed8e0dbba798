/**
 * Starts a private sandbox Dovecot that keeps running after this script (for humans and CI jobs
 * outside node:test): everything under DIR (default tmp/dovecot), a fresh sandbox CA
 * (DIR/tls/ca.crt to trust), fixed ports if given. Prints the master PID, the ports and a token for
 * one mailbox. Stop it with scripts/dovecot/stop.sh DIR.
 *
 * Usage: node scripts/dovecot/start.ts [--dir DIR] [--user alice@contoso.test] [--imap N --imaps N --lmtp N --submission N]
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { MbError } from '../../src/errors/index.ts';
import { createSandboxCa } from '../../src/sandbox/ca.ts';
import { startDovecot, type DovecotPorts } from '../../src/sandbox/dovecot.ts';

const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: 'tmp/dovecot' },
    user: { type: 'string', default: 'alice@contoso.test' },
    imap: { type: 'string' },
    imaps: { type: 'string' },
    lmtp: { type: 'string' },
    submission: { type: 'string' },
  },
});
const dir = resolve(values.dir);
const pidFile = join(dir, 'run', 'master.pid');
if (existsSync(pidFile)) {
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  try {
    process.kill(pid, 0);
    console.error(`a Dovecot is already running from ${dir} (PID ${pid}); run scripts/dovecot/stop.sh ${values.dir}`);
    process.exit(1);
  } catch {
    // stale pid file: start afresh
  }
}
mkdirSync(join(dir, 'tls'), { recursive: true });
mkdirSync(join(dir, 'jwt'), { recursive: true, mode: 0o700 });
const ca = createSandboxCa();
writeFileSync(join(dir, 'tls', 'ca.crt'), ca.certPem);
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
writeFileSync(join(dir, 'jwt', 'sandbox.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
const ports: Partial<DovecotPorts> = {};
for (const k of ['imap', 'imaps', 'lmtp', 'submission'] as const) if (values[k]) ports[k] = Number(values[k]);
const issuer = 'https://dovecot.sandbox.invalid/';
// A coded failure (a folder Dovecot's users cannot enter, say) is printed with its fix, not as a stack.
const dovecot = await startDovecot({
  dir,
  tls: ca.issueServer(),
  jwtPublicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  jwtKeyId: 'sandbox',
  issuer,
  ports,
  // Nothing relays for a standalone instance: submission accepts logins but cannot deliver.
  submissionRelay: { host: '127.0.0.1', port: 9 },
  persistent: true,
}).catch((err: unknown) => {
  if (!(err instanceof MbError)) throw err;
  const e = err.explain('en');
  console.error(`${err.code}: ${e.cause}\n  Fix: ${e.fix}`);
  process.exit(1);
});
const token = await new SignJWT({ email: values.user.toLowerCase() })
  .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: 'sandbox' })
  .setSubject(values.user.toLowerCase())
  .setIssuer(issuer)
  // Back-dated like the sandbox's own tokens (src/sandbox/dovecot.ts): Dovecot's clock can trail.
  .setIssuedAt(Math.floor(Date.now() / 1000) - 300)
  .setExpirationTime('1h')
  .sign(privateKey);
writeFileSync(join(dir, 'ports.json'), JSON.stringify(dovecot.ports) + '\n');
console.log(`pid=${dovecot.pid}`);
console.log(`dir=${dir}`);
for (const [k, v] of Object.entries(dovecot.ports)) console.log(`${k}=${v}`);
console.log(`ca=${join(dir, 'tls', 'ca.crt')}`);
console.log(`token(${values.user})=${token}`);
