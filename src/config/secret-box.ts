/**
 * The contract between the secret store (config/secrets.ts) and everything that needs a secret in
 * clear for a moment (identity, relay users, the store's encrypted rows).
 */
export interface SecretBox {
  /** Encrypt a clear value for storage: returns `enc:v1:…` (AES-256-GCM). */
  seal(plain: string): string;
  /**
   * Clear value of a stored secret: decrypts `enc:v1:…`, passes plain text through. Every value
   * returned is registered with the log scrubber first, so it can never be printed.
   */
  reveal(stored: string): string;
  /**
   * Decrypt without registering the clear text with the scrubber: for sealed blobs that are never
   * printed whole (the identity token cache), whose secret parts the caller registers itself.
   */
  open(stored: string): string;
}
