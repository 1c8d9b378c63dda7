"""PhysFormer: a video transformer with temporal difference attention that reads the BVP of a face.

Z. Yu, Y. Shen, J. Shi, H. Zhao, P. Torr, G. Zhao, "PhysFormer: facial video-based physiological
measurement with temporal difference transformer", CVPR 2022. The layout here is the Keras
`PhysFormer` of open-rppg 0.1.1 (Kegang Wang, MIT), which ships it with weights trained on PURE and
on RLAP (patches (4, 4, 4), 96 channels, feed-forward width 144, 12 heads, 12 blocks, theta 0.7,
attention temperature `gra_sharp` 2):

  frames x (T, 128, 128, 3) in [0, 1] (open-rppg divides 8-bit crops by 255)
  -> per clip and channel (x - mean) / (std + 1e-6) over (T, H, W)   [`physnet.standardize_input`]
  -> stem: conv (1,5,5) 24 + BN + ReLU, (1,2,2) max pool (64x64); conv 3x3x3 48 + BN + ReLU, pool
     (32x32); conv 3x3x3 96 + BN + ReLU, pool (16x16)                  (all convolutions "same")
  -> patch embedding: conv (4,4,4), stride 4, 96 channels: (T/4, 4, 4) tokens of 96
  -> 12 pre-norm transformer blocks over the P = T/4 * 16 tokens (`_Block`):
       x + proj(attention(LayerNorm(x))), then x + feed_forward(LayerNorm(x))
  -> twice: repeat each time step twice, conv (3,1,1) + BN + ELU (96, then 48 channels): T steps
  -> mean over the 4x4 positions, 1x1 projection to one value per frame
  -> (y - mean) / (std + 1e-6) over T.

The attention's queries and keys are temporal-difference convolutions (`tdc_kernel`) of the tokens
laid out on their (T/4, 4, 4) grid, each followed by BatchNorm; the values a 1x1x1 convolution.
Scores q.k / gra_sharp, softmax over all P tokens (no positional embedding, no scaling by the
head size), 12 heads of 8 channels. The feed-forward is 1x1x1 conv 144 + BN + ELU, depthwise 3x3x3
conv + BN + ELU, 1x1x1 conv 96 + BN on the same grid. LayerNorm epsilon 1e-6, BatchNorm 1e-3
(running statistics), dropout off (inference).

Frames: the network takes any T that is a multiple of 4 (the patch embedding's temporal stride)
and 128x128 frames (the 4x4 token grid is fixed by the attention's reshape). The attention spans
the whole call, so unlike PhysNet or EfficientPhys every output depends on every frame of the call,
and open-rppg always runs 160-frame chunks (`TRAINED_CHUNK`), each standardised on its own, the
last one of a video padded with its last frame. `estimate_bvp` does the same with clips longer
than 160 frames and runs a shorter clip as one call (see there).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rppgedit.models import physnet

KERAS_BN_EPSILON = physnet.KERAS_BN_EPSILON  # BatchNorm epsilon of the Keras (open-rppg) weights.
LN_EPSILON = 1e-6  # LayerNorm epsilon of open-rppg's blocks.
TRAINED_INPUT_SIZE = 128  # Face-crop side of the open-rppg weights (fixed by the 4x4 token grid).
TRAINED_FPS = 30.0  # Frame rate the open-rppg weights were trained on.
TRAINED_CHUNK = 160  # Frames per call in open-rppg (`input`): `estimate_bvp`'s default chunk.
PATCH = 4  # Patch embedding kernel and stride along (T, H, W).
CHANNELS = 96  # Token width.
FF_CHANNELS = 144  # Feed-forward width.
NUM_HEADS = 12
NUM_BLOCKS = 12  # open-rppg's three `Transformer_ST_TDC_gra_sharp` of four blocks, in order.
THETA = 0.7  # Weight of the temporal difference term in the query and key convolutions.
GRA_SHARP = 2.0  # Attention temperature: scores are q.k / GRA_SHARP.
_OUTPUT_EPS = 1e-6  # open-rppg's epsilon in the input and output standardisations.

_STEM = (  # (name, features, kernel) of the three conv + BN + ReLU + (1,2,2) max-pool stages
    ("stem0", CHANNELS // 4, (1, 5, 5)),
    ("stem1", CHANNELS // 2, (3, 3, 3)),
    ("stem2", CHANNELS, (3, 3, 3)),
)
_UPSAMPLE = (("upsample1", CHANNELS), ("upsample2", CHANNELS // 2))  # after a 2x repeat in T


def tdc_kernel(kernel: jax.Array, theta: float = THETA) -> jax.Array:
    """The single 3x3x3 kernel of a temporal difference convolution (PhysFormer's TDC).

    TDC(x) = conv(x, w) - theta * conv(x, w_d), with w_d the 1x1x1 kernel summing the taps of w's
    first and last time slices. Both are linear in x with the same centre, so this is conv(x, w')
    with w' = w except at the centre tap, where w'[1, 1, 1] = w[1, 1, 1] - theta * w_d.

    Args:
      kernel: (3, 3, 3, in, out).
      theta: weight of the difference term.

    Returns:
      (3, 3, 3, in, out).
    """
    diff = jnp.sum(kernel[0], axis=(0, 1)) + jnp.sum(kernel[-1], axis=(0, 1))  # (in, out)
    return kernel.at[1, 1, 1].add(-theta * diff)


def patch_embed(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """A "valid" convolution whose stride equals its kernel (non-overlapping patches).

    Args:
      x: (B, T, H, W, C), T, H, W multiples of the kernel's (kt, kh, kw).
      kernel: (kt, kh, kw, C, O).
      bias: (O,).

    Returns:
      (B, T/kt, H/kh, W/kw, O).
    """
    kt, kh, kw, c, _ = kernel.shape
    b, t, h, w, _ = x.shape
    x = x.reshape(b, t // kt, kt, h // kh, kh, w // kw, kw, c)
    y = jnp.einsum("bpaqcrdi,acdio->bpqro", x, kernel, precision=jax.lax.Precision.HIGHEST)
    return y + bias.reshape((1,) * (y.ndim - 1) + (-1,))


def depthwise_conv3d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Stride-1 "same" depthwise 3-D convolution: each channel with its own kernel.

    Written as a sum of shifted, channel-scaled copies of the zero-padded input (27 for a 3x3x3
    kernel): on the small token grid this is cheaper to compile and differentiate than a grouped
    `lax` convolution, with the same products.

    Args:
      x: (N, T, H, W, C).
      kernel: (kt, kh, kw, C), odd sizes.

    Returns:
      (N, T, H, W, C).
    """
    kt, kh, kw, _ = kernel.shape
    n, t, h, w, c = x.shape
    pad = jnp.pad(x, ((0, 0), (kt // 2,) * 2, (kh // 2,) * 2, (kw // 2,) * 2, (0, 0)))
    out = jnp.zeros_like(x)
    for a in range(kt):
        for b in range(kh):
            for d in range(kw):
                tap = kernel[a, b, d].reshape(1, 1, 1, 1, c)
                out = out + pad[:, a : a + t, b : b + h, d : d + w] * tap
    return out


class _PatchEmbedding(nn.Module):
    """`patch_embed` with parameters `kernel` (4, 4, 4, C, C) and `bias` (C,), C = `CHANNELS`."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Args: x (B, T, 16, 16, C). Returns: (B, T/4, 4, 4, C)."""
        shape = (PATCH, PATCH, PATCH, x.shape[-1], CHANNELS)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (CHANNELS,), jnp.float32)
        return patch_embed(x, kernel, bias)


class _Conv(nn.Module):
    """Stride-1 "same" 3-D convolution without bias: parameter `kernel` (kt, kh, kw, in, out), as
    Keras stores it (`out` = `in` * multiplier, in = 1 per group, when `depthwise`).

    Attributes:
      features: output channels.
      kernel_size: (kt, kh, kw).
      tdc: a temporal difference convolution (`tdc_kernel`, weight `THETA`); needs a 3x3x3 kernel.
      depthwise: one kernel per input channel (Keras `groups` = channels), `features` = channels.
    """

    features: int
    kernel_size: tuple[int, int, int]
    tdc: bool = False
    depthwise: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Args: x (N, T, H, W, C). Returns: (N, T, H, W, features)."""
        c = x.shape[-1]
        shape = (*self.kernel_size, 1 if self.depthwise else c, self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape, jnp.float32)
        if self.depthwise:
            return depthwise_conv3d(x, kernel[..., 0, :])
        if self.tdc:
            kernel = tdc_kernel(kernel)
        return physnet.conv3d(x, kernel)


def _bn(name: str, bn_epsilon: float) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=True, momentum=0.99, epsilon=bn_epsilon, name=name)


class _Attention(nn.Module):
    """open-rppg's `MultiHeadedSelfAttention_TDC_gra_sharp` (dropout off).

    Parameters: `proj_q`, `proj_k` (TDC kernels (3, 3, 3, C, C)) with BatchNorms `bn_q`, `bn_k`;
    `proj_v` (kernel (1, 1, 1, C, C)). No biases.

    Attributes:
      num_heads: heads (the channels split head-major: channel h * C/heads + d).
      bn_epsilon: BatchNorm epsilon.
    """

    num_heads: int = NUM_HEADS
    bn_epsilon: float = KERAS_BN_EPSILON

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Args: x (B, T', 4, 4, C) tokens on their grid. Returns: (B, P, C), P = T' * 16."""
        b, *grid, c = x.shape
        q = _bn("bn_q", self.bn_epsilon)(_Conv(c, (3, 3, 3), tdc=True, name="proj_q")(x))
        k = _bn("bn_k", self.bn_epsilon)(_Conv(c, (3, 3, 3), tdc=True, name="proj_k")(x))
        v = _Conv(c, (1, 1, 1), name="proj_v")(x)
        q, k, v = (a.reshape(b, -1, self.num_heads, c // self.num_heads) for a in (q, k, v))
        scores = jnp.einsum("bphd,bqhd->bhpq", q, k) / GRA_SHARP
        weights = jax.nn.softmax(scores, axis=-1)
        h = jnp.einsum("bhpq,bqhd->bphd", weights, v)
        return h.reshape(b, -1, c)


class _FeedForward(nn.Module):
    """open-rppg's `PositionWiseFeedForward_ST`: 1x1x1 conv + BN + ELU, depthwise 3x3x3 conv + BN +
    ELU, 1x1x1 conv + BN, on the tokens' (T', 4, 4) grid. Parameters `fc1`, `stconv`, `fc2`
    (kernels, no biases) and their BatchNorms `fc1_bn`, `stconv_bn`, `fc2_bn`.

    Attributes:
      hidden: the inner width (144).
      bn_epsilon: BatchNorm epsilon.
    """

    hidden: int = FF_CHANNELS
    bn_epsilon: float = KERAS_BN_EPSILON

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Args: x (B, T', 4, 4, C). Returns: (B, T', 4, 4, C)."""
        c = x.shape[-1]
        x = nn.elu(_bn("fc1_bn", self.bn_epsilon)(_Conv(self.hidden, (1, 1, 1), name="fc1")(x)))
        x = _Conv(self.hidden, (3, 3, 3), depthwise=True, name="stconv")(x)
        x = nn.elu(_bn("stconv_bn", self.bn_epsilon)(x))
        return _bn("fc2_bn", self.bn_epsilon)(_Conv(c, (1, 1, 1), name="fc2")(x))


class _Block(nn.Module):
    """open-rppg's `Block_ST_TDC_gra_sharp`: pre-norm attention and feed-forward with residuals.

    Parameters: `norm1`, `norm2` (LayerNorm scale, bias), `attn` (`_Attention`), `proj` (Dense
    kernel (C, C), bias), `pwff` (`_FeedForward`).

    Attributes:
      bn_epsilon: BatchNorm epsilon.
    """

    bn_epsilon: float = KERAS_BN_EPSILON

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Args: x (B, T', 4, 4, C) tokens on their grid. Returns: the same shape."""
        shape = x.shape
        norm = functools.partial(nn.LayerNorm, epsilon=LN_EPSILON, use_fast_variance=False)
        h = _Attention(bn_epsilon=self.bn_epsilon, name="attn")(norm(name="norm1")(x))
        x = x + nn.Dense(shape[-1], name="proj")(h).reshape(shape)
        return x + _FeedForward(bn_epsilon=self.bn_epsilon, name="pwff")(norm(name="norm2")(x))


class PhysFormer(nn.Module):
    """open-rppg's PhysFormer, inference only (BatchNorm running statistics, no dropout).

    Input (B, T, 128, 128, 3) float frames in [0, 1], T a multiple of 4. Output (B, T) float32:
    the network output standardised along T (open-rppg's `standardization_output`), as open-rppg's
    Keras model returns it. The input standardisation is done here too.

    Parameter tree: `stem0`..`stem2`, `upsample1`, `upsample2` (each `conv` kernel and bias, `bn`),
    `patch_embedding` (kernel (4, 4, 4, 96, 96), bias), `block0`..`block11` (`_Block`), `last`
    (kernel (48, 1), bias (1,)).

    Attributes:
      bn_epsilon: BatchNorm epsilon (Keras's 1e-3 for the open-rppg weights).
    """

    bn_epsilon: float = KERAS_BN_EPSILON

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Args: x (B, T, 128, 128, 3) float32 in [0, 1]. Returns: (B, T) float32."""
        if x.ndim != 5 or x.shape[-1] != 3:
            raise ValueError(f"PhysFormer expects (B,T,H,W,3), got {x.shape}")
        _, t, h, w, _ = x.shape
        size = TRAINED_INPUT_SIZE
        if t % PATCH or not t or (h, w) != (size, size):
            raise ValueError(
                f"PhysFormer needs T a multiple of {PATCH} and {size}x{size} frames, got {x.shape}"
            )
        block = functools.partial(physnet.ConvBlock, bn_epsilon=self.bn_epsilon)
        impl = physnet.resolve_impl(None)
        x = physnet.standardize_input(x)
        for name, features, kernel in _STEM:
            x = block(features, kernel, pool=(1, 2, 2), impl=impl, name=name)(x)  # (B,T,16,16,96)
        x = _PatchEmbedding(name="patch_embedding")(x)  # (B, T/4, 4, 4, 96): tokens on a grid
        x = self._blocks(x)
        for name, features in _UPSAMPLE:
            x = jnp.repeat(x, 2, axis=1)
            x = block(features, (3, 1, 1), activation=nn.elu, impl=impl, name=name)(x)
        x = jnp.mean(x, axis=(2, 3))  # (B, T, 48)
        y = nn.Dense(1, name="last")(x)[..., 0]
        return physnet.standardize_time(y, _OUTPUT_EPS)

    def _blocks(self, x: jax.Array) -> jax.Array:
        """The 12 blocks `block0`..`block11` in order, on (B, T/4, 4, 4, 96) tokens.

        Applied (after init) as one `lax.scan` over their stacked variables: the same arithmetic as
        a loop, but XLA compiles one block instead of twelve (measured on a busy 2-core CPU, the
        gradient of `estimate_bvp` on 32 frames compiles in 7 s instead of 12 s; 4 s with
        `depthwise_conv3d`). The parameter tree keeps one entry per block.
        """
        names = [f"block{i}" for i in range(NUM_BLOCKS)]
        if self.is_initializing():
            for name in names:
                x = _Block(bn_epsilon=self.bn_epsilon, name=name)(x)
            return x
        stacked = {
            col: jax.tree.map(lambda *a: jnp.stack(a), *[self.variables[col][n] for n in names])
            for col in ("params", "batch_stats")
        }
        block = _Block(bn_epsilon=self.bn_epsilon)

        def step(x, variables):
            return block.apply(variables, x), None

        return jax.lax.scan(step, x, stacked)[0]


def estimate_bvp(
    variables: Mapping[str, Any],
    clip: jax.Array,
    fps: float | None = None,
    *,
    chunk: int | None = TRAINED_CHUNK,
    bn_epsilon: float = KERAS_BN_EPSILON,
) -> jax.Array:
    """BVP of face clips with PhysFormer, run in chunks as open-rppg does, then standardised.

    Args:
      variables: `{'params', 'batch_stats'}` (e.g. `rppgedit.checkpoints.load_physformer`).
      clip: (..., T, H, W, 3) float RGB in [0, 1] (the caller's x/255), any H, W, any T >= 1.
        Leading axes are batch axes. The frames are area-resized to 128x128 (`physnet.area_resize`,
        OpenCV's INTER_AREA as open-rppg resizes, differentiable).
      fps: frame rate in Hz; unused (accepted for the estimator contract). The weights were trained
        at 30 fps (`TRAINED_FPS`): resample other rates first.
      chunk: the most frames per network call, a multiple of 4 (default 160, open-rppg's). A clip
        of at most `chunk` frames is one call, padded with its last frame to a multiple of 4 (the
        padding's outputs dropped). A longer clip is cut into consecutive chunks of `chunk` frames,
        each standardised and run on its own (one batched call), the last, partial one padded with
        its last frame to `chunk` frames: exactly what open-rppg's `Model` does with a video.
        open-rppg also pads a clip shorter than 160 frames to 160; on 128-frame synthetic clips
        (grid seeds 0-5, both weights) the readings padded so or not differ by 0.0-1.0 bpm, and
        the shorter call is cheaper.
        None: the whole clip in one call (attention over all of it, beyond the trained length).
      bn_epsilon: BatchNorm epsilon of the weights.

    Returns:
      (..., T) float32 BVP, zero mean and unit standard deviation along T (each chunk's output is
      standardised by the network, as in open-rppg; the concatenation is standardised again).
    """
    del fps
    clip = physnet.area_resize(physnet.float_clip(clip), TRAINED_INPUT_SIZE)
    lead, inner = clip.shape[:-4], clip.shape[-4:]
    clip = clip.reshape(-1, *inner)
    num = inner[0]
    if chunk is not None and (chunk <= 0 or chunk % PATCH):
        raise ValueError(f"PhysFormer chunk must be a positive multiple of {PATCH}, got {chunk}")
    if chunk is None or num <= chunk:
        chunk = -(-num // PATCH) * PATCH
    count = -(-num // chunk)
    padded = count * chunk
    clip = physnet.hold_last_frame(clip, padded)  # whole chunks
    x = clip.reshape(-1, chunk, *inner[1:])  # (B * count, chunk, 128, 128, 3)
    y = PhysFormer(bn_epsilon=bn_epsilon).apply(variables, x)
    y = y.reshape(-1, padded)[:, :num]
    y = physnet.standardize_time(y, _OUTPUT_EPS)
    return y.reshape(*lead, num).astype(jnp.float32)


def init_variables(key: jax.Array, *, num_frames: int = PATCH) -> dict[str, Any]:
    """Randomly initialised `{'params', 'batch_stats'}` (shapes as the trained model).

    Args:
      key: PRNG key.
      num_frames: T of the example input (any multiple of 4; parameters do not depend on it).
    """
    x = jnp.zeros((1, num_frames, TRAINED_INPUT_SIZE, TRAINED_INPUT_SIZE, 3), jnp.float32)
    return dict(PhysFormer().init(key, x))
