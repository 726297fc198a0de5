#!/usr/bin/python3
"""One Momentum Sampler step (Soft Diffusion, Algorithm 2 / eq. 17) in PyTorch, the peer of
bench/bench_sampler.cpp's momentum_step/softdiff/std:*:

    x0 = phi + x_t (phi = 0);  y = C_t x0;  e = y - x_t;
    z = x_t - ((s'^2 - s^2) / s^2) e + sqrt(s^2 - s'^2) eta;  x_{t'} = z + (C_{t'} x0 - y)

on a 128 x 3 x 64 x 64 float32 batch, with the paper's Gaussian blur (half_size 80, zero
padding, appendix G) as C = B X B^T with precomputed 64 x 64 matrices B, two threads,
preallocated tensors and in-place / out= operations throughout. Several ways of writing the
blur, the noise and the element-wise update (term by term, or folded into three passes), on
the whole batch or over blocks of samples that stay in cache, are timed and the fastest is
reported, so softdiff is compared with the best of them. Each time
is the minimum over 7 repetitions of the mean over 10 steps. Run with Debian's python (torch 1.13): /usr/bin/python3 bench/torch_momentum_step.py
"""
import argparse
import math
import time

import torch

N, C, H, W = 128, 3, 64, 64
HALF = 80
LEVELS = {"std:3": (3.0, 2.9, 0.015, 0.0145), "std:10": (10.0, 9.8, 0.05, 0.049)}  # std, std', s, s'


def blur_matrix(std, n=64, half=HALF):
    k = torch.arange(-half, half + 1, dtype=torch.float64)
    g = torch.exp(-k * k / (2 * std * std))
    g /= g.sum()
    i = torch.arange(n).view(-1, 1)
    j = torch.arange(n).view(1, -1)
    d = i - j
    b = torch.where(d.abs() <= half, g[(d + half).clamp(0, 2 * half)], torch.zeros((), dtype=torch.float64))
    return b.to(torch.float32).contiguous()


def make_blurs(bm, n=N):
    """Ways of computing Y = B X B^T for every 64 x 64 plane of n samples, each writing into `out`."""
    bt = bm.t().contiguous()
    planes = n * C
    tmp = torch.empty(n, C, H, W)
    tmp2 = torch.empty(planes * H, W)
    bt_batched = bt.expand(planes, W, W)
    bm_batched = bm.expand(planes, H, H)

    def matmul_broadcast(x, out):  # B @ X @ B^T, broadcasting B
        torch.matmul(bm, x, out=tmp)
        torch.matmul(tmp, bt, out=out)

    def gemm_then_bmm(x, out):  # X B^T as one (N C H) x W GEMM, then B @ (.) batched
        torch.mm(x.view(planes * H, W), bt, out=tmp2)
        torch.bmm(bm_batched, tmp2.view(planes, H, W), out=out.view(planes, H, W))

    def two_gemms(x, out):  # both products as single large GEMMs, via one transpose copy
        torch.mm(x.view(planes * H, W), bt, out=tmp2)  # rows: X B^T
        t = tmp2.view(planes, H, W).transpose(1, 2).reshape(planes * W, H)  # (X B^T)^T per plane
        r = torch.mm(t, bt)  # (X B^T)^T B^T = (B X B^T)^T
        out.view(planes, H, W).copy_(r.view(planes, W, H).transpose(1, 2))

    def bmm_both(x, out):
        torch.bmm(x.view(planes, H, W), bt_batched, out=tmp2.view(planes, H, W))
        torch.bmm(bm_batched, tmp2.view(planes, H, W), out=out.view(planes, H, W))

    return {"matmul_broadcast": matmul_broadcast, "gemm_then_bmm": gemm_then_bmm, "two_gemms": two_gemms,
            "bmm_both": bmm_both}


REPEATS, INNER = 7, 10
BLOCKS = (4, 8, 16, 32)
CLOCK = time.perf_counter  # wall clock; --cpu-time: this thread's CPU time (meaningful with --threads 1)


def time_it(fn):
    for _ in range(3):
        fn()
    best = math.inf
    for _ in range(REPEATS):
        t0 = CLOCK()
        for _ in range(INNER):
            fn()
        best = min(best, (CLOCK() - t0) / INNER)
    return best


def main():
    global REPEATS, INNER, CLOCK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=REPEATS, help="repetitions; the minimum is reported")
    parser.add_argument("--inner", type=int, default=INNER, help="steps per repetition")
    parser.add_argument("--cpu-time", action="store_true", help="time the calling thread's CPU time")
    args = parser.parse_args()
    REPEATS, INNER = args.repeats, args.inner
    if args.cpu_time:
        CLOCK = time.thread_time
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(N, C, H, W)
    phi = torch.zeros(N, C, H, W)
    x0, y, c, e, z, eta = (torch.empty(N, C, H, W) for _ in range(6))
    noises = {"normal_": lambda: eta.normal_(), "randn_out": lambda: torch.randn(N, C, H, W, out=eta)}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {N}x{C}x{H}x{W}, half_size {HALF}, "
          f"{'thread CPU' if args.cpu_time else 'wall'} time, min of {REPEATS} x mean of {INNER}")
    for name, (std, std_next, s, s_next) in LEVELS.items():
        a = (s_next * s_next - s * s) / (s * s)
        b = math.sqrt(s * s - s_next * s_next)
        bt_now, bt_next = make_blurs(blur_matrix(std)), make_blurs(blur_matrix(std_next))
        # the blur forms agree (checked once)
        ref = torch.empty(N, C, H, W)
        bt_now["matmul_broadcast"](x, ref)
        for form, f in bt_now.items():
            f(x, y)
            assert torch.allclose(y, ref, atol=1e-5), form
        results = {}
        for form in bt_now:
            blur_t, blur_tn = bt_now[form], bt_next[form]
            for noise_name, noise in noises.items():

                def step():  # eq. 17 term by term
                    torch.add(phi, x, out=x0)  # x0 = phi + x_t
                    blur_t(x0, y)  # y_t = C_t x0
                    blur_tn(x0, c)  # C_{t'} x0
                    noise()  # eta
                    torch.sub(y, x, out=e)  # e = y_t - x_t
                    torch.add(x, e, alpha=-a, out=z)  # z = x_t - a e
                    z.add_(eta, alpha=b)  # + sqrt(s^2 - s'^2) eta
                    torch.sub(c, y, out=e)  # C_{t'} x0 - y_t
                    torch.add(z, e, out=x)  # x_{t'}

                def step_folded():  # the same, folded: x_{t'} = C_{t'} x0 + (1 + a)(x_t - y_t) + b eta
                    torch.add(phi, x, out=x0)
                    blur_t(x0, y)
                    blur_tn(x0, c)
                    noise()
                    torch.sub(x, y, out=e)
                    torch.add(c, e, alpha=1 + a, out=x)
                    x.add_(eta, alpha=b)

                results[(form, noise_name)] = time_it(step)
                results[(form, noise_name + "+folded")] = time_it(step_folded)
            results[(form, "blur_only")] = time_it(lambda: blur_t(x0, y))
        # Blocked: the step over blocks of k samples, so a block's arrays stay in cache (as
        # softdiff's momentum(block_samples) does); folded update, normal_ noise.
        for k in BLOCKS:
            x0b, yb, cb, eb = (torch.empty(k, C, H, W) for _ in range(4))
            for form in ("bmm_both", "gemm_then_bmm"):
                blur_t, blur_tn = make_blurs(blur_matrix(std), k)[form], make_blurs(blur_matrix(std_next), k)[form]

                def step_blocked():
                    for n0 in range(0, N, k):
                        xs, es = x[n0:n0 + k], eta[n0:n0 + k]
                        torch.add(phi[n0:n0 + k], xs, out=x0b)
                        blur_t(x0b, yb)
                        blur_tn(x0b, cb)
                        es.normal_()
                        torch.sub(xs, yb, out=eb)
                        torch.add(cb, eb, alpha=1 + a, out=xs)
                        xs.add_(es, alpha=b)

                results[(f"blocks_of_{k}:{form}", "normal_+folded")] = time_it(step_blocked)
        noise_only = min(time_it(n) for n in noises.values())
        steps = {k: v for k, v in results.items() if k[1] != "blur_only"}
        best = min(steps, key=steps.get)
        best_blur = min((v, k[0]) for k, v in results.items() if k[1] == "blur_only")
        for (form, noise_name), sec in sorted(results.items(), key=lambda kv: kv[1]):
            print(f"  {name} {form:28s} {noise_name:16s} {sec * 1e3:8.2f} ms")
        print(f"momentum_step/torch/{name}: {steps[best] * 1e3:.2f} ms per step (best form: {best[0]}, {best[1]})")
        print(f"blur/torch/{name}: {best_blur[0] * 1e3:.2f} ms ({best_blur[1]})")
        print(f"noise/torch: {noise_only * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
