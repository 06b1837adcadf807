#!/usr/bin/env python3
"""Relative L2 distance between one tensor of two .safetensors files (what `wanlab-engine generate
--save-tensors` writes), in plain Python so it runs wherever python3 does (a GPU machine without
Node, a CPU box without torch):

    rel_l2.py REFERENCE.safetensors OTHER.safetensors [KEY=latents] [--label TEXT]

prints one JSON line: {"label", "key", "shape", "dtype", "rel_l2", "max_abs"} with
rel_l2 = ||other - reference|| / ||reference||. Exit 2 when a file, the key or the shapes differ.
"""
import json
import math
import struct
import sys


def fail(msg):
    print(f"rel_l2.py: {msg}", file=sys.stderr)
    sys.exit(2)


def read(path, key):
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 100_000_000:
                fail(f"{path}: header of {n} bytes is not a safetensors header")
            header = json.loads(f.read(n))
            if key not in header:
                fail(f"{path} has no tensor '{key}' (it has {', '.join(k for k in header if k != '__metadata__')})")
            meta = header[key]
            begin, end = meta["data_offsets"]
            f.seek(8 + n + begin)
            raw = f.read(end - begin)
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    dtype = meta["dtype"]
    if dtype == "F32":
        values = struct.unpack(f"<{len(raw) // 4}f", raw)
    elif dtype == "F16":
        values = struct.unpack(f"<{len(raw) // 2}e", raw)
    elif dtype == "BF16":
        halves = struct.unpack(f"<{len(raw) // 2}H", raw)
        values = struct.unpack(f"<{len(halves)}f", struct.pack(f"<{len(halves)}I", *(h << 16 for h in halves)))
    else:
        fail(f"{path}: tensor '{key}' is {dtype}; rel_l2.py compares F32, F16 and BF16")
    return meta["shape"], dtype, values


def main(argv):
    label = None
    if "--label" in argv:
        i = argv.index("--label")
        label = argv[i + 1] if i + 1 < len(argv) else fail("--label needs a value")
        argv = argv[:i] + argv[i + 2:]
    if len(argv) not in (2, 3):
        fail("usage: rel_l2.py REFERENCE.safetensors OTHER.safetensors [KEY] [--label TEXT]")
    key = argv[2] if len(argv) == 3 else "latents"
    shape_a, dtype_a, a = read(argv[0], key)
    shape_b, dtype_b, b = read(argv[1], key)
    if shape_a != shape_b:
        fail(f"'{key}' is {shape_a} in {argv[0]} but {shape_b} in {argv[1]}")
    diff = math.sqrt(sum((y - x) ** 2 for x, y in zip(a, b)))
    norm = math.sqrt(sum(x * x for x in a))
    print(json.dumps({"label": label, "key": key, "shape": shape_a, "dtype": [dtype_a, dtype_b],
                      "rel_l2": diff / norm if norm > 0 else (0.0 if diff == 0 else math.inf),
                      "max_abs": max((abs(y - x) for x, y in zip(a, b)), default=0.0)}))


if __name__ == "__main__":
    main(sys.argv[1:])
