#!/usr/bin/python3
"""Tabulates scripts/reproduce.sh's evaluations: results.csv, results.md and plots.

Reads DIR/models/<variant>/seed<S>/eval/metrics.csv (written by `softdiff eval`, one row per
sampler, step count and sampling seed) for every variant and training seed, and writes
  results.csv   one row per group, variant, training seed, sampler and step count
  results.md    the ablation tables: for each sampler or variant its best Frechet distance over
                its step sweep (the mean over training seeds, as the paper picks the best NFE),
                the spread (max - min) over the training seeds at that setting, and the floor
  *.png         Frechet distance against NFE (a) and per-variant bars (b-e), when matplotlib is
                installed (Debian: python3-matplotlib)
Exits non-zero, naming what is missing, unless every row of every group is there.
"""
import argparse
import csv
import os
import sys

GROUPS = {
    "a": "(a) samplers against NFE on the main model",
    "b": "(b) loss: Soft Score Matching (eq. 12) against the clean-image loss and DSM (eq. 7)",
    "c": "(c) schedule: Wasserstein (section 3.3) against MSE-matched (eq. 55) and geometric",
    "d": "(d) sigma_max (images in [-1, 1]; the paper's values are half these)",
    "e": "(e) noise during the blur stage: fixed against growing with the blur (appendix F.1)",
}
SAMPLERS = ["momentum", "naive", "pf_momentum", "ddim", "predictor_corrector"]
# The paper's figures that its text gives (CelebA-64, FID with 50k samples, best over NFE).
PAPER = {("a", "momentum"): "1.85", ("a", "naive"): "27.82"}


def read_rows(out, variants, seeds):
    rows, missing = [], []
    for name, groups, _ in variants:
        for seed in seeds:
            path = os.path.join(out, "models", name, "seed" + seed, "eval", "metrics.csv")
            if not os.path.exists(path):
                missing.append(path)
                continue
            with open(path, newline="") as f:
                for r in csv.DictReader(f):
                    if not r["seed"].isdigit():  # the mean / max-min summary rows
                        continue
                    rows.append({"groups": groups, "variant": name, "train_seed": seed, "sampler": r["sampler"],
                                 "steps": int(r["steps"]), "nfe": int(r["nfe"]), "sampling_seed": r["seed"],
                                 "clip": r["clip"], "frechet": float(r["frechet"]),
                                 "frechet_floor": float(r["frechet_floor"]), "precision": float(r["precision"]),
                                 "recall": float(r["recall"]), "outside_fraction": float(r["outside_fraction"])})
    return rows, missing


def summarise(rows, variant, sampler, seeds):
    """Best mean Frechet over the step sweep: (steps, nfe, mean, spread, floor, recall, per-steps means)."""
    by_steps = {}
    for r in rows:
        if r["variant"] == variant and r["sampler"] == sampler:
            by_steps.setdefault(r["steps"], []).append(r)
    complete = {s: rs for s, rs in by_steps.items() if len({r["train_seed"] for r in rs}) == len(seeds)}
    if not complete:
        return None
    means = {s: sum(r["frechet"] for r in rs) / len(rs) for s, rs in complete.items()}
    best = min(means, key=lambda s: (means[s], s))
    rs = complete[best]
    return {"steps": best, "nfe": rs[0]["nfe"], "mean": means[best],
            "spread": max(r["frechet"] for r in rs) - min(r["frechet"] for r in rs),
            "floor": sum(r["frechet_floor"] for r in rs) / len(rs),
            "recall": sum(r["recall"] for r in rs) / len(rs), "means": means,
            "nfes": {s: complete[s][0]["nfe"] for s in complete}}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--variants", required=True, help="lines name|groups|options")
    p.add_argument("--seeds", required=True)
    p.add_argument("--quick", default="0")
    p.add_argument("--main-labels", default="", help="g=label,...: what the main model is in group g")
    a = p.parse_args()
    variants = [tuple(line.split("|", 2)) for line in a.variants.splitlines() if line.strip()]
    seeds = a.seeds.split()
    main_label = dict(kv.split("=", 1) for kv in a.main_labels.split(",") if "=" in kv)
    rows, missing = read_rows(a.out, variants, seeds)
    problems = ["missing " + m for m in missing]

    fields = ["group", "variant", "train_seed", "sampler", "steps", "nfe", "sampling_seed", "clip", "frechet",
              "frechet_floor", "precision", "recall", "outside_fraction"]
    tmp = os.path.join(a.out, "results.csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            for g in r["groups"].split(","):
                w.writerow(dict(r, group=g))
    os.replace(tmp, os.path.join(a.out, "results.csv"))

    md = ["# Soft Diffusion ablations on Fashion-MNIST (scripts/reproduce.sh%s)" % (" --quick" if a.quick == "1" else ""),
          "",
          "Frechet distance in the committed classifier's features against the held-out set (lower is better);",
          "each entry is the best over the step sweep of the mean over training seeds " + ", ".join(seeds) +
          ", +- the spread (max - min) over those seeds at that setting. Samples clipped to [-1, 1].",
          "The paper's figures are FIDs on CelebA-64 with 50k samples: a different data set, network and metric;",
          "compare orderings, not values. Where the paper's text was not at hand, its column says so.", ""]
    plots = {}
    # (a) samplers on the main model
    md += ["## " + GROUPS["a"], "", "| sampler | best Frechet | at steps (NFE) | recall | Frechet at each step count | paper |",
           "| --- | --- | --- | --- | --- | --- |"]
    for s in SAMPLERS:
        b = summarise(rows, "main", s, seeds)
        if b is None:
            problems.append("no complete result for sampler %s on the main model" % s)
            continue
        sweep = ", ".join("%d: %.2f" % (st, b["means"][st]) for st in sorted(b["means"]))
        md.append("| %s | %.2f +- %.2f | %d (%d) | %.2f | %s | %s |" % (
            s, b["mean"], b["spread"], b["steps"], b["nfe"], b["recall"], sweep, PAPER.get(("a", s), "not quoted")))
        plots.setdefault("a", []).append((s, b))
    floor = [r["frechet_floor"] for r in rows if r["variant"] == "main"]
    if floor:
        md += ["", "Floor (training images against the same held-out fit, same sample count): %.2f." %
               (sum(floor) / len(floor)), ""]
    # (b)-(e): the momentum sampler on each variant, the recipe's row first
    for g in "bcde":
        md += ["## " + GROUPS[g], "", "| variant | momentum: best Frechet | at steps (NFE) | recall |",
               "| --- | --- | --- | --- |"]
        for name, groups, options in variants:
            if g not in groups.split(","):
                continue
            b = summarise(rows, name, "momentum", seeds)
            # the recipe's own row: the main model, or the recipe trained as long as the variants
            label = {"main": main_label.get(g, "main") + " (main)",
                     "recipe-short": main_label.get(g, "recipe") + " (the recipe)"}.get(name, name)
            if b is None:
                problems.append("no complete momentum result for variant %s (group %s)" % (name, g))
                continue
            md.append("| %s | %.2f +- %.2f | %d (%d) | %.2f |" % (label + (" (`%s`)" % options.strip() if options.strip() else ""),
                                                           b["mean"], b["spread"], b["steps"], b["nfe"], b["recall"]))
            plots.setdefault(g, []).append((label, b))
        md.append("")
    if problems:
        md += ["## Missing", ""] + ["- " + p for p in problems] + [""]
    tmp = os.path.join(a.out, "results.md.tmp")
    with open(tmp, "w") as f:
        f.write("\n".join(md))
    os.replace(tmp, os.path.join(a.out, "results.md"))

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("reproduce_report.py: matplotlib not installed (Debian: python3-matplotlib); no plots")
    else:
        if "a" in plots:
            fig, ax = plt.subplots(figsize=(6, 4))
            for s, b in plots["a"]:
                st = sorted(b["means"])
                ax.plot([b["nfes"][x] for x in st], [b["means"][x] for x in st], marker="o", label=s)
            ax.set_xscale("log")
            ax.set_xlabel("network evaluations per sample (NFE)")
            ax.set_ylabel("Frechet distance (mean over training seeds)")
            ax.set_title("Samplers on the main model")
            ax.legend()
            fig.tight_layout()
            fig.savefig(os.path.join(a.out, "samplers_vs_nfe.png.tmp"), format="png")
            os.replace(os.path.join(a.out, "samplers_vs_nfe.png.tmp"), os.path.join(a.out, "samplers_vs_nfe.png"))
            plt.close(fig)
        for g in "bcde":
            if g not in plots:
                continue
            fig, ax = plt.subplots(figsize=(6, 3))
            labels = [l for l, _ in plots[g]]
            ax.bar(range(len(labels)), [b["mean"] for _, b in plots[g]], yerr=[b["spread"] / 2 for _, b in plots[g]])
            ax.set_xticks(range(len(labels)), labels, fontsize=8)
            ax.set_ylabel("momentum: best Frechet")
            ax.set_title(GROUPS[g], fontsize=8)
            fig.tight_layout()
            name = os.path.join(a.out, "ablation_%s.png" % g)
            fig.savefig(name + ".tmp", format="png")
            os.replace(name + ".tmp", name)
            plt.close(fig)
    print("\n".join(md))
    if problems:
        print("reproduce_report.py: incomplete:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
