#!/usr/bin/python3
"""The peer of bench/cuda/bench_cuda.cu in PyTorch on the same GPU, eager mode: one Momentum
Sampler step (Soft Diffusion, Algorithm 2 / eq. 17) with phi = 0,

    x0 = phi + x_t;  y = C_t x0;  e = y - x_t;
    z = x_t - ((s'^2 - s^2) / s^2) e + sqrt(s^2 - s'^2) eta;  x_{t'} = z + (C_{t'} x0 - y)

on a 128 x 3 x 64 x 64 float32 batch with the paper's Gaussian blur (half size 80, zero padding,
appendix G) as C X = B X B^T with precomputed 64 x 64 matrices B (TF32 off, as in softdiff), and
also the blur alone and the element-wise update alone (given y and C_{t'} x0). Several ways of
writing the blur are timed and the fastest is reported. Timing: CUDA events around `inner` calls,
best of `repeats`. Levels as bench/torch_momentum_step.py (std 3 -> 2.9, 10 -> 9.8).

Usage: python3 bench/torch_cuda_step.py [--json out.json]   (needs torch with CUDA)
       python3 bench/torch_cuda_step.py --dry-run             (checks the script on the CPU)
"""
import argparse
import json
import math
import os
import sys
import time

import torch

N, C, H, W = 128, 3, 64, 64
HALF = 80
LEVELS = {"std:3": (3.0, 2.9, 0.015, 0.0145), "std:10": (10.0, 9.8, 0.05, 0.049)}  # std, std', s, s'
BLUR_STDS = (0.5, 3.0, 10.0, 23.0)


def blur_matrix(std, dev, n=64, half=HALF):
    k = torch.arange(-half, half + 1, dtype=torch.float64)
    g = torch.exp(-k * k / (2 * std * std))
    g /= g.sum()
    d = torch.arange(n).view(-1, 1) - torch.arange(n).view(1, -1)
    b = torch.where(d.abs() <= half, g[(d + half).clamp(0, 2 * half)], torch.zeros((), dtype=torch.float64))
    return b.to(torch.float32).contiguous().to(dev)


def make_blurs(bm):
    """Ways of computing Y = B X B^T for every 64 x 64 plane, each writing into `out`."""
    dev = bm.device
    bt = bm.t().contiguous()
    planes = N * C
    tmp = torch.empty(N, C, H, W, device=dev)
    tmp2 = torch.empty(planes * H, W, device=dev)
    bm_batched = bm.expand(planes, H, H)
    bt_batched = bt.expand(planes, W, W)

    def matmul_broadcast(x, out):
        torch.matmul(bm, x, out=tmp)
        torch.matmul(tmp, bt, out=out)

    def gemm_then_bmm(x, out):  # softdiff's order: X B^T as one GEMM, then B (.) batched
        torch.mm(x.view(planes * H, W), bt, out=tmp2)
        torch.bmm(bm_batched, tmp2.view(planes, H, W), out=out.view(planes, H, W))

    def bmm_both(x, out):
        torch.bmm(x.view(planes, H, W), bt_batched, out=tmp2.view(planes, H, W))
        torch.bmm(bm_batched, tmp2.view(planes, H, W), out=out.view(planes, H, W))

    return {"matmul_broadcast": matmul_broadcast, "gemm_then_bmm": gemm_then_bmm, "bmm_both": bmm_both}


def ieee_fp32_matmul():
    """TF32 off for float32 matrix products, as softdiff's cuBLAS calls (CUBLAS_DEFAULT_MATH).
    PyTorch 2.9 replaced allow_tf32 by fp32_precision and warns on the old flag; mixing the two
    APIs can raise, so only the one this torch has is used."""
    matmul = torch.backends.cuda.matmul
    try:
        matmul.fp32_precision = "ieee"
        return "matmul.fp32_precision = ieee"
    except (AttributeError, AssertionError):  # before 2.9; torch 1.13 raises AssertionError for unknown names
        matmul.allow_tf32 = False
        return "matmul.allow_tf32 = False"


DRY_RUN = False  # --dry-run: one call of each on the CPU, to check the script where no GPU is


def time_cuda(fn, repeats=7, inner=20):
    if DRY_RUN:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    best = math.inf
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(repeats):
        start.record()
        for _ in range(inner):
            fn()
        stop.record()
        stop.synchronize()
        best = min(best, start.elapsed_time(stop) * 1e-3 / inner)
    return best


def peak_bandwidth_bytes(dev):
    """Nominal peak DRAM bandwidth of known parts; None where unknown (bench_cuda.cu queries the device)."""
    if dev.type != "cuda":
        return None
    name = torch.cuda.get_device_name(dev)
    nominal = {"H100 80GB HBM3": 3.35e12, "H100 PCIe": 2.0e12, "H200": 4.8e12, "A100-SXM4-80GB": 2.04e12}
    for key, value in nominal.items():
        if key in name:
            return value
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--dry-run", action="store_true", help="run each step once on the CPU (no timing value)")
    args = parser.parse_args()
    global DRY_RUN
    DRY_RUN = args.dry_run
    if not DRY_RUN and not torch.cuda.is_available():
        sys.exit("torch_cuda_step.py: torch " + torch.__version__ + " sees no CUDA device")
    dev = torch.device("cpu" if DRY_RUN else "cuda")
    fp32_matmul = ieee_fp32_matmul()
    torch.manual_seed(0)
    x = torch.randn(N, C, H, W, device=dev)
    phi = torch.zeros(N, C, H, W, device=dev)
    x0, y, c, e, z, eta = (torch.empty(N, C, H, W, device=dev) for _ in range(6))
    count = N * C * H * W
    peak = peak_bandwidth_bytes(dev)
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "none (dry run on the CPU)"
    out = {"torch": torch.__version__, "gpu": gpu, "peak_bandwidth_Bps": peak, "fp32_matmul": fp32_matmul,
           "batch": [N, C, H, W], "results": {}}
    print(f"torch {torch.__version__} on {out['gpu']}, batch {N}x{C}x{H}x{W}, half_size {HALF}, {fp32_matmul}")

    def record(name, sec, bytes_moved=None):
        entry = {"ms": sec * 1e3}
        line = f"{name}: {sec * 1e3:.4f} ms"
        if bytes_moved:
            entry["GBps"] = bytes_moved / sec * 1e-9
            line += f", {entry['GBps']:.0f} GB/s"
            if peak:
                entry["bw_share"] = bytes_moved / sec / peak
                line += f" ({entry['bw_share'] * 100:.0f}% of peak)"
        out["results"][name] = entry
        print(line)

    for sd in BLUR_STDS:
        blurs = make_blurs(blur_matrix(sd, dev))
        ref = torch.empty_like(x)
        blurs["matmul_broadcast"](x, ref)
        best = math.inf
        for form, f in blurs.items():
            f(x, y)
            assert torch.allclose(y, ref, atol=1e-5), form
            best = min(best, time_cuda(lambda f=f: f(x, y)))
        record(f"blur/torch/std:{sd:g}", best, 2 * count * 4)

    for name, (std, std_next, s, s_next) in LEVELS.items():
        a = (s_next * s_next - s * s) / (s * s)
        b = math.sqrt(s * s - s_next * s_next)
        now, nxt = make_blurs(blur_matrix(std, dev)), make_blurs(blur_matrix(std_next, dev))

        def update():
            eta.normal_()
            torch.sub(y, x, out=e)  # e = y_t - x_t
            torch.add(x, e, alpha=-a, out=z)  # z = x_t - a e
            z.add_(eta, alpha=b)  # + sqrt(s^2 - s'^2) eta
            torch.sub(c, y, out=e)  # C_{t'} x0 - y_t
            torch.add(z, e, out=x)  # x_{t'}

        best = math.inf
        for form in now:

            def step(form=form):
                torch.add(phi, x, out=x0)  # x0 = phi + x_t
                now[form](x0, y)  # y_t = C_t x0
                nxt[form](x0, c)  # C_{t'} x0
                update()

            best = min(best, time_cuda(step))
        record(f"momentum_step/torch/{name}", best)
        if name == "std:3":
            record("momentum_update/torch", time_cuda(update), 4 * count * 4)
    record("fill_normal/torch", time_cuda(lambda: eta.normal_()), count * 4)
    if args.json:  # written to a temporary name, then renamed
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
