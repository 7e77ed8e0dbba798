// Types for @ewsjs/ntlm-client (CommonJS, no types of its own): the three NTLM messages.
declare module '@ewsjs/ntlm-client' {
  interface Type2Message {
    flags: number;
    encoding: 'ascii' | 'ucs2';
    version: 1 | 2;
    challenge: Buffer;
    targetName: string;
    targetInfo?: { parsed: Record<string, string>; buffer: Buffer };
  }
  const ntlm: {
    /** "NTLM <base64>" */
    createType1Message(workstation?: string, target?: string): string;
    /** From "NTLM <base64>" (or the bare base64). */
    decodeType2Message(header: string): Type2Message;
    /** "NTLM <base64>" */
    createType3Message(type2: Type2Message, username: string, password: string, workstation?: string, target?: string): string;
  };
  export default ntlm;
}
