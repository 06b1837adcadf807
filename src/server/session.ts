// Signing a browser in to the status page, the way Jupyter does it: the server prints a link
// with its token once at start (URL/?token=TOKEN); opening it sets a cookie and redirects to
// "/" without the token in the address bar. The cookie is HttpOnly (scripts cannot read it),
// SameSite=Strict (no other site's page can send it) and holds a value derived from the token,
// not the token itself; it authenticates GET requests only: the page reads, and submitting or
// cancelling still needs the bearer token. A restart makes a new token, so old cookies stop
// working.
import { createHmac, timingSafeEqual } from "node:crypto";

/** The cookie of the server on `port` (cookies are shared by every port of a host). */
export function cookieName(port: number): string {
  return `wanlab-${port}`;
}

/** The value a signed-in browser holds: HMAC-SHA256 of a fixed label under the token. */
export function sessionValue(token: string): string {
  return createHmac("sha256", token).update("wanlab status page session").digest("base64url");
}

/** The Set-Cookie header that signs a browser in. */
export function sessionCookie(token: string, port: number): string {
  return `${cookieName(port)}=${sessionValue(token)}; Path=/; HttpOnly; SameSite=Strict`;
}

/** The value of cookie `name` in a Cookie header, if it is there. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Compares secrets in constant time (for the same length; lengths differ: false). */
export function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given), b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Whether a request's Cookie header signs it in to the server with `token` on `port`. */
export function signedIn(header: string | undefined, token: string, port: number): boolean {
  const v = cookieValue(header, cookieName(port));
  return v !== undefined && sameSecret(v, sessionValue(token));
}
