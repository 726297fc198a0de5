#!/usr/bin/python3
"""RefUNet (docs/refunet.md, default configuration, 1,539,329 parameters) in PyTorch,
the peer of bench/bench_network.cpp. Same measurements, same shapes (batch 64, 1 x 28 x 28,
float32), two threads:

  forward     phi = net(x, t) under torch.no_grad() (softdiff's predict)
  train_step  zero_grad; phi = net(x, t); loss = mean((phi - target)^2); backward;
              clip_grad_norm_(1.0); Adam step (lr 2e-4, betas 0.9/0.999, eps 1e-8)

The network is tests/refunet/refunet_torch.py (imported, not copied). Each measurement runs
`--warmup` untimed iterations, then `--repeats` timed ones, and reports the best and the
median wall time and the least process CPU time (both threads together) in milliseconds,
one line per measurement:
  torch_refunet <name> best_ms=<b> median_ms=<m> cpu_ms=<c> repeats=<r> threads=<t> ...
Run with Debian's python (torch 1.13): OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_refunet.py
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "refunet"))
from refunet_torch import RefUNet  # noqa: E402


def timed(fn, warmup, repeats):
    """Best and median wall time, and the least process CPU time (all threads), in ms."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return min(wall), statistics.median(wall), min(cpu)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--only", choices=["forward", "train_step"], default=None)
    parser.add_argument("--flops", action="store_true",
                        help="print the forward pass's multiply-add FLOPs (convolutions and matrix products, "
                             "counted by torch.profiler) and exit")
    parser.add_argument("--base-channels", type=int, default=32,
                        help="RefUNet base channels (32: the default configuration; 16: the main job's network)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = RefUNet(base_channels=args.base_channels)
    if args.base_channels == 32:
        assert sum(p.numel() for p in net.parameters()) == 1539329
    x = torch.randn(args.batch, 1, args.size, args.size)
    t = torch.rand(args.batch)
    target = torch.randn(args.batch, 1, args.size, args.size)
    opt = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.9, 0.999), eps=1e-8)

    def forward():
        with torch.no_grad():
            net(x, t)

    if args.flops:
        # 2 per multiply-add of every convolution and matrix product (aten::conv2d, addmm, bmm, ...):
        # the arithmetic both programs do; element-wise layers (GroupNorm, SiLU, additions) are not counted.
        with torch.profiler.profile(with_flops=True) as prof:
            forward()
        flops = sum(e.flops for e in prof.key_averages() if e.flops)
        print(f"torch_refunet forward_flops={flops} batch={args.batch} size={args.size} base={args.base_channels}")
        return

    def train_step():
        opt.zero_grad(set_to_none=False)
        loss = torch.mean((net(x, t) - target) ** 2)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()

    for name, fn in (("forward", forward), ("train_step", train_step)):
        if args.only and args.only != name:
            continue
        best, median, cpu = timed(fn, args.warmup, args.repeats)
        print(f"torch_refunet {name} best_ms={best:.1f} median_ms={median:.1f} cpu_ms={cpu:.1f} repeats={args.repeats} "
              f"threads={torch.get_num_threads()} batch={args.batch} size={args.size} base={args.base_channels} "
              + (f"nfe_per_s={1000.0 * args.batch / best:.0f} " if name == "forward" else "")
              + f"torch={torch.__version__}",
              flush=True)


if __name__ == "__main__":
    main()
