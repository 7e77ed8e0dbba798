// Whether the gateway answers GET /health on the address of mailbridge.yaml (MAILBRIDGE_CONFIG).
//  - ExecStartPost of mailbridge.service (the systemd readiness check; the unit says why not
//    Type=notify): waits until it answers, or fails when the main process ($MAINPID) ends;
//    systemd's TimeoutStartSec bounds the wait.
//  - `--once`: the container image's HEALTHCHECK, one request.
import { Agent, fetch } from 'undici';
import { loadConfig } from '../dist/config.js';

const once = process.argv.includes('--once');
const { config } = await loadConfig(process.env.MAILBRIDGE_CONFIG ?? '/etc/mailbridge/mailbridge.yaml', process.env);
const listen = config.server.listen;
const wildcard = { '0.0.0.0': '127.0.0.1', '::': '[::1]', '': '127.0.0.1' };
const host = wildcard[listen] ?? (listen.includes(':') ? `[${listen}]` : listen);
const url = `${config.server.tls ? 'https' : 'http'}://${host}:${config.server.port}/health`;
// The probe asks this host's own listener by address: the certificate of server.tls names the
// host's public name (or is self-signed), so it is not verified here; nothing secret is sent.
const dispatcher = config.server.tls ? new Agent({ connect: { rejectUnauthorized: false } }) : undefined;
const main = Number(process.env.MAINPID);
for (;;) {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000), dispatcher });
    if (r.ok) process.exit(0);
    if (once) {
      console.error(`${url}: HTTP ${r.status} ${await r.text()}`);
      process.exit(1);
    }
  } catch (err) {
    if (once) {
      console.error(`${url}: ${err.cause?.message ?? err.message}`);
      process.exit(1);
    }
  }
  if (main > 0) {
    try {
      process.kill(main, 0);
    } catch {
      console.error(`mailbridge (PID ${main}) ended before ${url} answered`);
      process.exit(1);
    }
  }
  await new Promise((r) => setTimeout(r, 250));
}
