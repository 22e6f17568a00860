#!/usr/bin/env python3
"""Genuine and impostor score densities with the metrics in the legend (the paper's Figure 1).

Called by adaptdiff-eval:  plot_histogram.py --scores scores.h5 --metrics metrics.json --out histogram.png
scores.h5 holds float64 datasets `genuine` and `impostor`; metrics.json is adaptdiff-eval's output.
Exit codes: 0 written, 2 bad arguments or input, 3 numpy/h5py/matplotlib missing.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scores", required=True, help="HDF5 file with datasets genuine and impostor")
    ap.add_argument("--metrics", required=True, help="metrics.json written by adaptdiff-eval")
    ap.add_argument("--out", required=True, help="output image (.png, .pdf, .svg)")
    ap.add_argument("--bins", type=int, default=100, help="histogram bins over [min, max] of all scores")
    ap.add_argument("--title", default="", help="figure title")
    args = ap.parse_args()
    try:
        import h5py
        import numpy as np
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print(f"plot_histogram.py: {e} (needs numpy, h5py and matplotlib)", file=sys.stderr)
        return 3
    with h5py.File(args.scores, "r") as f:
        genuine = np.asarray(f["genuine"][...], dtype=np.float64)
        impostor = np.asarray(f["impostor"][...], dtype=np.float64)
    with open(args.metrics) as f:
        m = json.load(f)

    def pct(key):
        return "n/a" if m.get(key) is None else f"{100 * m[key]:.2f}%"

    lo = min(genuine.min(), impostor.min())
    hi = max(genuine.max(), impostor.max())
    edges = np.linspace(lo, hi, args.bins + 1) if hi > lo else args.bins
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=150)
    ax.hist(impostor, bins=edges, density=True, alpha=0.55, color="tab:red",
            label=f"impostor (n={len(impostor)}, μ={m['impostor_mean']:.3f}, σ={m['impostor_std']:.3f})")
    ax.hist(genuine, bins=edges, density=True, alpha=0.55, color="tab:green",
            label=f"genuine (n={len(genuine)}, μ={m['genuine_mean']:.3f}, σ={m['genuine_std']:.3f})")
    fdr = "n/a" if m.get("fdr") is None else f"{m['fdr']:.3f}"
    ax.plot([], [], " ", label=f"EER {pct('eer')}   FMR100 {pct('fmr100')}   FMR1000 {pct('fmr1000')}")
    ax.plot([], [], " ", label=f"FDR {fdr}   ({m.get('convention', '')} convention)")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("probability density")
    if args.title:
        ax.set_title(args.title)
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
