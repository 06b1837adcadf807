// The HTTP API (fastify): every route checks the bearer token first, bodies are validated
// against the schema derived from params.ts and then by resolveParams, and handlers only read
// state or enqueue; compute happens in the queue's single consumer.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { isUtf8 } from "node:buffer";
import { constants } from "node:fs";
import { open as openFile } from "node:fs/promises";
import { basename } from "node:path";
import type { ServerResponse } from "node:http";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from "fastify";
import type { MemoryPlanReport, ModelInfo } from "../engine.js";
import { ParamError, resolveParams, type GenerateParams } from "../params.js";
import { jsonDepth } from "../fs/json.js";
import type { Job, JobEvent, Queue } from "./jobs.js";
import { apiRoutes, homePage } from "./home.js";
import { progressOnly, type LiveView } from "./live.js";
import { signInPage, statusPage, statusPageHeaders } from "./page.js";
import { sameSecret, sessionCookie, signedIn } from "./session.js";
import { byteRange } from "./range.js";
import { statusReporter } from "./status.js";
import { allowedFor, jobBodySchema, jobFields, planBodySchema, type JobRequest } from "./schema.js";

export interface AppOptions {
  token: string;
  queue: Queue;
  info: ModelInfo & { fingerprint: string; version: string };
  /** Largest request body in bytes (default 64 KiB: a job is a few hundred bytes). */
  bodyLimit?: number;
  /** Asks the server to stop (POST /v1/shutdown). */
  shutdown: () => void;
  stopping: () => boolean;
  memory: () => Record<string, unknown>;
  /** The engine's memory prediction for a request (POST /v1/plan). */
  plan: (params: GenerateParams) => MemoryPlanReport;
  /** Told of each POST /v1/jobs answered with an error (for the console): who sent it, why, the field. */
  onRefused?: (client: string, error: string, field?: string) => void;
  /** Each job's latest progress and latent preview (the status page). */
  live?: LiveView;
}

/** What GET /v1/jobs/ID answers: the contract's fields first. */
export function jobView(j: Job) {
  return {
    id: j.id, state: j.state, step: j.step, totalSteps: j.totalSteps,
    ...(j.error !== undefined ? { error: j.error } : {}),
    ...(j.outputs ? { outputs: j.outputs } : {}),
    stage: j.stage, attempts: j.attempts, cancelling: j.cancelling,
    submittedAt: j.submittedAt, startedAt: j.startedAt, endedAt: j.endedAt,
    params: j.params, options: j.options,
  };
}

const terminal = new Set(["done", "failed", "cancelled"]);

function eventData(e: JobEvent) {
  const base = { id: e.job.id, state: e.job.state, step: e.job.step, totalSteps: e.job.totalSteps };
  if (e.type === "progress") return { ...base, progress: progressOnly(e.progress), ...(e.progress.latents ? { preview: true } : {}) };
  if (e.type === "retry") return { ...base, error: e.error, delayMs: e.delayMs };
  if (e.type === "done") return { ...base, outputs: e.job.outputs };
  if (e.type === "failed" || e.type === "cancelled") return { ...base, error: e.job.error };
  return base;
}

const digest = (s: string) => createHash("sha256").update(s).digest();
const idPattern = /^[a-z0-9-]{1,64}$/;

/** Deepest nesting a request body may have (a job is flat: tileSize is the deepest, 2 levels). */
export const maxBodyDepth = 16;


const badRequest = (message: string, field?: string) => Object.assign(new Error(message), { statusCode: 400, field });

/** The token of an Authorization header: the scheme is case-insensitive (RFC 7235). */
function bearerToken(header: string | undefined): string | undefined {
  const m = header === undefined ? null : /^bearer +(\S+) *$/i.exec(header);
  return m?.[1];
}

/** Who sent a request, for the console: its address and user agent ("127.0.0.1 (curl/8.5.0)"). */
function clientOf(req: FastifyRequest): string {
  const agent = req.headers["user-agent"];
  return `${req.ip}${agent ? ` (${agent.length > 60 ? `${agent.slice(0, 57)}...` : agent})` : ""}`;
}

export function buildApp(o: AppOptions): FastifyInstance {
  const app = Fastify({
    bodyLimit: o.bodyLimit ?? 64 * 1024,
    // strict JSON: no type coercion, no silently dropped fields, no defaults filled in
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
    logger: false,
  });
  const expected = digest(o.token);
  const streams = new Set<ServerResponse>();

  // JSON bodies: an empty one is no body (DELETE with a JSON content type), deeper nesting than
  // a job has is refused before parsing, anything but an object is refused naming the body.
  app.removeContentTypeParser(["application/json"]);
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (_req, body, done) => {
    const bytes = body as Buffer;
    if (!isUtf8(bytes)) return done(badRequest("the request body is not valid UTF-8 text; send JSON encoded as UTF-8", "body"), undefined);
    const text = bytes.toString("utf8");
    if (text.trim() === "") return done(null, undefined);
    if (jsonDepth(text, maxBodyDepth) > maxBodyDepth) return done(badRequest(`the request body nests deeper than ${maxBodyDepth} levels; a job is a flat JSON object`, "body"), undefined);
    let value: unknown;
    let forbidden: string | undefined;  // keys that would reach an object's prototype: refused, never dropped
    try {
      value = JSON.parse(text, (k, v) => {
        if (k === "__proto__" || k === "constructor" || k === "prototype") forbidden ??= k;
        return v;
      });
    } catch (e) {
      return done(badRequest(`the request body is not valid JSON: ${(e as Error).message}`, "body"), undefined);
    }
    if (forbidden !== undefined) return done(badRequest(`unknown parameter '${forbidden}': such keys are never accepted`, forbidden), undefined);
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return done(badRequest(`the request body must be a JSON object, got ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value}`, "body"), undefined);
    }
    done(null, value);
  });

  // GET / (and its HEAD) is the one route without a token: it names the routes, nothing else.
  app.addHook("onRoute", (r) => {
    for (const m of [r.method].flat()) {
      if (m === "HEAD" || r.url === "/") continue;
      if (!apiRoutes.some(([method, path]) => method === m && path === r.url)) throw new Error(`route ${m} ${r.url} is not described in src/server/home.ts (apiRoutes), the page at /`);
    }
  });
  // A browser signed in to the status page (src/server/session.ts) may read: GET and HEAD only.
  app.addHook("onRequest", async (req, reply) => {
    const reads = req.method === "GET" || req.method === "HEAD";
    if (reads && req.routeOptions.url === "/") return;
    const given = req.headers.authorization;
    const token = bearerToken(given);
    if (token === undefined && reads && signedIn(req.headers.cookie, o.token, req.socket.localPort ?? 0)) return;
    if (token === undefined || !timingSafeEqual(digest(token), expected)) {
      reply.header("www-authenticate", 'Bearer realm="wanlab"');
      return reply.code(401).send({ error: given ? "invalid bearer token" : "missing Authorization: Bearer TOKEN (the token is in server.json)" });
    }
  });
  app.addHook("preClose", async () => {
    for (const s of streams) s.end();
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const [status, body] = errorAnswer(err, req);
    if (o.onRefused && req.method === "POST" && req.routeOptions.url === "/v1/jobs") o.onRefused(clientOf(req), body.error, body.field);
    return reply.code(status).send(body);
  });

  /** The status and body that answer `err`: 400 naming the field, 413, 503 or 500. */
  function errorAnswer(err: FastifyError, req: FastifyRequest): [number, { error: string; field?: string }] {
    if (err.validation && err.validation[0]?.instancePath === "" && err.validation[0]?.keyword === "type") {
      return [400, { error: "the request body must be a JSON object", field: "body" }];
    }
    if (err.validation) {
      const v = err.validation[0]!;
      const p = v.params as Record<string, string>;
      const field = p.additionalProperty ?? p.missingProperty ?? v.instancePath.split("/").filter(Boolean).join(".").replace(/\.(\d+)$/, "[$1]");
      const body = (req.body ?? {}) as Record<string, unknown>;
      const message =
        p.additionalProperty ? `unknown parameter '${field}'; allowed: ${jobFields.join(", ")}` :
        p.missingProperty ? `${field} is required (${allowedFor(field)})` :
        `${field} must be ${allowedFor(field.replace(/\[\d+\]$/, ""))}, got ${JSON.stringify(body[field.replace(/\[\d+\]$/, "")])}`;
      return [400, { error: message, field }];
    }
    if (err instanceof ParamError) return [400, { error: err.message, field: err.field }];
    if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE") return [413, { error: `request body too large (limit ${app.initialConfig.bodyLimit} bytes)` }];
    const field = (err as { field?: string }).field;
    if (err.statusCode === 400 && field) return [400, { error: err.message, field }];
    const status = err.statusCode && err.statusCode >= 400 && (err.statusCode < 500 || err.statusCode === 503) ? err.statusCode : 500;
    if (status === 500) console.error(`wanlab serve: ${req.method} ${req.url}: ${err.stack ?? err.message}`);
    return [status, { error: err.message }];
  }
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route ${req.method} ${req.url.split("?")[0]}` }));

  const findJob = (id: string) => (idPattern.test(id) ? o.queue.get(id) : undefined);

  // GET /: the status page for a signed-in browser; /?token=TOKEN signs a browser in and
  // redirects to / (the token leaves the address bar); any other browser gets a page that says
  // how to sign in, and other clients the plain-text list of routes.
  app.get<{ Querystring: { token?: string } }>("/", async (req, reply) => {
    reply.header("cache-control", "no-store").header("x-content-type-options", "nosniff").header("referrer-policy", "no-referrer");
    const port = req.socket.localPort ?? 0;
    const given = req.query.token;
    if (typeof given === "string") {
      if (sameSecret(given, o.token)) return reply.code(303).header("set-cookie", sessionCookie(o.token, port)).header("location", "/").send();
      return reply.code(401).headers(statusPageHeaders()).type("text/html; charset=utf-8").send(signInPage(o.info.version, "The token in this link does not match this server (a new one is made each time it starts)"));
    }
    if (signedIn(req.headers.cookie, o.token, port)) {
      const nonce = randomBytes(16).toString("base64");
      return reply.headers(statusPageHeaders(nonce)).type("text/html; charset=utf-8").send(statusPage(o.info.version, nonce));
    }
    if (/\btext\/html\b/.test(req.headers.accept ?? "")) return reply.headers(statusPageHeaders()).type("text/html; charset=utf-8").send(signInPage(o.info.version));
    return reply.type("text/plain; charset=utf-8").send(homePage(o.info.version));
  });

  const status = statusReporter({
    queue: o.queue, live: o.live, version: o.info.version, memory: o.memory, plan: o.plan,
    model: { layout: o.info.layout, placement: o.info.placement },
  });
  app.get("/v1/status", async () => status());

  app.get<{ Params: { id: string } }>("/v1/jobs/:id/preview", async (req, reply) => {
    const job = findJob(req.params.id);
    const preview = job ? o.live?.preview(job.id) : undefined;
    if (!preview) return reply.code(404).send({ error: job ? `job ${job.id} has no latent preview (yet, or any more)` : `no job ${req.params.id}` });
    return reply.type("image/png").header("cache-control", "no-store").send(preview.png);
  });

  app.get("/v1/health", async (_req, reply) => {
    if (o.stopping()) return reply.code(503).send({ status: "stopping" });
    return { status: "ok", model: o.info.dir, layout: o.info.layout, fingerprint: o.info.fingerprint, version: o.info.version, info: o.info };
  });

  app.post<{ Body: JobRequest }>("/v1/jobs", { schema: { body: jobBodySchema } }, async (req, reply) => {
    if (o.stopping()) return reply.code(503).send({ error: "the server is shutting down; submit again after it restarts" });
    const job = await o.queue.submit(req.body, clientOf(req));
    return reply.code(202).header("location", `/v1/jobs/${job.id}`).send({ id: job.id, state: job.state });
  });

  // What a job with these parameters would need per device and whether it fits the budget;
  // nothing is queued or computed.
  app.post<{ Body: Partial<JobRequest> }>("/v1/plan", { schema: { body: planBodySchema } }, async (req) =>
    o.plan(resolveParams({ ...req.body, prompt: req.body.prompt ?? "" })));

  app.get<{ Querystring: { state?: string } }>("/v1/jobs", async (req, reply) => {
    const s = req.query.state;
    if (s !== undefined && !["queued", "running", "done", "failed", "cancelled"].includes(s)) {
      return reply.code(400).send({ error: `state must be one of queued, running, done, failed, cancelled, got '${s}'`, field: "state" });
    }
    return { jobs: o.queue.list().filter((j) => s === undefined || j.state === s).map(jobView) };
  });

  app.get("/v1/queue", async () => {
    const running = o.queue.list().find((j) => j.state === "running");
    return { running: running ? jobView(running) : null, queued: o.queue.queued().map(jobView) };
  });

  app.get<{ Params: { id: string } }>("/v1/jobs/:id", async (req, reply) => {
    const job = findJob(req.params.id);
    return job ? jobView(job) : reply.code(404).send({ error: `no job ${req.params.id}` });
  });

  app.delete<{ Params: { id: string } }>("/v1/jobs/:id", async (req, reply) => {
    const job = findJob(req.params.id);
    if (!job) return reply.code(404).send({ error: `no job ${req.params.id}` });
    if (terminal.has(job.state)) return reply.code(409).send({ error: `job ${job.id} is already ${job.state}`, ...jobView(job) });
    // journalled before it is answered; a queued job is cancelled now, a running one is cancelled
    // in the engine and awaited briefly: 200 once it is cancelled, else 202 (cancelling: true)
    await o.queue.cancel(job.id);
    return reply.code(job.state === "cancelled" ? 200 : 202).send(jobView(job));
  });

  app.get<{ Params: { id: string; name: string } }>("/v1/jobs/:id/files/:name", async (req, reply) => {
    const job = findJob(req.params.id);
    const file = job?.outputs?.find((p) => basename(p) === req.params.name);
    if (!file) return reply.code(404).send({ error: `job ${req.params.id} has no output '${req.params.name}'` });
    const type = file.endsWith(".mp4") ? "video/mp4" : file.endsWith(".json") ? "application/json" : "application/octet-stream";
    let fh;
    try {
      fh = await openFile(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ELOOP" || code === "ENOTDIR") return reply.code(404).send({ error: `job ${job!.id}'s output '${req.params.name}' is no longer on the server (${file} ${code === "ELOOP" ? "is now a symbolic link" : "was removed"})` });
      throw e;
    }
    const size = (await fh.stat()).size;
    const range = byteRange(req.headers.range, size);
    reply.header("accept-ranges", "bytes");
    if (range === "unsatisfiable") {
      await fh.close();
      return reply.code(416).header("content-range", `bytes */${size}`).send({ error: `range ${req.headers.range} starts past the end of ${req.params.name} (${size} bytes)` });
    }
    reply.type(type);
    if (range) return reply.code(206).header("content-range", `bytes ${range.start}-${range.end}/${size}`).header("content-length", range.end - range.start + 1).send(fh.createReadStream({ start: range.start, end: range.end }));
    return reply.header("content-length", size).send(fh.createReadStream());
  });

  function stream(raw: ServerResponse, initial: JobEvent[], accept: (e: JobEvent) => boolean, endOn?: (e: JobEvent) => boolean): void {
    raw.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" });
    raw.write(": wanlab events\n\n"); // sends the headers now: a client can submit once the stream is open
    let n = 0;
    const send = (e: JobEvent) => raw.write(`id: ${++n}\nevent: ${e.type}\ndata: ${JSON.stringify(eventData(e))}\n\n`);
    const close = () => {
      o.queue.events.off("event", listener);
      clearInterval(ping);
      streams.delete(raw);
    };
    const listener = (e: JobEvent) => {
      if (!accept(e)) return;
      send(e);
      if (endOn?.(e)) {
        close();
        raw.end();
      }
    };
    const ping = setInterval(() => raw.write(": ping\n\n"), 15000);
    streams.add(raw);
    raw.on("close", close);
    for (const e of initial) send(e);
    if (initial.some((e) => endOn?.(e))) {
      close();
      raw.end();
      return;
    }
    o.queue.events.on("event", listener);
  }

  app.get<{ Params: { id: string } }>("/v1/jobs/:id/events", async (req, reply) => {
    const job = findJob(req.params.id);
    if (!job) return reply.code(404).send({ error: `no job ${req.params.id}` });
    reply.hijack();
    // The job's state as it is now, then its events; the stream ends after the last one.
    const now: JobEvent = { type: job.state === "running" ? "started" : (job.state as "queued" | "done" | "failed" | "cancelled"), job };
    stream(reply.raw, [now], (e) => e.job.id === job.id, (e) => terminal.has(e.type));
  });

  app.get("/v1/events", async (_req, reply) => {
    reply.hijack();
    stream(reply.raw, [], () => true);
  });

  app.get("/v1/stats", async () => ({ ...o.queue.stats(), memory: o.memory(), model: { dir: o.info.dir, layout: o.info.layout, fingerprint: o.info.fingerprint, placement: o.info.placement } }));

  app.post("/v1/shutdown", async (_req, reply) => {
    setImmediate(o.shutdown);
    return reply.code(202).send({ status: "stopping" });
  });

  return app;
}
