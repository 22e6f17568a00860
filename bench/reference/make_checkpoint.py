"""Writes random-weight model files in the published IDiff-Face formats.

  DIR/ema_averaged_model.ckpt           torch.save of an OrderedDict: the 8 float32 [T] schedule buffers, then
                                        eps_model.* (the state dict of the DDPM wrapper, with _metadata)
  DIR/first_stage_decoder_state_dict.pt decoder.*, quantize.embedding.weight [n_embed, embed_dim], post_quant_conv.*

Weights: PyTorch's default initialisation from the seed; the convolutions that start at zero in training
(conv2 of every residual block, x_proj_out of every attention block, final) are re-initialised with the default
conv initialisation so that no branch is trivially zero; the codebook is drawn from N(0, 1) (a tiny uniform
codebook would map every latent to nearly the same code). Optionally the saved keys are compared with a key
list (lines "<key> <dtype> <shape> <numel>", '#' comments).
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import idiff_face  # noqa: E402


def make_unet_state(arch: dict, seed: int) -> "collections.OrderedDict[str, torch.Tensor]":
    torch.manual_seed(seed)
    wrapper = idiff_face.DiffusionWrapper(arch)
    for conv in wrapper.eps_model.zero_initialised_convs():
        conv.reset_parameters()
    for name, value in idiff_face.make_schedule(arch["diffusion"]).items():
        getattr(wrapper, name).copy_(value)
    return wrapper.state_dict()


def make_decoder_state(arch: dict, seed: int) -> "collections.OrderedDict[str, torch.Tensor]":
    torch.manual_seed(seed)
    model = idiff_face.VQDecoder(arch["decoder"])
    with torch.no_grad():
        model.quantize.embedding.weight.normal_(0.0, 1.0)
    return model.state_dict()


def read_key_list(path: str | Path) -> list[tuple[str, str, list[int]]]:
    """[(key, dtype, shape)] from a key list file."""
    entries = []
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, dtype, shape = line.split()[:3]
        dims = [int(d) for d in shape.strip("[]").split(",") if d]
        entries.append((key, dtype, dims))
    return entries


def compare_keys(label: str, state: dict, key_list_path: str | Path) -> bool:
    """Prints how the saved entries compare with a key list; True if names, dtypes and shapes all match."""
    expected = read_key_list(key_list_path)
    found = {k: (str(v.dtype).removeprefix("torch."), list(v.shape)) for k, v in state.items()}
    wanted = {k: (dtype, shape) for k, dtype, shape in expected}
    missing = [k for k in wanted if k not in found]
    unexpected = [k for k in found if k not in wanted]
    mismatched = [f"{k}: {found[k]} != {wanted[k]}" for k in wanted if k in found and found[k] != wanted[k]]
    same_order = [k for k, _, _ in expected] == list(state.keys())
    ok = not (missing or unexpected or mismatched)
    print(f"{label}: {len(found)} entries vs {len(wanted)} in {key_list_path}: {len(missing)} missing, "
          f"{len(unexpected)} unexpected, {len(mismatched)} mis-shaped, order {'same' if same_order else 'differs'}"
          f" -> {'OK' if ok else 'MISMATCH'}")
    for line in (missing + unexpected + mismatched)[:24]:
        print(f"  {line}")
    return ok


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Write random-weight ema_averaged_model.ckpt and "
                                            "first_stage_decoder_state_dict.pt for an architecture TOML.")
    p.add_argument("--arch", required=True, help="architecture TOML ([unet], [diffusion], [decoder])")
    p.add_argument("--seed", type=int, default=0, help="seed of the UNet weights (default 0)")
    p.add_argument("--decoder-seed", type=int, help="seed of the decoder weights (default: seed + 1)")
    p.add_argument("--out-dir", required=True, help="folder for the two files (created if missing)")
    p.add_argument("--unet-keys", help="key list to compare the UNet checkpoint with "
                                       "(e.g. shared/docs/idiff-face-cpd25-keys.txt)")
    p.add_argument("--decoder-keys", help="key list to compare the decoder file with "
                                          "(e.g. shared/docs/vq-f4-decoder-keys.txt)")
    args = p.parse_args(argv)

    arch = idiff_face.load_arch(args.arch)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ok = True

    unet_state = make_unet_state(arch, args.seed)
    unet_path = out_dir / "ema_averaged_model.ckpt"
    torch.save(unet_state, unet_path)
    n_unet = sum(v.numel() for k, v in unet_state.items() if k.startswith(idiff_face.UNET_PREFIX))
    print(f"{unet_path}: {len(unet_state)} entries, {n_unet} UNet parameters")
    del unet_state
    if args.unet_keys:
        ok &= compare_keys("unet", torch.load(unet_path, map_location="cpu"), args.unet_keys)

    decoder_seed = args.seed + 1 if args.decoder_seed is None else args.decoder_seed
    decoder_state = make_decoder_state(arch, decoder_seed)
    decoder_path = out_dir / "first_stage_decoder_state_dict.pt"
    torch.save(decoder_state, decoder_path)
    print(f"{decoder_path}: {len(decoder_state)} entries, {sum(v.numel() for v in decoder_state.values())} numbers")
    if args.decoder_keys:
        ok &= compare_keys("decoder", torch.load(decoder_path, map_location="cpu"), args.decoder_keys)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
