/**
 * Exchange Online's admin REST endpoint (the one ExchangeOnlineManagement V3 uses underneath its
 * cmdlets): `POST https://{exchange host}/adminapi/beta/{tenantId}/InvokeCommand` with
 * `{"CmdletInput":{"CmdletName","Parameters"}}`, answering `{"value":[…]}`. App-only callers need
 * the Exchange.ManageAsApp permission and an Entra role (Global Reader reads); facts and sources in
 * docs/microsoft-facts-addendum.md. mailbridge only reads through it (`mailbridge check`): what
 * Exchange knows of the app (Get-ServicePrincipal) and of a mailbox (Get-MailboxPermission,
 * Get-RecipientPermission, Get-CASMailbox, Get-TransportConfig), which an XOAUTH2 login does not say.
 *
 * Network: the connection's proxy and extra CA through src/net/proxy.ts, like every other call.
 */
import { request, type Dispatcher } from '../net/undici.ts';
import { MbError } from '../errors/index.ts';
import { registerSecret } from '../log/redact.ts';
import { httpDispatcher, type ProxySettings } from '../net/proxy.ts';

/** The app-only anchor the module sends (the organization's system mailbox). */
const ANCHOR = 'SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}';

export interface ExchangeAdminOptions {
  /** e.g. https://outlook.office365.com/adminapi/beta (the cloud's Exchange host) or a configured one. */
  baseUrl: string;
  tenantId: string;
  /** A domain of the tenant, for the anchor mailbox header. */
  domain?: string;
  token: () => Promise<string>;
  proxy?: ProxySettings;
  ca?: string;
  timeoutMs?: number;
}

export class ExchangeAdmin {
  private readonly o: ExchangeAdminOptions;
  private readonly dispatcher: Dispatcher;

  constructor(o: ExchangeAdminOptions) {
    this.o = o;
    this.dispatcher = httpDispatcher({ ...o.proxy, ca: o.ca });
  }

  /** Runs one cmdlet; its output objects. A cmdlet Exchange refuses or cannot run: MB_EXO_ADMIN_REFUSED. */
  async run(cmdlet: string, parameters: Record<string, unknown> = {}): Promise<Array<Record<string, unknown>>> {
    const token = await this.o.token();
    registerSecret(token);
    const url = `${this.o.baseUrl.replace(/\/+$/, '')}/${encodeURIComponent(this.o.tenantId)}/InvokeCommand`;
    const res = await request(url, {
      method: 'POST',
      dispatcher: this.dispatcher,
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json',
        ...(this.o.domain ? { 'x-anchormailbox': `UPN:${ANCHOR}@${this.o.domain}` } : {}),
      },
      body: JSON.stringify({ CmdletInput: { CmdletName: cmdlet, Parameters: parameters } }),
      headersTimeout: this.o.timeoutMs ?? 30_000,
      bodyTimeout: this.o.timeoutMs ?? 30_000,
    });
    const text = await res.body.text();
    let json: { value?: unknown; error?: { message?: unknown } } | undefined;
    try {
      json = JSON.parse(text) as typeof json;
    } catch {
      json = undefined;
    }
    if (res.statusCode >= 300) {
      const reply = typeof json?.error?.message === 'string' ? json.error.message : text.slice(0, 300);
      throw new MbError('MB_EXO_ADMIN_REFUSED', { cmdlet, status: res.statusCode, reply });
    }
    return Array.isArray(json?.value) ? (json.value as Array<Record<string, unknown>>) : [];
  }

  async close(): Promise<void> {
    await this.dispatcher.close().catch(() => undefined);
  }
}
