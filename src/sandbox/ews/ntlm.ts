/**
 * Windows authentication (NTLM) as an on-premises Exchange's EWS virtual directory does it, written
 * from MS-NLMP by hand (the emulator must not share the client library's mistakes):
 *
 *   client → NEGOTIATE (type 1)  → 401 `WWW-Authenticate: NTLM <CHALLENGE (type 2)>`
 *   client → AUTHENTICATE (type 3) on the same connection → checked → the request runs.
 *
 * Only NTLMv2 is accepted (MS-NLMP 3.3.2: NTProofStr = HMAC-MD5(NTOWFv2, ServerChallenge ‖ blob)),
 * as on a server with LmCompatibilityLevel 5, the hardened default; an NTLMv1 or LM response is
 * refused. The challenge belongs to the TCP connection that asked for it, and an authenticated
 * connection stays authenticated (IIS's default with authPersistSingleRequest off).
 *
 * MD4 is here too: OpenSSL 3 moved it to the legacy provider, so `createHash('md4')` is missing
 * (crypto.getHashes() does not list it) on current Node builds.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const SIGNATURE = Buffer.from('NTLMSSP\0', 'ascii');
const F = {
  UNICODE: 0x00000001,
  REQUEST_TARGET: 0x00000004,
  NTLM: 0x00000200,
  ALWAYS_SIGN: 0x00008000,
  TARGET_TYPE_DOMAIN: 0x00010000,
  EXTENDED_SESSIONSECURITY: 0x00080000,
  TARGET_INFO: 0x00800000,
  VERSION: 0x02000000,
  KEY_128: 0x20000000,
  KEY_56: 0x80000000,
};

export interface NtlmServer {
  /** NetBIOS domain name, e.g. CONTOSO. */
  domain: string;
  /** NetBIOS computer name, e.g. EXCH01. */
  computer: string;
  dnsDomain: string;
}

/** The type of an NTLM message in an `Authorization: NTLM …` (or `Negotiate …` carrying NTLM) header, or undefined. */
export function ntlmMessage(authorization: string): { type: number; buf: Buffer } | undefined {
  const m = /^(?:NTLM|Negotiate)\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
  if (!m) return undefined;
  const buf = Buffer.from(m[1]!, 'base64');
  if (buf.length < 12 || !buf.subarray(0, 8).equals(SIGNATURE)) return undefined;
  return { type: buf.readUInt32LE(8), buf };
}

/** A CHALLENGE (type 2) message with a fresh server challenge and the target information NTLMv2 needs. */
export function challengeMessage(server: NtlmServer, now = Date.now()): { header: string; challenge: Buffer } {
  const challenge = randomBytes(8);
  const target = Buffer.from(server.domain, 'utf16le');
  const av = (id: number, value: Buffer) => {
    const h = Buffer.alloc(4);
    h.writeUInt16LE(id, 0);
    h.writeUInt16LE(value.length, 2);
    return Buffer.concat([h, value]);
  };
  const filetime = Buffer.alloc(8);
  filetime.writeBigUInt64LE((BigInt(now) + 11_644_473_600_000n) * 10_000n);
  const info = Buffer.concat([
    av(2, Buffer.from(server.domain, 'utf16le')),
    av(1, Buffer.from(server.computer, 'utf16le')),
    av(4, Buffer.from(server.dnsDomain, 'utf16le')),
    av(3, Buffer.from(`${server.computer.toLowerCase()}.${server.dnsDomain}`, 'utf16le')),
    av(7, filetime),
    av(0, Buffer.alloc(0)),
  ]);
  const head = Buffer.alloc(56);
  SIGNATURE.copy(head, 0);
  head.writeUInt32LE(2, 8);
  head.writeUInt16LE(target.length, 12);
  head.writeUInt16LE(target.length, 14);
  head.writeUInt32LE(56, 16);
  const flags = F.UNICODE | F.REQUEST_TARGET | F.NTLM | F.ALWAYS_SIGN | F.TARGET_TYPE_DOMAIN | F.EXTENDED_SESSIONSECURITY | F.TARGET_INFO | F.VERSION | F.KEY_128 | F.KEY_56;
  head.writeUInt32LE(flags >>> 0, 20);
  challenge.copy(head, 24);
  head.writeUInt16LE(info.length, 40);
  head.writeUInt16LE(info.length, 42);
  head.writeUInt32LE(56 + target.length, 44);
  // Version: Windows Server 2019 (10.0 build 17763), NTLM revision 15.
  head.writeUInt8(10, 48);
  head.writeUInt8(0, 49);
  head.writeUInt16LE(17763, 50);
  head.writeUInt8(15, 55);
  return { header: `NTLM ${Buffer.concat([head, target, info]).toString('base64')}`, challenge };
}

export interface AuthenticateMessage {
  user: string;
  domain: string;
  workstation: string;
  ntResponse: Buffer;
}

/** The fields of an AUTHENTICATE (type 3) message; undefined when it is malformed. */
export function parseAuthenticate(buf: Buffer): AuthenticateMessage | undefined {
  if (buf.length < 52 || buf.readUInt32LE(8) !== 3) return undefined;
  const field = (at: number): Buffer | undefined => {
    const len = buf.readUInt16LE(at);
    const off = buf.readUInt32LE(at + 4);
    return off + len <= buf.length ? buf.subarray(off, off + len) : undefined;
  };
  const nt = field(20);
  const domain = field(28);
  const user = field(36);
  const ws = field(44);
  if (!nt || !domain || !user || !ws) return undefined;
  // Unicode unless the client negotiated OEM; the flags sit at offset 60 when the header has them.
  const unicode = buf.length >= 64 ? (buf.readUInt32LE(60) & F.UNICODE) !== 0 : true;
  const text = (b: Buffer) => b.toString(unicode ? 'utf16le' : 'latin1');
  return { user: text(user), domain: text(domain), workstation: text(ws), ntResponse: nt };
}

/** Whether the NTLMv2 response proves knowledge of `password` for this challenge (MS-NLMP 3.3.2). */
export function verifyNtlmV2(msg: AuthenticateMessage, challenge: Buffer, password: string): boolean {
  // An NTLMv1 response is exactly 24 bytes; NTLMv2 is NTProofStr (16) + a blob of at least 28.
  if (msg.ntResponse.length < 16 + 28) return false;
  const proof = msg.ntResponse.subarray(0, 16);
  const blob = msg.ntResponse.subarray(16);
  if (blob.readUInt16BE(0) !== 0x0101) return false;
  const ntowf = createHmac('md5', md4(Buffer.from(password, 'utf16le')))
    .update(Buffer.from(msg.user.toUpperCase() + msg.domain, 'utf16le'))
    .digest();
  const expected = createHmac('md5', ntowf).update(Buffer.concat([challenge, blob])).digest();
  return timingSafeEqual(expected, proof);
}

/** MD4 (RFC 1320). */
export function md4(input: Buffer): Buffer {
  const len = input.length;
  const padded = Buffer.alloc((((len + 8) >> 6) + 1) * 64);
  input.copy(padded);
  padded[len] = 0x80;
  padded.writeUInt32LE((len * 8) >>> 0, padded.length - 8);
  padded.writeUInt32LE(Math.floor((len * 8) / 2 ** 32), padded.length - 4);
  let a = 0x67452301;
  let b = 0xefcdab89;
  let c = 0x98badcfe;
  let d = 0x10325476;
  const rotl = (x: number, n: number) => (x << n) | (x >>> (32 - n));
  const f = (x: number, y: number, z: number) => (x & y) | (~x & z);
  const g = (x: number, y: number, z: number) => (x & y) | (x & z) | (y & z);
  const h = (x: number, y: number, z: number) => x ^ y ^ z;
  const x = new Array<number>(16);
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) x[i] = padded.readUInt32LE(off + i * 4);
    const [aa, bb, cc, dd] = [a, b, c, d];
    const r1 = [3, 7, 11, 19];
    for (let i = 0; i < 16; i++) {
      const t = rotl((a + f(b, c, d) + x[i]!) | 0, r1[i % 4]!);
      [a, b, c, d] = [d, t, b, c];
    }
    const r2 = [3, 5, 9, 13];
    const o2 = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];
    for (let i = 0; i < 16; i++) {
      const t = rotl((a + g(b, c, d) + x[o2[i]!]! + 0x5a827999) | 0, r2[i % 4]!);
      [a, b, c, d] = [d, t, b, c];
    }
    const r3 = [3, 9, 11, 15];
    const o3 = [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15];
    for (let i = 0; i < 16; i++) {
      const t = rotl((a + h(b, c, d) + x[o3[i]!]! + 0x6ed9eba1) | 0, r3[i % 4]!);
      [a, b, c, d] = [d, t, b, c];
    }
    a = (a + aa) | 0;
    b = (b + bb) | 0;
    c = (c + cc) | 0;
    d = (d + dd) | 0;
  }
  const out = Buffer.alloc(16);
  out.writeInt32LE(a, 0);
  out.writeInt32LE(b, 4);
  out.writeInt32LE(c, 8);
  out.writeInt32LE(d, 12);
  return out;
}
