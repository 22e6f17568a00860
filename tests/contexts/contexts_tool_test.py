#!/usr/bin/env python3
"""End-to-end test of adaptdiff-contexts against independent computations.

Fixtures are written with PyTorch's own torch.save and NumPy (the formats of the original project), results
are read back with h5py and compared with NumPy brute force. Usage:
  contexts_tool_test.py BUILD_DIR WORK_DIR MPIEXEC [MPIEXEC_FLAGS...]
"""
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

build, work, mpiexec, mpi_flags = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
tool = os.path.join(build, "src", "app", "adaptdiff-contexts")
sample = os.path.join(build, "src", "app", "adaptdiff-sample")
source_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
os.chdir(work)
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def run(args, ranks=1, expect=0):
    cmd = [mpiexec, "-n", str(ranks)] + mpi_flags + [tool] + args
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    if r.returncode != expect:
        print(r.stdout)
    check(r.returncode == expect, f"exit {expect}: adaptdiff-contexts {' '.join(args)} (got {r.returncode})")
    return r.stdout


def names_of(path):
    with h5py.File(path, "r") as f:
        return [n.decode() if isinstance(n, bytes) else n for n in f["identity_name"][()]]


def contexts_of(path):
    with h5py.File(path, "r") as f:
        return f["contexts"][()]


rng = np.random.default_rng(5)

# --- import: torch.save'd dict {name: float32 [512]} named .npy, insertion order kept (not sorted) -----------
names = ["id_10", "id_2", "zeta", "alpha", "b"]
vectors = [rng.standard_normal(512).astype(np.float32) for _ in names]
torch.save({n: v for n, v in zip(names, vectors)}, "dict_contexts.npy")
run(["import", "dict_contexts.npy", "--out", "dict.h5"])
check(names_of("dict.h5") == names, "dict import keeps names and insertion order")
check(np.array_equal(contexts_of("dict.h5"), np.stack(vectors)), "dict import keeps the float32 values bit for bit")

# other dtypes and byte orders convert as numpy's astype(float32) does; int keys become text
mixed = {7: vectors[0].astype(">f8"), 3: vectors[1].astype(np.float16), 11: vectors[2].astype("<f8")}
torch.save(mixed, "mixed.pt")
run(["import", "mixed.pt", "--out", "mixed.h5"])
check(names_of("mixed.h5") == ["7", "3", "11"], "int keys become decimal names in order")
want = np.stack([v.astype(np.float32) for v in mixed.values()])
check(np.array_equal(contexts_of("mixed.h5"), want), "float64 big-endian / float16 values equal numpy's astype")

# torch tensors as values are accepted too
torch.save({"t0": torch.from_numpy(vectors[3]), "t1": torch.from_numpy(vectors[4])}, "tensors.pt")
run(["import", "tensors.pt", "--out", "tensors.h5"])
check(np.array_equal(contexts_of("tensors.h5"), np.stack(vectors[3:5])), "tensor values import")

# --- import: plain .npy array (UIFace style): rows normalised ---------------------------------------------------
arr = (rng.standard_normal((6, 512)) * 3).astype(np.float32)
np.save("plain.npy", arr)
run(["import", "plain.npy", "--out", "plain.h5"])
got = contexts_of("plain.h5")
ref = arr.astype(np.float64) / np.linalg.norm(arr.astype(np.float64), axis=1, keepdims=True)
# float64 quotient rounded to float32: within half an ulp of float32 (2^-24 relative) of the float64 reference
check(np.max(np.abs(got - ref) / np.abs(ref).max()) < 2**-23, ".npy rows are normalised (|err| < 2^-23)")
check(names_of("plain.h5") == [str(i) for i in range(6)], ".npy names are the row numbers")

# --- create: the bits of the job's synthetic_uniform source and of torch's own expression ------------------------
run(["create", "--count", "40", "--seed", "7", "--out", "ids.h5"])
torch.manual_seed(7)
expect = F.normalize(torch.randn(40, 512), dim=1).numpy()
got = contexts_of("ids.h5")
check(np.array_equal(got, expect), "create equals torch.manual_seed(7); F.normalize(torch.randn(40, 512)) "
      f"(max diff {np.abs(got - expect).max():.3g})")
cfg = os.path.join(source_dir, "configs", "quickstart.toml")
common = ["--set", "identities.count=3", "--set", "identities.images_per_identity=1", "--set", "sampler.steps=5",
          "--set", "run.batch_size=3", "--set", "identities.seed=7"]
for tag, src in (("job_synth.h5", "synthetic_uniform"), ("job_file.h5", os.path.abspath("ids.h5"))):
    r = subprocess.run([mpiexec, "-n", "1"] + mpi_flags + [sample, cfg] + common +
                       ["--set", f'identities.source="{src}"', "--set", f'output.path="{os.path.abspath(tag)}"'],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    check(r.returncode == 0, f"sampling job with identities.source = {src}")
    if r.returncode:
        print(r.stdout)
with h5py.File("job_synth.h5", "r") as a, h5py.File("job_file.h5", "r") as b:
    check(np.array_equal(a["contexts"][()], got[:3]), "the job's synthetic_uniform contexts equal the created file")
    check(np.array_equal(a["images"][()], b["images"][()]), "the job gives the same images from both sources")

# --- negatives: upstream's definitions by brute force, any rank count --------------------------------------------
x = got.astype(np.float64)
xn = x / np.linalg.norm(x, axis=1, keepdims=True)
cos = (xn @ xn.T).astype(np.float32)  # float64 cosine rounded to float32, as documented
n = len(cos)


def brute(strategy):
    out = []
    for i in range(n):
        order = sorted(range(n), key=lambda j: (cos[i, j], j))  # (similarity, index) ascending
        others = [j for j in order if j != i]
        out.append({"far": others[0], "close": others[-1], "median": order[n // 2],
                    "previous": (i - 1) % n}[strategy])
    return np.array(out)


tables = {}
for strategy in ("far", "close", "median", "previous", "random"):
    for ranks in (1, 3):
        out = f"neg_{strategy}_{ranks}.h5"
        log = run(["negatives", "--identities", "ids.h5", "--strategy", strategy, "--seed", "3", "--out", out,
                   "--csv"], ranks=ranks)
        with h5py.File(out, "r") as f:
            tables[(strategy, ranks)] = (f["identity"][()], f["negative_index"][()], f["negative_similarity"][()])
        if ranks == 1:
            check("similarity min / median / max" in log, f"{strategy}: one-line summary printed")
            check(os.path.exists(f"neg_{strategy}_1.csv"), f"{strategy}: --csv writes the table beside --out")
    a, b = tables[(strategy, 1)], tables[(strategy, 3)]
    check(all(np.array_equal(p, q) for p, q in zip(a, b)), f"{strategy}: 1 and 3 ranks give the same table")
    ident, index, sim = a
    check(np.array_equal(ident, np.arange(n)), f"{strategy}: identity column")
    if strategy != "random":
        check(np.array_equal(index, brute(strategy)), f"{strategy}: equals the brute-force definition")
    else:
        check(np.all(index != np.arange(n)) and np.all((index >= 0) & (index < n)), "random: another identity")
    check(np.array_equal(sim, cos[np.arange(n), index]), f"{strategy}: similarity of the chosen pair")

# --- bad input: exit 2, a clear message, nothing written ----------------------------------------------------------
bad = dict(zip(names, vectors))
bad["zeta"] = bad["zeta"].copy()
bad["zeta"][17] = np.nan
torch.save(bad, "nan.npy")
msg = run(["import", "nan.npy", "--out", "nan.h5"], expect=2)
check("'zeta'" in msg and "NaN" in msg and not os.path.exists("nan.h5"), "NaN value: names the key, writes nothing")
torch.save({"a": vectors[0][:100]}, "short.pt")
msg = run(["import", "short.pt", "--out", "short.h5"], expect=2)
check("[100]" in msg and "[512]" in msg, "wrong length: says found and expected")
torch.save([vectors[0]], "list.pt")
msg = run(["import", "list.pt", "--out", "list.h5"], expect=2)
check("expected a dict" in msg, "a pickled list is refused")
torch.save({"z": np.zeros(512, np.float32)}, "zero.pt")
msg = run(["import", "zero.pt", "--out", "zero.h5"], expect=2)
check("all zeros" in msg, "zero row is refused naming the key")
with open("text.npy", "w") as f:
    f.write("not an array\n")
msg = run(["import", "text.npy", "--out", "text.h5"], expect=2)
check("neither a torch.save archive" in msg, "unknown format is refused")
with open("dict_contexts.npy", "rb") as f:
    head = f.read()
with open("truncated.npy", "wb") as f:
    f.write(head[: len(head) // 2])
run(["import", "truncated.npy", "--out", "trunc.h5"], expect=2)
msg = run(["import", "dict_contexts.npy", "--out", "dict.h5"], expect=2)
check("--force" in msg, "an existing output needs --force")
run(["import", "dict_contexts.npy", "--out", "dict.h5", "--force"])
msg = run(["create", "--count", "4", "--out", "/proc/adaptdiff/x.h5"], expect=2)
check("cannot write" in msg, "an unwritable folder is refused")
msg = run(["negatives", "--identities", "ids.h5", "--strategy", "farthest", "--out", "t.h5"], ranks=2, expect=2)
check("farthest" in msg and not os.path.exists("t.h5"), "an unknown strategy is refused on every rank")
msg = run(["negatives", "--identities", "nan.npy", "--out", "t.h5"], expect=2)
msg = run(["negatives", "--identities", "missing.h5", "--out", "t.h5"], ranks=2, expect=2)
check("missing.h5" in msg, "a missing identity file is bad input naming the file")
msg = run(["import", "missing.pt", "--out", "m.h5"], expect=2)
os.makedirs("runs.v1", exist_ok=True)
run(["negatives", "--identities", "ids.h5", "--out", "runs.v1/table", "--csv"])
check(os.path.exists("runs.v1/table.csv"), "--csv replaces only the file name's extension")
msg = run(["negatives", "--identities", "ids.h5", "--out", "t.csv", "--csv"], expect=2)
check(".csv" in msg and not os.path.exists("t.csv"), "--out ending in .csv with --csv is refused")
msg = run(["negatives", "--identities", "ids.h5", "--out", "runs.v1/table", "--csv", "--force"])
open("runs.v1/other.csv", "w").write("keep\n")
msg = run(["negatives", "--identities", "ids.h5", "--out", "runs.v1/other.h5", "--csv"], expect=2)
check(open("runs.v1/other.csv").read() == "keep\n", "an existing CSV is not replaced without --force")
msg = run(["create", "--count", "4", "--out", "/proc/ids.h5"], expect=2)  # the folder exists; no file can be made
check("cannot" in msg, "an output file that cannot be created is refused before the work")
r = subprocess.run([sample, "--status", "missing.h5"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
check(r.returncode == 2, f"adaptdiff-sample --status of a missing file exits 2 (got {r.returncode})")
msg = run(["--help"])
check("negatives" in msg and "Exit codes" in msg, "--help lists the subcommands and exit codes")
run([], expect=2)

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
