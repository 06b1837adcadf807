#!/usr/bin/env python3
"""Cross-checks wanlab's .pth reader and writer against real PyTorch.

  pth_interop.py write DIR   torch.save()s a set of state dicts into DIR and describes them in
                             DIR/manifest.json, for wanlab's load_pth to read back.
  pth_interop.py check DIR   loads every file listed in DIR/manifest.json (written by wanlab's
                             save_pth) with torch.load(weights_only=True) and compares dtypes,
                             shapes and values; where this torch can re-save the result, also
                             checks that torch.save writes the very same data.pkl bytes.

manifest.json: {"files": [{"file": NAME, "tensors": {KEY: {"dtype": "BF16", "shape": [..],
"values": [..]}}, "shares": [[KEY, KEY], ..], "error": SUBSTRING}]}. "values" is the flattened
tensor as numbers; "shares" lists pairs of tensors that must share a storage; "error" marks a
file that must fail to load with a message containing SUBSTRING.

Needs only torch (Debian's python3-torch 1.13 is enough); it does not call wanlab.
"""
import collections
import io
import json
import os
import sys
import zipfile

import torch

DTYPES = {
    "BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
    # float8 exists from torch 2.1 and serializes from 2.2; older torch just skips those files.
    "F8_E4M3": getattr(torch, "float8_e4m3fn", None), "F8_E5M2": getattr(torch, "float8_e5m2", None),
}
NAMES = {v: k for k, v in DTYPES.items() if v is not None}


def same_values(got, want):
    """Element-wise equality where NaN equals NaN (JSON carries NaN as null): float8 has NaN patterns."""
    return len(got) == len(want) and all(
        g == w or (g != g and (w is None or w != w)) for g, w in zip(got, want))


def describe(t):
    return {"dtype": NAMES[t.dtype], "shape": list(t.shape), "values": t.detach().double().flatten().tolist()}


def write(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    files = []

    def save(name, obj, tensors, shares=(), via_buffer=False):
        path = os.path.join(out_dir, name)
        if via_buffer:  # a file object makes torch name the archive "archive", not the file stem
            buf = io.BytesIO()
            torch.save(obj, buf)
            with open(path, "wb") as f:
                f.write(buf.getvalue())
        else:
            torch.save(obj, path)
        files.append({"file": name, "tensors": {k: describe(v) for k, v in tensors.items()},
                      "shares": [list(p) for p in shares]})

    g = torch.Generator().manual_seed(0)
    sd = collections.OrderedDict()
    sd["w_bf16"] = torch.randn(3, 5, generator=g).to(torch.bfloat16)
    sd["w_f16"] = torch.randn(4, generator=g).to(torch.float16)
    sd["w_f32"] = torch.randn(2, 3, 2, generator=g)
    sd["w_f64"] = torch.randn(2, generator=g).double()
    sd["idx_i64"] = torch.tensor([0, -1, 2**40, -(2**40)], dtype=torch.int64)
    sd["idx_i32"] = torch.tensor([[1, -2], [3, 2**30]], dtype=torch.int32)
    sd["idx_i16"] = torch.tensor([-300, 300], dtype=torch.int16)
    sd["idx_i8"] = torch.tensor([-128, 127], dtype=torch.int8)
    sd["raw_u8"] = torch.tensor([0, 255, 7], dtype=torch.uint8)
    sd["mask"] = torch.tensor([True, False, True])
    save("dtypes.pth", sd, sd)

    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    shared = collections.OrderedDict(base=base, view=base[1:, ::2], tpose=base.t(),
                                     param=torch.nn.Parameter(torch.ones(2, 2)))
    save("shared.pth", shared, shared, shares=[("base", "view"), ("base", "tpose")])

    layer_w = torch.randn(2, 2, generator=g).to(torch.bfloat16)
    bias = torch.tensor([0.5, -0.25], dtype=torch.float16)
    nested = {"model": {"layer": {"weight": layer_w}, "bias": bias}, "epoch": 7, "name": "wan",
              "history": [1.0, 2.0], "none": None}
    save("nested.pth", nested, {"model.layer.weight": layer_w, "model.bias": bias}, via_buffer=True)

    odd = {"scalar": torch.tensor(3.5), "empty": torch.zeros(0, 3), "big_i64": torch.tensor([2**40, -5])}
    save("scalar.pth", odd, odd)

    lin = torch.nn.Linear(3, 2)  # a module state_dict: OrderedDict with _metadata (pickle BUILD)
    msd = lin.state_dict()
    save("module.pth", msd, msd)

    torch.save({"x": torch.ones(2)}, os.path.join(out_dir, "legacy.pth"), _use_new_zipfile_serialization=False)
    files.append({"file": "legacy.pth", "tensors": {}, "shares": [],
                  "error": "legacy (non-zip) torch.save format is not supported"})

    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump({"torch": torch.__version__, "files": files}, f, indent=1)
    print(f"pth_interop: wrote {len(files)} files with torch {torch.__version__} to {out_dir}")


def check(in_dir):
    with open(os.path.join(in_dir, "manifest.json")) as f:
        manifest = json.load(f)
    failures, checked, skipped = [], 0, 0
    for entry in manifest["files"]:
        path = os.path.join(in_dir, entry["file"])
        want = entry["tensors"]
        if any(DTYPES.get(w["dtype"]) is None for w in want.values()):
            print(f"pth_interop: skipping {entry['file']}: torch {torch.__version__} has no "
                  + ", ".join(sorted({w['dtype'] for w in want.values() if DTYPES.get(w['dtype']) is None})))
            skipped += 1
            continue
        try:
            got = torch.load(path, weights_only=True)
        except Exception as e:  # noqa: BLE001 - report any loader failure as a check failure
            failures.append(f"{entry['file']}: torch.load(weights_only=True) failed: {e}")
            continue
        bad = []
        if not isinstance(got, collections.OrderedDict):
            bad.append(f"loaded a {type(got).__name__}, expected OrderedDict")
        elif list(got.keys()) != sorted(want.keys()):
            bad.append(f"keys {list(got.keys())} != {sorted(want.keys())}")
        else:
            for k, w in want.items():
                t = got[k]
                if t.dtype != DTYPES[w["dtype"]]:
                    bad.append(f"{k}: dtype {t.dtype} != {w['dtype']}")
                elif list(t.shape) != w["shape"]:
                    bad.append(f"{k}: shape {list(t.shape)} != {w['shape']}")
                elif not same_values(t.double().flatten().tolist(), w["values"]):
                    bad.append(f"{k}: values differ")
            # torch.save of what we loaded must reproduce our data.pkl exactly.
            if not bad and "data_pkl_exact" in entry.get("checks", []):
                buf = io.BytesIO()
                torch.save(got, buf)
                with zipfile.ZipFile(buf) as z:
                    theirs = z.read("archive/data.pkl")
                with zipfile.ZipFile(path) as z:
                    ours = z.read(z.namelist()[0].split("/")[0] + "/data.pkl")
                if theirs != ours:
                    bad.append(f"data.pkl differs from torch.save's ({len(ours)} vs {len(theirs)} bytes)")
        with zipfile.ZipFile(path) as z:  # zipfile re-checks every CRC-32 and the ZIP64 fields
            if z.testzip() is not None:
                bad.append("zipfile CRC check failed")
            for info in z.infolist():
                if info.compress_type != zipfile.ZIP_STORED:
                    bad.append(f"{info.filename} is compressed")
        checked += 1
        failures += [f"{entry['file']}: {b}" for b in bad]
    for f in failures:
        print("pth_interop: FAIL " + f)
    print(f"pth_interop: checked {checked} files ({skipped} skipped) with torch {torch.__version__}: "
          + ("ok" if not failures else f"{len(failures)} failures"))
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        print(__doc__)
        sys.exit(2)
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        sys.exit(check(sys.argv[2]))
