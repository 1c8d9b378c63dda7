"""PhysNet: a 3-D CNN that reads the blood-volume pulse (BVP) from a face clip.

Yu, Li, Zhao, "Remote Photoplethysmograph Signal Measurement from Facial Videos Using
Spatio-Temporal Networks", BMVC 2019. The layout here is the `PhysNet_padding_Encoder_Decoder_MAX`
variant of rPPG-Toolbox (Liu et al., NeurIPS 2023 Datasets and Benchmarks), as shipped with trained
weights by open-rppg 0.1.1 (Kegang Wang, MIT): nine Conv3D+BN+ReLU blocks with max-pooling, two
temporal transposed convolutions + BN + ELU, a spatial average and a 1x1x1 convolution to one channel.

open-rppg feeds 128 frames of a 32x32 face crop (OpenCV INTER_AREA resize of the face box) at 30 fps.
Its preprocessing and output normalisation are reproduced exactly by `estimate_bvp`:
  x / 255 (done by the caller: clips here are float in [0, 1])
  -> per clip, per channel (x - mean) / (std + 1e-6) over (T, H, W)       [`standardize_input`]
  -> network -> (y - mean) / std over T -> (y - mean) / (std + 1e-6) over T.

The final spatial reduction is a global spatial mean: identical to the trained model's (1,2,2) average
pool at 32x32 input (where the feature map is 2x2), and defined for any input size.

BatchNorm always uses its running statistics at inference. `fold_batchnorm` folds them into the
convolutions for a faster, inference-only parameter set (`PhysNet(folded=True)`); `estimate_bvp`
picks the folded path by itself when the variables have no `batch_stats`.

Two numerically equivalent formulations of the same network (`impl`, see `IMPLS`):
- "lax": the textbook one, 3-D `lax.conv_general_dilated` and `reduce_window` max-pooling;
- "stacked": the 3x3x3 convolutions as 2-D 3x3 convolutions over the frames, with the three
  time-shifted copies of the input stacked on the channel axis (kernel reshaped to (3, 3, 3C, O));
  the first (1,5,5) convolution plus its (1,2,2) max-pool as one 3x3 convolution on a
  space-to-depth input (2x2 pixel blocks as 12 channels, the 4 output phases as 4x16 channels,
  then a max over the phases); max-pooling as a reshape and a max. Every output is the same sum
  of the same products (extra taps are exact zeros), so the two agree to float32 rounding; in
  float64 they agree to 1e-12 (`tests/speed_parity_test.py`). The 2-D convolutions carry a custom
  gradient (`_conv2d`) that keeps XLA CPU on its fast convolution path inside `lax.scan`.
  Measured on a 2-core AMD EPYC (Zen 4), XLA CPU, jax 0.10.2: the 20-step Privacy-Phys edit of a
  128x32x32 window takes 3.97 s with "stacked" and 16.96 s with "lax" (4.3x; `benchmarks/realtime.py`).
"auto" (the default, `DEFAULT_IMPL`) picks "stacked" when the default JAX backend is the CPU and
"lax" elsewhere (GPU convolution libraries have native 3-D kernels; not measured here).

The one difference beyond rounding: where several inputs of a pooling window tie for the maximum,
the gradient of "lax" goes to the first of them and that of "stacked" is shared among them. After a
ReLU, ties are zeros whose own gradient is zero, so gradients agree in practice.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

KERAS_BN_EPSILON = 1e-3  # BatchNorm epsilon of the Keras (open-rppg) weights.
TORCH_BN_EPSILON = 1e-5  # BatchNorm epsilon of PyTorch (rPPG-Toolbox) weights.
TRAINED_INPUT_SIZE = 32  # Face-crop side the open-rppg weights were trained on.
TRAINED_FPS = 30.0  # Frame rate the open-rppg weights were trained on.

_INPUT_EPS = 1e-6  # open-rppg's epsilon in both standardisations.
IMPLS = ("auto", "lax", "stacked")  # formulations of the same network (see the module docstring)
# The formulation used where none is passed (`impl=None`), e.g. through the estimator registry. It is
# read when a function is traced: after changing it, `jax.clear_caches()` before calling jitted code.
DEFAULT_IMPL = "auto"

# (name, features, kernel size, temporal-spatial max-pool window after the block or None).
_ENCODER = (
    ("ConvBlock1", 16, (1, 5, 5), (1, 2, 2)),
    ("ConvBlock2", 32, (3, 3, 3), None),
    ("ConvBlock3", 64, (3, 3, 3), (2, 2, 2)),
    ("ConvBlock4", 64, (3, 3, 3), None),
    ("ConvBlock5", 64, (3, 3, 3), (2, 2, 2)),
    ("ConvBlock6", 64, (3, 3, 3), None),
    ("ConvBlock7", 64, (3, 3, 3), (1, 2, 2)),
    ("ConvBlock8", 64, (3, 3, 3), None),
    ("ConvBlock9", 64, (3, 3, 3), None),
)
_DECODER = ("upsample", "upsample2")  # Conv3DTranspose (4,1,1), stride (2,1,1), BN, ELU.


def resolve_impl(impl: str | None) -> str:
    """The concrete formulation ("lax" or "stacked") that `impl` stands for on the default backend.

    None means `DEFAULT_IMPL`; "auto" means "stacked" on the CPU backend and "lax" elsewhere.
    """
    impl = DEFAULT_IMPL if impl is None else impl
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        return "stacked" if jax.default_backend() == "cpu" else "lax"
    return impl


def _same_padding(size: int) -> tuple[int, int]:
    """Keras/XLA "same" padding of a stride-1 kernel of `size` taps: (before, after)."""
    return (size - 1) // 2, size // 2


_NHWC = ("NHWC", "HWIO", "NHWC")


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv2d(x: jax.Array, kernel: jax.Array, padding: tuple[tuple[int, int], ...]) -> jax.Array:
    """Stride-1 NHWC/HWIO 2-D convolution whose input gradient is again a plain HWIO convolution.

    JAX differentiates a convolution into one with a reversed kernel in (O, I) layout. Inside a
    `lax.scan` (the editors' optimisation loop) XLA CPU keeps that layout, which its fast
    convolution library (YNNPACK) does not take, and falls back to a 3-4x slower convolution. Here
    the flipped, transposed kernel is built explicitly: the same sums, in the fast path.
    """
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_NHWC)


def _conv2d_fwd(x, kernel, padding):
    return _conv2d(x, kernel, padding), (x, kernel)


def _conv2d_bwd(padding, residuals, g):
    x, kernel = residuals
    kh, kw = kernel.shape[:2]
    flipped = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)  # (kh, kw, O, I)
    back = tuple((k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip((kh, kw), padding, strict=True))
    dx = jax.lax.conv_general_dilated(g, flipped, (1, 1), back, dimension_numbers=_NHWC)
    _, kernel_vjp = jax.vjp(
        lambda k: jax.lax.conv_general_dilated(x, k, (1, 1), padding, dimension_numbers=_NHWC),
        kernel,
    )
    return dx, kernel_vjp(g)[0]


_conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def conv3d(x: jax.Array, kernel: jax.Array, impl: str | None = None) -> jax.Array:
    """Stride-1, "same"-padded 3-D convolution (cross-correlation, no bias).

    Args:
      x: (N, T, H, W, C) float.
      kernel: (kt, kh, kw, C, O).
      impl: "lax" (one 3-D convolution) or "stacked" (kt time-shifted copies of x stacked on the
        channel axis, then one 2-D convolution over the N*T frames); None or "auto" as
        `resolve_impl`.

    Returns:
      (N, T, H, W, O), the same sums of products either way.
    """
    kt, kh, kw, c, o = kernel.shape
    if resolve_impl(impl) == "lax":
        return jax.lax.conv_general_dilated(
            x, kernel, (1, 1, 1), "SAME", dimension_numbers=("NDHWC", "DHWIO", "NDHWC")
        )
    n, t, h, w, _ = x.shape
    if kt > 1:
        x = jnp.pad(x, ((0, 0), _same_padding(kt), (0, 0), (0, 0), (0, 0)))
        # Channel block i holds frame t + i - before, which kernel tap i multiplies.
        x = jnp.concatenate([x[:, i : i + t] for i in range(kt)], axis=-1)
    kernel2d = jnp.transpose(kernel, (1, 2, 0, 3, 4)).reshape(kh, kw, kt * c, o)
    padding = (_same_padding(kh), _same_padding(kw))
    y = _conv2d(x.reshape(n * t, h, w, kt * c), kernel2d, padding)
    return y.reshape(n, t, h, w, o)


@functools.lru_cache(maxsize=8)
def _space_to_depth_taps(kh: int, kw: int) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """Gather indices that turn a (kh, kw) kernel into its 2x2 space-to-depth form.

    Output pixel (2i + a, 2j + b) of a "same" (kh, kw) convolution reads input pixel
    (2i + a + dy - py, 2j + b + dx - px), i.e. block (i + u, j + v) at phase (p, q) with
    a + dy - py = 2u + p. Returns an index array (U, V, 2, 2, 2, 2) over (u, v, p, q, a, b) into the
    flattened kernel taps (kh*kw entries, and index kh*kw for a zero tap), and the block padding
    (before, after) along H and along W.
    """
    py, px = _same_padding(kh)[0], _same_padding(kw)[0]
    offs_y = [a + dy - py for a in (0, 1) for dy in range(kh)]
    offs_x = [b + dx - px for b in (0, 1) for dx in range(kw)]
    u0, u1 = min(offs_y) // 2, max(offs_y) // 2
    v0, v1 = min(offs_x) // 2, max(offs_x) // 2
    index = np.full((u1 - u0 + 1, v1 - v0 + 1, 2, 2, 2, 2), kh * kw, np.int32)
    for a in (0, 1):
        for b in (0, 1):
            for dy in range(kh):
                for dx in range(kw):
                    u, p = divmod(a + dy - py, 2)
                    v, q = divmod(b + dx - px, 2)
                    index[u - u0, v - v0, p, q, a, b] = dy * kw + dx
    index.flags.writeable = False
    return index, (-u0, u1), (-v0, v1)


def conv2d_phases(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """A "same" (1, kh, kw) convolution, returned as its 2x2 output phases (space-to-depth).

    Args:
      x: (N, T, H, W, C) float, H and W even.
      kernel: (1, kh, kw, C, O).

    Returns:
      (N, T, H/2, W/2, 4, O): entry [..., i, j, 2a + b, :] is output pixel (2i + a, 2j + b) of
      `conv3d(x, kernel)`. A max over axis -2 is then the (1,2,2) max-pool.
    """
    n, t, h, w, c = x.shape
    _, kh, kw, _, o = kernel.shape
    index, pad_h, pad_w = _space_to_depth_taps(kh, kw)
    blocks = x.reshape(n * t, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    blocks = blocks.reshape(n * t, h // 2, w // 2, 4 * c)  # channel (2p + q) * C + c
    taps = jnp.concatenate([kernel.reshape(kh * kw, c, o), jnp.zeros((1, c, o), kernel.dtype)])
    big = jnp.take(taps, index, axis=0)  # (U, V, p, q, a, b, C, O), exact copies and zeros
    big = big.transpose(0, 1, 2, 3, 6, 4, 5, 7).reshape(*index.shape[:2], 4 * c, 4 * o)
    y = _conv2d(blocks, big, (pad_h, pad_w))
    return y.reshape(n, t, h // 2, w // 2, 4, o)


def max_pool(x: jax.Array, window: tuple[int, int, int], impl: str | None = None) -> jax.Array:
    """Non-overlapping "valid" max-pool over (T, H, W) of (N, T, H, W, C); trailing remainders drop.

    "stacked" (and "auto" on CPU) reshapes and takes a max; "lax" uses `reduce_window`.
    """
    if resolve_impl(impl) == "lax":
        return nn.max_pool(x, window, strides=window, padding="VALID")
    n, t, h, w, c = x.shape
    a, b, d = window
    x = x[:, : t - t % a, : h - h % b, : w - w % d]
    x = x.reshape(n, t // a, a, h // b, b, w // d, d, c)
    return jnp.max(x, axis=(2, 4, 6))


class _Conv3D(nn.Module):
    """Parameters `kernel` (kt, kh, kw, in, out) and `bias` (out,), as `nn.Conv` names and
    initialises them, applied by `conv3d` (or by `conv2d_phases` when `phases`).

    Attributes:
      features: output channels.
      kernel_size: (kt, kh, kw).
      impl: see `conv3d`.
      phases: return (N, T, H/2, W/2, 4, O) output phases (`conv2d_phases`; needs kt == 1).
    """

    features: int
    kernel_size: tuple[int, int, int]
    impl: str | None = None
    phases: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param(
            "kernel",
            nn.initializers.lecun_normal(),
            (*self.kernel_size, x.shape[-1], self.features),
            jnp.float32,
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        y = conv2d_phases(x, kernel) if self.phases else conv3d(x, kernel, self.impl)
        return y + bias.reshape((1,) * (y.ndim - 1) + (-1,))


class ConvBlock(nn.Module):
    """Conv3D (or temporal ConvTranspose3D) -> BatchNorm (unless folded) -> activation -> max-pool.

    Attributes:
      features: output channels.
      kernel_size: (D, H, W) kernel.
      pool: (T, H, W) max-pool window applied last, or None.
      transpose: a transposed convolution that doubles T (stride (2,1,1), Keras/PyTorch "same" padding).
      activation: the non-linearity.
      bn_epsilon: BatchNorm epsilon (1e-3 for Keras weights, 1e-5 for PyTorch weights).
      folded: no BatchNorm; the conv kernel and bias already hold it (see `fold_batchnorm`).
      impl: "lax" or "stacked" (resolved by the caller).
    """

    features: int
    kernel_size: tuple[int, int, int]
    pool: tuple[int, int, int] | None = None
    transpose: bool = False
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    bn_epsilon: float = KERAS_BN_EPSILON
    folded: bool = False
    impl: str = "lax"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        # The (1,kh,kw) conv + (1,2,2) pool pair as one space-to-depth conv over output phases.
        phases = (
            self.impl == "stacked"
            and not self.transpose
            and self.kernel_size[0] == 1
            and self.pool == (1, 2, 2)
            and x.shape[-3] % 2 == 0
            and x.shape[-2] % 2 == 0
        )
        if self.transpose:
            # Kernel layout (D, H, W, out, in), as Keras stores Conv3DTranspose kernels; padding
            # (k - 1 - p) = 2 on each side of T reproduces "same" (Keras) / padding=1 (PyTorch).
            x = nn.ConvTranspose(
                self.features,
                self.kernel_size,
                strides=(2, 1, 1),
                padding=((2, 2), (0, 0), (0, 0)),
                transpose_kernel=True,
                name="conv",
            )(x)
        else:
            x = _Conv3D(
                self.features, self.kernel_size, impl=self.impl, phases=phases, name="conv"
            )(x)
        if not self.folded:
            x = nn.BatchNorm(
                use_running_average=not train,
                momentum=0.99,
                epsilon=self.bn_epsilon,
                name="bn",
            )(x)
        x = self.activation(x)
        if phases:
            return jnp.max(x, axis=-2)  # the (1,2,2) max-pool over the 4 output phases
        if self.pool is not None:
            x = max_pool(x, self.pool, self.impl)
        return x


class PhysNet(nn.Module):
    """PhysNet (padding, encoder-decoder, max-pool variant).

    Input (B, T, H, W, 3), already standardised (see `standardize_input`), T divisible by 4 and
    H, W >= 8. Output (B, T) float32: the raw, un-normalised network output.

    Parameter tree: `ConvBlock{1..9}/{conv,bn}`, `upsample/{conv,bn}`, `upsample2/{conv,bn}`,
    `ConvBlock10` (1x1x1 conv to one channel); `bn` is absent when `folded`.

    Attributes:
      bn_epsilon: BatchNorm epsilon: `KERAS_BN_EPSILON` for open-rppg weights, `TORCH_BN_EPSILON`
        for weights converted from PyTorch.
      folded: use BatchNorm-folded parameters (`fold_batchnorm`); inference only.
      impl: formulation of the convolutions and pools, one of `IMPLS`, or None for `DEFAULT_IMPL`
        (same parameters, same outputs to float32 rounding; see the module docstring).
    """

    bn_epsilon: float = KERAS_BN_EPSILON
    folded: bool = False
    impl: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Args: x (B,T,H,W,3) float32; train: batch statistics in BN (mutable `batch_stats`).

        Returns: (B, T) float32.
        """
        if x.ndim != 5 or x.shape[-1] != 3:
            raise ValueError(f"PhysNet expects (B,T,H,W,3), got {x.shape}")
        _, t, h, w, _ = x.shape
        if t % 4 or min(h, w) < 8:
            raise ValueError(f"PhysNet needs T divisible by 4 and H, W >= 8, got {x.shape}")
        if train and self.folded:
            raise ValueError("folded PhysNet is inference-only")
        block = functools.partial(
            ConvBlock,
            bn_epsilon=self.bn_epsilon,
            folded=self.folded,
            impl=resolve_impl(self.impl),
        )
        for name, features, kernel, pool in _ENCODER:
            x = block(features, kernel, pool=pool, name=name)(x, train)
        for name in _DECODER:
            x = block(64, (4, 1, 1), transpose=True, activation=nn.elu, name=name)(x, train)
        x = jnp.mean(x, axis=(2, 3), keepdims=True)  # (B, T, 1, 1, 64)
        x = nn.Conv(1, (1, 1, 1), name="ConvBlock10")(x)
        return x[:, :, 0, 0, 0]


def standardize_input(clip: jax.Array) -> jax.Array:
    """open-rppg's input standardisation: per clip and channel over (T, H, W).

    Args:
      clip: (..., T, H, W, C) float.

    Returns:
      (clip - mean) / (std + 1e-6), same shape; std is the population standard deviation.
    """
    mean = jnp.mean(clip, axis=(-4, -3, -2), keepdims=True)
    std = jnp.std(clip, axis=(-4, -3, -2), keepdims=True)
    return (clip - mean) / (std + _INPUT_EPS)


def standardize_time(y: jax.Array, eps: float) -> jax.Array:
    """(y - mean) / (std + eps) along the last axis; a zero std with eps=0 divides by 1 instead."""
    mean = jnp.mean(y, axis=-1, keepdims=True)
    std = jnp.std(y, axis=-1, keepdims=True)
    if eps == 0.0:
        std = jnp.where(std > 0, std, 1.0)
    return (y - mean) / (std + eps)


@functools.lru_cache(maxsize=64)
def _area_matrix(src: int, dst: int, area_mode: bool) -> np.ndarray:
    """(dst, src) float32 weights of OpenCV's INTER_AREA along one axis.

    area_mode (OpenCV uses it when both axes shrink): destination pixel d averages the source interval
    [d*s, (d+1)*s), s = src/dst, weighting each source pixel by its overlap (fractions under 1e-3 are
    dropped, as OpenCV does). Otherwise (some axis grows) OpenCV interpolates linearly between source
    pixels floor(d*s) and floor(d*s)+1 with weight frac((d+1) - (floor(d*s)+1)/s) on the second.
    """
    scale = src / dst
    weights = np.zeros((dst, src), np.float64)
    for d in range(dst):
        if area_mode:
            start = d * scale
            stop = start + scale
            cell = min(scale, src - start)
            first, last = math.ceil(start), min(math.floor(stop), src)
            if first - start > 1e-3:
                weights[d, first - 1] += (first - start) / cell
            weights[d, first:last] += 1.0 / cell
            if stop - last > 1e-3 and last < src:
                weights[d, last] += min(stop - last, 1.0) / cell
        else:
            left = math.floor(d * scale)
            frac = (d + 1) - (left + 1) / scale
            frac = 0.0 if frac <= 0 else frac - math.floor(frac)
            weights[d, min(max(left, 0), src - 1)] += 1.0 - frac
            weights[d, min(left + 1, src - 1)] += frac
    out = weights.astype(np.float32)
    out.flags.writeable = False
    return out


def area_resize(clip: jax.Array, size: int | tuple[int, int]) -> jax.Array:
    """Differentiable box (area) resize that equals OpenCV `cv2.resize(..., INTER_AREA)`.

    Integer shrink factors are an exact mean pool; other ratios apply OpenCV's per-axis weights as
    two matrix products (linear in the clip, so gradients are exact). OpenCV on uint8 frames also
    rounds the result; this float version does not.

    Args:
      clip: (..., T, H, W, C) float.
      size: output side S, or (height, width).

    Returns:
      (..., T, S, S, C) (or (..., T, height, width, C)) in the input dtype.
    """
    out_h, out_w = (size, size) if isinstance(size, int) else size
    h, w = clip.shape[-3], clip.shape[-2]
    if (h, w) == (out_h, out_w):
        return clip
    if h % out_h == 0 and w % out_w == 0:
        fh, fw = h // out_h, w // out_w
        shaped = clip.reshape(*clip.shape[:-3], out_h, fh, out_w, fw, clip.shape[-1])
        return jnp.mean(shaped, axis=(-4, -2))
    area_mode = h >= out_h and w >= out_w
    wy = jnp.asarray(_area_matrix(h, out_h, area_mode), clip.dtype)
    wx = jnp.asarray(_area_matrix(w, out_w, area_mode), clip.dtype)
    return jnp.einsum("oh,...hwc,pw->...opc", wy, clip, wx, precision=jax.lax.Precision.HIGHEST)


def float_clip(clip) -> jax.Array:
    """`clip` "... t h w 3" as float32, checked: float values (in [0, 1]), three channels last."""
    clip = jnp.asarray(clip)
    if not jnp.issubdtype(clip.dtype, jnp.floating):
        raise TypeError(f"estimate_bvp expects float clips in [0, 1], got dtype {clip.dtype}")
    if clip.ndim < 4 or clip.shape[-1] != 3:
        raise ValueError(f"estimate_bvp expects (..., T, H, W, 3), got {clip.shape}")
    return clip.astype(jnp.float32)


def hold_last_frame(clip: jax.Array, num_frames: int) -> jax.Array:
    """Clips (B, T, ...) extended to `num_frames` >= T frames by repeating each one's last frame
    (the padding of a call that needs whole segments or chunks; its outputs are dropped)."""
    extra = num_frames - clip.shape[1]
    if extra == 0:
        return clip
    return jnp.concatenate([clip, jnp.repeat(clip[:, -1:], extra, axis=1)], axis=1)


def estimate_bvp(
    variables: Mapping[str, Any],
    clip: jax.Array,
    fps: float | None = None,
    *,
    input_size: int | None = TRAINED_INPUT_SIZE,
    bn_epsilon: float = KERAS_BN_EPSILON,
    impl: str | None = None,
) -> jax.Array:
    """BVP of face clips with PhysNet, normalised exactly as open-rppg does.

    Args:
      variables: `{'params', 'batch_stats'}` (unfolded) or `{'params'}` from `fold_batchnorm`.
      clip: (..., T, H, W, 3) float RGB in [0, 1] (the caller's x/255), T divisible by 4. Any leading
        axes are batch axes.
      fps: frame rate in Hz; unused (accepted for the estimator contract). The open-rppg weights were
        trained at 30 fps (`TRAINED_FPS`): resample other rates before calling.
      input_size: face-crop side fed to the network; the clip is area-resized to it when its H, W
        differ. None keeps the clip's size (the spatial mean makes any size >= 8 valid).
      bn_epsilon: BatchNorm epsilon of the weights (unfolded variables only).
      impl: formulation of the network, one of `IMPLS`, or None for `DEFAULT_IMPL` (equal outputs
        to float32 rounding).

    Returns:
      (..., T) float32 BVP, zero mean and unit standard deviation along T.
    """
    del fps
    clip = float_clip(clip)
    if input_size is not None:
        clip = area_resize(clip, input_size)
    lead, inner = clip.shape[:-4], clip.shape[-4:]
    x = standardize_input(clip).reshape(-1, *inner)
    folded = "batch_stats" not in variables
    y = PhysNet(bn_epsilon=bn_epsilon, folded=folded, impl=impl).apply(variables, x)
    y = standardize_time(y, 0.0)  # inside open-rppg's PhysNet.call (no epsilon)
    y = standardize_time(y, _INPUT_EPS)  # open-rppg's output decorator
    return y.reshape(*lead, inner[0]).astype(jnp.float32)


def fold_batchnorm(
    variables: Mapping[str, Any], *, epsilon: float = KERAS_BN_EPSILON
) -> dict[str, Any]:
    """Folds BatchNorm running statistics into the preceding convolutions.

    With s = gamma / sqrt(var + eps): kernel' = kernel * s (per output channel),
    bias' = (bias - mean) * s + beta. Computed in float64, stored as float32.

    Args:
      variables: `{'params', 'batch_stats'}` of `PhysNet`.
      epsilon: the BatchNorm epsilon the weights were trained with.

    Returns:
      `{'params': ...}` for `PhysNet(folded=True)` (and `estimate_bvp`), without `bn` entries.
    """
    params, stats = variables["params"], variables["batch_stats"]
    blocks = [name for name, *_ in _ENCODER] + list(_DECODER)
    folded: dict[str, Any] = {}
    for name in blocks:
        conv, bn, st = params[name]["conv"], params[name]["bn"], stats[name]["bn"]
        scale = np.asarray(bn["scale"], np.float64) / np.sqrt(
            np.asarray(st["var"], np.float64) + epsilon
        )
        kernel = np.asarray(conv["kernel"], np.float64)
        # Output channels: last axis of a Conv kernel, axis -2 of a transposed (D,H,W,out,in) kernel.
        kernel = kernel * (scale[:, None] if name in _DECODER else scale)
        bias = (np.asarray(conv["bias"], np.float64) - np.asarray(st["mean"], np.float64)) * scale
        bias = bias + np.asarray(bn["bias"], np.float64)
        folded[name] = {
            "conv": {
                "kernel": jnp.asarray(kernel, jnp.float32),
                "bias": jnp.asarray(bias, jnp.float32),
            }
        }
    folded["ConvBlock10"] = jax.tree.map(
        lambda a: jnp.asarray(a, jnp.float32), params["ConvBlock10"]
    )
    return {"params": folded}


def init_variables(key: jax.Array, *, num_frames: int = 128, size: int = 32) -> dict[str, Any]:
    """Randomly initialised `{'params', 'batch_stats'}` (shapes as the trained model).

    Args:
      key: PRNG key.
      num_frames: T of the example input (any multiple of 4; parameters do not depend on it).
      size: H = W of the example input.
    """
    x = jnp.zeros((1, num_frames, size, size, 3), jnp.float32)
    return dict(PhysNet().init(key, x))
