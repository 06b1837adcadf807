// What GET / answers, without a token: the server's version, its routes and how to send the
// token. Nothing about jobs, the model or the machine: every route that shows them needs the
// token. src/server/app.ts refuses to register a route this list does not describe.

/** Every authenticated route: method, path, what it does. */
export const apiRoutes: readonly (readonly [method: string, path: string, what: string])[] = [
  ["GET", "/v1/health", "the model, its layout and fingerprint, the server's version"],
  ["POST", "/v1/jobs", "submit a job (JSON: prompt, height, width, numFrames, ...); 202 {id, state}"],
  ["POST", "/v1/plan", "the predicted memory of a job, per device; nothing is queued"],
  ["GET", "/v1/jobs", "every job (?state=queued|running|done|failed|cancelled)"],
  ["GET", "/v1/queue", "the running job and the queued ones"],
  ["GET", "/v1/jobs/:id", "one job: state, step/totalSteps, error, outputs"],
  ["DELETE", "/v1/jobs/:id", "cancel a queued or running job"],
  ["GET", "/v1/jobs/:id/files/:name", "a job's output file (video.mp4, manifest.json, ...)"],
  ["GET", "/v1/jobs/:id/events", "a job's events (text/event-stream) until it ends"],
  ["GET", "/v1/events", "every job's events (text/event-stream)"],
  ["GET", "/v1/stats", "queue counts, throughput, latency, memory"],
  ["GET", "/v1/status", "what the status page shows: running job, queue, recent jobs, stats"],
  ["GET", "/v1/jobs/:id/preview", "the running job's latest latent preview (PNG)"],
  ["POST", "/v1/shutdown", "stop the server (the running job finishes or is re-queued)"],
];

/** The page at /: plain text, one route a line. */
export function homePage(version: string): string {
  const width = Math.max(...apiRoutes.map(([m, p]) => m.length + 1 + p.length));
  return [
    `wanlab serve ${version}: Wan2.1 text-to-video jobs over HTTP`,
    "",
    "Every route below needs the header",
    "  Authorization: Bearer TOKEN",
    "where TOKEN is the \"token\" in server.json, in the server's runtime directory",
    "($WANLAB_RUNTIME_DIR, else $XDG_RUNTIME_DIR/wanlab, else ~/.local/share/wanlab/runtime),",
    "readable only by the user who started the server. `wanlab generate --server` and",
    "connect() from \"wanlab\" read it there.",
    "",
    "A browser: open the link the server printed at start (URL/?token=TOKEN) for the",
    "status page; it signs the browser in with a cookie that reads (GET) only.",
    "",
    ...apiRoutes.map(([m, p, what]) => `  ${`${m} ${p}`.padEnd(width)}  ${what}`),
    "",
    "  curl -H \"Authorization: Bearer $TOKEN\" URL/v1/queue",
    "",
  ].join("\n");
}
