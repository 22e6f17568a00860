"""Far-Neg as a per-row loop, the way a sampling script picks negatives one identity at a time: for row i,
cosine similarities to all N rows (numpy float32), itself excluded, argmin. Timed on the first --rows rows and
extrapolated to N (every row costs the same). The baseline of the Far-Neg table of bench/run.sh.

    /usr/bin/python3 bench/reference/far_neg_loop.py --count 10000 --rows 500 --json out.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def far_negative(embeddings: np.ndarray, i: int) -> int:
    """Index of the row least similar to row i (cosine), i excluded."""
    q = embeddings[i]
    sims = embeddings @ q / (np.linalg.norm(embeddings, axis=1) * np.linalg.norm(q))
    sims[i] = np.inf
    return int(np.argmin(sims))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=10000, help="identities N")
    p.add_argument("--dim", type=int, default=512, help="embedding width")
    p.add_argument("--rows", type=int, default=500, help="rows timed (the rest extrapolated)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", required=True, help="result JSON")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    embeddings = rng.standard_normal((args.count, args.dim), dtype=np.float32)
    rows = min(args.rows, args.count)
    start = time.perf_counter()
    for i in range(rows):
        far_negative(embeddings, i)
    elapsed = time.perf_counter() - start
    result = {"count": args.count, "dim": args.dim, "rows_timed": rows, "seconds_timed": elapsed,
              "seconds_extrapolated": elapsed * args.count / rows}
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
    print(f"per-row loop: {rows} rows in {elapsed:.2f} s -> {result['seconds_extrapolated']:.1f} s for N = {args.count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
