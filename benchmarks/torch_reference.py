"""A PyTorch-eager implementation of the Privacy-Phys edit, for side-by-side speed comparisons only.

The same algorithm as `rppgedit.editors.privacy_phys` with its default config (Sun & Li, "Privacy-Phys:
Facial Video-Based Physiological Modification for Privacy Protection", IEEE SPL 29, 2022): Adam on a
perturbation of the face crop, 20 steps, learning rate 0.1 on the 0-255 scale, loss
-Pearson(PhysNet(x), target) + 0.1 * MSE(x, clip) on the 0-255 scale. PhysNet (Yu, Li & Zhao, BMVC
2019) is open-rppg's trained network with BatchNorm folded into the convolutions, fed through an
OpenCV-INTER_AREA downsample of the crop to 32x32 and open-rppg's input/output standardisation.

Two parameterisations, as in rppgedit:
- `param_size=32` (rppgedit's default): a (T, 32, 32, 3) perturbation, bilinearly upsampled to the crop
  (half-pixel centres, edge clamped), added on skin pixels, clipped to [0, 1];
- `param_size=None`: every crop pixel is a parameter, projected back onto the skin mask and the [0, 1]
  range after every step (the paper's PGD; the "plain re-implementation" measured in the project notes).

Written in plain eager PyTorch (`torch.nn.functional.conv3d` in NCDHW, which runs oneDNN on CPU),
without the reformulations rppgedit uses, so that it stands for "what a straightforward PyTorch port
costs". It shares no code with rppgedit: the weights are copied from rppgedit's folded PhysNet
parameters, and the area-resize weights are read off OpenCV itself (`cv2.resize` of unit vectors).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

LEVELS = 255.0
_EPS = 1e-6  # open-rppg's standardisation epsilon
_ENCODER = (  # (name, max-pool window after the block or None)
    ("ConvBlock1", (1, 2, 2)),
    ("ConvBlock2", None),
    ("ConvBlock3", (2, 2, 2)),
    ("ConvBlock4", None),
    ("ConvBlock5", (2, 2, 2)),
    ("ConvBlock6", None),
    ("ConvBlock7", (1, 2, 2)),
    ("ConvBlock8", None),
    ("ConvBlock9", None),
)
_DECODER = ("upsample", "upsample2")


def torch_weights(folded_params: Mapping[str, Any]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """PyTorch tensors from rppgedit's BatchNorm-folded PhysNet params (`fold_batchnorm(...)['params']`).

    Conv3d kernels (D,H,W,in,out) become (out,in,D,H,W). The transposed convolutions' Keras kernels
    (D,H,W,out,in), applied by JAX with `transpose_kernel=True`, become ConvTranspose3d weights
    (in,out,D,H,W): the same array with its axes permuted, no flip (checked against rppgedit's
    forward pass by `tests/speed_parity_test.py`).

    Returns:
      {block name: (weight, bias)} float32 CPU tensors; "ConvBlock10" holds the final (1, 64) linear map.
    """
    out = {}
    for name, _ in _ENCODER:
        conv = folded_params[name]["conv"]
        kernel = torch.from_numpy(np.array(conv["kernel"], np.float32))
        out[name] = (kernel.permute(4, 3, 0, 1, 2).contiguous(), _tensor(conv["bias"]))
    for name in _DECODER:
        conv = folded_params[name]["conv"]
        kernel = torch.from_numpy(np.array(conv["kernel"], np.float32))  # (D,H,W,out,in)
        out[name] = (kernel.permute(4, 3, 0, 1, 2).contiguous(), _tensor(conv["bias"]))
    last = folded_params["ConvBlock10"]
    out["ConvBlock10"] = (
        torch.from_numpy(np.array(last["kernel"], np.float32).reshape(64, 1).T.copy()),
        _tensor(last["bias"]),
    )
    return out


def _tensor(a) -> torch.Tensor:
    return torch.from_numpy(np.array(a, np.float32))


def physnet(
    weights: Mapping[str, tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor
) -> torch.Tensor:
    """Raw PhysNet output.

    Args:
      weights: from `torch_weights`.
      x: (B, 3, T, 32, 32) standardised input (NCDHW).

    Returns:
      (B, T) un-normalised output.
    """
    for name, pool in _ENCODER:
        weight, bias = weights[name]
        pad = tuple(k // 2 for k in weight.shape[2:])
        x = F.relu(F.conv3d(x, weight, bias, padding=pad))
        if pool is not None:
            x = F.max_pool3d(x, pool, pool)
    for name in _DECODER:
        weight, bias = weights[name]
        x = F.elu(F.conv_transpose3d(x, weight, bias, stride=(2, 1, 1), padding=(1, 0, 0)))
    x = x.mean(dim=(3, 4))  # (B, 64, T): global spatial mean (the 2x2 average pool at 32x32)
    weight, bias = weights["ConvBlock10"]
    return torch.einsum("oc,bct->bt", weight, x) + bias


def _standardize(x: torch.Tensor, dims, eps: float) -> torch.Tensor:
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True, unbiased=False)
    return (x - mean) / (std + eps)


def bvp(
    weights, clip: torch.Tensor, resize: tuple[torch.Tensor, torch.Tensor] | None
) -> torch.Tensor:
    """open-rppg's PhysNet BVP of one crop.

    Args:
      weights: from `torch_weights`.
      clip: (T, H, W, 3) float in [0, 1].
      resize: (Wy (32, H), Wx (32, W)) area-resize matrices, or None when H = W = 32.

    Returns:
      (T,) BVP, standardised along T as open-rppg does.
    """
    if resize is not None:
        wy, wx = resize
        clip = torch.einsum("oh,thwc,pw->topc", wy, clip, wx)
    x = _standardize(clip, (0, 1, 2), _EPS)  # per channel over (T, H, W)
    x = x.permute(3, 0, 1, 2).unsqueeze(0)  # (1, 3, T, 32, 32)
    y = physnet(weights, x)[0]
    y = _standardize(y, (0,), 0.0)
    return _standardize(y, (0,), _EPS)


def area_matrix(src: int, dst: int) -> torch.Tensor:
    """(dst, src) weights of OpenCV's INTER_AREA along one axis, read off `cv2.resize` itself."""
    eye = np.eye(src, dtype=np.float32)  # column j: a unit impulse at source pixel j
    out = cv2.resize(eye, (src, dst), interpolation=cv2.INTER_AREA)  # resize rows only: (dst, src)
    return torch.from_numpy(np.ascontiguousarray(out))


def _pearson(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    xc, yc = x - x.mean(), y - y.mean()
    return (xc * yc).sum() / (xc.norm().clamp_min(eps) * yc.norm().clamp_min(eps))


def edit(
    weights,
    clip: np.ndarray,
    mask: np.ndarray,
    target: np.ndarray,
    *,
    steps: int = 20,
    learning_rate: float = 0.1,
    fidelity_weight: float = 0.1,
    param_size: int | None = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """One Privacy-Phys edit of one window, eagerly in PyTorch.

    Args:
      weights: from `torch_weights`.
      clip: (T, H, W, 3) float32 in [0, 1], T divisible by 4.
      mask: (T, H, W) bool, the pixels that may change.
      target: (T,) target waveform.
      steps, learning_rate, fidelity_weight: Adam steps, its learning rate in grey levels, lambda.
      param_size: side of the upsampled perturbation grid, or None for per-pixel PGD.

    Returns:
      (edited clip (T, H, W, 3) float32 in [0, 1], surrogate BVP (T,) on the edited clip).
    """
    clip_t = torch.from_numpy(np.ascontiguousarray(clip, np.float32))
    keep = torch.from_numpy(np.ascontiguousarray(mask, bool))[..., None]
    target_t = torch.from_numpy(np.ascontiguousarray(target, np.float32))
    t, h, w, _ = clip.shape
    resize = None if (h, w) == (32, 32) else (area_matrix(h, 32), area_matrix(w, 32))

    if param_size is None:
        delta = torch.zeros_like(clip_t, requires_grad=True)
        low, high = -clip_t * LEVELS, (1.0 - clip_t) * LEVELS

        def apply(d):
            return torch.where(keep, torch.clamp(clip_t + d / LEVELS, 0.0, 1.0), clip_t)

    else:
        delta = torch.zeros((t, 3, param_size, param_size), requires_grad=True)

        def apply(d):
            if (param_size, param_size) != (h, w):
                d = F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False)
            d = d.permute(0, 2, 3, 1)
            return torch.where(keep, torch.clamp(clip_t + d / LEVELS, 0.0, 1.0), clip_t)

    opt = torch.optim.Adam([delta], lr=learning_rate)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        x = apply(delta)
        mse = torch.mean(torch.square((x - clip_t) * LEVELS))
        loss = -_pearson(bvp(weights, x, resize), target_t) + fidelity_weight * mse
        loss.backward()
        opt.step()
        if param_size is None:
            with torch.no_grad():
                delta.copy_(torch.where(keep, torch.minimum(torch.maximum(delta, low), high), 0.0))
    with torch.no_grad():
        edited = apply(delta)
        out_bvp = bvp(weights, edited, resize)
    return edited.numpy(), out_bvp.numpy()


def edit_video(
    input_path: str,
    output_path: str,
    weights,
    target_hr: float,
    *,
    work_size: int = 64,
    window: int = 128,
    overlap: int = 32,
) -> dict:
    """The whole edit command as a straightforward PyTorch port does it, for end-to-end timing.

    Decodes the whole video into memory (OpenCV), tracks the face and masks the skin (rppgedit's
    tracker and skin mask: both sides use the same detector, so tracking is not what is compared),
    crops each frame to `work_size` (OpenCV INTER_AREA), edits 128-frame windows overlapping by
    `overlap` with `edit` (PhysNet, 20 Adam steps, a 32x32 perturbation grid), blends the windows'
    residuals with linear cross-fades, pastes each residual back into its box (OpenCV INTER_LINEAR,
    skin pixels only), rounds to 8 bits, writes lossless FFV1 (OpenCV's writer) and reports PSNR
    and PhysNet's heart rate before and after. It does less than `rppgedit edit`'s defaults (one
    surrogate instead of four, no SSIM, one reader instead of four): a lower bound on what such a
    port costs. Returns {"frames", "seconds", "fps", "psnr_db", "hr_before", "hr_after"}.
    """
    from rppgedit import signals
    from rppgedit.video import crop, face, skin
    from rppgedit.windows import overlap_add, window_starts

    tic = time.perf_counter()
    capture = cv2.VideoCapture(input_path)
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise ValueError(f"{input_path}: no frames decoded")
    frames = np.stack(frames)
    num, height, width, _ = frames.shape
    boxes = face.track_face(frames)
    rects = [crop.pixel_rect(b[None], height, width) for b in boxes]
    crops = (
        np.stack(
            [
                cv2.resize(f[y0:y1, x0:x1], (work_size, work_size), interpolation=cv2.INTER_AREA)
                for f, (y0, y1, x0, x1) in zip(frames, rects, strict=True)
            ]
        ).astype(np.float32)
        / LEVELS
    )
    masks = skin.skin_mask(crops)
    t = np.arange(num) / fps
    target = np.sin(2 * np.pi * target_hr / 60.0 * t).astype(np.float32)
    starts = window_starts(num, window, overlap)
    residuals, bvp_before, bvp_after = [], [], []
    resize = (area_matrix(work_size, 32), area_matrix(work_size, 32))
    for s in starts:
        clip, mask, wave = crops[s : s + window], masks[s : s + window], target[s : s + window]
        edited, out = edit(weights, clip, mask, wave)
        residuals.append(edited - clip)
        bvp_after.append(out)
        with torch.no_grad():
            bvp_before.append(bvp(weights, torch.from_numpy(clip), resize).numpy())
    residual = overlap_add(np.stack(residuals), starts, num)
    out_frames = frames.copy()
    for i, (y0, y1, x0, x1) in enumerate(rects):
        size = (x1 - x0, y1 - y0)
        up = cv2.resize(residual[i], size, interpolation=cv2.INTER_LINEAR) * LEVELS
        keep = cv2.resize(masks[i].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        patch = frames[i, y0:y1, x0:x1].astype(np.float32) + up * keep[..., None]
        out_frames[i, y0:y1, x0:x1] = np.clip(np.rint(patch), 0, 255).astype(np.uint8)
    writer = cv2.VideoWriter(output_path, cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height))
    if not writer.isOpened():
        raise ValueError(f"{output_path}: OpenCV cannot write FFV1 here")
    for f in out_frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    squared = sum(  # frame by frame: the whole clip in float64 is 28 GB at 1080p
        float(np.sum(np.square(o.astype(np.int32) - f)))
        for o, f in zip(out_frames, frames, strict=True)
    )
    mse = squared / frames.size
    seconds = time.perf_counter() - tic

    def rate(windows) -> float:  # read as rppgedit's report reads a BVP
        trace = overlap_add(np.stack(windows)[..., None], starts, num)[:, 0]
        return float(signals.heart_rate(trace, fps))

    return {
        "frames": int(num),
        "seconds": seconds,
        "fps": num / seconds,
        "psnr_db": float("inf") if mse == 0 else float(10 * np.log10(LEVELS**2 / mse)),
        "hr_before": rate(bvp_before),
        "hr_after": rate(bvp_after),
    }


def main() -> None:
    """`python benchmarks/torch_reference.py INPUT OUTPUT [--target_hr 120]`: `edit_video` on a
    file, on two threads; prints one JSON line with its results and the process's peak RSS."""
    import argparse
    import json
    import resource

    from rppgedit.editors import privacy_phys
    from rppgedit.models import physnet as rppgedit_physnet

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--target_hr", type=float, default=120.0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    tic = time.perf_counter()
    cfg = privacy_phys.Config(fps=30.0, surrogates=(("physnet_pure", 1.0),))
    params = privacy_phys.load_state(cfg)["physnet_pure"]
    weights = torch_weights(rppgedit_physnet.fold_batchnorm(params)["params"])
    result = edit_video(args.input, args.output, weights, args.target_hr)
    result["wall_s"] = time.perf_counter() - tic  # with the weights' loading
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
