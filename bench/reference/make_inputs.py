"""Writes a sampler input file: starting latents and positive/negative identity contexts.

Datasets (float32): x_T [B, C, h, w] standard normal; context_pos [B, D] and context_neg [B, D] unit-norm rows
of standard-normal vectors (the negative rows are drawn after the positive ones, so they are different
identities). Shapes come from the architecture TOML ([diffusion] latent size, [unet] context_input_channels).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import idiff_face  # noqa: E402


def unit_rows(g: torch.Generator, n: int, dim: int) -> torch.Tensor:
    v = torch.randn(n, dim, generator=g, dtype=torch.float32)
    return v / v.norm(dim=1, keepdim=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Write x_T, context_pos and context_neg for sampler.py.")
    p.add_argument("--arch", required=True, help="architecture TOML ([unet], [diffusion])")
    p.add_argument("--batch", type=int, required=True, help="batch size B")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    args = p.parse_args(argv)
    if args.batch < 1:
        p.error("--batch must be >= 1")

    arch = idiff_face.load_arch(args.arch)
    d = arch["diffusion"]
    shape = (args.batch, int(d["latent_channels"]), int(d["latent_height"]), int(d["latent_width"]))
    dim = int(arch["unet"].get("context_input_channels", 512))
    g = torch.Generator().manual_seed(args.seed)
    x_T = torch.randn(shape, generator=g, dtype=torch.float32)
    context_pos = unit_rows(g, args.batch, dim)
    context_neg = unit_rows(g, args.batch, dim)
    with h5py.File(args.out, "w") as f:
        f.create_dataset("x_T", data=x_T.numpy())
        f.create_dataset("context_pos", data=context_pos.numpy())
        f.create_dataset("context_neg", data=context_neg.numpy())
    print(f"{args.out}: x_T {list(shape)}, context_pos/context_neg [{args.batch}, {dim}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
