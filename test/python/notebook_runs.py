"""Executes a notebook on the wanlab kernel through nbclient the way `jupyter nbconvert --execute`
does (with or without --allow-errors), writes the executed .ipynb, and prints JSON for
test/notebook-results.test.ts.

  notebook_runs.py NOTEBOOK OUT.ipynb [--allow-errors]
    -> {"seconds", "error": {"ename", "evalue", "cell"} | null}
"""
import json
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main(path, out_path, allow_errors):
    nb = nbformat.read(path, as_version=4)
    t0 = time.time()
    client = NotebookClient(nb, kernel_name="wanlab", timeout=120, allow_errors=allow_errors, resources={"metadata": {"path": "."}})
    error = None
    try:
        client.execute()
    except CellExecutionError as e:
        error = {"ename": e.ename, "evalue": e.evalue, "text": str(e)[-2000:]}
    nbformat.write(nb, out_path)
    print(json.dumps({"seconds": time.time() - t0, "error": error}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--allow-errors" in sys.argv[3:])
