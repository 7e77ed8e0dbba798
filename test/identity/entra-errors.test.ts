import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthError, InteractionRequiredAuthError, ServerError } from '@azure/msal-node';
import { catalogue, MbError, renderText } from '../../src/errors/index.ts';
import { AadstsError, errorBody } from '../../src/sandbox/entra/aadsts.ts';
import { AADSTS_CODES, aadstsOf, fromEntraBody, plainDescription, toIdentityError, type ErrorContext } from '../../src/identity/entra-errors.ts';

const ctx: ErrorContext = {
  connection: 'crm',
  clientId: '535fb089-9ff3-47b6-9bfb-4f1264799865',
  tenantId: 'aaaabbbb-0000-cccc-1111-dddd2222eeee',
  cloud: 'global',
  portal: 'https://entra.microsoft.com',
  loginHost: 'login.microsoftonline.com',
  scope: 'https://outlook.office365.com/.default',
};

/** microsoft-facts.md §1.8, every row. */
const FACTS_1_8 = [
  '7000215', '7000222', '700016', '65001', '90002', '70011', '1002012', '500011', '700027', '700024', '7000218', '700025',
  '70016', '700082', '70008', '50173', '70000', '54005', '501481', '50076', '50079', '53003', '7000112', '70001', '50011', '9001023',
];

function body(code: string, error = 'invalid_request') {
  return {
    error,
    error_description: `AADSTS${code}: Some text Microsoft may change.\r\nTrace ID: 0000aaaa-11bb-cccc-dd33-eeeeee333333\r\nCorrelation ID: aaaa0000-bb11-2222-33cc-444444dddddd\r\nTimestamp: 2026-01-09 02:02:12Z`,
    error_codes: [Number(code)],
    timestamp: '2026-01-09 02:02:12Z',
    trace_id: '0000aaaa-11bb-cccc-dd33-eeeeee333333',
    correlation_id: 'aaaa0000-bb11-2222-33cc-444444dddddd',
  };
}

test('every AADSTS code of facts §1.8 has its own MB code with cause and fix in English and German', () => {
  const seen = new Set<string>();
  for (const code of FACTS_1_8) {
    const mb = AADSTS_CODES[code];
    assert.ok(mb, `AADSTS${code} has no MB code`);
    assert.ok(!seen.has(mb), `${mb} is shared by two AADSTS codes`);
    seen.add(mb);
    const e = fromEntraBody(body(code), ctx);
    assert.equal(e.code, mb);
    const en = e.explain('en');
    const de = e.explain('de');
    for (const part of [en.title, en.cause, en.fix, de.title, de.cause, de.fix]) {
      assert.ok(!/\{\w+\}/.test(part), `${mb}: unfilled placeholder in "${part}"`);
    }
    assert.notEqual(en.cause, de.cause);
    // Support needs the trace and correlation IDs.
    assert.equal(e.details.traceId, '0000aaaa-11bb-cccc-dd33-eeeeee333333');
    assert.equal(e.details.correlationId, 'aaaa0000-bb11-2222-33cc-444444dddddd');
    assert.equal(e.details.aadsts, `AADSTS${code}`);
  }
});

test('fixes name the portal path or a PowerShell line', () => {
  const secret = fromEntraBody(body('7000215', 'invalid_client'), ctx).explain('en');
  assert.match(secret.fix, /Entra admin center \(https:\/\/entra\.microsoft\.com\) › App registrations › 535fb089-9ff3-47b6-9bfb-4f1264799865 › Certificates & secrets › New client secret/);
  assert.match(secret.cause, /Secret ID was copied instead of its Value/);
  assert.match(fromEntraBody(body('7000215', 'invalid_client'), ctx).explain('de').fix, /App-Registrierungen › .* › Zertifikate & Geheimnisse › Neuer geheimer Clientschlüssel/);
  assert.match(fromEntraBody(body('7000112'), ctx).explain('en').fix, /Update-MgServicePrincipal/);
  assert.match(fromEntraBody(body('90002'), ctx).explain('en').cause, /another cloud than "global"/);
});

test('an unknown AADSTS code still explains itself: MB_ENTRA_UNKNOWN with code, description, trace and correlation ID', () => {
  const oneLine = {
    error: 'invalid_request',
    error_description:
      "AADSTS50194: Application 'x' is not configured as a multi-tenant application. Trace ID: 1111aaaa-0000-0000-0000-000000000000 Correlation ID: 2222bbbb-0000-0000-0000-000000000000 Timestamp: 2026-07-02 14:44:48Z",
    error_codes: [50194],
    trace_id: '1111aaaa-0000-0000-0000-000000000000',
    correlation_id: '2222bbbb-0000-0000-0000-000000000000',
  };
  const e = fromEntraBody(oneLine, ctx);
  assert.equal(e.code, 'MB_ENTRA_UNKNOWN');
  assert.match(e.explain('en').cause, /invalid_request \(AADSTS50194\).*not configured as a multi-tenant application\.$/);
  assert.ok(!e.explain('en').cause.includes('Trace ID'), 'trace tail is in details, not in the prose');
  assert.match(e.explain('de').fix, /error\?code=50194/);
  assert.deepEqual(
    { aadsts: e.details.aadsts, traceId: e.details.traceId, correlationId: e.details.correlationId },
    { aadsts: 'AADSTS50194', traceId: '1111aaaa-0000-0000-0000-000000000000', correlationId: '2222bbbb-0000-0000-0000-000000000000' },
  );
  const text = renderText(e.explain('en'), 'en');
  assert.match(text, /Trace ID: 1111aaaa/);
  assert.match(text, /Correlation ID: 2222bbbb/);
  // In German the labels are German too; the IDs stay as Microsoft support needs them.
  const de = renderText(e.explain('de'), 'de');
  assert.match(de, /Trace-ID: 1111aaaa/);
  assert.match(de, /Korrelations-ID: 2222bbbb/);
  assert.match(de, /Fehlercode: AADSTS50194/);
  assert.doesNotMatch(de, /traceId|correlationId|aadsts:/);
  assert.equal(aadstsOf('xx AADSTS700016: y'), '700016');
  assert.equal(plainDescription('AADSTS1: A. Trace ID: 1 Correlation ID: 2'), 'A.');
});

test('MSAL ServerError (errorCode, errorMessage with trace/correlation, subError) maps to the same MB code', () => {
  const s = body('7000222', 'invalid_client');
  const errString = `Error(s): ${s.error_codes} - Timestamp: ${s.timestamp} - Description: ${s.error_description} - Correlation ID: ${s.correlation_id} - Trace ID: ${s.trace_id}`;
  const e = toIdentityError(new ServerError('invalid_client', s.correlation_id, errString, undefined, '7000222', 401), ctx);
  assert.equal(e.code, 'MB_ENTRA_SECRET_EXPIRED');
  assert.equal(e.details.traceId, s.trace_id);
  assert.equal(e.details.correlationId, s.correlation_id);

  const consent = toIdentityError(
    new InteractionRequiredAuthError('invalid_grant', '', 'AADSTS65001: The user or administrator has not consented', 'consent_required', '', '', '', '65001'),
    { ...ctx, scope: 'https://outlook.office.com/IMAP.AccessAsUser.All' },
  );
  assert.equal(consent.code, 'MB_ENTRA_CONSENT_REQUIRED');
  assert.equal(consent.details.suberror, 'consent_required');
  assert.match(consent.explain('en').cause, /IMAP\.AccessAsUser\.All/);

  // The network layer's copy of the error JSON wins over MSAL's shortened error.
  const fromObs = toIdentityError(new AuthError('post_request_failed', 'expired_token'), ctx, {
    url: 'https://login.microsoftonline.com/t/oauth2/v2.0/token',
    status: 400,
    requests: 3,
    waits: [],
    errorBody: { error: 'expired_token', error_description: 'AADSTS70019: Verification code expired.', error_codes: [70019] },
  });
  assert.equal(fromObs.code, 'MB_ENTRA_DEVICE_CODE_EXPIRED');
});

test('MSAL client-side errors map to sign-in, cancel and network codes; nothing escapes as a bare Error', () => {
  const map: Array<[string, string]> = [
    ['no_tokens_found', 'MB_SIGNIN_REQUIRED'],
    ['device_code_polling_cancelled', 'MB_SIGNIN_CANCELLED'],
    ['device_code_expired', 'MB_ENTRA_DEVICE_CODE_EXPIRED'],
    ['state_mismatch', 'MB_SIGNIN_STATE_UNKNOWN'],
    ['network_error', 'MB_IDENTITY_NETWORK'],
    ['invalid_client_credential', 'MB_IDENTITY_MSAL'],
  ];
  for (const [msal, mb] of map) assert.equal(toIdentityError(new AuthError(msal, 'x'), ctx).code, mb, msal);
  const odd = toIdentityError(new TypeError('boom'), ctx);
  assert.equal(odd.code, 'MB_IDENTITY_MSAL');
  assert.ok(odd instanceof MbError);
  const throttled = fromEntraBody({ error: 'temporarily_unavailable' }, ctx, { status: 429, retryAfterMs: 30_000 });
  assert.equal(throttled.code, 'MB_ENTRA_THROTTLED');
  assert.match(throttled.explain('en').cause, /wait 30 seconds/);
});

test('every identity catalogue entry is complete in both languages', () => {
  const codes = Object.keys(catalogue).filter((c) => /^MB_(IDENTITY|ENTRA|CLIENT_SECRET|CERT|SIGNIN|TOKEN)_/.test(c));
  assert.ok(codes.length >= 60, `only ${codes.length} identity codes`);
  for (const c of codes) {
    const entry = catalogue[c as keyof typeof catalogue];
    for (const part of ['title', 'cause', 'fix'] as const) {
      assert.ok(entry[part].en.trim() && entry[part].de.trim(), `${c}.${part}`);
      if (part !== 'title') assert.notEqual(entry[part].en, entry[part].de, `${c}.${part} not translated`);
    }
  }
});

test('AADSTS50126, 50057, 50105, 7000114 and 7000229, as the sandbox Entra ID sends them, each get their own MB code with cause and fix', () => {
  const trace = { traceId: '0000aaaa-11bb-cccc-dd33-eeeeee333333', correlationId: 'aaaa0000-bb11-2222-33cc-444444dddddd', at: Date.UTC(2026, 11, 7) };
  const params = { appId: ctx.clientId, appName: 'mailbridge', upn: 'alice@contoso.example', tenant: ctx.tenantId };
  const expected: Record<number, string> = {
    50126: 'MB_ENTRA_WRONG_PASSWORD',
    50057: 'MB_ENTRA_USER_DISABLED',
    50105: 'MB_ENTRA_USER_NOT_ASSIGNED',
    7000114: 'MB_ENTRA_OBO_NOT_ALLOWED',
    7000229: 'MB_ENTRA_NO_SERVICE_PRINCIPAL',
  };
  for (const [aadsts, code] of Object.entries(expected)) {
    const e = fromEntraBody(errorBody(new AadstsError(Number(aadsts), params), trace, 'https://login.sandbox.test') as never, { ...ctx, account: 'alice@contoso.example' });
    assert.equal(e.code, code, `AADSTS${aadsts}`);
    for (const lang of ['en', 'de'] as const) {
      const x = e.explain(lang);
      assert.match(x.title, new RegExp(`AADSTS${aadsts}`));
      for (const part of [x.title, x.cause, x.fix]) assert.ok(!/\{\w+\}/.test(part), `${code} ${lang}: unfilled placeholder in "${part}"`);
    }
    assert.notEqual(e.explain('en').cause, e.explain('de').cause);
    assert.equal(e.details.correlationId, trace.correlationId);
  }
});

test('53003 and 50076 for an app-only connection name the app and its workload-identity policy, not "for —"', () => {
  for (const code of ['53003', '50076']) {
    const e = fromEntraBody(body(code), { ...ctx, appOnly: true });
    assert.equal(e.code, 'MB_ENTRA_APP_BLOCKED_BY_CA');
    for (const lang of ['en', 'de'] as const) {
      const x = e.explain(lang);
      assert.ok(!/—/.test(x.cause + x.fix + x.title), `${code} ${lang}: ${x.cause}`);
      assert.match(x.title, new RegExp(`AADSTS${code}`));
      assert.match(x.cause, /535fb089-9ff3-47b6-9bfb-4f1264799865/);
    }
    assert.match(e.explain('en').fix, /Service principal sign-ins/);
    assert.match(e.explain('de').fix, /Dienstprinzipalanmeldungen/);
    // Delegated: the user-shaped text with the account stays.
    assert.match(fromEntraBody(body(code), { ...ctx, account: 'anna@contoso.com' }).explain('en').cause, /anna@contoso\.com/);
  }
});
