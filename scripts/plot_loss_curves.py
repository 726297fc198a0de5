#!/usr/bin/python3
"""Loss curves of `softdiff train` runs (DIR/loss.csv, "step,loss") in one plot, with a table.

  /usr/bin/python3 scripts/plot_loss_curves.py --out curves.png LABEL=DIR/loss.csv [LABEL=...]

The plot has the loss on a log scale against the step. The table (stdout, Markdown) gives each
curve's mean loss over windows of the run (the same windows for every curve) and, for two or
more curves, each one's relative difference from the first. Needs python3-matplotlib for the
plot; the table is printed without it.
"""
import argparse
import csv
import sys


def read_curve(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != ["step", "loss"]:
        sys.exit(f"{path}: not a softdiff loss.csv (header 'step,loss' expected)")
    try:
        return [(int(r[0]), float(r[1])) for r in rows[1:]]
    except (ValueError, IndexError) as e:
        sys.exit(f"{path}: bad row ({e})")


def window_means(curve, edges):
    """Mean loss of the rows with edges[i] < step <= edges[i + 1]."""
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        v = [loss for step, loss in curve if lo < step <= hi]
        out.append(sum(v) / len(v) if v else float("nan"))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="PNG to write (needs matplotlib)")
    p.add_argument("--windows", type=int, default=5, help="windows of the table (default 5)")
    p.add_argument("curves", nargs="+", metavar="LABEL=FILE")
    a = p.parse_args()
    curves = []
    for item in a.curves:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            sys.exit(f"'{item}': expected LABEL=PATH/loss.csv")
        curves.append((label, read_curve(path)))
    last = min(max(s for s, _ in c) for _, c in curves if c) if all(c for _, c in curves) else 0
    if last <= 0:
        sys.exit("a curve has no rows")
    unit = curves[0][1][0][0]  # the row spacing (--loss-every): windows hold whole rows
    edges = [unit * round(last * i / a.windows / unit) for i in range(a.windows + 1)]
    means = [window_means(c, edges) for _, c in curves]
    head = "| steps | " + " | ".join(label for label, _ in curves)
    if len(curves) > 1:
        head += " | " + " | ".join(f"{label} / {curves[0][0]} - 1" for label, _ in curves[1:])
    print(head + " |")
    print("|" + " --- |" * (1 + len(curves) + max(0, len(curves) - 1)))
    for w in range(a.windows):
        row = [f"{edges[w] + 1}-{edges[w + 1]}"] + [f"{m[w]:.4g}" for m in means]
        row += [f"{m[w] / means[0][w] - 1:+.2%}" for m in means[1:]]
        print("| " + " | ".join(row) + " |")
    if a.out:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4))
        for label, c in curves:
            ax.plot([s for s, _ in c], [v for _, v in c], label=label, linewidth=1)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("mean training loss per row")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(a.out, dpi=110)


if __name__ == "__main__":
    main()
