/**
 * One notion of the Graph base URL (issue 18 item 2): the root with or without /v1.0 works the same
 * everywhere, and config check refuses the forms that would send requests to the wrong place.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyzeText } from '../../src/app/config.ts';
import { graphBaseUrl, graphUrlProblem } from '../../src/m365/graph-url.ts';

test('the root with or without /v1.0 (and a trailing slash) is the same base URL', () => {
  for (const raw of ['https://graph.microsoft.com', 'https://graph.microsoft.com/', 'https://graph.microsoft.com/v1.0', 'https://graph.microsoft.com/v1.0/']) {
    assert.equal(graphBaseUrl(raw), 'https://graph.microsoft.com/v1.0', raw);
  }
  assert.equal(graphBaseUrl(undefined, 'graph.microsoft.us'), 'https://graph.microsoft.us/v1.0');
  assert.equal(graphBaseUrl('https://proxy.contoso.com/graph/v1.0'), 'https://proxy.contoso.com/graph/v1.0');
  assert.equal(graphBaseUrl('http://127.0.0.1:8443'), 'http://127.0.0.1:8443/v1.0');
});

test('malformed Graph URLs are named with the reason', () => {
  const bad: Array<[string, RegExp]> = [
    ['https://graph.microsoft.com/v1.0/v1.0', /more than once/],
    ['https://graph.microsoft.com/beta', /beta/],
    ['https://graph.microsoft.com/v1.0/users', /resource path/],
    ['https://graph.microsoft.com/users/x@contoso.com/v1.0', /resource path/],
    ['http://graph.microsoft.com', /http instead of https/],
    ['https://graph.microsoft.com/?x=1', /query/],
    ['https://u:p@graph.microsoft.com', /password/],
  ];
  for (const [raw, why] of bad) {
    assert.match(graphUrlProblem(raw) ?? '', why, raw);
    assert.throws(() => graphBaseUrl(raw));
  }
});

test('config check: a malformed graph URL is an error in a relay route and a connector source; /v1.0 is fine', () => {
  const yaml = (url: string) =>
    [
      'connections:',
      '  m365:',
      '    tenantId: 8d1e2c6a-3b7f-4c55-9a0e-2f4b6d8c1a3e',
      '    clientId: 3f6b2a1c-9d8e-4f7a-b5c4-1e2d3c4b5a69',
      '    clientSecret: x',
      '    clientSecretExpires: "2099-01-01"',
      'relay:',
      '  routes:',
      '    - name: r',
      '      senders: ["@contoso.com"]',
      '      connection: m365',
      '      transport: graph',
      '      graph:',
      `        url: ${url}`,
      'connectors:',
      '  c:',
      '    connection: m365',
      '    mailboxes: [a@contoso.com]',
      '    source:',
      '      kind: graph',
      `      baseUrl: ${url}`,
      '    destination:',
      '      kind: maildir',
      '      path: /tmp/x',
    ].join('\n');
  const bad = analyzeText(yaml('https://graph.microsoft.com/v1.0/v1.0'), 'mailbridge.yaml', {});
  const codes = bad.errors.filter((e) => e.code === 'MB_CONFIG_BAD_GRAPH_URL').map((e) => e.path);
  assert.deepEqual(codes.sort(), ['connectors.c.source.baseUrl', 'relay.routes.0.graph.url'], JSON.stringify(bad.errors.map((e) => [e.path, e.code])));
  assert.match(bad.errors.find((e) => e.code === 'MB_CONFIG_BAD_GRAPH_URL')!.message.de, /mit oder ohne \/v1\.0/);
  const good = analyzeText(yaml('https://graph.microsoft.com/v1.0'), 'mailbridge.yaml', {});
  assert.deepEqual(good.errors.filter((e) => e.path.includes('graph') || e.path.includes('baseUrl')), []);
});
