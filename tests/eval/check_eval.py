#!/usr/bin/env python3
"""End-to-end checks of adaptdiff-eval against independent computations (ctest: tests/eval/CMakeLists.txt).

  check_eval.py numpy  EXE WORK            scores vs numpy cosine, strict metrics vs numpy/scikit-learn (1e-12)
  check_eval.py pyeer  EXE WORK            pyeer-convention metrics vs pyeer 0.5.6 (1e-9); exit 77 without pyeer
  check_eval.py ranks  EXE WORK MPIEXEC [FLAGS...]   1, 2, 3 ranks give identical metrics.json and scores
  check_eval.py errors EXE WORK            bad inputs exit 2 naming file and dataset; plot failures exit 1
  check_eval.py images EXE WORK FIXTURE    --images with a TorchScript model vs its closed form
"""
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

SKIP = 77
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def close(a, b, tol, what):
    err = abs(a - b)
    check(err <= tol, f"{what}: tool {a!r} reference {b!r} |diff| {err:.3g} <= {tol:g}")


def run(cmd, expect=0, env=None):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    if p.returncode != expect:
        print(p.stdout, p.stderr, sep="\n")
    check(p.returncode == expect, f"exit {p.returncode} == {expect}: {' '.join(map(str, cmd[1:]))}")
    return p


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def write_embeddings(path, emb, ident, emb_dtype=np.float32, id_dtype=np.int64):
    with h5py.File(path, "w") as f:
        f["embeddings"] = np.asarray(emb, dtype=emb_dtype)
        f["identity"] = np.asarray(ident, dtype=id_dtype)


def clustered(seed, ids=25, per=6, dim=16, spread=0.9):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, dim))
    emb = np.repeat(centres, per, axis=0) + spread * rng.standard_normal((ids * per, dim))
    ident = np.repeat(np.arange(ids) * 3 + 5, per)
    # one identity with a single image: impostor pairs only
    emb = np.vstack([emb, rng.standard_normal((1, dim))])
    ident = np.append(ident, 1000)
    return emb.astype(np.float32), ident


def tied(seed):
    """Small integer vectors: many exactly equal cosines, genuine and impostor alike."""
    rng = np.random.default_rng(seed)
    emb = rng.integers(0, 2, size=(60, 4)).astype(np.float32)
    emb[emb.sum(1) == 0, 0] = 1
    return emb, np.repeat(np.arange(12), 5)


def reference_scores(emb, ident):
    x = emb.astype(np.float64)
    n = x.shape[0]
    norm = np.sqrt((x * x).sum(1))
    sim = (x @ x.T) / np.outer(norm, norm)
    iu, ju = np.triu_indices(n, 1)  # row-major i < j: the canonical order
    same = ident[iu] == ident[ju]
    return sim[iu, ju][same], sim[iu, ju][~same], (iu, ju, same)


def read_scores(out):
    with h5py.File(os.path.join(out, "scores.h5"), "r") as f:
        return f["genuine"][...], f["impostor"][...]


def metrics_of(out):
    with open(os.path.join(out, "metrics.json")) as f:
        return json.load(f)


def strict_reference(gen, imp):
    """The strict convention from scikit-learn's ROC (drop_intermediate=False: every distinct score, plus a
    first point above all scores with FMR 0, FNMR 1)."""
    from sklearn.metrics import roc_curve
    y = np.r_[np.ones(len(gen)), np.zeros(len(imp))]
    fpr, tpr, _ = roc_curve(y, np.r_[gen, imp], drop_intermediate=False)
    fnmr = 1 - tpr  # thresholds descending: fpr rises, fnmr falls
    d = fpr - fnmr
    k = int(np.nonzero(d >= 0)[0][0])  # first point (from high thresholds) where FMR >= FNMR
    if d[k] == 0:
        eer = fpr[k]
    else:  # FMR = FNMR on the segment between points k-1 and k
        a = -d[k - 1] / (d[k] - d[k - 1])
        eer = fpr[k - 1] + a * (fpr[k] - fpr[k - 1])
    op = lambda t: float(fnmr[fpr <= t].min())
    g_mu, g_sd, i_mu, i_sd = np.mean(gen), np.std(gen), np.mean(imp), np.std(imp)
    return dict(eer=eer, fmr100=op(0.01), fmr1000=op(0.001), genuine_mean=g_mu, genuine_std=g_sd,
                impostor_mean=i_mu, impostor_std=i_sd, fdr=(g_mu - i_mu) ** 2 / (g_sd ** 2 + i_sd ** 2),
                n_genuine=len(gen), n_impostor=len(imp))


def compare_metrics(m, ref, tol, label):
    for k, v in ref.items():
        if k.startswith("n_"):
            check(m[k] == v, f"{label} {k}: {m[k]} == {v}")
        else:
            close(m[k], v, tol, f"{label} {k}")


def cmd_numpy(exe, work):
    fresh(work)
    for name, (emb, ident) in {"clustered": clustered(1), "tied": tied(2)}.items():
        e_h5 = os.path.join(work, name + ".h5")
        write_embeddings(e_h5, emb, ident)
        out = os.path.join(work, name)
        run([exe, "--embeddings", e_h5, "--out", out, "--convention", "strict", "--keep-scores"])
        gen, imp = read_scores(out)
        rg, ri, _ = reference_scores(emb, ident)
        check(gen.shape == rg.shape and imp.shape == ri.shape, f"{name}: score counts {gen.shape} {imp.shape}")
        close(float(np.abs(gen - rg).max()), 0.0, 1e-12, f"{name}: genuine scores vs numpy (canonical order)")
        close(float(np.abs(imp - ri).max()), 0.0, 1e-12, f"{name}: impostor scores vs numpy (canonical order)")
        m = metrics_of(out)
        check(m["convention"] == "strict", f"{name}: convention recorded")
        compare_metrics(m, strict_reference(gen, imp), 1e-12, f"{name} strict")
        png = os.path.join(out, "histogram.png")
        check(os.path.exists(png) and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n", f"{name}: histogram.png")

    # A seeded subset of impostor pairs: distinct true impostor pairs, same metrics pipeline.
    emb, ident = clustered(3)
    e_h5 = os.path.join(work, "subset.h5")
    write_embeddings(e_h5, emb, ident)
    out = os.path.join(work, "subset")
    run([exe, "--embeddings", e_h5, "--out", out, "--convention", "strict", "--impostor-pairs", "700",
         "--seed", "9", "--keep-scores", "--no-plot"])
    gen, imp = read_scores(out)
    _, ri, _ = reference_scores(emb, ident)
    check(len(imp) == 700, f"subset: 700 impostor scores ({len(imp)})")
    pos = np.searchsorted(np.sort(ri), imp)
    srt = np.sort(ri)
    near = np.minimum(np.abs(srt[np.clip(pos, 0, len(srt) - 1)] - imp), np.abs(srt[np.clip(pos - 1, 0, len(srt) - 1)] - imp))
    check(near.max() <= 1e-12, "subset: every sampled score is the score of an impostor pair")
    check(len(np.unique(imp)) == 700, "subset: 700 distinct pairs (distinct scores)")
    m = metrics_of(out)
    check(m["impostor_sampling"] == "random" and m["seed"] == 9, "subset: sampling recorded")
    compare_metrics(m, strict_reference(gen, imp), 1e-12, "subset strict")


def cmd_pyeer(exe, work):
    try:
        from pyeer.eer_info import get_eer_stats
    except ImportError as e:
        print(f"SKIP: pyeer is not importable ({e}); run tools/pyenv.sh with PyPI reachable")
        return SKIP
    fresh(work)
    rng = np.random.default_rng(4)
    sets = {"clustered": clustered(5), "tied": tied(6), "wide": clustered(7, ids=40, per=8, dim=32, spread=1.6),
            "tight": clustered(8, ids=30, per=5, dim=8, spread=0.2)}
    for name, (emb, ident) in sets.items():
        e_h5 = os.path.join(work, name + ".h5")
        write_embeddings(e_h5, emb, ident)
        out = os.path.join(work, name)
        run([exe, "--embeddings", e_h5, "--out", out, "--keep-scores", "--no-plot"])
        gen, imp = read_scores(out)
        st = get_eer_stats(gen, imp)
        m = metrics_of(out)
        check(m["convention"] == "pyeer", f"{name}: default convention is pyeer")
        ref = dict(eer=st.eer, fmr100=st.fmr100, fmr1000=st.fmr1000, genuine_mean=st.gmean, genuine_std=st.gstd,
                   impostor_mean=st.imean, impostor_std=st.istd,
                   fdr=(st.gmean - st.imean) ** 2 / (st.gstd ** 2 + st.istd ** 2),
                   n_genuine=len(gen), n_impostor=len(imp))
        compare_metrics(m, ref, 1e-9, f"{name} pyeer")
    del rng


def cmd_ranks(exe, work, mpiexec, *flags):
    fresh(work)
    emb, ident = clustered(11, ids=30, per=5)
    e_h5 = os.path.join(work, "e.h5")
    write_embeddings(e_h5, emb, ident)
    for extra in ([], ["--impostor-pairs", "900", "--seed", "4"]):
        outs = []
        for np_ in (1, 2, 3):
            out = os.path.join(work, f"np{np_}_{len(extra)}")
            run([mpiexec, "-n", np_, *flags, exe, "--embeddings", e_h5, "--out", out, "--keep-scores",
                 "--no-plot", *extra])
            outs.append(out)
        base = open(os.path.join(outs[0], "metrics.json")).read()
        g0, i0 = read_scores(outs[0])
        for out in outs[1:]:
            check(open(os.path.join(out, "metrics.json")).read() == base, f"{out}: metrics.json identical to 1 rank")
            g, i = read_scores(out)
            check(np.array_equal(g, g0) and np.array_equal(i, i0), f"{out}: scores identical to 1 rank")


def cmd_errors(exe, work):
    fresh(work)
    emb, ident = clustered(12, ids=5, per=3)

    def case(name, expect_code, needles, make=None, args=None, env=None):
        path = os.path.join(work, name + ".h5")
        if make is not None:
            make(path)
        p = run([exe, "--embeddings", path, "--out", os.path.join(work, "out_" + name), "--no-plot"]
                if args is None else [exe, *args], expect=expect_code, env=env)
        msg = p.stdout + p.stderr
        for n in needles:
            check(n in msg, f"{name}: message names {n!r}")
        return p

    def h5(**datasets):
        def make(path):
            with h5py.File(path, "w") as f:
                for k, v in datasets.items():
                    f[k] = v
        return make

    e32, i64 = emb.astype(np.float32), ident.astype(np.int64)
    case("no_identity", 2, ["no_identity.h5", "'identity'", "embeddings (dataset"], h5(embeddings=e32))
    case("no_embeddings", 2, ["'embeddings'"], h5(identity=i64))
    case("float64", 2, ["'embeddings'", "float64"], h5(embeddings=e32.astype(np.float64), identity=i64))
    case("int32_identity", 2, ["'identity'", "int32"], h5(embeddings=e32, identity=i64.astype(np.int32)))
    case("rank1", 2, ["'embeddings'", "rank 2"], h5(embeddings=e32[:, 0].copy(), identity=i64))
    case("length", 2, ["'identity' must be int64 [16]"], h5(embeddings=e32, identity=i64[:-1]))
    nan = e32.copy()
    nan[3, 1] = np.nan
    case("nan_row", 2, ["nan_row.h5", "NaN or Inf", "rows 3"], h5(embeddings=nan, identity=i64))
    zero = e32.copy()
    zero[[4, 7]] = 0
    case("zero_row", 2, ["zero-norm", "rows 4, 7"], h5(embeddings=zero, identity=i64))
    case("one_identity", 2, ["1 identity label"], h5(embeddings=e32, identity=np.zeros(len(i64), np.int64)))
    case("singletons", 2, ["no genuine pair"], h5(embeddings=e32, identity=np.arange(len(i64), dtype=np.int64)))
    good = os.path.join(work, "good.h5")
    write_embeddings(good, emb, ident)
    blocker = os.path.join(work, "a_file")
    open(blocker, "w").close()
    case("unwritable_out", 2, ["output folder", "a_file"], args=["--embeddings", good, "--out", blocker + "/sub", "--no-plot"])
    case("missing_file", 2, ["nope.h5"], args=["--embeddings", os.path.join(work, "nope.h5"), "--out", work])
    case("bad_convention", 2, ["--convention"], args=["--embeddings", good, "--out", work, "--convention", "loose"])
    case("no_input", 2, ["--embeddings"], args=["--out", work])
    case("images_needs_model", 2, ["--fr-model"], args=["--images", good, "--out", work])
    p = case("help", 0, ["--impostor-pairs", "--convention", "--bgr", "--device", "--batch-size", "metrics.json"],
             args=["--help"])
    case("version", 0, ["adaptdiff-eval"], args=["--version"])

    # Plot failures: metrics.json is written, the exit code is 1, the message says why.
    env = dict(os.environ, ADAPTDIFF_PYTHON=os.path.join(work, "no_such_python"))
    out = os.path.join(work, "out_nopython")
    case("no_python", 1, ["no_such_python", "not found", "metrics.json"], args=["--embeddings", good, "--out", out],
         env=env)
    check(os.path.exists(os.path.join(out, "metrics.json")), "no_python: metrics.json written")
    check(not os.path.exists(os.path.join(out, "scores.h5")), "no_python: temporary scores removed")
    bare = os.path.join(work, "python_without_site")
    with open(bare, "w") as f:
        f.write("#!/bin/sh\nexec /usr/bin/python3 -S \"$@\"\n")
    os.chmod(bare, 0o755)
    env = dict(os.environ, ADAPTDIFF_PYTHON=bare)
    out = os.path.join(work, "out_nompl")
    case("no_matplotlib", 1, ["matplotlib", "not available"], args=["--embeddings", good, "--out", out], env=env)
    check(os.path.exists(os.path.join(out, "metrics.json")), "no_matplotlib: metrics.json written")


def cmd_images(exe, work, fixture):
    fresh(work)
    run([fixture, work])
    model = os.path.join(work, "fr.pt")

    def reference(data_h5, bgr):
        with h5py.File(data_h5, "r") as f:
            done = np.nonzero(f["sample_checksum"][...])[0]
            images = f["images"][...][done].astype(np.float64)
            ident = f["identity"][...][done]
        if images.shape[1] != 112:
            from PIL import Image  # Pillow's antialiased bilinear resize on float pixels (mode 'F')
            images = np.stack([np.stack([np.asarray(Image.fromarray(img[:, :, c].astype(np.float32), mode="F")
                                                    .resize((112, 112), Image.BILINEAR), dtype=np.float64)
                                         for c in range(3)], axis=2) for img in images])
        x = (images - 127.5) / 127.5
        if bgr:
            x = x[:, :, :, ::-1]
        return np.concatenate([x.mean((1, 2)), x[:, 0, 0, :], 2.0 * x[:, 111, 111, :]], 1), ident, len(done)

    for data, bgr, tol in (("data.h5", False, 1e-5), ("data.h5", True, 1e-5), ("data120.h5", False, 1e-4)):
        out = os.path.join(work, f"out_{data}_{bgr}")
        args = [exe, "--images", os.path.join(work, data), "--fr-model", model, "--out", out, "--device", "cpu",
                "--batch-size", "4", "--no-plot"] + (["--bgr"] if bgr else [])
        p = run(args)
        want, ident, n_done = reference(os.path.join(work, data), bgr)
        with h5py.File(os.path.join(out, "embeddings.h5"), "r") as f:
            got, got_id = f["embeddings"][...], f["identity"][...]
            check(f["embeddings"].dtype == np.float32 and f["identity"].dtype == np.int64, f"{data}: dtypes")
        check(got.shape == want.shape, f"{data} bgr={bgr}: shape {got.shape} == {want.shape}")
        if got.shape == want.shape:
            close(float(np.abs(got - want).max()), 0.0, tol, f"{data} bgr={bgr}: embeddings vs closed form")
        check(np.array_equal(got_id, ident), f"{data}: identity of the done rows")
        check("4 of 18 samples" in p.stdout + p.stderr, f"{data}: skipped samples reported")
        m = metrics_of(out)
        check(m["rows"] == n_done == 14, f"{data}: 14 embeddings evaluated")

    # Bad inputs of the embedding pass: exit 2, naming the file.
    data = os.path.join(work, "data.h5")
    for name, args, needles in (
            ("not_torchscript", ["--images", data, "--fr-model", data], ["cannot load", "data.h5"]),
            ("bad_output", ["--images", data, "--fr-model", os.path.join(work, "fr_bad.pt")], ["fr_bad.pt", "must return a float tensor [14, D]"]),
            ("no_done_sample", ["--images", os.path.join(work, "empty.h5"), "--fr-model", model],
             ["empty.h5", "no done sample", "'sample_checksum'"]),
            ("not_an_output", ["--images", model, "--fr-model", model], ["fr.pt"])):
        p = run([exe, *args, "--out", os.path.join(work, "out_" + name), "--device", "cpu", "--no-plot"], expect=2)
        for n in needles:
            check(n in p.stdout + p.stderr, f"{name}: message names {n!r}")


def main():
    cmd, exe, work, *rest = sys.argv[1:]
    rc = {"numpy": cmd_numpy, "pyeer": cmd_pyeer, "ranks": cmd_ranks, "errors": cmd_errors,
          "images": cmd_images}[cmd](exe, work, *rest)
    if rc == SKIP:
        return SKIP
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
