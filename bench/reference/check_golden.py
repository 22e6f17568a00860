"""Checks the Python reference implementation against a golden reference set (idiff_face_tiny format).

Checks, one line each with the measured error and the tolerance:
  * schedule buffers rebuilt from the TOML vs. the stored /schedule datasets;
  * every /unet_forward/<case>: |eps - expected| <= 1e-4 (context absent where context_is_none = 1);
  * /decoder: codebook indices equal, quantised values and decoded images close;
  * every /sampling/ddim_* trajectory run with the reference DDIM loop from the stored x_T and contexts:
    timesteps, weights and targeted alpha_bar_prev, the first-step eps, every single step from the stored
    x_before (<= 1e-5 * max|x_after|), and |x0 - expected| <= 2e-5 * max|x0|;
    plus decoding of the stored x0 (indices, then the image).
Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import idiff_face  # noqa: E402
import sampler  # noqa: E402

# ../shared beside the repository root
DEFAULT_GOLDEN = str(Path(__file__).resolve().parents[3] / "shared" / "golden" / "idiff_face_tiny")


class Report:
    def __init__(self) -> None:
        self.failures = 0
        self.count = 0

    def check(self, name: str, err: float, tol: float, note: str = "") -> None:
        ok = bool(err <= tol)
        self.count += 1
        self.failures += 0 if ok else 1
        extra = f"  ({note})" if note else ""
        print(f"{name:<56} max_abs_err={err:.3e} tol={tol:.3e} {'PASS' if ok else 'FAIL'}{extra}")


def max_abs(a, b) -> float:
    a = torch.as_tensor(np.asarray(a), dtype=torch.float64)
    b = torch.as_tensor(np.asarray(b), dtype=torch.float64)
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max()) if a.numel() else 0.0


def tensor(ds) -> torch.Tensor:
    return torch.from_numpy(ds[()])


def schedule_for(group: h5py.Group) -> tuple[str, float, float]:
    """(schedule name, w, w_max) of a trajectory group from its attributes."""
    a = group.attrs
    w = float(a["w"])
    if not int(a["guided"]):
        return "none", 0.0, 0.0
    if not int(a["adaptive"]):
        return "constant", w, 0.0
    return ("reverse" if int(a["reverse_adaptive"]) else "linear"), 0.0, w


def check_schedule(rep: Report, ref: h5py.File, arch: dict, stored: dict[str, torch.Tensor]) -> None:
    rebuilt = idiff_face.make_schedule(arch["diffusion"])
    for name in idiff_face.SCHEDULE_BUFFER_NAMES:
        expected = ref["schedule"][name][()]
        scale = max(float(np.abs(expected).max()), 1e-30)
        err_rebuilt = max_abs(rebuilt[name], expected)
        err_ckpt = max_abs(stored[name], expected)
        note = "bit-identical" if err_rebuilt == 0.0 else f"{err_rebuilt / scale:.1e} relative"
        rep.check(f"schedule/{name} (rebuilt)", err_rebuilt, 1e-6 * scale, note)
        rep.check(f"schedule/{name} (checkpoint)", err_ckpt, 0.0)


def check_unet(rep: Report, ref: h5py.File, unet: torch.nn.Module) -> None:
    for case, g in ref["unet_forward"].items():
        context = None if int(g.attrs.get("context_is_none", 0)) else tensor(g["context"])
        eps = unet(tensor(g["x_t"]), tensor(g["t"]), context)
        rep.check(f"unet_forward/{case}", max_abs(eps, g["eps"][()]), 1e-4)


def check_decoder(rep: Report, ref: h5py.File, decoder: idiff_face.VQDecoder) -> None:
    g = ref["decoder"]
    z = tensor(g["z"])
    zq, idx = decoder.quantize(z)
    mismatched = int((idx != tensor(g["indices"])).sum())
    rep.check("decoder/indices (differing pixels)", mismatched, 0)
    rep.check("decoder/z_quantized", max_abs(zq, g["z_quantized"][()]), 1e-6)
    out_q = g["out_quantized"][()]
    rep.check("decoder/out_quantized", max_abs(decoder(z), out_q), 1e-4)
    rep.check("decoder/out_unquantized", max_abs(decoder(z, quantize=False), g["out_unquantized"][()]), 1e-4)


def check_trajectory(rep: Report, ref: h5py.File, name: str, unet: torch.nn.Module,
                     decoder: idiff_face.VQDecoder, alpha_bars: torch.Tensor) -> None:
    s = ref["sampling"]
    g = s[name]
    schedule, w, w_max = schedule_for(g)
    context_neg = None if schedule == "none" else tensor(s[g.attrs["negative_context"]])
    T = alpha_bars.shape[0]
    steps = int(g.attrs["ddim_step"])
    records: list[dict] = []
    x0 = sampler.ddim_sample(unet, alpha_bars, tensor(s["x_T"]), tensor(s["context_pos"]), context_neg, steps,
                             lambda i: sampler.guidance_weight(schedule, i, T, w, w_max), records.append)

    visited = [r["i"] for r in records]
    rep.check(f"{name}/timesteps (differing)", float(visited != g["timesteps"][()].tolist()), 0.0)
    rep.check(f"{name}/w_per_step", max_abs([r["w"] for r in records], g["w_per_step"][()]), 0.0)
    rep.check(f"{name}/alpha_bar_prev_used",
              max_abs(torch.stack([r["a_prev"] for r in records]), g["alpha_bar_prev_used"][()]), 0.0)
    rep.check(f"{name}/eps_pos_first_step", max_abs(records[0]["eps_pos"], g["eps_pos_first_step"][()]), 1e-4)
    if "eps_neg_first_step" in g:
        rep.check(f"{name}/eps_neg_first_step", max_abs(records[0]["eps_neg"], g["eps_neg_first_step"][()]), 1e-4)
    # Single steps from the stored x_before with this UNet (no accumulated error).
    by_step = {r["i"]: r for r in records}
    worst_ratio, worst_err, worst_tol = -1.0, 0.0, 0.0
    for k, i in enumerate(g["x_after_steps"][()].tolist()):
        x_before = tensor(g["x_before"])[k]
        eps, _, _ = sampler.guided_eps(unet, x_before, i, tensor(s["context_pos"]), context_neg, by_step[i]["w"])
        x_after = sampler.ddim_update(x_before, eps, alpha_bars[i], by_step[i]["a_prev"])
        expected = g["x_after"][k]
        err = max_abs(x_after, expected)
        tol = 1e-5 * float(np.abs(expected).max())
        if err / tol > worst_ratio:
            worst_ratio, worst_err, worst_tol = err / tol, err, tol
    rep.check(f"{name}/single_steps (worst of {len(by_step)})", worst_err, worst_tol)

    expected_x0 = g["x0"][()]
    scale = float(np.abs(expected_x0).max())
    rep.check(f"{name}/x0", max_abs(x0, expected_x0), 2e-5 * scale, f"2e-5 x max|x0| = {scale:.1f}")

    # Decoding of the stored x0: the argmin is discontinuous, so compare indices first.
    stored_x0 = tensor(g["x0"])
    _, idx = decoder.quantize(stored_x0)
    mismatched = int((idx != tensor(g["decoded_indices"])).sum())
    rep.check(f"{name}/decoded_indices (differing pixels)", mismatched, 0)
    decoded = g["decoded"][()]
    rep.check(f"{name}/decoded", max_abs(decoder(stored_x0), decoded), 1e-4 * max(1.0, float(np.abs(decoded).max())))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Check the Python reference implementation against golden data.")
    p.add_argument("--golden", default=DEFAULT_GOLDEN,
                   help=f"golden set folder with model.toml, checkpoints and reference.h5 (default {DEFAULT_GOLDEN})")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    golden = Path(args.golden)
    arch = idiff_face.load_arch(golden / "model.toml")
    unet, stored_schedule = idiff_face.load_unet(golden / "ema_averaged_model.ckpt", arch)
    decoder = idiff_face.load_decoder(golden / "first_stage_decoder_state_dict.pt", arch)

    rep = Report()
    with torch.inference_mode(), h5py.File(golden / "reference.h5", "r") as ref:
        check_schedule(rep, ref, arch, stored_schedule)
        check_unet(rep, ref, unet)
        check_decoder(rep, ref, decoder)
        for name in sorted(ref["sampling"]):
            if name.startswith("ddim_"):
                check_trajectory(rep, ref, name, unet, decoder, stored_schedule["alpha_bars"])

    print(f"{rep.count - rep.failures}/{rep.count} checks passed")
    return 1 if rep.failures else 0


if __name__ == "__main__":
    sys.exit(main())
