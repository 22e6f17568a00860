"""Reference DDIM sampling loop with negative-identity guidance, and a timed command-line run of it.

For every visited timestep i the guided prediction is
    eps = (1 + w_i) * UNet(x, i, context_pos) - w_i * UNet(x, i, context_neg)
computed as two separate forwards of batch B (positive, then negative); with the ``none`` schedule a single
positive forward is run. DDIM (eta 0) uses stride T // steps over range(0, T, stride) reversed, with the shifted
alphas_prev = [1, alpha_bar_0, ..., alpha_bar_{T-2}] indexed at i - stride (1 when i - stride < 0). The final latent
is decoded with the VQ decoder (quantising first); the decoder output is written before any clamp.

Example:
    /usr/bin/python3 bench/reference/sampler.py --arch configs/models/idiff-face-cpd25.toml \\
        --unet ckpt/ema_averaged_model.ckpt --decoder ckpt/first_stage_decoder_state_dict.pt \\
        --inputs in.h5 --steps 10 --schedule linear --w-max 1.0 --threads 1 --out out.h5 --json timing.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import idiff_face  # noqa: E402

SCHEDULES = ("none", "constant", "linear", "reverse")


def guidance_weight(schedule: str, i: int, T: int, w: float = 0.5, w_max: float = 1.0) -> float:
    """w_i of a visited timestep i: none 0, constant w, linear w_max*(1 - i/T), reverse w_max*i/T (double)."""
    if schedule == "none":
        return 0.0
    if schedule == "constant":
        return w
    if schedule == "linear":
        return w_max * (1.0 - i / T)
    if schedule == "reverse":
        return w_max * (i / T)
    raise ValueError(f"guidance_weight: unknown schedule {schedule!r} (expected one of {', '.join(SCHEDULES)})")


def ddim_timesteps(T: int, steps: int) -> tuple[int, list[int]]:
    """(stride, visited timesteps in execution order): stride T // steps, range(0, T, stride) reversed."""
    stride = T // steps
    if stride < 1:
        raise ValueError(f"ddim_timesteps: steps {steps} > T {T}")
    return stride, list(reversed(range(0, T, stride)))


def guided_eps(unet: torch.nn.Module, x: torch.Tensor, i: int, context_pos: torch.Tensor,
               context_neg: Optional[torch.Tensor], w: float) -> tuple[torch.Tensor, torch.Tensor,
                                                                       Optional[torch.Tensor]]:
    """(guided eps, eps_pos, eps_neg or None). Without a negative a single forward is run and eps = eps_pos."""
    t = torch.full((x.shape[0],), i, dtype=torch.int64, device=x.device)
    eps_pos = unet(x, t, context_pos)
    if context_neg is None:
        return eps_pos, eps_pos, None
    eps_neg = unet(x, t, context_neg)
    return (1.0 + w) * eps_pos - w * eps_neg, eps_pos, eps_neg


def ddim_update(x: torch.Tensor, eps: torch.Tensor, a_t: torch.Tensor, a_prev: torch.Tensor) -> torch.Tensor:
    """One DDIM (eta 0) update from noise level a_t = alpha_bar_i to a_prev, with eps re-derived from x0_hat."""
    x0_hat = (x - torch.sqrt(1.0 - a_t) * eps) / torch.sqrt(a_t)
    eps_rederived = (x - torch.sqrt(a_t) * x0_hat) / torch.sqrt(1.0 - a_t)
    return torch.sqrt(a_prev) * x0_hat + torch.sqrt(1.0 - a_prev) * eps_rederived


def ddim_sample(unet: torch.nn.Module, alpha_bars: torch.Tensor, x_T: torch.Tensor, context_pos: torch.Tensor,
                context_neg: Optional[torch.Tensor], steps: int, weight: Callable[[int], float],
                on_step: Optional[Callable[[dict], None]] = None) -> torch.Tensor:
    """Runs DDIM (eta 0) from x_T and returns the final latent x0 [B, C, h, w].

    alpha_bars: float32 [T] checkpoint buffer. weight(i) gives w_i. context_neg None: unguided (one forward).
    on_step, if given, is called after every step with a dict of i, w, a_prev, x_before, x_after, eps_pos, eps_neg.
    """
    T = alpha_bars.shape[0]
    stride, timesteps = ddim_timesteps(T, steps)
    alphas_prev = torch.cat([torch.ones(1, dtype=alpha_bars.dtype, device=alpha_bars.device), alpha_bars[:-1]])
    one = torch.tensor(1.0, dtype=alpha_bars.dtype, device=alpha_bars.device)
    x = x_T
    for i in timesteps:
        w = weight(i) if context_neg is not None else 0.0
        eps, eps_pos, eps_neg = guided_eps(unet, x, i, context_pos, context_neg, w)
        a_t = alpha_bars[i]
        a_prev = alphas_prev[i - stride] if i - stride >= 0 else one
        x_next = ddim_update(x, eps, a_t, a_prev)
        if on_step is not None:
            on_step({"i": i, "w": w, "a_prev": a_prev, "x_before": x, "x_after": x_next,
                     "eps_pos": eps_pos, "eps_neg": eps_neg})
        x = x_next
    return x


def read_inputs(path: str | Path) -> dict[str, torch.Tensor]:
    import h5py

    with h5py.File(path, "r") as f:
        out = {"x_T": torch.from_numpy(f["x_T"][()]).float(),
               "context_pos": torch.from_numpy(f["context_pos"][()]).float()}
        if "context_neg" in f:
            out["context_neg"] = torch.from_numpy(f["context_neg"][()]).float()
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Timed reference DDIM sampling (two forwards of batch B per guided step) "
                                            "followed by VQ decoding.")
    p.add_argument("--arch", required=True, help="architecture TOML ([unet], [diffusion], [decoder])")
    p.add_argument("--unet", required=True, help="ema_averaged_model.ckpt")
    p.add_argument("--decoder", help="first_stage_decoder_state_dict.pt (required unless --no-decode)")
    p.add_argument("--inputs", required=True, help="HDF5 with x_T [B,C,h,w], context_pos [B,512], context_neg [B,512]")
    p.add_argument("--steps", type=int, default=10, help="DDIM step setting: stride T // steps (default 10)")
    p.add_argument("--schedule", choices=SCHEDULES, default="linear",
                   help="guidance schedule: none (one forward), constant (w), linear (w_max*(1-i/T)), "
                        "reverse (w_max*i/T); default linear")
    p.add_argument("--w", type=float, default=0.5, help="weight of the constant schedule (default 0.5)")
    p.add_argument("--w-max", type=float, default=1.0, help="peak weight of linear/reverse (default 1.0)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--out", help="output HDF5: x0 [B,C,h,w] and decoded [B,3,H,W] (before clamping)")
    p.add_argument("--json", help="timing JSON")
    p.add_argument("--no-decode", action="store_true", help="skip VQ decoding (no 'decoded' dataset)")
    p.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda, cuda:N")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="fp32 (default), or torch.autocast to bf16/fp16 as a PyTorch user would")
    args = p.parse_args(argv)
    if not args.no_decode and not args.decoder:
        p.error("--decoder is required unless --no-decode is given")
    if args.steps < 1:
        p.error("--steps must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    arch = idiff_face.load_arch(args.arch)
    unet, schedule = idiff_face.load_unet(args.unet, arch)
    unet = unet.to(device)
    schedule = {name: value.to(device) for name, value in schedule.items()}
    decoder = None if args.no_decode else idiff_face.load_decoder(args.decoder, arch).to(device)
    inputs = {name: value.to(device) for name, value in read_inputs(args.inputs).items()}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16 if args.precision == "bf16" else torch.float16)
                if args.precision != "fp32" else contextlib.nullcontext())
    context_neg = None if args.schedule == "none" else inputs.get("context_neg")
    if args.schedule != "none" and context_neg is None:
        raise SystemExit(f"sampler: {args.inputs} has no context_neg, needed by schedule {args.schedule!r}")
    T = int(schedule["alpha_bars"].shape[0])

    step_seconds: list[float] = []
    last = [0.0]

    def on_step(_: dict) -> None:
        sync()
        now = time.perf_counter()
        step_seconds.append(now - last[0])
        last[0] = now

    with torch.inference_mode(), autocast:
        start = time.perf_counter()
        last[0] = start
        x0 = ddim_sample(unet, schedule["alpha_bars"], inputs["x_T"], inputs["context_pos"], context_neg,
                         args.steps, lambda i: guidance_weight(args.schedule, i, T, args.w, args.w_max), on_step)
        decode_start = time.perf_counter()
        decoded = decoder(x0) if decoder is not None else None
        sync()
        end = time.perf_counter()
    x0 = x0.float().cpu()
    decoded = decoded.float().cpu() if decoded is not None else None

    timing = {
        "threads": args.threads,
        "device": str(device),
        "precision": args.precision,
        "batch": int(x0.shape[0]),
        "steps": len(step_seconds),
        "schedule": args.schedule,
        "forwards_per_step": 1 if context_neg is None else 2,
        "step_seconds": step_seconds,
        "decode_seconds": (end - decode_start) if decoded is not None else None,
        "total_seconds": end - start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "torch_version": torch.__version__,
    }
    if args.out:
        import h5py

        with h5py.File(args.out, "w") as f:
            f.create_dataset("x0", data=x0.numpy())
            if decoded is not None:
                f.create_dataset("decoded", data=decoded.numpy())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(timing, f, indent=2)
            f.write("\n")
    mean = sum(step_seconds) / len(step_seconds)
    decode_text = f"{timing['decode_seconds']:.3f} s" if decoded is not None else "skipped"
    print(f"batch {timing['batch']}, {timing['steps']} steps x {timing['forwards_per_step']} forward(s), "
          f"{args.threads} thread(s): mean step {mean:.3f} s, decode {decode_text}, "
          f"total {timing['total_seconds']:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
