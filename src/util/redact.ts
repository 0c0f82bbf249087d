/**
 * Secrets out of text that is logged or printed: the user information of URLs
 * (`nats://alice:s3cret@host` becomes `nats://alice:***@host`; a token, `nats://t0ken@host`,
 * becomes `nats://***@host`).
 */

/** `scheme://userinfo@`, where userinfo runs up to the last `@` before the host's end. */
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/,]+)@/gi;

/**
 * `text` with every URL's password (or token) replaced by `***`. A user name without a password
 * is a token in NATS URLs, so it is hidden too.
 */
export function redactUrls(text: string): string {
  return text.replace(USERINFO, (_, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(":");
    return colon < 0 ? `${scheme}***@` : `${scheme}${userinfo.slice(0, colon)}:***@`;
  });
}
