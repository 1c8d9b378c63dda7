"""FacePhys: a causal state-space network that reads the pulse from a face clip, frame by frame.

FacePhys is the default model of open-rppg 0.1.1 (Kegang Wang, MIT), which ships it with weights
trained on RLAP only (`FacePhys.rlap.weights.h5`). The package names no paper for it; the model is
its author's. This is a JAX/Flax re-implementation of its Keras layout, inference only:

  frames x (T, 36, 36, 3) in [0, 1] (open-rppg divides 8-bit crops, INTER_AREA-resized, by 255)
  -> dense 3 -> 32 per pixel (no bias), then 4 blocks; each block:
       two SSConv layers on u (T, H, W, 32), each:
         u <- TNM(u): per pixel and channel, a causal exponential moving mean and variance over time
              (half-life exp(lbd) seconds), u <- (u - mean_t) / sqrt(var_t + 1e-5) * gamma + beta
         s  = mean_hw(relu6(dense 64(conv 3x3 32 (u))))  (T, 64): one vector per frame
         s  = SSM(s) (below), then dense 64 -> 32 (no bias)
         u <- relu6(conv 3x3 32 (u + s broadcast over H, W))
       + the block's input (after its dense), then conv 2x2 stride 2 "same" (36 -> 18 -> 9 -> 5 -> 3)
  -> mean over H, W (T, 32) -> dense 32 (no bias) -> SSM -> SSM -> dense 1: one value per frame.

The SSM (open-rppg's `SSMrPPG`) is a Mamba-2 style selective state space layer with a complex
diagonal decay: from the input u_t a dense layer gives a gate z_t, a vector xBC_t and a step dt_t;
xBC goes through a causal depthwise convolution of 4 taps (+ bias, relu6) that starts from a learned
initial window, and splits into x_t (heads H x P), B_t and C_t (N each, shared by the heads). Per head
h, with A_h = -exp(A_log[h, 0]) + i A_log[h, 1] and dt_t = clip(exp(dt_raw + dt_bias), 0, 6) * 30 *
(seconds per frame):

  state_t = exp(dt_t A_h) state_{t-1} + dt_t x_t B_t^T      (P x N complex; a learned state_0)
  y_t     = state_t C_t                                      (P complex)

Real and imaginary parts of y (plus D times x on the real part) are gated by relu6(z), RMS-normalised
(epsilon 1e-5, a learned scale) and projected back by a dense layer. The ten SSMs (8 with 32 heads of
4 channels and a 128-wide state, 2 in the head with 8 heads of 8 and a 16-wide state) carry the
network's memory; everything else works on one frame at a time.

open-rppg runs FacePhys one frame at a time with its Keras `step` (`load_FacePhys_rlap`), from the
learned initial states at the first frame of a video. Here a whole clip is one call, computed in
parallel (`ssd`: the recurrence above evaluated in chunks of `CHUNK` frames, quadratic inside a chunk
and carried between chunks, as Mamba-2's state space duality does; the per-pixel moving statistics of
TNM by one `lax.scan` over frames, cheap elementwise work): the same numbers up to float32 rounding,
jit-compiled and differentiable. Because the network is causal, the output at frame t depends only
on frames 0..t: any T works (no frame-count rule), and a clip's output equals the first frames' of a
longer clip's. open-rppg's `step` approximates exp, sin and cos by polynomials (for an NPU); this
module uses exact ones (the difference is measured in `tests/facephys_test.py`).

Frame rate: the model is a discretised continuous-time system; `dt` (seconds per frame, 1/30 at the
30 fps the weights were trained at) scales the SSM steps and the TNM decay, as open-rppg's `step(...,
dt=)` does. open-rppg itself always passes 1/30 (it expects 30 fps video; its Keras whole-clip
`call` fixes 1/30 too).

The network's output is the pulse itself (no integration); `estimate_bvp` standardises it along T.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rppgedit.models import efficientphys, physnet

TRAINED_INPUT_SIZE = 36  # Face-crop side open-rppg feeds FacePhys (`load_FacePhys`).
TRAINED_FPS = 30.0  # Frame rate the open-rppg weights were trained at (dt = 1/30 s).
CHUNK = 32  # Frames per chunk of the parallel SSM scan (any value: the same numbers, to rounding).
FILTERS = 32  # Channels of every block.
NUM_BLOCKS = 4  # Downsampling blocks (open-rppg's `FacePhys([2] * 4, [32] * 4)`).
LAYERS_PER_BLOCK = 2  # SSConv layers per block.
_NORM_EPS = 1e-5  # Epsilon of TNM and of the SSM's RMS norm.
_LN2 = 0.6931  # open-rppg's ln 2 in the TNM decay.
_OUTPUT_EPS = 1e-6  # Epsilon in the standardisation of `estimate_bvp`'s output.
_UNROLL = 1  # Frames per iteration of the moving-statistics loop (1: fastest compile and run here).


def relu6(x: jax.Array) -> jax.Array:
    """min(max(x, 0), 6)."""
    return jnp.clip(x, 0.0, 6.0)


def moving_normalize(
    x: jax.Array, decay: jax.Array, mean0: jax.Array, var0: jax.Array, unroll: int = _UNROLL
) -> jax.Array:
    """Causal normalisation of x (B, T, ...) by exponential moving statistics along axis 1.

    mean_t = decay mean_{t-1} + (1 - decay) x_t, var_t = decay var_{t-1} + (1 - decay)
    (x_t - mean_t)^2, from mean0, var0; returns (x_t - mean_t) / sqrt(var_t + 1e-5). One
    `lax.scan` over time (elementwise work per frame; both statistics in the same loop).

    Args:
      x: (B, T, ...) float.
      decay: broadcastable to x[:, 0] (e.g. (C,)), constant in time.
      mean0, var0: broadcastable to x[:, 0]: the statistics before the first frame.
      unroll: frames per loop iteration (speed only).

    Returns:
      (B, T, ...) float.
    """
    frame = x[:, 0].shape
    decay = jnp.broadcast_to(decay, frame)  # explicit broadcasts (rank promotion may be an error)

    def step(carry, xt):
        mean, var = carry
        mean = decay * mean + (1 - decay) * xt
        var = decay * var + (1 - decay) * jnp.square(xt - mean)
        return (mean, var), (xt - mean) * jax.lax.rsqrt(var + _NORM_EPS)

    init = (jnp.broadcast_to(mean0, frame), jnp.broadcast_to(var0, frame))
    _, y = jax.lax.scan(step, init, jnp.moveaxis(x, 1, 0), unroll=unroll)
    return jnp.moveaxis(y, 0, 1)


def segsum(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Segment sums of a (..., L): s[..., l, k] = a[k+1] + ... + a[l] for k <= l (0 on the diagonal).

    Summed as a masked cumulative sum (no difference of large running totals). Returns the sums
    (..., L, L), zero above the diagonal, and the lower-triangle mask (..., L, L) bool (numpy).
    """
    n = a.shape[-1]
    strict = np.tril(np.ones((n, n), bool), -1)
    full = a.shape + (n,)
    s = jnp.cumsum(jnp.where(np.broadcast_to(strict, full), a[..., :, None], 0), axis=-2)
    return s, np.broadcast_to(np.tril(np.ones((n, n), bool)), full)


def _masked_exp(s: jax.Array, mask: np.ndarray) -> jax.Array:
    """exp(s) where mask, else 0; gradients stay finite (no exp of -inf)."""
    return jnp.where(mask, jnp.exp(jnp.where(mask, s, 0)), 0)


def ssd(
    x: jax.Array, a: jax.Array, b: jax.Array, c: jax.Array, h0: jax.Array, chunk: int = CHUNK
) -> jax.Array:
    """The SSM recurrence state_t = exp(a_t) state_{t-1} + x_t b_t^T, y_t = state_t c_t, by chunks.

    Inside a chunk of `chunk` frames the outputs are a masked (decay-weighted) attention-like sum;
    each chunk's final state is carried to the next by the chunks' total decays. The sequence is
    zero-padded to whole chunks (causal: padding after the end changes no output) and cropped.

    Args:
      x: (B, T, H, P) complex, the input already scaled by dt.
      a: (B, T, H) complex, dt * A (log decay per frame and head).
      b: (B, T, N) real, shared by the heads.
      c: (B, T, N) real.
      h0: (B, H, P, N) complex initial state.
      chunk: frames per chunk.

    Returns:
      (B, T, H, P) complex outputs.
    """
    bsz, t, heads, p = x.shape
    chunk = min(chunk, t)
    pad = -t % chunk
    if pad:
        x, a, b, c = (
            jnp.pad(v, [(0, 0), (0, pad)] + [(0, 0)] * (v.ndim - 2)) for v in (x, a, b, c)
        )
    k = (t + pad) // chunk
    x = x.reshape(bsz, k, chunk, heads, p)
    b = b.reshape(bsz, k, chunk, -1).astype(x.dtype)
    c = c.reshape(bsz, k, chunk, -1).astype(x.dtype)
    a = a.reshape(bsz, k, chunk, heads).transpose(0, 3, 1, 2)  # (B, H, K, L)
    a_cum = jnp.cumsum(a, axis=-1)
    s, mask = segsum(a)
    decay = _masked_exp(s, mask)  # (B, H, K, L, L)
    cb = jnp.einsum("bkln,bksn->bkls", c, b)
    y_diag = jnp.einsum("bkls,bhkls,bkshp->bklhp", cb, decay, x)
    to_end = jnp.exp(a_cum[..., -1:] - a_cum)  # decay from each frame to its chunk's end
    states = jnp.einsum("bksn,bhks,bkshp->bkhpn", b, to_end, x)
    states = jnp.concatenate([h0[:, None], states], axis=1)  # (B, K+1, H, P, N)
    totals = jnp.pad(a_cum[..., -1], ((0, 0), (0, 0), (1, 0)))  # (B, H, K+1)
    s, mask = segsum(totals)
    carried = jnp.einsum("bhzk,bkhpn->bzhpn", _masked_exp(s, mask), states)[:, :-1]
    y_off = jnp.einsum("bkln,bkhpn,bhkl->bklhp", c, carried, jnp.exp(a_cum))
    y = (y_diag + y_off).reshape(bsz, k * chunk, heads, p)
    return y[:, :t]


class SSM(nn.Module):
    """open-rppg's `SSMrPPG`: (B, T, D) -> (B, T, D), causal; see the module docstring.

    Parameters (Keras's shapes and names): `in_proj` kernel (D, 3E + 2N + H) with E = expand * D
    (z is the first 2E columns, xBC the next E + 2N, dt the last H), `conv1d` kernel (1, 4, E + 2N,
    1) and bias, `A_log` (H, 2) (real log-rate, imaginary frequency), `dt_bias` (H,), `D` (2H, 1)
    (per head and real/imaginary part), `init_conv_state` (1, 4, E + 2N), `init_ssm_state`
    (1, 1, H, P, N, 2), `norm` weight (2E,), `out_proj` kernel (2E, D).

    Attributes:
      d_state: N.
      headdim: P (H = E / P).
      expand: E / D.
      k_conv: taps of the causal depthwise convolution.
      chunk: frames per chunk of `ssd`.
    """

    d_state: int = 16
    headdim: int = 64
    expand: int = 2
    k_conv: int = 4
    chunk: int = CHUNK

    @nn.compact
    def __call__(self, u: jax.Array, dt: jax.Array | float = 1 / TRAINED_FPS) -> jax.Array:
        """Args: u (B, T, D) float32; dt seconds per frame. Returns: (B, T, D) float32."""
        bsz, t, d = u.shape
        e, n, p = self.expand * d, self.d_state, self.headdim
        h = e // p
        w_in = self.param("in_proj", nn.initializers.lecun_normal(), (d, 3 * e + 2 * n + h))
        conv_dim = e + 2 * n
        conv_k = self.param(
            "conv1d_kernel", nn.initializers.lecun_normal(), (1, self.k_conv, conv_dim, 1)
        )
        conv_b = self.param("conv1d_bias", nn.initializers.zeros_init(), (conv_dim,))
        a_log = self.param("A_log", nn.initializers.normal(1.0), (h, 2))
        dt_bias = self.param("dt_bias", nn.initializers.zeros_init(), (h,))
        skip = self.param("D", nn.initializers.ones_init(), (2 * h, 1))
        conv0 = self.param(
            "init_conv_state", nn.initializers.zeros_init(), (1, self.k_conv, conv_dim)
        )
        state0 = self.param("init_ssm_state", nn.initializers.zeros_init(), (1, 1, h, p, n, 2))
        norm_w = self.param("norm", nn.initializers.ones_init(), (2 * e,))
        w_out = self.param("out_proj", nn.initializers.lecun_normal(), (2 * e, d))

        zxbcdt = u @ w_in
        z, xbc, dt_raw = zxbcdt[..., : 2 * e], zxbcdt[..., 2 * e : -h], zxbcdt[..., -h:]
        step = jnp.clip(jnp.exp(dt_raw + dt_bias[None, None]), 0.0, 6.0) * (dt * TRAINED_FPS)
        window = jnp.concatenate([jnp.broadcast_to(conv0, (bsz, self.k_conv, conv_dim)), xbc], 1)
        taps = conv_k[0, :, :, 0]  # (k_conv, conv_dim): causal depthwise correlation
        xbc = sum(taps[None, j : j + 1] * window[:, j + 1 : j + 1 + t] for j in range(self.k_conv))
        xbc = relu6(xbc + conv_b[None, None])
        x, b, c = xbc[..., :e], xbc[..., e : e + n], xbc[..., e + n :]
        x = x.reshape(bsz, t, h, p)
        rate = jax.lax.complex(-jnp.exp(a_log[:, 0]), a_log[:, 1])  # A (H,)
        h0 = jnp.broadcast_to(
            jax.lax.complex(state0[0, 0, ..., 0], state0[0, 0, ..., 1]), (bsz, h, p, n)
        )
        xdt = x * step[..., None]
        y = ssd(
            jax.lax.complex(xdt, jnp.zeros_like(xdt)), step * rate[None, None], b, c, h0, self.chunk
        )
        y = jnp.stack([jnp.real(y), jnp.imag(y)], axis=-2)  # (B, T, H, 2, P)
        y = y + skip.reshape(1, 1, h, 2, 1) * jnp.stack([x, jnp.zeros_like(x)], axis=-2)
        y = y.reshape(bsz, t, 2 * e) * relu6(z)
        y = (
            y
            * jax.lax.rsqrt(jnp.mean(y * y, axis=-1, keepdims=True) + _NORM_EPS)
            * norm_w[None, None]
        )
        return y @ w_out


class TemporalNorm(nn.Module):
    """open-rppg's `TNM`: causal normalisation of (B, T, H, W, C) by moving statistics over time.

    Per pixel and channel: mean_t = (1 - d) x_t + d mean_{t-1}, var_t = (1 - d) (x_t - mean_t)^2 +
    d var_{t-1}, from learned mean_0 = `xmean`, var_0 = exp(`x2mean`), with the decay per frame
    d = 1 - ln 2 / exp(`lbd`) * dt (half-life about exp(lbd) seconds); the output is
    (x_t - mean_t) / sqrt(var_t + 1e-5) * `gamma` + `beta` (each (C,)). `xmean`, `x2mean` are
    (1, 1, H, W, C), fixing H and W.
    """

    @nn.compact
    def __call__(self, x: jax.Array, dt: jax.Array | float = 1 / TRAINED_FPS) -> jax.Array:
        """Args: x (B, T, H, W, C); dt seconds per frame. Returns: (B, T, H, W, C)."""
        ch = x.shape[-1]
        lbd = self.param("lbd", nn.initializers.zeros_init(), (ch,))
        gamma = self.param("gamma", nn.initializers.ones_init(), (ch,))
        beta = self.param("beta", nn.initializers.zeros_init(), (ch,))
        shape = (1, 1, *x.shape[2:])
        mean0 = self.param("xmean", nn.initializers.zeros_init(), shape)
        var0 = jnp.exp(self.param("x2mean", nn.initializers.constant(-3.0), shape))
        decay = 1.0 - _LN2 / jnp.exp(lbd) * dt
        y = moving_normalize(x, decay, mean0[:, 0], var0[:, 0])
        return y * gamma.reshape(1, 1, 1, 1, ch) + beta.reshape(1, 1, 1, 1, ch)


def _frames(fn, x: jax.Array) -> jax.Array:
    """Applies the per-frame `fn` ((N, H, W, C) -> (N, H', W', C')) to (B, T, H, W, C)."""
    b, t = x.shape[:2]
    y = fn(x.reshape(b * t, *x.shape[2:]))
    return y.reshape(b, t, *y.shape[1:])


class SSConv(nn.Module):
    """open-rppg's `SSConv`: TNM, a per-frame conv branch pooled into an SSM, broadcast back.

    (B, T, H, W, C) -> (B, T, H, W, C); see the module docstring. Parameters: `tn`, `conv1` (3x3),
    `dense` (C -> 2C, relu6), `ssm` (d_state 128, headdim C/8, on 2C features), `proj` (2C -> C,
    no bias), `conv2` (3x3, relu6).
    """

    chunk: int = CHUNK

    @nn.compact
    def __call__(self, x: jax.Array, dt: jax.Array | float = 1 / TRAINED_FPS) -> jax.Array:
        ch = x.shape[-1]
        x = TemporalNorm(name="tn")(x, dt)
        y = _frames(efficientphys.Conv2D(ch, (3, 3), "SAME", name="conv1"), x)
        y = relu6(nn.Dense(2 * ch, name="dense")(y))
        s = SSM(d_state=128, headdim=ch // 8, chunk=self.chunk, name="ssm")(jnp.mean(y, (2, 3)), dt)
        s = nn.Dense(ch, use_bias=False, name="proj")(s)
        x = x + s[:, :, None, None]
        return relu6(_frames(efficientphys.Conv2D(ch, (3, 3), "SAME", name="conv2"), x))


def _conv_stride2_same(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """2x2, stride-2 convolution of (N, H, W, C) with Keras "same" padding (odd sides pad after)."""
    pad = [(0, -s % 2) for s in x.shape[1:3]]
    y = jax.lax.conv_general_dilated(
        x, kernel, (2, 2), pad, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y + bias.reshape(1, 1, 1, -1)


class SSCBlock(nn.Module):
    """open-rppg's `SSCBlock`: dense (no bias), `LAYERS_PER_BLOCK` SSConv layers with a skip over
    them, then the 2x2 stride-2 "same" convolution `ds` (H, W -> ceil(H/2), ceil(W/2))."""

    features: int = FILTERS
    layers: int = LAYERS_PER_BLOCK
    chunk: int = CHUNK

    @nn.compact
    def __call__(self, x: jax.Array, dt: jax.Array | float = 1 / TRAINED_FPS) -> jax.Array:
        x = x1 = nn.Dense(self.features, use_bias=False, name="in_proj")(x)
        for i in range(self.layers):
            x = SSConv(chunk=self.chunk, name=f"ssconv{i}")(x, dt)
        x = x + x1
        kernel = self.param(
            "ds_kernel", nn.initializers.lecun_normal(), (2, 2, self.features, self.features)
        )
        bias = self.param("ds_bias", nn.initializers.zeros_init(), (self.features,))
        return _frames(lambda f: _conv_stride2_same(f, kernel, bias), x)


class FacePhys(nn.Module):
    """open-rppg's FacePhys, whole-clip form (see the module docstring).

    Input (B, T, 36, 36, 3) float frames in [0, 1], any T. Output (B, T) float32: the raw network
    output, as open-rppg's Keras model returns it frame by frame. Parameters: `block0`..`block3`
    (`SSCBlock`), `out_proj` (32 -> 32, no bias), `head_ssm0`, `head_ssm1` (`SSM`, d_state 16,
    headdim 8), `head_dense` (32 -> 1).

    Attributes:
      chunk: frames per chunk of the parallel SSM scan (numbers do not depend on it).
    """

    chunk: int = CHUNK

    @nn.compact
    def __call__(self, x: jax.Array, dt: jax.Array | float = 1 / TRAINED_FPS) -> jax.Array:
        """Args: x (B, T, 36, 36, 3) float32 in [0, 1]; dt seconds per frame. Returns: (B, T)."""
        if x.ndim != 5 or x.shape[2:] != (TRAINED_INPUT_SIZE, TRAINED_INPUT_SIZE, 3):
            raise ValueError(f"FacePhys expects (B,T,36,36,3), got {x.shape}")
        for i in range(NUM_BLOCKS):
            x = SSCBlock(chunk=self.chunk, name=f"block{i}")(x, dt)
        x = nn.Dense(FILTERS, use_bias=False, name="out_proj")(jnp.mean(x, (2, 3)))
        for i in range(2):
            x = SSM(d_state=16, headdim=8, chunk=self.chunk, name=f"head_ssm{i}")(x, dt)
        return nn.Dense(1, name="head_dense")(x)[..., 0]


def estimate_bvp(
    variables: Mapping[str, Any], clip: jax.Array, fps: float | jax.Array | None = None
) -> jax.Array:
    """BVP of face clips with FacePhys, standardised along T.

    Args:
      variables: `{'params'}` (e.g. `rppgedit.checkpoints.load_facephys`).
      clip: (..., T, H, W, 3) float RGB in [0, 1] (the caller's x/255), any H, W, any T >= 1.
        Leading axes are batch axes. The frames are area-resized to 36x36 (`physnet.area_resize`,
        OpenCV's INTER_AREA as open-rppg resizes, differentiable). The whole clip is one causal
        pass from the learned initial states, as open-rppg's frame-by-frame `step` over a video.
      fps: frame rate in Hz, or None for 30 (`TRAINED_FPS`). It sets the model's time step dt =
        1/fps (SSM steps and TNM decays); open-rppg always uses 1/30 and expects 30 fps video.

    Returns:
      (..., T) float32 BVP, zero mean and unit standard deviation along T (open-rppg reads the raw
      output as the BVP; its display path band-passes it afterwards).
    """
    dt = 1.0 / (TRAINED_FPS if fps is None else jnp.asarray(fps, jnp.float32))
    clip = physnet.area_resize(physnet.float_clip(clip), TRAINED_INPUT_SIZE)
    lead, inner = clip.shape[:-4], clip.shape[-4:]
    y = FacePhys().apply(variables, clip.reshape(-1, *inner), dt)
    y = physnet.standardize_time(y, _OUTPUT_EPS)
    return y.reshape(*lead, inner[0]).astype(jnp.float32)


def init_variables(key: jax.Array, *, num_frames: int = 4) -> dict[str, Any]:
    """Randomly initialised `{'params'}` (shapes as the trained model; T does not matter)."""
    x = jnp.zeros((1, num_frames, TRAINED_INPUT_SIZE, TRAINED_INPUT_SIZE, 3), jnp.float32)
    return dict(FacePhys().init(key, x))
