#!/usr/bin/python3
"""Loads a softdiff checkpoint into the PyTorch RefUNet of tests/refunet/refunet_torch.py.

    /usr/bin/python3 scripts/checkpoint_to_torch.py CKPT [--check X.npy T PHI.npy]

Drops the keys that start with "train." (the training state), builds RefUNet from the
"refunet_config" metadata and calls load_state_dict(strict=True), so any missing,
unexpected or mis-shaped name fails. With --check, runs the module on X.npy at time T and
compares with PHI.npy (what `softdiff denoise --output phi` wrote for the same input).
Needs only torch and numpy (Debian's python3-torch); safetensors is parsed here.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "refunet"))
from refunet_torch import RefUNet  # noqa: E402

DTYPES = {"F32": np.float32, "F64": np.float64}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    tensors = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        tensors[name] = np.frombuffer(data[b:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"]).copy()
    return tensors, meta


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt")
    ap.add_argument("--check", nargs=3, metavar=("X.npy", "T", "PHI.npy"))
    a = ap.parse_args()
    tensors, meta = read_safetensors(a.ckpt)
    cfg = json.loads(meta["refunet_config"])
    cfg["channel_mult"] = tuple(cfg["channel_mult"])
    net = RefUNet(**cfg)
    state = {k: torch.from_numpy(v) for k, v in tensors.items() if not k.startswith("train.")}
    net.load_state_dict(state, strict=True)
    n = sum(p.numel() for p in net.parameters())
    print(f"loaded {len(state)} tensors ({n} parameters) into RefUNet({cfg}) with strict=True; "
          f"dropped {len(tensors) - len(state)} train.* tensors")
    if a.check:
        x = torch.from_numpy(np.load(a.check[0]).astype(np.float32))
        t = torch.full((x.shape[0],), float(a.check[1]))
        with torch.no_grad():
            phi = net(x, t).numpy()
        ref = np.load(a.check[2])
        err = np.abs(phi - ref).max()
        print(f"max |phi_torch - phi_softdiff| = {err:.3g} (max |phi| = {np.abs(ref).max():.3g})")
        if not err <= 1e-4 * max(1.0, np.abs(ref).max()):
            sys.exit(1)


if __name__ == "__main__":
    main()
