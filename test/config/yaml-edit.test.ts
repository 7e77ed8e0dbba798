import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { setInYaml } from '../../src/config/yaml-edit.ts';

const FILE = `# mailbridge configuration – Contoso GmbH
# yaml-language-server: $schema=mailbridge.schema.json

server:
    port: 8080        # behind the reverse proxy
    listen: "0.0.0.0"

connections:
    contoso:          # main tenant
        tenantId: 0b7c3f3e-1111-2222-3333-444455556666
        clientId: 'app-id'    # Entra app "mailbridge"
        clientSecret: enc:v1:OLD   # rotated every year
        scopes: { graph: [https://graph.microsoft.com/.default] }
        # certificate comes later

    fabrikam:
        tenantId: fabrikam.onmicrosoft.com
        clientId: other-app
# end of file
`;

test('replacing an existing secret changes only its characters', () => {
  const out = setInYaml(FILE, ['connections', 'contoso', 'clientSecret'], 'enc:v1:NEW_value-123');
  assert.equal(out, FILE.replace('enc:v1:OLD', 'enc:v1:NEW_value-123'));
});

test('adding a secret to an existing section inserts one line, indented like its siblings', () => {
  const out = setInYaml(FILE, ['connections', 'fabrikam', 'clientSecret'], 'enc:v1:ABC');
  assert.equal(out, FILE.replace('        clientId: other-app\n', '        clientId: other-app\n        clientSecret: enc:v1:ABC\n'));
});

test('adding a new connection and nested section keeps every comment and the rest byte for byte', () => {
  const out = setInYaml(FILE, ['connections', 'new', 'certificate', 'password'], 'enc:v1:PW');
  assert.ok(out.startsWith(FILE.slice(0, FILE.indexOf('# end of file'))), out);
  for (const comment of ['# mailbridge configuration – Contoso GmbH', '# behind the reverse proxy', '# main tenant', '# Entra app "mailbridge"', '# rotated every year', '# certificate comes later', '# end of file']) {
    assert.ok(out.includes(comment), comment);
  }
  assert.equal(parse(out).connections.new.certificate.password, 'enc:v1:PW');
  assert.ok(out.includes('\n    new:\n        certificate:\n            password: enc:v1:PW\n'), out);
});

test('a section written as an empty key, a new top-level section, an empty file, CRLF', () => {
  const empty = 'connections:\n  x:   # to be filled\n# trailing\n';
  const a = setInYaml(empty, ['connections', 'x', 'clientSecret'], 'enc:v1:A');
  assert.deepEqual(parse(a), { connections: { x: { clientSecret: 'enc:v1:A' } } });
  assert.ok(a.includes('# to be filled') && a.includes('# trailing'), a);

  const b = setInYaml(FILE, ['store', 'url'], 'enc:v1:B');
  assert.ok(b.startsWith(FILE.trimEnd().slice(0, -'# end of file'.length)));
  assert.equal(parse(b).store.url, 'enc:v1:B');

  assert.equal(setInYaml('', ['connections', 'x', 'clientSecret'], 'enc:v1:C'), 'connections:\n  x:\n    clientSecret: enc:v1:C\n');
  const crlf = setInYaml('server:\r\n  port: 1\r\n', ['connections', 'x', 'clientSecret'], 'enc:v1:D');
  assert.equal(crlf, 'server:\r\n  port: 1\r\nconnections:\r\n  x:\r\n    clientSecret: enc:v1:D\r\n');
});

test('a value that is not plain-safe is quoted; broken YAML is refused, not rewritten', () => {
  const out = setInYaml('a: 1\n', ['b'], 'has: colon # and hash');
  assert.equal(parse(out).b, 'has: colon # and hash');
  assert.throws(() => setInYaml('a: [1,\nb: 2\n', ['c'], 'x'), { code: 'MB_CONFIG_YAML_SYNTAX' });
});
