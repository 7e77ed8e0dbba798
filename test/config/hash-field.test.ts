/**
 * The password-hash fields of mailbridge.yaml (config/hash-field.ts): relay.users.<name>.passwordHash
 * and api.users.<name>.password take only a scrypt hash and refuse anything else in English and
 * German, naming the command that writes one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/app/schema.ts';
import { hashPassword } from '../../src/util/password.ts';

const HASH_FIELDS = {
  'api.users.<name>.password': { config: (password: string) => ({ api: { users: { anna: { password, role: 'admin' } } } }), command: 'mailbridge api user set <name> --role <role>' },
  'relay.users.<name>.passwordHash': { config: (passwordHash: string) => ({ relay: { users: { scanner: { passwordHash, allowedSenders: ['@contoso.com'] } } } }), command: 'mailbridge relay-user passwd <name>' },
};

for (const [path, { config, command }] of Object.entries(HASH_FIELDS)) {
  test(`${path}: a scrypt hash is taken, a clear password refused in English and German naming \`${command}\``, async () => {
    const hash = await hashPassword('correct horse battery', 10);
    assert.equal(configSchema.safeParse(config(hash)).success, true);
    const refused = configSchema.safeParse(config('correct horse battery'));
    assert.equal(refused.success, false);
    assert.deepEqual(
      refused.error.issues.map((i) => i.message),
      [`not a scrypt hash / kein scrypt-Hash: \`${command}\``],
    );
  });
}
