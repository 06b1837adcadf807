"""Runs notebooks and an interrupt scenario on the wanlab kernel through Debian's jupyter_client /
nbclient, and prints what came out as JSON for test/notebooks.test.ts.

  notebooks.py execute NOTEBOOK OUT.ipynb   -> {"cells": [{"outputs": [{"type", "mimes", "text"}]}]}
  notebooks.py interrupt MODEL_DIR          -> {"interrupted": {...}, "next": {...}}
  notebooks.py server                       -> a notebook lab attached to the running `wanlab serve`
                                               ($WANLAB_RUNTIME_DIR): cells and their outputs
  notebooks.py nonblocking MODEL_DIR        -> timings of a completion request and of other cells
                                               answered while a long generation runs
"""
import json
import sys
import time

import nbformat
from nbclient import NotebookClient
from jupyter_client.manager import start_new_kernel


def summarize(outputs):
    out = []
    for o in outputs:
        t = o.get("output_type")
        if t == "stream":
            out.append({"type": "stream", "name": o["name"], "text": o["text"]})
        elif t == "error":
            out.append({"type": "error", "text": o.get("ename", "") + ": " + o.get("evalue", "")})
        else:
            out.append({"type": t, "mimes": sorted(o.get("data", {}).keys()),
                        "inline_mp4": "data:video/mp4;base64," in o.get("data", {}).get("text/html", ""),
                        "text": o.get("data", {}).get("text/plain", "")[:4000],
                        "html": o.get("data", {}).get("text/html", "")[:400]})
    return out


def execute(path, out_path):
    nb = nbformat.read(path, as_version=4)
    t0 = time.time()
    NotebookClient(nb, kernel_name="wanlab", timeout=180, resources={"metadata": {"path": "."}}).execute()
    nbformat.write(nb, out_path)
    cells = [{"source": c.source, "outputs": summarize(c.get("outputs", []))} for c in nb.cells if c.cell_type == "code"]
    print(json.dumps({"seconds": time.time() - t0, "cells": cells}))


def run_cell(kc, code, on_msg=None, timeout=120):
    msg_id = kc.execute(code)
    outputs, status = [], None
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except Exception:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        t, c = msg["msg_type"], msg["content"]
        if on_msg:
            on_msg(t, c)
        if t == "stream":
            outputs.append({"type": "stream", "name": c["name"], "text": c["text"]})
        elif t in ("display_data", "update_display_data", "execute_result"):
            outputs.append({"type": t, "mimes": sorted(c["data"].keys()), "text": c["data"].get("text/plain", "")})
        elif t == "error":
            outputs.append({"type": "error", "text": c["ename"] + ": " + c["evalue"]})
        elif t == "status" and c["execution_state"] == "idle":
            break
    while True:
        reply = kc.get_shell_msg(timeout=10)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    status = reply["content"].get("status")
    return {"status": status, "outputs": outputs}


def interrupt(model):
    km, kc = start_new_kernel(kernel_name="wanlab")
    try:
        setup = run_cell(kc, f'import * as wan from "wanlab";\nconst lab = await wan.open({{ model: {json.dumps(model)} }});\nlab.info.layout')
        updates = {"n": 0, "sent": None}

        def on_msg(t, c):
            # Interrupt once the live progress has moved a few steps.
            if t in ("display_data", "update_display_data") and "denoising" in c["data"].get("text/plain", ""):
                updates["n"] += 1
                if updates["n"] == 3 and updates["sent"] is None:
                    updates["sent"] = time.time()
                    km.interrupt_kernel()

        t0 = time.time()
        interrupted = run_cell(kc, 'const r = await lab.generate({ prompt: "a long one", seed: 1, height: 64, width: 64, numFrames: 5, numInferenceSteps: 1000 });', on_msg)
        interrupted["seconds"] = time.time() - t0
        interrupted["stop_latency_s"] = (time.time() - updates["sent"]) if updates["sent"] else None
        # tslab aborts requests that arrive within 200 ms of a failed cell (tslab#19), as "Run all" stops.
        time.sleep(0.5)
        nxt = run_cell(kc, 'const r2 = await lab.generate({ prompt: "after", seed: 2, height: 32, width: 32, numFrames: 1, numInferenceSteps: 2 });\nr2.params.numInferenceSteps')
        print(json.dumps({"setup": setup, "interrupted": interrupted, "next": nxt}))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def server():
    """The kernel attaches to the server the test started (found through server.json)."""
    km, kc = start_new_kernel(kernel_name="wanlab")
    try:
        cells = [
            'import * as wan from "wanlab";\nconst lab = await wan.connect();\nlab.where',
            'const r = await lab.generate({ prompt: "a harbour at dusk", seed: 5, height: 32, width: 32, numFrames: 5, numInferenceSteps: 3 });\nr',
            'r.video.tensor().shape',
            'lab.stats()',
            'await lab.close();\nconst again = await wan.open({ server: true });\n(await again.generate({ prompt: "a harbour at dusk", seed: 5, height: 32, width: 32, numFrames: 5, numInferenceSteps: 3 })).video.frames.every((v, i) => v === r.video.frames[i])',
            'await again.close();',
        ]
        out = [dict(source=c, **run_cell(kc, c)) for c in cells]
        print(json.dumps({"cells": out}))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def shell_reply(kc, msg_id, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        reply = kc.get_shell_msg(timeout=deadline - time.time())
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply
    raise TimeoutError(msg_id)


def nonblocking(model):
    """While a cell awaits a long generation, a completion request answers and the progress keeps
    moving; a generation started without await lets the next cell run before it ends."""
    km, kc = start_new_kernel(kernel_name="wanlab")
    try:
        run_cell(kc, f'import * as wan from "wanlab";\nconst lab = await wan.open({{ model: {json.dumps(model)} }});\nconst longRun = {{ prompt: "a long one", seed: 1, height: 64, width: 64, numFrames: 5, numInferenceSteps: 1000 }};')
        events = []  # (time, kind, detail)

        def step_of(c):
            import re
            m = re.search(r"denoising (\d+)/1000", c.get("data", {}).get("text/plain", ""))
            return int(m.group(1)) if m else None

        # 1. A cell awaiting the generation; a complete_request while it runs.
        gen_id = kc.execute("const r = await lab.generate(longRun);")
        complete_id, complete_reply_t, steps_at_complete = None, None, None
        last_step, deadline = 0, time.time() + 120
        while time.time() < deadline:
            try:
                msg = kc.get_iopub_msg(timeout=1)
            except Exception:
                continue
            if msg["parent_header"].get("msg_id") != gen_id:
                continue
            if msg["msg_type"] in ("display_data", "update_display_data"):
                s = step_of(msg["content"])
                if s:
                    last_step = s
                    events.append((time.time(), "step", s))
                if s and s >= 3 and complete_id is None:
                    complete_id = kc.complete("lab.gen", 7)
                    t_sent = time.time()
                    reply = shell_reply(kc, complete_id)
                    complete_reply_t = time.time()
                    steps_at_complete = last_step
                    matches = reply["content"].get("matches", [])
                    events.append((complete_reply_t, "complete", matches))
                if complete_reply_t and s and s >= (steps_at_complete or 0) + 3:
                    km.interrupt_kernel()
                    break
        gen_reply = shell_reply(kc, gen_id, 60)
        gen_end_t = time.time()
        time.sleep(0.5)  # tslab drops requests within 200 ms of a failed cell (tslab#19)
        awaited = {
            "complete_matches": next((d for (_, k, d) in events if k == "complete"), None),
            "complete_latency_s": complete_reply_t - t_sent if complete_reply_t else None,
            "steps_before_complete": steps_at_complete,
            "steps_after_complete": max([d for (t, k, d) in events if k == "step" and complete_reply_t and t > complete_reply_t] or [0]),
            "complete_before_generation_end": bool(complete_reply_t and complete_reply_t < gen_end_t),
            "generation_status": gen_reply["content"]["status"],
        }

        # 2. A generation started without await; the next cell runs and returns while it goes on.
        start = run_cell(kc, 'const ac = new AbortController();\nconst pending = lab.generate(longRun, { signal: ac.signal }).then(() => "finished", (e) => e.message);\n"started"')
        t0 = time.time()
        other = run_cell(kc, "[1, 2, 3].map((x) => x * 2).join(\",\")")
        other_t = time.time() - t0
        time.sleep(1.0)
        progress = run_cell(kc, "const before = Date.now();\nawait new Promise((r) => setTimeout(r, 50));\nDate.now() - before < 5000")
        end = run_cell(kc, "ac.abort();\nawait pending")
        print(json.dumps({"awaited": awaited, "start": start, "other": dict(other, seconds=other_t), "timer": progress, "end": end}))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


if __name__ == "__main__":
    if sys.argv[1] == "execute":
        execute(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "server":
        server()
    elif sys.argv[1] == "nonblocking":
        nonblocking(sys.argv[2])
    else:
        interrupt(sys.argv[2])
