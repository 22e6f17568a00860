"""Python reference implementation of the IDiff-Face sampling model.

Defines, from an architecture TOML with sections [unet], [diffusion] and [decoder]:

* ``ConditionalUNet``: the noise predictor with cross-attention (CA) identity conditioning;
* ``VQDecoder``: the VQ first stage used for decoding (nearest-codebook quantiser, post_quant_conv, decoder);
* the linear noise schedule and its eight checkpoint buffers;
* loaders for the published checkpoint files with strict key checking.

Module and parameter names follow the published state dicts exactly, so the checkpoints load with
``load_state_dict(strict=True)``. Layer-by-layer description: shared/docs/idiff-face-model.md.
All computation is float32, NCHW, inference only.
"""

from __future__ import annotations

import collections
import math
import tomllib
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

# Names of the schedule buffers stored beside the eps_model.* weights, in file order.
SCHEDULE_BUFFER_NAMES = (
    "betas",
    "alphas",
    "sigmas",
    "sqrt_alphas_inv",
    "alpha_bars",
    "sqrt_alpha_bars",
    "sqrt_one_minus_alpha_bars",
    "one_minus_alphas_over_sqrt_one_minus_alpha_bars",
)

UNET_PREFIX = "eps_model."


def load_arch(path: str | Path) -> dict:
    """Reads an architecture TOML and returns its sections as a dict."""
    with open(path, "rb") as f:
        arch = tomllib.load(f)
    for section in ("unet", "diffusion", "decoder"):
        if section not in arch:
            raise ValueError(f"load_arch: {path} has no [{section}] section")
    return arch


# ---------------------------------------------------------------------------------------------------------------
# Noise schedule
# ---------------------------------------------------------------------------------------------------------------


def make_schedule(diffusion: dict) -> "collections.OrderedDict[str, torch.Tensor]":
    """The eight float32 [T] schedule buffers of the linear schedule, in checkpoint order.

    alpha_bars is exp(cumsum(log(alphas))) in float32, not a cumulative product (the two differ in the last bits).
    """
    if diffusion.get("schedule_type", "linear") != "linear":
        raise ValueError(f"make_schedule: schedule_type {diffusion['schedule_type']!r} is not supported")
    T = int(diffusion["T"])
    scale = 1000.0 / T
    betas = torch.linspace(scale * float(diffusion["beta_1"]), scale * float(diffusion["beta_T"]), T,
                           dtype=torch.float32)
    alphas = 1.0 - betas
    alpha_bars = torch.exp(torch.cumsum(torch.log(alphas), dim=0))
    sqrt_one_minus_alpha_bars = torch.sqrt(1.0 - alpha_bars)
    values = {
        "betas": betas,
        "alphas": alphas,
        "sigmas": torch.sqrt(betas),
        "sqrt_alphas_inv": 1.0 / torch.sqrt(alphas),
        "alpha_bars": alpha_bars,
        "sqrt_alpha_bars": torch.sqrt(alpha_bars),
        "sqrt_one_minus_alpha_bars": sqrt_one_minus_alpha_bars,
        "one_minus_alphas_over_sqrt_one_minus_alpha_bars": (1.0 - alphas) / sqrt_one_minus_alpha_bars,
    }
    return collections.OrderedDict((name, values[name]) for name in SCHEDULE_BUFFER_NAMES)


# ---------------------------------------------------------------------------------------------------------------
# ConditionalUNet (CA conditioning)
# ---------------------------------------------------------------------------------------------------------------


def group_norm(channels: int, eps: float) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=eps)


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of the integer timestep (cosine half first), then a two-layer MLP.

    t: [B] int64 -> [B, 4*C0] float32.
    """

    def __init__(self, c0: int, channels: int):
        super().__init__()
        half = c0 // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -math.log(10000.0) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.lin1 = nn.Linear(c0, channels)
        self.act = nn.SiLU()
        self.lin2 = nn.Linear(channels, channels)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.float()[:, None] * self.freqs[None, :]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
        return self.lin2(self.act(self.lin1(emb)))


class NormWrapper(nn.Module):
    """Holds the second GroupNorm of a residual block (the published keys read ``norm2.norm.*``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels, 1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class ResBlock(nn.Module):
    """Residual block with time-dependent scale/shift after the second norm. The identity does not enter here."""

    def __init__(self, in_channels: int, out_channels: int, time_channels: int):
        super().__init__()
        self.norm1 = group_norm(in_channels, 1e-5)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb = nn.Sequential(nn.SiLU(), nn.Linear(time_channels, out_channels))
        self.scale_emb = nn.Linear(out_channels, out_channels)
        self.shift_emb = nn.Linear(out_channels, out_channels)
        self.norm2 = NormWrapper(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.time_emb(temb)
        scale = self.scale_emb(e)[:, :, None, None]
        shift = self.shift_emb(e)[:, :, None, None]
        h = (1.0 + scale) * self.norm2(h) + shift
        h = self.conv2(F.silu(h))
        return h + self.shortcut(x)


class MultiHeadAttention(nn.Module):
    """Multi-head attention over token sequences in channel-first layout.

    q_in: [B, I, Lq], kv_in: [B, Ck, Lk] -> [B, I, Lq]. Heads are contiguous channel blocks of width
    ``head_channels``; q and k are each scaled by head_channels**-0.25.
    """

    def __init__(self, inner: int, kv_channels: int, heads: int, head_channels: int):
        super().__init__()
        self.heads = heads
        self.head_channels = head_channels
        self.to_q = nn.Conv1d(inner, inner, 1)
        self.to_k = nn.Conv1d(kv_channels, inner, 1)
        self.to_v = nn.Conv1d(kv_channels, inner, 1)
        self.proj_out = nn.Conv1d(inner, inner, 1)

    def forward(self, q_in: torch.Tensor, kv_in: Optional[torch.Tensor] = None) -> torch.Tensor:
        if kv_in is None:
            kv_in = q_in
        b, inner, lq = q_in.shape
        split = (b * self.heads, self.head_channels, -1)
        q = self.to_q(q_in).reshape(split)
        k = self.to_k(kv_in).reshape(split)
        v = self.to_v(kv_in).reshape(split)
        s = 1.0 / math.sqrt(math.sqrt(self.head_channels))
        weights = torch.softmax(torch.einsum("nci,ncj->nij", q * s, k * s), dim=-1)  # [B*nh, Lq, Lk]
        out = torch.einsum("nij,ncj->nci", weights, v).reshape(b, inner, lq)
        return self.proj_out(out)


class CrossAttentionBlock(nn.Module):
    """Self-attention, cross-attention to the identity tokens, and a feed-forward, each with a residual.

    x: [B, C, H, W], c: [B, D] projected context -> [B, C, H, W]. The context becomes ``head_channels`` tokens
    of width D (channel-major split of a Linear D -> D*tokens). One GroupNorm (x_norm) serves all three stages.
    """

    def __init__(self, channels: int, context_channels: int, heads: int, head_channels: int):
        super().__init__()
        if heads <= 0:
            heads = channels // head_channels
        inner = heads * head_channels
        self.context_channels = context_channels
        self.context_tokens = head_channels
        self.x_proj_in = nn.Conv2d(channels, inner, 1)
        self.x_proj_out = nn.Conv2d(inner, channels, 1)
        self.self_attention = MultiHeadAttention(inner, inner, heads, head_channels)
        self.c_proj_in = nn.Linear(context_channels, context_channels * self.context_tokens)
        self.cross_attention = MultiHeadAttention(inner, context_channels, heads, head_channels)
        self.x_norm = group_norm(inner, 1e-5)
        self.c_norm = group_norm(context_channels, 1e-5)
        self.ff = nn.Sequential(nn.Linear(inner, 4 * inner), nn.GELU(), nn.Linear(4 * inner, inner))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        x_in = x
        x = self.x_proj_in(x).flatten(2)  # [B, I, N]
        u = self.c_proj_in(c).reshape(b, self.context_channels, self.context_tokens)
        u = self.c_norm(u)
        x = self.self_attention(self.x_norm(x)) + x
        x = self.cross_attention(self.x_norm(x), u) + x
        x = self.ff(self.x_norm(x).transpose(1, 2)).transpose(1, 2) + x
        x = self.x_proj_out(x.reshape(b, -1, h, w))
        return x + x_in


class ResAttnBlock(nn.Module):
    """One entry of the down/up lists: a residual block, optionally followed by cross-attention."""

    def __init__(self, in_channels: int, out_channels: int, time_channels: int, has_attn: bool, u: dict):
        super().__init__()
        self.res = ResBlock(in_channels, out_channels, time_channels)
        if has_attn:
            self.attn = CrossAttentionBlock(out_channels, u["context_channels"], u["attention_heads"],
                                            u["attention_head_channels"])
        else:
            self.attn = None

    def forward(self, x: torch.Tensor, temb: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = self.res(x, temb)
        if self.attn is not None:
            x = self.attn(x, c)
        return x


class Downsample(nn.Module):
    """3x3 convolution with stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, temb: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """4x4 transposed convolution with stride 2 (doubles H and W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor, temb: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class MiddleBlock(nn.Module):
    def __init__(self, channels: int, time_channels: int, u: dict):
        super().__init__()
        self.res1 = ResBlock(channels, channels, time_channels)
        self.attn = CrossAttentionBlock(channels, u["context_channels"], u["attention_heads"],
                                        u["attention_head_channels"])
        self.res2 = ResBlock(channels, channels, time_channels)

    def forward(self, x: torch.Tensor, temb: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.res2(self.attn(self.res1(x, temb), c), temb)


class ConditionalUNet(nn.Module):
    """Noise predictor eps(x_t, t, context) with cross-attention identity conditioning.

    forward(x [B, C, H, W] float32, t [B] int64, context [B, 512] float32 or None) -> eps [B, C, H, W].
    A None context stands for the all-zero vector in the projected width (not a zero 512-vector input).
    """

    def __init__(self, unet: dict):
        super().__init__()
        u = dict(unet)
        if u.get("condition_type", "CA") != "CA":
            raise ValueError(f"ConditionalUNet: condition_type {u['condition_type']!r} is not supported (CA only)")
        if int(u.get("n_context_classes", 0)) > 0 or u.get("learn_empty_context", False):
            raise ValueError("ConditionalUNet: n_context_classes > 0 and learn_empty_context are not supported")
        in_ch = int(u["input_channels"])
        c0 = int(u["initial_channels"])
        mults = [int(m) for m in u["channel_multipliers"]]
        is_attn = [bool(a) for a in u["is_attention"]]
        nb = int(u["n_blocks_per_resolution"])
        time_channels = 4 * c0
        self.context_channels = int(u["context_channels"])
        self.n_levels = len(mults)

        self.image_proj = nn.Conv2d(in_ch, c0, 3, padding=1)
        self.time_emb = TimeEmbedding(c0, time_channels)
        self.context_emb = nn.Linear(int(u["context_input_channels"]), self.context_channels)

        widths = []  # C_i, cumulative multipliers
        width = c0
        for m in mults:
            width *= m
            widths.append(width)

        down = []
        prev = c0
        for i, ci in enumerate(widths):
            for k in range(nb):
                down.append(ResAttnBlock(prev if k == 0 else ci, ci, time_channels, is_attn[i], u))
            prev = ci
            if i < self.n_levels - 1:
                down.append(Downsample(ci))
        self.down = nn.ModuleList(down)

        self.middle = MiddleBlock(widths[-1], time_channels, u)

        up = []
        for i in reversed(range(self.n_levels)):
            ci = widths[i]
            c_below = widths[i - 1] if i > 0 else c0
            for _ in range(nb):
                up.append(ResAttnBlock(ci + ci, ci, time_channels, is_attn[i], u))
            up.append(ResAttnBlock(ci + c_below, c_below, time_channels, is_attn[i], u))
            if i > 0:
                up.append(Upsample(c_below))
        self.up = nn.ModuleList(up)

        self.norm = group_norm(c0, 1e-5)
        self.final = nn.Conv2d(c0, in_ch, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        temb = self.time_emb(t)
        x = self.image_proj(x)
        if context is None:
            c = x.new_zeros(x.shape[0], self.context_channels)
        else:
            c = self.context_emb(context)
        hs = [x]
        for block in self.down:
            x = block(x, temb, c)
            hs.append(x)
        x = self.middle(x, temb, c)
        for block in self.up:
            if not isinstance(block, Upsample):
                x = torch.cat([x, hs.pop()], dim=1)
            x = block(x, temb, c)
        return self.final(F.silu(self.norm(x)))

    def zero_initialised_convs(self) -> list[nn.Conv2d]:
        """The convolutions that start at zero in training: conv2 of every ResBlock, x_proj_out, final."""
        convs = [m.conv2 for m in self.modules() if isinstance(m, ResBlock)]
        convs += [m.x_proj_out for m in self.modules() if isinstance(m, CrossAttentionBlock)]
        convs.append(self.final)
        return convs


class DiffusionWrapper(nn.Module):
    """Holds the UNet as ``eps_model`` next to the eight schedule buffers: the layout of ema_averaged_model.ckpt."""

    def __init__(self, arch: dict):
        super().__init__()
        T = int(arch["diffusion"]["T"])
        for name in SCHEDULE_BUFFER_NAMES:
            self.register_buffer(name, torch.zeros(T, dtype=torch.float32))
        self.eps_model = ConditionalUNet(arch["unet"])

    def schedule(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in SCHEDULE_BUFFER_NAMES}


# ---------------------------------------------------------------------------------------------------------------
# VQ decoder
# ---------------------------------------------------------------------------------------------------------------


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class ResnetBlock(nn.Module):
    """Unconditional residual block of the decoder (GroupNorm eps 1e-6, no dropout at inference)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = group_norm(in_channels, 1e-6)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels, 1e-6)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)
        else:
            self.nin_shortcut = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        if self.nin_shortcut is not None:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all spatial positions."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels, 1e-6)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        hn = self.norm(x)
        q = self.q(hn).reshape(b, c, h * w)
        k = self.k(hn).reshape(b, c, h * w)
        v = self.v(hn).reshape(b, c, h * w)
        weights = torch.softmax(torch.bmm(q.transpose(1, 2), k) * (c ** -0.5), dim=2)  # [B, N_q, N_k]
        out = torch.bmm(v, weights.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.proj_out(out)


class DecoderUpsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DecoderLevel(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, n_blocks: int, with_attn: bool, with_upsample: bool):
        super().__init__()
        self.block = nn.ModuleList(
            ResnetBlock(in_channels if j == 0 else out_channels, out_channels) for j in range(n_blocks))
        self.attn = nn.ModuleList(AttnBlock(out_channels) for _ in range(n_blocks) if with_attn)
        if with_upsample:
            self.upsample = DecoderUpsample(out_channels)
        else:
            self.upsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for j, block in enumerate(self.block):
            x = block(x)
            if len(self.attn) > 0:
                x = self.attn[j](x)
        if self.upsample is not None:
            x = self.upsample(x)
        return x


class MidBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Decoder(nn.Module):
    """Convolutional decoder z [B, z_channels, h, w] -> image [B, out_ch, h*2^(n-1), w*2^(n-1)] (no tanh).

    ``up`` is stored lowest level (full resolution) first and run from the top level down.
    """

    def __init__(self, d: dict):
        super().__init__()
        ch = int(d["ch"])
        ch_mult = [int(m) for m in d["ch_mult"]]
        n_blocks = int(d["num_res_blocks"]) + 1
        attn_resolutions = [int(r) for r in d.get("attn_resolutions", [])]
        n = len(ch_mult)
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(int(d["z_channels"]), block_in, 3, padding=1)
        self.mid = MidBlock(block_in)

        levels: list[Optional[DecoderLevel]] = [None] * n
        res = int(d["resolution"]) // 2 ** (n - 1)
        for level in reversed(range(n)):
            block_out = ch * ch_mult[level]
            levels[level] = DecoderLevel(block_in, block_out, n_blocks, res in attn_resolutions, level != 0)
            block_in = block_out
            if level != 0:
                res *= 2
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm(block_in, 1e-6)
        self.conv_out = nn.Conv2d(block_in, int(d["out_ch"]), 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(swish(self.norm_out(h)))


class Quantizer(nn.Module):
    """Nearest-codebook-row quantiser; the codebook is ``embedding.weight`` [n_embed, embed_dim]."""

    def __init__(self, n_embed: int, embed_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, E, H, W] -> int64 [B, H, W]: argmin of |z|^2 + |e|^2 - 2 z.e (first minimum on ties)."""
        b, e, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, e)
        codebook = self.embedding.weight
        dist = (torch.sum(flat ** 2, dim=1, keepdim=True) + torch.sum(codebook ** 2, dim=1)
                - 2.0 * torch.matmul(flat, codebook.t()))
        return torch.argmin(dist, dim=1).reshape(b, h, w)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (quantised z [B, E, H, W], indices [B, H, W]); the value is formed as z + (e - z)."""
        idx = self.indices(z)
        zq = self.embedding.weight[idx].permute(0, 3, 1, 2)
        return z + (zq - z), idx


class VQDecoder(nn.Module):
    """First stage used for decoding: quantise, post_quant_conv (1x1), decoder.

    forward(z [B, embed_dim, h, w]) -> image [B, out_ch, H, W], roughly in [-1, 1] (not clamped).
    """

    def __init__(self, decoder: dict):
        super().__init__()
        d = dict(decoder)
        self.decoder = Decoder(d)
        self.quantize = Quantizer(int(d.get("n_embed", 8192)), int(d.get("embed_dim", 3)))
        self.post_quant_conv = nn.Conv2d(int(d.get("embed_dim", 3)), int(d["z_channels"]), 1)

    def forward(self, z: torch.Tensor, quantize: bool = True) -> torch.Tensor:
        if quantize:
            z, _ = self.quantize(z)
        return self.decoder(self.post_quant_conv(z))


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------


def load_unet(ckpt_path: str | Path, arch: dict) -> tuple[ConditionalUNet, dict[str, torch.Tensor]]:
    """Loads ema_averaged_model.ckpt strictly (eps_model.* plus the 8 schedule buffers).

    Returns (UNet in eval mode, {buffer name: float32 [T] tensor}).
    """
    state = torch.load(str(ckpt_path), map_location="cpu")
    wrapper = DiffusionWrapper(arch)
    wrapper.load_state_dict(state, strict=True)
    unet = wrapper.eps_model.eval()
    return unet, wrapper.schedule()


def load_decoder(path: str | Path, arch: dict) -> VQDecoder:
    """Loads first_stage_decoder_state_dict.pt strictly; returns the VQDecoder in eval mode."""
    state = torch.load(str(path), map_location="cpu")
    model = VQDecoder(arch["decoder"])
    model.load_state_dict(state, strict=True)
    return model.eval()


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Print the parameter counts of the models an architecture TOML "
                                                 "describes and, given checkpoint files, check that they load.")
    parser.add_argument("--arch", required=True, help="architecture TOML ([unet], [diffusion], [decoder])")
    parser.add_argument("--unet", help="ema_averaged_model.ckpt to load strictly")
    parser.add_argument("--decoder", help="first_stage_decoder_state_dict.pt to load strictly")
    args = parser.parse_args(argv)
    arch = load_arch(args.arch)
    if args.unet:
        unet, _ = load_unet(args.unet, arch)
        print(f"{args.unet}: loads, {sum(p.numel() for p in unet.parameters())} UNet parameters")
    else:
        print(f"unet parameters: {sum(p.numel() for p in ConditionalUNet(arch['unet']).parameters())}")
    if args.decoder:
        dec = load_decoder(args.decoder, arch)
        print(f"{args.decoder}: loads, {sum(p.numel() for p in dec.parameters())} numbers")
    else:
        print(f"decoder numbers: {sum(p.numel() for p in VQDecoder(arch['decoder']).parameters())}")


if __name__ == "__main__":
    main()
