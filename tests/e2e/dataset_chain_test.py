#!/usr/bin/env python3
"""The README's chain "From samples to a training set", command by command, on a file written by 2 ranks.

contexts import (a torch.save'd dict, as upstream's context files) -> negatives -> adaptdiff-sample on 2 ranks
with those identities -> export (imagefolder, insightface, grid) -> adaptdiff-eval --images with a TorchScript
face-recognition model. Checks that the tools agree with each other (the job's Far-Neg negatives equal the
standalone table, every exported image equals its stored pixels) and with independent numpy computations.
Usage: dataset_chain_test.py BUILD_DIR WORK_DIR MPIEXEC [MPIEXEC_FLAGS...]
"""
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import torch

build, work, mpiexec, mpi_flags = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
app = os.path.join(build, "src", "app")
source_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
os.chdir(work)
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def run(tool, args, ranks=1):
    cmd = [mpiexec, "-n", str(ranks)] + mpi_flags + [os.path.join(app, tool)] + args
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    check(r.returncode == 0, f"{tool} {' '.join(args)} on {ranks} rank(s) (exit {r.returncode})")
    if r.returncode:
        print(r.stdout)
    return r.stdout


n_ids, k = 6, 3
rng = np.random.default_rng(11)
names = [f"person_{i}" for i in (3, 1, 4, 1_5, 9, 2)]
torch.save({n: rng.standard_normal(512).astype(np.float32) for n in names}, "contexts.npy")

run("adaptdiff-contexts", ["import", "contexts.npy", "--out", "ids.h5"])
run("adaptdiff-contexts", ["negatives", "--identities", "ids.h5", "--strategy", "far", "--out", "far.h5"], ranks=2)

cfg = os.path.join(source_dir, "configs", "quickstart.toml")
sets = {"identities.source": f'"{os.path.abspath("ids.h5")}"', "identities.count": n_ids,
        "identities.images_per_identity": k, "sampler.steps": 5, "run.batch_size": 4,
        "output.path": f'"{os.path.abspath("run.h5")}"'}
args = [cfg] + sum((["--set", f"{key}={v}"] for key, v in sets.items()), [])
run("adaptdiff-sample", args, ranks=2)

with h5py.File("run.h5", "r") as f, h5py.File("far.h5", "r") as t:
    images = f["images"][()]
    identity = f["identity"][()]
    check(np.array_equal(f["negative_index"][()], t["negative_index"][()]),
          "the job's Far-Neg negatives equal the standalone table")
    with h5py.File("ids.h5", "r") as ids:
        check(np.array_equal(f["contexts"][()], ids["contexts"][()]), "the job used the imported contexts")

run("adaptdiff-export", ["run.h5", "--out", "folder", "--format", "imagefolder"], ranks=2)
lines = open("folder/list.txt").read().split("\n")
entries = [line.split(" ") for line in lines if line]
check(len(entries) == n_ids * k, f"imagefolder: list.txt has {n_ids * k} lines")
check(sorted({os.path.dirname(p) for p, _ in entries}) == [os.path.dirname(p) for p, _ in entries[::k]],
      "imagefolder: one folder per identity, string order = identity order")
try:
    from PIL import Image
    same = all(np.array_equal(np.asarray(Image.open(os.path.join("folder", p)).convert("RGB")), images[row])
               for row, (p, _) in enumerate(entries))
    check(same, "imagefolder: every PNG equals its stored pixels")
except ImportError:
    print("note: PIL not available, pixel comparison of the PNGs skipped")
check(all(int(label) == identity[row] for row, (_, label) in enumerate(entries)), "imagefolder: labels")

run("adaptdiff-export", ["run.h5", "--out", "rec", "--format", "insightface", "--size", "112"], ranks=2)
check(open("rec/property").read().strip() == f"{n_ids},112,112", "insightface: property is N,112,112")
run("adaptdiff-export", ["run.h5", "--out", "sheets", "--format", "grid"])
check(os.path.exists("sheets/overview.png") and len(os.listdir("sheets/grids")) == n_ids, "grid: sheets, overview")


class Embed(torch.nn.Module):
    """A fixed face-recognition stand-in: 8x8 average pooling of the normalised input, then a linear map."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(16, 3 * 14 * 14, generator=g), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x, 8).flatten(1) @ self.weight.t()


model = torch.jit.script(Embed())
model.save("fr.pt")
run("adaptdiff-eval", ["--images", "run.h5", "--fr-model", "fr.pt", "--out", "eval"], ranks=2)
metrics = json.load(open("eval/metrics.json"))
keys = ["eer", "fmr100", "fmr1000", "genuine_mean", "genuine_std", "impostor_mean", "impostor_std", "fdr",
        "n_genuine", "n_impostor"]
check(all(key in metrics for key in keys), "eval: metrics.json has the ten keys")
check(os.path.exists("eval/histogram.png"), "eval: histogram.png")
check(metrics["n_genuine"] == n_ids * k * (k - 1) // 2, "eval: genuine pairs counted")

# Independent embeddings: the same model in Python on the stored (already 112x112? else resized) images.
x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
if x.shape[-1] != 112:
    x = torch.nn.functional.interpolate(x, size=(112, 112), mode="bilinear", align_corners=False, antialias=True)
with torch.no_grad():
    emb = model((x - 127.5) / 127.5).double().numpy()
emb /= np.linalg.norm(emb, axis=1, keepdims=True)
cos = emb @ emb.T
iu = np.triu_indices(len(emb), 1)
same = identity[iu[0]] == identity[iu[1]]
g = cos[iu][same]
check(abs(metrics["genuine_mean"] - g.mean()) < 1e-5, f"eval: genuine mean {metrics['genuine_mean']:.6f} equals "
      f"numpy's {g.mean():.6f} (float32 model outputs: 1e-5)")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
