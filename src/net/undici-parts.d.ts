// Types of the undici files src/net/undici.ts loads one by one: the classes and functions of
// undici's own index.d.ts, which the files are the implementations of.
declare module 'undici/lib/api/index.js' {
  const api: Record<string, (...args: never[]) => unknown>;
  export default api;
}
declare module 'undici/lib/dispatcher/dispatcher.js' {
  import type { Dispatcher } from 'undici';
  const D: typeof Dispatcher;
  export default D;
}
declare module 'undici/lib/dispatcher/agent.js' {
  import type { Agent } from 'undici';
  const A: typeof Agent;
  export default A;
}
declare module 'undici/lib/dispatcher/client.js' {
  import type { Client } from 'undici';
  const C: typeof Client;
  export default C;
}
declare module 'undici/lib/dispatcher/env-http-proxy-agent.js' {
  import type { EnvHttpProxyAgent } from 'undici';
  const E: typeof EnvHttpProxyAgent;
  export default E;
}
declare module 'undici/lib/core/connect.js' {
  import type { buildConnector } from 'undici';
  const b: typeof buildConnector;
  export default b;
}
declare module 'undici/lib/web/fetch/index.js' {
  import type { fetch } from 'undici';
  const web: { fetch: typeof fetch };
  export default web;
}
