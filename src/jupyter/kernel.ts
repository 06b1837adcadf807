// The wanlab kernel's execute requests, on tslab's converter, executor and ZMQ server. tslab prints
// a cell's value and its errors with console.log / console.error; here they become what Jupyter
// expects, so exported notebooks read as executed:
// - execute_input and execute_result with the execution count (`In [3]:` / `Out[3]:`), the value's
//   own MIME bundle (videos, charts, grids; an array of videos as a labelled grid) as the result,
//   with no second text line;
// - an error message (ename, one-line evalue, traceback without the kernel's frames) for a thrown
//   error or TypeScript diagnostics;
// - `stop_on_error`: true (Jupyter's default) aborts the requests already queued behind a failed
//   cell, as "Run all" stops; false (`nbconvert --execute --allow-errors`, papermill) runs them.
import { createRequire } from "node:module";
import { formatWithOptions } from "node:util";
import { plainBigints } from "../display/mime.js";
import { valueBundle } from "../display/value.js";
import { compileError, jupyterError, traceRequested, type JupyterError } from "./errors.js";

interface Executor {
  execute(src: string): Promise<boolean>;
  interrupt(): void;
  close(): void;
}

type Send = (msgType: string, content: Record<string, unknown>) => void;

interface ExecuteRequest {
  code: string;
  silent?: boolean;
  store_history?: boolean;
  stop_on_error?: boolean;
}

/** What one cell left: its value, the error it threw, or TypeScript's diagnostics. */
export class CellCapture {
  private value: { v: unknown } | undefined;
  private error: { e: unknown } | undefined;
  private diagnostics: string[] = [];
  private active = false;

  begin(): void {
    this.value = this.error = undefined;
    this.diagnostics = [];
    this.active = true;
  }

  end(): { value?: { v: unknown }; error?: JupyterError } {
    this.active = false;
    const error = this.diagnostics.length ? compileError(this.diagnostics) : this.error ? jupyterError(this.error.e) : undefined;
    return { value: this.value, error };
  }

  /** The executor's console: log() gets the cell's value, error() an error or a diagnostic. */
  console() {
    return {
      log: (v: unknown) => {
        if (this.active) this.value = { v };
        else console.log(v);
      },
      error: (...args: unknown[]) => {
        if (!this.active) console.error(...args);
        else if (args.length === 1) this.error = { e: args[0] };
        else this.diagnostics.push(formatWithOptions({}, ...args));
      },
    };
  }
}

/** Handles execute requests in arrival order; one at a time. */
export class ExecuteQueue {
  private chain: Promise<unknown> = Promise.resolve();
  private count = 0;
  /** Requests that arrived before this time and have not started are aborted (after a failed cell with stop_on_error). */
  private abortBefore = 0;

  constructor(
    private readonly executor: Executor,
    private readonly capture: CellCapture,
    private readonly onCell: (io: { send: Send; writeStream(name: string, text: string): void; writeDisplayData(data: unknown, update: boolean): void }) => void,
  ) {}

  run(req: ExecuteRequest, io: { send: Send; writeStream(name: string, text: string): void; writeDisplayData(data: unknown, update: boolean): void }): Promise<Record<string, unknown>> {
    const arrived = Date.now();
    const task = this.chain.then(async () => {
      if (arrived < this.abortBefore) return { status: "aborted", execution_count: this.count };
      const silent = req.silent === true;
      if (!silent && req.store_history !== false) this.count++;
      const count = this.count;
      if (!silent) io.send("execute_input", { code: req.code, execution_count: count });
      this.onCell(io);
      this.capture.begin();
      let ok: boolean;
      try {
        ok = await this.executor.execute(req.code);
      } catch (e) {
        this.capture.console().error(e);
        ok = false;
      }
      const cell = this.capture.end();
      if (ok) {
        if (cell.value && !silent) {
          let data: Record<string, unknown>;
          try {
            data = valueBundle(cell.value.v);
          } catch (e) {
            data = { "text/plain": `(the value could not be shown: ${(e as Error).message})` };
          }
          io.send("execute_result", { execution_count: count, data, metadata: {} });
        }
        return { status: "ok", execution_count: count, user_expressions: {}, payload: [] };
      }
      const error = cell.error ?? jupyterError(new Error("the cell failed"));
      io.send("error", { ...error });
      if (req.stop_on_error !== false) this.abortBefore = Date.now() + 200;
      return { status: "error", execution_count: count, ...error };
    });
    this.chain = task.catch(() => undefined);
    return task;
  }
}

interface ZmqMessage {
  content: Record<string, unknown>;
  header: { msg_type: string };
  createReply(): ZmqMessage;
  signAndSend(key: string, sock: unknown): void;
}

type Constructor<T = object> = new (...args: any[]) => T;

/**
 * Starts the kernel on `configPath` (Jupyter's connection file) with the tslab whose main module is
 * `tslabMain`: its converter and executor, its handler for everything but execute requests.
 */
export function startKernel(configPath: string, tslabMain: string): void {
  const req = createRequire(tslabMain);
  const { createConverter } = req("./converter.js") as { createConverter(o: { isJS: boolean; isBrowser: boolean }): { close(): void } };
  const { createExecutor } = req("./executor.js") as { createExecutor(root: string, convs: unknown, console: unknown): Executor };
  const jupyter = req("./jupyter.js") as {
    JupyterHandlerImpl: Constructor<{ close(): void }>;
    ZmqServer: Constructor<{ init(): Promise<void>; connInfo: { key: string }; iopub: unknown; handler: unknown }>;
    lastWriteDisplayData: unknown;
  };

  let node: { close(): void } | undefined, browser: { close(): void } | undefined;
  const convs = {
    get node() {
      return (node ??= createConverter({ isJS: false, isBrowser: false }));
    },
    get browser() {
      return (browser ??= createConverter({ isJS: false, isBrowser: true }));
    },
    close() {
      node?.close();
      browser?.close();
    },
  };
  void convs.node; // warm the converter, as tslab does
  const capture = new CellCapture();
  const executor = createExecutor(process.cwd(), convs, capture.console());
  const queue = new ExecuteQueue(executor, capture, (io) => {
    // Output printed later (timers, un-awaited work) goes to the last cell that ran, as in ipykernel.
    process.stdout.write = ((chunk: string | Uint8Array) => (io.writeStream("stdout", typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8")), true)) as typeof process.stdout.write;
    process.stderr.write = ((chunk: string | Uint8Array) => (io.writeStream("stderr", typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8")), true)) as typeof process.stderr.write;
    jupyter.lastWriteDisplayData = io.writeDisplayData;
  });

  const Handler = class extends jupyter.JupyterHandlerImpl {
    execute(req: ExecuteRequest, io: Parameters<ExecuteQueue["run"]>[1]) {
      return queue.run(req, io);
    }
  };
  const Server = class extends jupyter.ZmqServer {
    async handleExecute(sock: unknown, msg: ZmqMessage): Promise<void> {
      const send: Send = (msgType, content) => {
        const m = msg.createReply();
        m.header.msg_type = msgType;
        m.content = content;
        m.signAndSend(this.connInfo.key, this.iopub);
      };
      const io = {
        send,
        writeStream: (name: string, text: string) => send("stream", { name, text }),
        writeDisplayData: (data: unknown, update: boolean) => send(update ? "update_display_data" : "display_data", data as Record<string, unknown>),
      };
      const reply = msg.createReply();
      reply.header.msg_type = "execute_reply";
      reply.content = await (this.handler as InstanceType<typeof Handler>).execute(msg.content as unknown as ExecuteRequest, io);
      reply.signAndSend(this.connInfo.key, sock);
    }
  };
  const server = new Server(new Handler(executor, false), configPath);
  process.on("SIGINT", () => executor.interrupt());
  // Errors no cell awaits (a generation started without await, then stopped): one line each on the
  // running (or last) cell's stderr, not node's UnhandledPromiseRejection dump.
  process.on("uncaughtException", (e) => reportStray("thrown outside any cell", e));
  process.on("unhandledRejection", (reason) => reportStray("from a promise no cell awaited", reason));
  plainConsole();
  void server.init();
}

/** An error no cell awaited, as one line (the whole traceback with WANLAB_TRACE=1). */
function reportStray(where: string, e: unknown): void {
  const err = jupyterError(e);
  process.stderr.write(`${err.ename}: ${err.evalue} (${where})\n${traceRequested() ? err.traceback.slice(1).join("\n") + "\n" : ""}`);
}

/** console.log and friends print bigints that fit a number without the `n` (seeds). */
function plainConsole(): void {
  const c = console as unknown as Record<string, (...args: unknown[]) => void>;
  for (const [name, stream] of [["log", "stdout"], ["info", "stdout"], ["debug", "stdout"], ["warn", "stderr"], ["error", "stderr"]] as const)
    c[name] = (...args: unknown[]) => void process[stream].write(formatWithOptions({ stylize: plainBigints } as Parameters<typeof formatWithOptions>[0], ...args) + "\n");
}
