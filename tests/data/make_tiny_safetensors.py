#!/usr/bin/python3
"""Writes tests/data/tiny.safetensors with only json and struct, following the
safetensors format (8-byte little-endian header length, JSON header padded with
spaces to 8 bytes, little-endian data), as the Python `safetensors` package lays
it out: "__metadata__" first, data sorted by dtype size (largest first) then name.
test_safetensors.cpp reads it back and checks every name, shape, value and
metadata entry listed here. Run: /usr/bin/python3 tests/data/make_tiny_safetensors.py
"""
import json
import os
import struct

# name: (dtype, struct code, shape, values)
TENSORS = {
    "conv.weight": ("F32", "f", [2, 1, 2, 2], [0.5 * i - 1.0 for i in range(8)]),
    "conv.bias": ("F64", "d", [2], [3.141592653589793, -2.5e-300]),
    "scale": ("F32", "f", [], [1.25]),
    "half": ("F16", "e", [3], [1.0, -0.5, 65504.0]),
    "steps": ("I64", "q", [2], [-3, 1 << 40]),
    "empty": ("F32", "f", [0, 4], []),
}
METADATA = {"format": "pt", "producer": "make_tiny_safetensors.py", "note": "sigma \u03c3"}
SIZES = {"F64": 8, "I64": 8, "F32": 4, "F16": 2}


def main():
    order = sorted(TENSORS, key=lambda n: (-SIZES[TENSORS[n][0]], n))
    header = {"__metadata__": METADATA}
    data = b""
    for name in order:
        dtype, code, shape, values = TENSORS[name]
        blob = struct.pack("<%d%s" % (len(values), code), *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny.safetensors")
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


if __name__ == "__main__":
    main()
