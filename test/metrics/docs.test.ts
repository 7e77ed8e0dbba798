/**
 * The monitoring examples in docs/monitoring/ (Prometheus alert rules, Grafana dashboard) may only
 * name metrics that src/metrics defines, so a renamed metric cannot leave a silent alert behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { Metrics, metricNames } from '../../src/metrics/index.ts';

const root = new URL('../../docs/monitoring/', import.meta.url);

/** Names in a PromQL expression that are not series of a defined metric. */
function unknownIn(expr: string, defined: Set<string>): string[] {
  const series = (name: string) => defined.has(name) || ['_bucket', '_sum', '_count'].some((s) => name.endsWith(s) && defined.has(name.slice(0, -s.length)));
  return [...expr.matchAll(/\bmailbridge_[a-z0-9_]+/g)].map((m) => m[0]).filter((n) => !series(n));
}

function alertExprs(): string[] {
  const doc = parse(readFileSync(new URL('alert-rules.yml', root), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
  return doc.groups.flatMap((g) => g.rules.map((r) => r.expr));
}

function dashboardExprs(): string[] {
  const doc = JSON.parse(readFileSync(new URL('grafana-dashboard.json', root), 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
  return doc.panels.flatMap((p) => p.targets.map((t) => t.expr));
}

test('every metric the alert rules and the dashboard name exists, and every mailbridge metric is on the dashboard', () => {
  const defined = new Set(metricNames());
  const exprs = [...alertExprs(), ...dashboardExprs()];
  assert.ok(exprs.length >= 10, `${exprs.length} expressions`);
  const unknown = exprs.flatMap((e) => unknownIn(e, defined));
  assert.deepEqual(unknown, []);
  const own = new Metrics({ processMetrics: false }).registry.getMetricsAsArray().map((m) => m.name);
  assert.ok(own.length >= 12, own.join(', '));
  const shown = dashboardExprs().join('\n');
  assert.deepEqual(
    own.filter((n) => !shown.includes(n)),
    [],
    'each capability metric has a panel',
  );
});

test('the check finds a metric name that does not exist', () => {
  assert.deepEqual(unknownIn('rate(mailbridge_relay_mesages_total[5m]) + mailbridge_relay_delivery_seconds_bucket', new Set(metricNames())), ['mailbridge_relay_mesages_total']);
});
