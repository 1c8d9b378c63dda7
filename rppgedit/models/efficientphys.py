"""EfficientPhys: a 2-D CNN with temporal shifts that reads the pulse's derivative from a face clip.

X. Liu, B. Hill, Z. Jiang, S. Patel, D. McDuff, "EfficientPhys: Enabling Simple, Fast and Accurate
Camera-Based Cardiac Measurement", WACV 2023. The layout here is the Keras `EfficientPhys` of
open-rppg 0.1.1 (Kegang Wang, MIT), which ships it with weights trained on PURE and on RLAP:

  frames x (T, 72, 72, 3) in [0, 1] (open-rppg divides 8-bit crops by 255)
  -> frame differences d[t] = x[t+1] - x[t], and d[T-1] = 0
  -> BatchNorm over the 72*72 pixel positions (Keras `BatchNormalization(axis=1)` on the frames
     reshaped to (T, 72*72, 3): one mean, variance, scale and offset per pixel, shared by R, G, B)
  -> TSM, conv 3x3 "same" 32 + tanh, TSM, conv 3x3 "valid" 32 + tanh (70x70)
  -> attention mask 1: 1x1 conv 32 + sigmoid, m -> 0.5 * m / mean_hw(m) per channel; x * mask
  -> 2x2 average pool (35x35), TSM, conv 3x3 "same" 64 + tanh, TSM, conv 3x3 "valid" 64 + tanh
     (33x33), attention mask 2 (1x1 conv 64), 2x2 average pool (16x16, the odd row and column drop)
  -> flatten (H, W, C order, 16384) -> dense 128 + tanh -> dense 1: one value per frame.

The temporal shift module (TSM; Lin, Gan & Han, ICCV 2019) cuts the frames into segments of 8
consecutive frames; inside each, the first C//3 channels of frame t take frame t+1's (the segment's
last frame keeps its own), the next C//3 take frame t-1's (the first keeps its own), the rest stay.
open-rppg's TSM repeats the edge frame where the paper's zero-pads. Dropout is off (inference).

The network works on any T that is a multiple of 8 (the TSM segment); frames interact only through
the differences and within a segment. open-rppg always runs 160-frame chunks (`TRAINED_CHUNK`): on a
longer clip, one call here equals open-rppg's chunks except for the last segment of each chunk,
whose last difference open-rppg sets to zero. `estimate_bvp` pads other lengths with the last
frame to a whole segment and drops the extra outputs. The 72x72 input size is fixed by the per-pixel
BatchNorm and the dense layer.

The network's output is the derivative of the pulse. `estimate_bvp` integrates it as open-rppg does
(`load_EfficientPhys_*` and `Model.bvp`: cumulative sum, standardisation, smoothness-priors
detrending with lambda 50 at 30 fps) and standardises the result along T as `physnet.estimate_bvp`
does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rppgedit import signals
from rppgedit.models import physnet

KERAS_BN_EPSILON = physnet.KERAS_BN_EPSILON  # BatchNorm epsilon of the Keras (open-rppg) weights.
TRAINED_INPUT_SIZE = 72  # Face-crop side the open-rppg weights were trained on (fixed by the net).
TRAINED_FPS = 30.0  # Frame rate the open-rppg weights were trained on.
TRAINED_CHUNK = 160  # Frames per call in open-rppg (`input_frames`); any multiple of SEGMENT works.
SEGMENT = 8  # Frames per temporal-shift segment (open-rppg's `TSM(8, ...)`).

# open-rppg's detrending of the integrated output: lambda = 50 (sr / 30)^2 (0.5 / 0.5)^2 at 30 fps.
DETREND_LAMBDA = 50.0
_OUTPUT_EPS = 1e-6  # open-rppg's epsilon in the standardisation of the integrated output.

_CONVS = (  # (name, features, padding) of the four 3x3 motion convolutions
    ("mc1", 32, "SAME"),
    ("mc2", 32, "VALID"),
    ("mc3", 64, "SAME"),
    ("mc4", 64, "VALID"),
)


def temporal_shift(x: jax.Array, segment: int = SEGMENT) -> jax.Array:
    """open-rppg's temporal shift of (B, T, H, W, C) within segments of `segment` frames.

    Channels [0, C//3) of frame t take those of frame t+1 and channels [C//3, 2*(C//3)) those of
    frame t-1, inside each segment; at the segment's ends the frame keeps its own (edge repeat).

    Args:
      x: (B, T, H, W, C), T a multiple of `segment`.
      segment: frames per segment.

    Returns:
      The shifted array, same shape.
    """
    b, t, h, w, c = x.shape
    fold = c // 3
    seg = x.reshape(b, t // segment, segment, h, w, c)
    ahead = jnp.concatenate([seg[:, :, 1:, ..., :fold], seg[:, :, -1:, ..., :fold]], axis=2)
    behind = jnp.concatenate(
        [seg[:, :, :1, ..., fold : 2 * fold], seg[:, :, :-1, ..., fold : 2 * fold]], axis=2
    )
    out = jnp.concatenate([ahead, behind, seg[..., 2 * fold :]], axis=-1)
    return out.reshape(b, t, h, w, c)


def attention_mask(m: jax.Array) -> jax.Array:
    """open-rppg's (and the paper's) soft attention normalisation of (N, H, W, C) sigmoid maps.

    0.5 * m / mean(m over H, W): each channel's mask averages 0.5 over the frame.
    """
    return 0.5 * m / jnp.mean(m, axis=(1, 2), keepdims=True)


def _avg_pool2(x: jax.Array) -> jax.Array:
    """2x2, stride-2 "valid" average pool of (N, H, W, C); an odd last row or column drops."""
    n, h, w, c = x.shape
    x = x[:, : h - h % 2, : w - w % 2]
    return jnp.mean(x.reshape(n, h // 2, 2, w // 2, 2, c), axis=(2, 4))


class Conv2D(nn.Module):
    """Stride-1 2-D convolution with parameters `kernel` (kh, kw, in, out) and `bias` (out,).

    Keras stores Conv2D kernels in this (HWIO) layout. Applied with `physnet._conv2d`, whose input
    gradient stays on XLA CPU's fast convolution path inside `lax.scan`.

    Attributes:
      features: output channels.
      kernel_size: (kh, kw).
      padding: "SAME" or "VALID".
    """

    features: int
    kernel_size: tuple[int, int]
    padding: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (kh, kw, x.shape[-1], self.features)
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        if self.padding == "SAME":
            pad = (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2))
        else:
            pad = ((0, 0), (0, 0))
        y = physnet._conv2d(x, kernel, pad)
        return y + bias.reshape(1, 1, 1, -1)


class EfficientPhys(nn.Module):
    """open-rppg's EfficientPhys, inference only (BatchNorm running statistics, no dropout).

    Input (B, T, 72, 72, 3) float frames in [0, 1], T a multiple of `SEGMENT`. Output (B, T)
    float32: the raw network output, the pulse's derivative, as open-rppg's Keras model returns it.

    Parameter tree: `bn` (scale, bias; batch_stats mean, var; each (72*72,)), `mc1`..`mc4`,
    `attc1`, `attc2` (kernel, bias), `dense1` (kernel (16384, 128), bias), `dense2` (kernel
    (128, 1), bias). The same names as the Keras layers.

    Attributes:
      bn_epsilon: BatchNorm epsilon (Keras's 1e-3 for the open-rppg weights).
      segment: TSM segment length in frames.
    """

    bn_epsilon: float = KERAS_BN_EPSILON
    segment: int = SEGMENT

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Args: x (B, T, 72, 72, 3) float32 in [0, 1]. Returns: (B, T) float32."""
        if x.ndim != 5 or x.shape[-1] != 3:
            raise ValueError(f"EfficientPhys expects (B,T,H,W,3), got {x.shape}")
        b, t, h, w, _ = x.shape
        if t % self.segment or (h, w) != (TRAINED_INPUT_SIZE, TRAINED_INPUT_SIZE):
            raise ValueError(
                f"EfficientPhys needs T a multiple of {self.segment} and 72x72 frames, "
                f"got {x.shape}"
            )
        d = jnp.concatenate([x[:, 1:] - x[:, :-1], jnp.zeros_like(x[:, :1])], axis=1)
        d = d.reshape(b, t, h * w, 3)
        d = nn.BatchNorm(
            use_running_average=True, axis=-2, epsilon=self.bn_epsilon, momentum=0.99, name="bn"
        )(d)
        x = d.reshape(b, t, h, w, 3)

        def conv(x, name, features, padding):  # TSM, then the 3x3 convolution + tanh per frame
            x = temporal_shift(x, self.segment)
            frames = x.reshape(b * t, *x.shape[2:])
            y = jnp.tanh(Conv2D(features, (3, 3), padding, name=name)(frames))
            return y.reshape(b, t, *y.shape[1:])

        def attend(x, name):  # attention mask, then the 2x2 average pool
            frames = x.reshape(b * t, *x.shape[2:])
            mask = attention_mask(
                nn.sigmoid(Conv2D(frames.shape[-1], (1, 1), "VALID", name=name)(frames))
            )
            y = _avg_pool2(frames * mask)
            return y.reshape(b, t, *y.shape[1:])

        for name, features, padding in _CONVS[:2]:
            x = conv(x, name, features, padding)
        x = attend(x, "attc1")
        for name, features, padding in _CONVS[2:]:
            x = conv(x, name, features, padding)
        x = attend(x, "attc2")
        x = x.reshape(b, t, -1)  # Keras Flatten of (H, W, C)
        x = jnp.tanh(nn.Dense(128, name="dense1")(x))
        x = nn.Dense(1, name="dense2")(x)
        return x[..., 0]


def integrate(derivative: jax.Array) -> jax.Array:
    """open-rppg's reading of EfficientPhys's output, for one chunk: (..., T) -> (..., T).

    open-rppg's model call takes the cumulative sum, standardises it (std + 1e-6) and returns its
    first difference (the first value kept); `Model.bvp` sums that again, giving back the
    standardised integral, and detrends it (smoothness priors, lambda 50 at 30 fps,
    `signals.detrend`). Linear in its input up to the standardisation.
    """
    y = physnet.standardize_time(jnp.cumsum(derivative, axis=-1), _OUTPUT_EPS)
    return signals.detrend(y, lam=DETREND_LAMBDA)


def estimate_bvp(
    variables: Mapping[str, Any],
    clip: jax.Array,
    fps: float | None = None,
    *,
    bn_epsilon: float = KERAS_BN_EPSILON,
) -> jax.Array:
    """BVP of face clips with EfficientPhys, integrated as open-rppg does, then standardised.

    Args:
      variables: `{'params', 'batch_stats'}` (e.g. `rppgedit.checkpoints.load_efficientphys`).
      clip: (..., T, H, W, 3) float RGB in [0, 1] (the caller's x/255), any H, W, any T (the network
        takes whole 8-frame segments, `SEGMENT`: other lengths are padded with the last frame, whose
        extra outputs are dropped). Leading axes are batch axes. The frames are area-resized to
        72x72 (`physnet.area_resize`, OpenCV's INTER_AREA as open-rppg resizes, differentiable).
      fps: frame rate in Hz; unused (accepted for the estimator contract). The weights were trained
        at 30 fps (`TRAINED_FPS`) and open-rppg detrends at 30 fps: resample other rates first.
      bn_epsilon: BatchNorm epsilon of the weights.

    Returns:
      (..., T) float32 BVP, zero mean and unit standard deviation along T. A whole clip is one call
      (open-rppg cuts it into 160-frame chunks, each integrated and standardised on its own).
    """
    del fps
    clip = physnet.area_resize(physnet.float_clip(clip), TRAINED_INPUT_SIZE)
    lead, inner = clip.shape[:-4], clip.shape[-4:]
    clip = clip.reshape(-1, *inner)
    num = inner[0]
    clip = physnet.hold_last_frame(clip, -(-num // SEGMENT) * SEGMENT)  # whole segments
    y = EfficientPhys(bn_epsilon=bn_epsilon).apply(variables, clip)[:, :num]
    y = physnet.standardize_time(integrate(y), _OUTPUT_EPS)
    return y.reshape(*lead, num).astype(jnp.float32)


def init_variables(key: jax.Array, *, num_frames: int = SEGMENT) -> dict[str, Any]:
    """Randomly initialised `{'params', 'batch_stats'}` (shapes as the trained model).

    Args:
      key: PRNG key.
      num_frames: T of the example input (any multiple of 8; parameters do not depend on it).
    """
    x = jnp.zeros((1, num_frames, TRAINED_INPUT_SIZE, TRAINED_INPUT_SIZE, 3), jnp.float32)
    return dict(EfficientPhys().init(key, x))
