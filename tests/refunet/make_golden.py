#!/usr/bin/python3
"""Writes tests/data/refunet_golden.safetensors, the PyTorch reference that
tests/test_refunet_golden.cpp matches softdiff::nn::refunet against.

The network is RefUNet from tests/refunet/refunet_torch.py (imported), in a small but complete
configuration: three levels with both channel changes (1x1 skips), a stride-2 downsample to an
odd size (28 -> 14 -> 7, as for Fashion-MNIST), nearest upsampling, the middle attention block,
two image channels and GroupNorm groups of three channels.

Contents (all F32 except t, which is F64 like the C++ API's times):
  <name>        every parameter under its checkpoint name (docs/refunet.md), PyTorch shapes;
                PyTorch's default initialisation from seed 1234, then every GroupNorm weight
                and bias perturbed (1 + 0.2 N(0,1), 0.2 N(0,1)) so the affine parts matter
  x             input [2, 2, 28, 28]
  t             times [2]
  g             upstream gradient, same shape as phi
  phi           RefUNet(x, t)
  grad.<name>   d(sum(phi * g)) / d<name>
  __metadata__  refunet_config (JSON, the keys of softdiff's nn::refunet_config),
                names (JSON list: state_dict() order), producer, reference_precision

The reference is computed in float64 from the float32 values stored in the file, then rounded
to float32, so the file holds the exact answer for its own inputs (up to one float32 rounding)
and both the C++ float and double networks can be judged against it.

The file is written with json + struct only (there is no safetensors package here), laid out as
the `safetensors` package does it: __metadata__ first, tensors sorted by dtype size (largest
first) then name, header padded with spaces to 8 bytes.
Run: /usr/bin/python3 tests/refunet/make_golden.py
"""
import json
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from refunet_torch import RefUNet  # noqa: E402

CONFIG = {
    "in_channels": 2,
    "base_channels": 12,
    "channel_mult": [1, 2, 2],
    "num_res_blocks": 1,
    "attn_at_lowest": True,
    "groups": 4,
    "norm_eps": 1e-5,
}
BATCH, SIZE = 2, 28
OUT = os.path.join(HERE, "..", "data", "refunet_golden.safetensors")


def build():
    torch.manual_seed(1234)
    net = RefUNet(in_channels=CONFIG["in_channels"], base_channels=CONFIG["base_channels"],
                  channel_mult=tuple(CONFIG["channel_mult"]), num_res_blocks=CONFIG["num_res_blocks"],
                  attn_at_lowest=CONFIG["attn_at_lowest"], groups=CONFIG["groups"], norm_eps=CONFIG["norm_eps"])
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.GroupNorm):
                module.weight.copy_(1.0 + 0.2 * torch.randn_like(module.weight))
                module.bias.copy_(0.2 * torch.randn_like(module.bias))
    return net


def main():
    net = build()
    gen = torch.Generator().manual_seed(99)
    c = CONFIG["in_channels"]
    x = torch.randn(BATCH, c, SIZE, SIZE, generator=gen)
    t = torch.tensor([0.1875, 0.8125], dtype=torch.float64)  # exact in float32 too
    g = torch.randn(BATCH, c, SIZE, SIZE, generator=gen)

    # float64 reference from the float32 values that go into the file
    names = list(net.state_dict().keys())
    weights32 = {k: v.detach().to(torch.float32).clone() for k, v in net.state_dict().items()}
    net64 = net.double()
    x64 = x.double().requires_grad_(False)
    phi = net64(x64, t)
    (phi * g.double()).sum().backward()
    grads = {n: p.grad.detach() for n, p in net64.named_parameters()}
    assert set(grads) == set(names), "every state_dict entry must be a parameter"

    tensors = {}  # name -> (dtype, struct code, shape, flat values)

    def put(name, tensor, dtype="F32"):
        code = {"F32": "f", "F64": "d"}[dtype]
        flat = tensor.detach().to(torch.float64).reshape(-1).tolist()
        tensors[name] = (dtype, code, list(tensor.shape), flat)

    for n in names:
        put(n, weights32[n])
        put("grad." + n, grads[n])
    put("x", x)
    put("t", t, "F64")
    put("g", g)
    put("phi", phi)

    metadata = {
        "refunet_config": json.dumps(CONFIG),
        "names": json.dumps(names),
        "producer": "tests/refunet/make_golden.py (torch %s)" % torch.__version__,
        "reference_precision": "float64 from the stored float32 inputs, rounded to float32",
    }
    size = {"F64": 8, "F32": 4}
    order = sorted(tensors, key=lambda k: (-size[tensors[k][0]], k))
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name in order:
        dtype, code, shape, flat = tensors[name]
        blob = struct.pack("<%d%s" % (len(flat), code), *flat)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = OUT + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    os.replace(tmp, OUT)
    params = sum(v.numel() for v in weights32.values())
    print("wrote %s: %d tensors, %d parameters, %d bytes" % (os.path.normpath(OUT), len(tensors), params,
                                                              os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
