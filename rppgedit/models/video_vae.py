"""A small 3-D causal video VAE: the frozen latent space PhysioLatent edits in.

PhysioLatent (CVPR 2026, arXiv:2509.25348) encodes 128-frame 72x72
face clips with a pre-trained 3-D causal VAE (4x spatial, 8x temporal downsampling), edits the
latent and decodes it. No pre-trained video VAE can be fetched here, so rppgedit trains this one on
the synthetic face generator (`rppgedit.train`).

Choices, and why:
- Working resolution 32x32 (the PhysNet surrogate's input), 4x spatial downsampling (8x8 latent).
- Temporal downsampling 2x, not the paper's 8x: at 30 fps an 8x latent runs at 3.75 Hz, whose
  Nyquist rate (1.875 Hz = 112 bpm) is below a 120-150 bpm pulse, so a latent frame could not carry
  one heartbeat cycle on its own; at 2x the latent rate is 15 Hz (Nyquist 450 bpm).
- Causal in time: every temporal convolution pads only on the past side (by repeating the first
  frame), and the stride-2 convolution keeps the output at the *last* frame of each pair, so latent
  frame j depends on input frames 0..2j+1 only (its own two frames and the past). Nothing normalises
  over time (no GroupNorm), which would break causality.
- The decoder is causal as well: latent frame j feeds output frames 2j and 2j+1 (nearest-neighbour
  temporal upsampling) and later frames.
- Few channels (latent 8 by default) so that training and inference fit a 2-core CPU.
- KL-regularised (diagonal Gaussian posterior); `encode` returns (mean, logvar).
- FiLM hooks: `decode(..., film=[(scale, shift), ...])` modulates the decoder's intermediate features
  as h * (1 + scale) + shift (Perez et al., "FiLM", AAAI 2018); `film=None` is the plain decoder.

3-D convolutions run as 2-D convolutions over frames with the kt time-shifted copies of the input
stacked on the channel axis (kernel (kt,kh,kw,C,O) reshaped to (kh,kw,kt*C,O)): the same sums, on
XLA CPU's much faster 2-D convolution path (see `rppgedit.models.physnet`, "stacked").
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Sizes of the video VAE.

    Attributes:
      latent_channels: channels of the latent z.
      enc_channels: (c1, c2): encoder widths at 1/2 and 1/4 spatial resolution.
      dec_channels: (d1, d2): decoder widths at 1/4 and 1/2 spatial resolution; the FiLM sites.
    """

    latent_channels: int = 8
    enc_channels: tuple[int, int] = (16, 32)
    dec_channels: tuple[int, int] = (32, 16)

    @property
    def film_channels(self) -> tuple[int, int]:
        """Channels of the decoder features FiLM modulates, in order."""
        return self.dec_channels


SPATIAL_DOWN = 4  # input side / latent side
TEMPORAL_DOWN = 2  # input frames / latent frames


def causal_conv3d(x, kernel, bias, strides=(1, 1, 1)):
    """Causal 3-D convolution of "b t h w c" with kernel "kt kh kw c o".

    Time is padded with kt-1 copies of the first frame on the past side only; with a temporal stride
    s the output keeps the last frame of every group of s (output j sees input frames <= s*j + s-1).
    Space is zero-padded by kh//2, kw//2 ("same" for stride 1, halving for stride 2 and even sides).

    Returns:
      "b t/s h/sh w/sw o".
    """
    kt, kh, kw, c, o = kernel.shape
    st, sh, sw = strides
    b, t = x.shape[:2]
    if t % st:
        raise ValueError(f"{t} frames are not a multiple of the temporal stride {st}")
    if kt > 1:
        x = jnp.concatenate([jnp.repeat(x[:, :1], kt - 1, axis=1), x], axis=1)
    stacked = jnp.concatenate([x[:, i : i + t] for i in range(kt)], axis=-1)  # oldest first
    stacked = stacked[:, st - 1 :: st]
    tt = stacked.shape[1]
    flat = stacked.reshape((b * tt,) + stacked.shape[2:])
    k2 = jnp.transpose(kernel, (1, 2, 0, 3, 4)).reshape(kh, kw, kt * c, o)
    y = jax.lax.conv_general_dilated(
        flat,
        k2,
        window_strides=(sh, sw),
        padding=((kh // 2, kh // 2), (kw // 2, kw // 2)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    y = y + bias[None, None, None, :]
    return y.reshape((b, tt) + y.shape[1:])


class CausalConv3D(nn.Module):
    """A causal 3-D convolution layer (`causal_conv3d`) with bias; params `kernel`, `bias`."""

    features: int
    kernel_size: tuple[int, int, int] = (3, 3, 3)
    strides: tuple[int, int, int] = (1, 1, 1)
    zero_init: bool = False

    @nn.compact
    def __call__(self, x):
        init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
        kernel = self.param("kernel", init, (*self.kernel_size, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return causal_conv3d(x, kernel, bias, self.strides)


def depth_to_space(x, block: int):
    """ "b t h w (r r c)" -> "b t (h r) (w r) c" (sub-pixel upsampling)."""
    b, t, h, w, ch = x.shape
    c = ch // (block * block)
    x = x.reshape(b, t, h, w, block, block, c)
    x = jnp.transpose(x, (0, 1, 2, 4, 3, 5, 6))
    return x.reshape(b, t, h * block, w * block, c)


def _film(h, film, i):
    if film is None:
        return h
    scale, shift = film[i]  # "b c" each
    return h * (1.0 + scale[:, None, None, None, :]) + shift[:, None, None, None, :]


class Encoder(nn.Module):
    """ "b t 32 32 3" in [0,1] -> (mean, logvar) "b t/2 8 8 latent"."""

    cfg: VAEConfig

    @nn.compact
    def __call__(self, x):
        c1, c2 = self.cfg.enc_channels
        h = x * 2.0 - 1.0
        h = nn.silu(CausalConv3D(c1, strides=(1, 2, 2), name="conv_in")(h))
        h = nn.silu(CausalConv3D(c2, strides=(2, 2, 2), name="conv_down")(h))
        h = nn.silu(CausalConv3D(c2, name="conv_mid")(h))
        moments = CausalConv3D(2 * self.cfg.latent_channels, (1, 1, 1), name="conv_out")(h)
        mean, logvar = jnp.split(moments, 2, axis=-1)
        return mean, jnp.clip(logvar, -30.0, 20.0)


class Decoder(nn.Module):
    """ "b t/2 8 8 latent" -> "b t 32 32 3" (about [0,1]), FiLM-modulated at two sites."""

    cfg: VAEConfig

    @nn.compact
    def __call__(self, z, film: Sequence[tuple[Any, Any]] | None = None):
        d1, d2 = self.cfg.dec_channels
        h = nn.silu(CausalConv3D(d1, name="conv_in")(z))
        h = nn.silu(CausalConv3D(d1, name="conv_mid")(h))
        h = _film(h, film, 0)
        h = jnp.repeat(jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2), 2, axis=3)
        h = nn.silu(CausalConv3D(d2, name="conv_up")(h))
        h = _film(h, film, 1)
        out = CausalConv3D(3 * 4, name="conv_out")(h)  # the output layer PhysioLatent fine-tunes
        return depth_to_space(out, 2) * 0.5 + 0.5


class VideoVAE(nn.Module):
    """Encoder + decoder; `__call__` samples z (reparameterisation) when `sample` is True."""

    cfg: VAEConfig = VAEConfig()

    def setup(self):
        self.encoder = Encoder(self.cfg)
        self.decoder = Decoder(self.cfg)

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z, film=None):
        return self.decoder(z, film)

    def __call__(self, x, rng=None, sample: bool = False):
        mean, logvar = self.encode(x)
        z = reparametrize(rng, mean, logvar) if sample else mean
        return self.decode(z), {"mean": mean, "logvar": logvar, "z": z}


def reparametrize(rng, mean, logvar):
    """z = mean + exp(logvar / 2) * eps, eps ~ N(0, 1)."""
    return mean + jnp.exp(0.5 * logvar) * jax.random.normal(rng, mean.shape, mean.dtype)


def kl_divergence(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, 1)) per element, averaged over all elements."""
    return 0.5 * jnp.mean(jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar)


@functools.partial(jax.jit, static_argnames=("cfg", "num_frames", "size"))
def init_params(key, cfg: VAEConfig = VAEConfig(), num_frames: int = 8, size: int = 32):
    """Fresh VAE params (the shapes do not depend on `num_frames` or `size`)."""
    x = jnp.zeros((1, num_frames, size, size, 3), jnp.float32)
    return VideoVAE(cfg).init(key, x)["params"]


@functools.partial(jax.jit, static_argnames="cfg")
def encode(params, clip, cfg: VAEConfig = VAEConfig()):
    """(mean, logvar) "... t/2 s/4 s/4 latent" of clips "... t s s 3" in [0,1] (t even)."""
    lead = clip.shape[:-4]
    x = clip.reshape((-1,) + clip.shape[-4:])
    mean, logvar = VideoVAE(cfg).apply({"params": params}, x, method=VideoVAE.encode)
    return mean.reshape(lead + mean.shape[1:]), logvar.reshape(lead + logvar.shape[1:])


@functools.partial(jax.jit, static_argnames="cfg")
def decode(params, z, cfg: VAEConfig = VAEConfig(), film=None):
    """Clips "b t s s 3" from latents "b t/2 s/4 s/4 latent"; `film`: [(scale, shift) "b c"] x 2."""
    return VideoVAE(cfg).apply({"params": params}, z, film, method=VideoVAE.decode)


@functools.partial(jax.jit, static_argnames="cfg")
def reconstruct(params, clip, cfg: VAEConfig = VAEConfig()):
    """Decode(mean of Encode(clip)) for clips "b t s s 3"."""
    mean, _ = encode(params, clip, cfg)
    return decode(params, mean, cfg)


def param_count(params) -> int:
    """Number of scalars in a params pytree."""
    return sum(int(p.size) for p in jax.tree.leaves(params))
