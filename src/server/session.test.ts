// Signing a browser in (src/server/session.ts): the cookie holds a value derived from the token,
// is HttpOnly and SameSite=Strict, named by the port, and only this server's value signs in.
import assert from "node:assert/strict";
import { test } from "node:test";
import { cookieValue, sameSecret, sessionCookie, sessionValue, signedIn } from "./session.js";

test("the cookie is HttpOnly, SameSite=Strict, for the whole server, and does not hold the token", () => {
  const c = sessionCookie("tok-1", 8123);
  assert.match(c, /^wanlab-8123=[\w-]{43}; Path=\/; HttpOnly; SameSite=Strict$/);
  assert.ok(!c.includes("tok-1"));
  assert.notEqual(sessionValue("tok-1"), sessionValue("tok-2"), "a new token (a restart) signs old cookies out");
});

test("only this server's value under this port's name signs a browser in", () => {
  const v = sessionValue("tok-1");
  assert.equal(signedIn(`a=b; wanlab-8123=${v}; c=d`, "tok-1", 8123), true);
  assert.equal(signedIn(`wanlab-8124=${v}`, "tok-1", 8123), false, "another port's cookie");
  assert.equal(signedIn(`wanlab-8123=${v}`, "tok-2", 8123), false, "after a restart");
  assert.equal(signedIn(`wanlab-8123=${v.slice(1)}`, "tok-1", 8123), false);
  assert.equal(signedIn(undefined, "tok-1", 8123), false);
  assert.equal(signedIn("wanlab-8123", "tok-1", 8123), false);
});

test("cookie values are read by exact name; secrets compared whole", () => {
  assert.equal(cookieValue("xwanlab-1=a; wanlab-1=b", "wanlab-1"), "b");
  assert.equal(cookieValue("wanlab-1=a=b", "wanlab-1"), "a=b");
  assert.equal(sameSecret("abc", "abc"), true);
  assert.equal(sameSecret("abc", "abcd"), false);
});
