/**
 * Config and audit routes: the effective configuration comes back with every secret masked (an
 * encrypted one shown by its first and last characters once opened, a plain one masked too, a
 * password in a proxy URL as well) and never in clear; a candidate mailbridge.yaml is checked with
 * `config check`'s analysis, each problem at its line with its MB code, in the caller's language;
 * validating changes nothing and is not audited.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import Fastify from 'fastify';
import { registerAdminApi } from '../../../src/api/index.ts';
import { configTools } from '../../../src/server/config-tools.ts';
import { configSchema } from '../../../src/app/schema.ts';
import { openSecretBox } from '../../../src/config/secrets.ts';
import { MASK } from '../../../src/log/redact.ts';
import { tempStore } from '../../notify/helpers.ts';

const ADMIN = randomBytes(24).toString('base64url');
const READ = randomBytes(24).toString('base64url');

test('GET /api/v1/config masks every secret; POST /api/v1/config/validate names each problem with line, MB code and fix', async () => {
  const t = await tempStore();
  const box = await openSecretBox({ keyFile: join(dirname(t.path), 'mailbridge.key'), env: {} });
  const clientSecret = `Qx8~${randomBytes(18).toString('base64url')}`;
  const plainToken = `metrics-${randomBytes(12).toString('hex')}`;
  const proxyPassword = `pw${randomBytes(8).toString('hex')}`;
  const config = configSchema.parse({
    server: { metricsToken: plainToken, proxy: `http://user:${proxyPassword}@proxy.intern:3128` },
    connections: { contoso: { tenantId: 'contoso.onmicrosoft.com', clientId: '00000000-0000-0000-0000-000000000001', clientSecret: box.seal(clientSecret) } },
    api: { keys: { ops: { key: box.seal(ADMIN), scopes: ['admin'] } } },
  });
  const http = Fastify();
  try {
    await registerAdminApi(http, {
      config,
      store: t.store,
      configTools: configTools(config, box),
      keys: [
        { name: 'ops', key: ADMIN, scopes: ['admin'] },
        { name: 'viewer', key: READ, scopes: ['read'] },
      ],
    });
    const shown = await http.inject({ url: '/api/v1/config', headers: { authorization: `Bearer ${READ}` } });
    assert.equal(shown.statusCode, 200);
    for (const secret of [clientSecret, plainToken, proxyPassword, ADMIN]) assert.equal(shown.body.includes(secret), false, 'a secret in the answer');
    const body = shown.json() as { config: { connections: { contoso: { clientSecret: string } }; server: { metricsToken: string; proxy: string } }; secrets: Array<{ path: string; encrypted: boolean }> };
    assert.notEqual(body.config.connections.contoso.clientSecret, clientSecret);
    assert.ok(body.config.connections.contoso.clientSecret.startsWith(clientSecret.slice(0, 2)), body.config.connections.contoso.clientSecret);
    assert.match(body.config.server.proxy, new RegExp(`^http://user:${MASK.replace(/\*/g, '\\*')}@proxy\\.intern:3128$`));
    assert.deepEqual(
      body.secrets.map((s) => [s.path, s.encrypted]).sort(),
      [
        ['api.keys.ops.key', true],
        ['connections.contoso.clientSecret', true],
        ['server.metricsToken', false],
      ],
    );

    const candidate = ['server:', '  port: 99999', 'connections:', '  contoso:', '    tenantId: contoso.onmicrosoft.com', '    clientid: x', ''].join('\n');
    const refusedRead = await http.inject({ method: 'POST', url: '/api/v1/config/validate', headers: { authorization: `Bearer ${READ}` }, payload: { yaml: candidate } });
    assert.equal(refusedRead.statusCode, 403, 'validation needs the admin scope');
    const checked = await http.inject({ method: 'POST', url: '/api/v1/config/validate', headers: { authorization: `Bearer ${ADMIN}`, 'accept-language': 'de' }, payload: { yaml: candidate } });
    assert.equal(checked.statusCode, 200);
    const report = checked.json() as { valid: boolean; errors: Array<{ path: string; line?: number; code: string; cause: string; fix: string }> };
    assert.equal(report.valid, false);
    const port = report.errors.find((e) => e.path === 'server.port');
    assert.ok(port, JSON.stringify(report.errors));
    assert.equal(port.line, 2);
    const typo = report.errors.find((e) => e.path.startsWith('connections.contoso'));
    assert.ok(typo && typo.line !== undefined && typo.line >= 4, JSON.stringify(report.errors));
    assert.match(report.errors.map((e) => e.fix).join(' '), /clientId/);
    const broken = await http.inject({ method: 'POST', url: '/api/v1/config/validate', headers: { authorization: `Bearer ${ADMIN}` }, payload: { yaml: 'server:\n  port: [1,\n' } });
    assert.equal((broken.json() as { errors: Array<{ code: string }> }).errors[0]!.code, 'MB_CONFIG_YAML_SYNTAX');
    const fine = await http.inject({ method: 'POST', url: '/api/v1/config/validate', headers: { authorization: `Bearer ${ADMIN}` }, payload: { yaml: 'server:\n  port: 8081\n' } });
    assert.equal((fine.json() as { valid: boolean }).valid, true);

    // Validating is no change: nothing of it is in the audit log, not even the refused attempt.
    const audit = await http.inject({ url: '/api/v1/audit', headers: { authorization: `Bearer ${ADMIN}` } });
    assert.deepEqual(audit.json().entries, []);
  } finally {
    await http.close();
    await t.cleanup();
  }
});
