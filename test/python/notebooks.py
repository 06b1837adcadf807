"""Runs notebooks and an interrupt scenario on the wanlab kernel through Debian's jupyter_client /
nbclient, and prints what came out as JSON for test/notebooks.test.ts.

  notebooks.py execute NOTEBOOK OUT.ipynb   -> {"cells": [{"outputs": [{"type", "mimes", "text"}]}]}
  notebooks.py interrupt MODEL_DIR          -> {"interrupted": {...}, "next": {...}}
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


if __name__ == "__main__":
    if sys.argv[1] == "execute":
        execute(sys.argv[2], sys.argv[3])
    else:
        interrupt(sys.argv[2])
