"""Prints the tables of bench/run.sh from the JSON files it wrote, and collects them in OUT/results.json.

    /usr/bin/python3 bench/report.py bench/out --sizes tiny cpd25 --batches 4 8 --cores 2 --farneg 10000 50000

Tables: 1. sampler vs the reference implementation, 2. where the time goes, 3. Far-Neg, 4. scaling, 5. memory.
Every ratio compares two figures measured in the same run of bench/run.sh.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

PARAMS = {"tiny": None, "cpd25": 216_341_187}  # UNet parameters (cpd25: configs/models/idiff-face-cpd25.toml)
DECODER_NUMBERS = 32_985_359  # the VQ-f4 decoder file's numbers


def load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def images_per_second(t: dict) -> float:
    """Batch / (steps x median step + decode): the steady rate of one process."""
    step = statistics.median(t["step_seconds"])
    return t["batch"] / (step * len(t["step_seconds"]) + (t.get("decode_seconds") or 0.0))


def rel_diff(a_path: Path, b_path: Path, name: str) -> float | None:
    """||a - b|| / ||b|| of dataset `name` of two HDF5 files, or None when one is missing."""
    if not (a_path.exists() and b_path.exists()):
        return None
    import h5py
    import numpy as np

    with h5py.File(a_path) as a, h5py.File(b_path) as b:
        if name not in a or name not in b:
            return None
        x, y = a[name][()].astype(np.float64), b[name][()].astype(np.float64)
    return float(np.linalg.norm(x - y) / np.linalg.norm(y))


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")


def sampler_table(out: Path, sizes, batches, cores, results) -> None:
    rows = []
    for size in sizes:
        for b in batches:
            tag = f"{size}_b{b}"
            ours = load(out / f"ours_{tag}_1x{cores}.json")
            refs = {s: load(out / f"ref_{tag}_{s}.json") for s in ("t2_blas1", "t2_blasdefault", "t1_blas1")}
            refs = {s: r for s, r in refs.items() if r}
            if not ours or not refs:
                continue
            best = max(refs, key=lambda s: images_per_second(refs[s]))
            ours_rate, ref_rate = images_per_second(ours), images_per_second(refs[best])
            dx = rel_diff(out / f"ours_{tag}_1x{cores}.h5", out / f"ref_{tag}_{best}.h5", "x0")
            dimg = rel_diff(out / f"ours_{tag}_1x{cores}.h5", out / f"ref_{tag}_{best}.h5", "decoded")
            step_ratio = statistics.median(refs[best]["step_seconds"]) / statistics.median(ours["step_seconds"])
            rows.append([size, b, f"1x{cores}", f"{statistics.median(ours['step_seconds']):.3f}",
                         f"{statistics.median(refs[best]['step_seconds']):.3f} ({best})", f"{step_ratio:.2f}x",
                         f"{ours_rate:.3f}", f"{ref_rate:.3f}", f"{ours_rate / ref_rate:.2f}x",
                         "-" if dx is None else f"{dx:.1e}", "-" if dimg is None else f"{dimg:.1e}"])
            results.setdefault("sampler", []).append(
                {"size": size, "batch": b, "layout": f"1x{cores}", "ours_images_per_s": ours_rate,
                 "reference_images_per_s": ref_rate, "reference_setting": best, "ratio": ours_rate / ref_rate,
                 "step_ratio": step_ratio, "rel_diff_x0": dx, "rel_diff_decoded": dimg})
            ours_p = [load(out / f"ours_{tag}_{cores}x1_r{r}.json") for r in range(cores)]
            ref_p = [load(out / f"ref_{tag}_{cores}x1_r{r}.json") for r in range(cores)]
            if all(ours_p) and all(ref_p):
                o, r = sum(map(images_per_second, ours_p)), sum(map(images_per_second, ref_p))
                os_, rs = (statistics.median([statistics.median(t["step_seconds"]) for t in p]) for p in (ours_p, ref_p))
                rows.append([size, b, f"{cores}x1", f"{os_:.3f}", f"{rs:.3f} (t1_blas1)", f"{rs / os_:.2f}x",
                             f"{o:.3f}", f"{r:.3f}", f"{o / r:.2f}x", "-", "-"])
                results["sampler"].append({"size": size, "batch": b, "layout": f"{cores}x1", "ours_images_per_s": o,
                                           "reference_images_per_s": r, "ratio": o / r, "step_ratio": rs / os_})
    table("1. Sampler vs the reference implementation (AdaptDiff + Far-Neg, DDIM, fp32; step = one guided DDIM "
          "step of the batch; images/s include decoding)",
          ["model", "batch", "layout", "ours s/step", "reference s/step (setting)", "step ratio", "ours img/s",
           "reference img/s", "ratio", "rel diff x0", "rel diff image"], rows)


def bf16_table(out: Path, sizes, batches, cores, results) -> None:
    rows = []
    for size in sizes:
        for b in batches:
            tag = f"{size}_b{b}"
            fp32, bf16 = load(out / f"ours_{tag}_1x{cores}.json"), load(out / f"ours_{tag}_1x{cores}_bf16.json")
            if not fp32 or not bf16:
                continue
            a, c = out / f"ours_{tag}_1x{cores}_bf16.h5", out / f"ours_{tag}_1x{cores}.h5"
            dx, dimg = rel_diff(a, c, "x0"), rel_diff(a, c, "decoded")
            step = statistics.median(fp32["step_seconds"]) / statistics.median(bf16["step_seconds"])
            dec = (fp32["decode_seconds"] / bf16["decode_seconds"]) if bf16.get("decode_seconds") else None
            rate = images_per_second(bf16) / images_per_second(fp32)
            rows.append([size, b, f"{step:.2f}x", "-" if dec is None else f"{dec:.2f}x", f"{rate:.2f}x",
                         "-" if dx is None else f"{dx:.1e}", "-" if dimg is None else f"{dimg:.1e}"])
            results.setdefault("bf16", []).append({"size": size, "batch": b, "step_speedup": step,
                                                   "decode_speedup": dec, "images_per_s_ratio": rate,
                                                   "rel_diff_x0": dx, "rel_diff_decoded": dimg})
    table(f"1b. bf16 against fp32 (adaptdiff, 1x{cores}): speed-ups and relative differences of the outputs",
          ["model", "batch", "step", "decode", "images/s", "rel diff x0", "rel diff image"], rows)


def phase_table(out: Path, cores, results) -> None:
    rows = []
    for layout in (f"1x{cores}", f"{cores}x1"):
        log = out / f"job_{layout}.log"
        if not log.exists():
            continue
        text = log.read_text()
        m = re.search(r"time shares of ([\d.]+) s \(mean over (\d+) rank\(s\)\): (.*)", text)
        done = re.search(r"done: (\d+) images .* = ([\d.]+) images/s", text)
        if not m:
            continue
        shares = dict(re.findall(r"(\w+) ([\d.]+)%", m.group(3)))
        results.setdefault("phases", {})[layout] = {"wall_seconds": float(m.group(1)), "shares_percent": shares,
                                                     "images_per_s": float(done.group(2)) if done else None}
        rows.append([layout, m.group(1)] + [shares.get(k, "0.0") for k in
                                            ("negatives", "verify", "noise", "denoiser", "update", "decoder", "write",
                                             "wait", "checkpoint", "other")])
    table("2. Where the time goes (whole job, % of wall time, mean over ranks)",
          ["layout", "wall s", "negatives", "verify", "noise", "denoiser", "update", "decoder", "write", "wait",
           "checkpoint", "other"], rows)


def farneg_table(out: Path, ns, results) -> None:
    rows = []
    for n in ns:
        loop = load(out / f"farneg_n{n}_loop.json")
        for ranks in (1, 2):
            t = load(out / f"farneg_n{n}_r{ranks}.json")
            if not t:
                continue
            sel, floor = statistics.median(t["selection_seconds"]), statistics.median(t["floor_seconds"])
            loop_s = loop["seconds_extrapolated"] if loop else None
            rows.append([n, ranks, f"{sel:.2f}", f"{floor:.2f}", f"{sel / floor:.2f}x",
                         f"{t['exact_kernel_seconds']:.1f}", f"{t['exact_kernel_seconds'] / sel:.1f}x",
                         "-" if loop_s is None else f"{loop_s:.1f}", "-" if loop_s is None else f"{loop_s / sel:.0f}x",
                         f"{t['mismatches']} of {t['checked_rows']}"])
            results.setdefault("farneg", []).append(dict(t, per_row_loop_seconds=loop_s))
    table("3. Far-Neg (exact): selection vs the float32 product floor, the exact float64 kernel alone (the previous "
          "method, extrapolated) and a per-row loop (numpy, extrapolated)",
          ["N", "ranks", "selection s", "float32 floor s", "vs floor", "exact kernel s", "speedup", "per-row loop s",
           "speedup", "brute-force mismatches"], rows)


def scaling_table(out: Path, sizes, batches, cores, results) -> None:
    rows = []
    for s in results.get("sampler", []):
        rows.append([f"sampler {s['size']} b{s['batch']}", s["layout"], f"{s['ours_images_per_s']:.3f}"])
    for layout, p in results.get("phases", {}).items():
        rows.append(["job (16 samples)", layout, "-" if p["images_per_s"] is None else f"{p['images_per_s']:.3f}"])
    table(f"4a. Scaling on this machine: 1 rank x {cores} threads vs {cores} ranks x 1 thread (images/s)",
          ["run", "layout", "images/s"], rows)
    # What grows with the rank count R at paper scale (N = 10,000 identities x 50 images, 512-d, B = 50).
    N, K, D, B = 10_000, 50, 512, 50
    batches_total = N * K // B
    model = []
    for R in (8, 64, 256):
        rounds = -(-batches_total // R)
        model.append([R, f"{N * D * 4 / 2**20:.1f} MiB received per rank ({R - 1} ring steps)",
                      f"{rounds} allreduce(s) of 3 int64",
                      "1 collective flush per checkpoint_interval (60 s)",
                      f"record + marks {N * K * 9 / 2**20:.1f} MiB; samples of the last checkpoint interval "
                      f"(before the marks: {N * K * 128 * 128 * 3 / R / 2**30:.2f} GiB per rank)"])
    table("4b. What grows with the rank count R at paper scale (10,000 x 50 images, B = 50): model, not measured",
          ["R", "negatives exchange", "per-round agreement", "checkpoints", "resume verification"], model)


def memory_table(out: Path, sizes, batches, cores, results) -> None:
    rows = []
    for size in sizes:
        b = batches[0]
        tag = f"{size}_b{b}"
        ours, mem = load(out / f"ours_{tag}_1x{cores}.json"), load(out / f"mem_{tag}.json")
        ref = load(out / f"ref_{tag}_t2_blas1.json")
        weights = None
        if PARAMS.get(size):
            weights = (PARAMS[size] + DECODER_NUMBERS) * 4 / 2**20
        # Largest decoder activations: a few maps of B x 128 x 128 x 128 float32 live at once (estimate: 4).
        act = 4 * b * 128 * 128 * 128 * 4 / 2**20 if size == "cpd25" else None
        rss = mem["rss_mib"] if mem else []
        rows.append([size, b, f"{ours['peak_rss_mib']:.0f}" if ours else "-",
                     f"{ref['peak_rss_mib']:.0f}" if ref and "peak_rss_mib" in ref else "-",
                     "-" if weights is None else f"{weights:.0f} + {act:.0f}",
                     " ".join(f"{x:.0f}" for x in rss)])
        results.setdefault("memory", []).append({"size": size, "batch": b, "ours_peak_rss_mib": ours and ours["peak_rss_mib"],
                                                 "rss_after_rounds_mib": rss, "weights_mib": weights})
    table("5. Memory (MiB): peak RSS of one process, the hand estimate (fp32 weights + largest activations), and "
          "RSS after each of 5 rounds of the same batch (flat = nothing accumulates)",
          ["model", "batch", "ours peak", "reference peak", "estimate", "RSS after rounds"], rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--sizes", nargs="+", default=["tiny", "cpd25"])
    p.add_argument("--batches", nargs="+", type=int, default=[4, 8])
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--farneg", nargs="+", type=int, default=[10000, 50000])
    a = p.parse_args(argv)
    results: dict = {}
    sampler_table(a.out, a.sizes, a.batches, a.cores, results)
    bf16_table(a.out, a.sizes, a.batches, a.cores, results)
    phase_table(a.out, a.cores, results)
    farneg_table(a.out, a.farneg, results)
    scaling_table(a.out, a.sizes, a.batches, a.cores, results)
    memory_table(a.out, a.sizes, a.batches, a.cores, results)
    (a.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {a.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
