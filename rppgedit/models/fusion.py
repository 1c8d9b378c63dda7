"""PhysioLatent's conditioning and latent fusion network.

PhysioLatent (CVPR 2026, arXiv:2509.25348) projects a CLIP text embedding of "Heart rate N bpm",
concatenates it channel-wise with the video latent, runs spatio-temporal fusion layers (spatial
convolution + temporal self-attention, conditioned by AdaLN) and conditions the VAE decoder with FiLM.

Here:
- `Conditioner` is the small interface of anything that turns (heart rate, remove flag) into a fixed
  vector; `FourierConditioner` is the default: Fourier features of the normalised heart rate
  (Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions", NeurIPS 2020), a
  continuous embedding where CLIP would see digits as tokens. A text encoder can be plugged in by
  implementing the same two members.
- `EditorNet` maps (latent z, target waveform at the latent frame rate, condition vector) to a latent
  offset dz (z_edit = z + dz) and FiLM (scale, shift) pairs for the decoder. The target waveform is
  concatenated with the latent as one more channel (the editor contract hands every editor the
  waveform, so the network need not invent a phase), next to the projected condition.
- Fusion blocks: per-frame 3x3 spatial convolution, then temporal multi-head self-attention at every
  latent pixel, then a pointwise MLP; each preceded by AdaLN (LayerNorm without affine, scale/shift
  from the condition) and scaled by a condition-dependent gate initialised at zero ("adaLN-Zero",
  Peebles & Xie, "Scalable Diffusion Models with Transformers", ICCV 2023), so an untrained block is
  the identity. The output projection and the FiLM heads are zero-initialised too: an untrained
  editor reproduces the VAE.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

HR_RANGE_BPM = (40.0, 180.0)  # heart rates the Fourier features are normalised over


class Conditioner(Protocol):
    """Turns a target (heart rate, remove flag) into a condition vector of `dim` floats."""

    dim: int

    def __call__(self, hr_bpm, remove) -> jax.Array:
        """hr_bpm float "...", remove bool "..." -> float32 "... dim"."""
        ...


@dataclasses.dataclass(frozen=True)
class FourierConditioner:
    """Fourier features of the heart rate, plus a remove flag.

    With x = (hr - 40) / (180 - 40), the vector is [x, sin(pi 2^k x), cos(pi 2^k x) for k < num_freqs,
    remove]; when `remove` is set the heart-rate features are zero (there is no target rate).
    """

    num_freqs: int = 6

    @property
    def dim(self) -> int:
        return 2 * self.num_freqs + 2

    def __call__(self, hr_bpm, remove) -> jax.Array:
        lo, hi = HR_RANGE_BPM
        x = (jnp.asarray(hr_bpm, jnp.float32) - lo) / (hi - lo)
        freqs = 2.0 ** jnp.arange(self.num_freqs, dtype=jnp.float32)
        angles = math.pi * x[..., None] * freqs.reshape((1,) * x.ndim + (-1,))
        hr_feats = jnp.concatenate([x[..., None], jnp.sin(angles), jnp.cos(angles)], axis=-1)
        flag = jnp.asarray(remove, jnp.float32)[..., None]
        return jnp.concatenate([hr_feats * (1.0 - flag), flag], axis=-1)


def _modulate(x, shift, scale):
    """AdaLN: LayerNorm(x) (no affine) * (1 + scale) + shift, with shift/scale "b d"."""
    x = nn.LayerNorm(use_bias=False, use_scale=False, epsilon=1e-6)(x)
    expand = (slice(None),) + (None,) * (x.ndim - 2) + (slice(None),)
    return x * (1.0 + scale[expand]) + shift[expand]


class FusionBlock(nn.Module):
    """Spatial conv + temporal self-attention + MLP on "b t h w d", each AdaLN-conditioned on "b d"."""

    width: int
    heads: int = 2

    @nn.compact
    def __call__(self, x, cond):
        b, t, h, w, d = x.shape
        mod = nn.Dense(9 * d, kernel_init=nn.initializers.zeros, name="adaln")(nn.silu(cond))
        sh1, sc1, g1, sh2, sc2, g2, sh3, sc3, g3 = jnp.split(mod, 9, axis=-1)
        expand = lambda g: g[:, None, None, None, :]  # noqa: E731

        y = _modulate(x, sh1, sc1).reshape(b * t, h, w, d)
        y = nn.Conv(self.width, (3, 3), padding="SAME", name="spatial")(y)
        x = x + expand(g1) * nn.silu(y).reshape(b, t, h, w, d)

        y = _modulate(x, sh2, sc2)
        y = jnp.transpose(y, (0, 2, 3, 1, 4)).reshape(b * h * w, t, d)  # sequences over time
        y = nn.MultiHeadDotProductAttention(num_heads=self.heads, name="temporal")(y, y)
        y = jnp.transpose(y.reshape(b, h, w, t, d), (0, 3, 1, 2, 4))
        x = x + expand(g2) * y

        y = _modulate(x, sh3, sc3)
        y = nn.Dense(d, name="mlp_out")(nn.silu(nn.Dense(2 * d, name="mlp_in")(y)))
        return x + expand(g3) * y


class EditorNet(nn.Module):
    """(z, waveform, condition) -> (dz, FiLM pairs).

    Attributes:
      latent_channels: channels of z.
      film_channels: channels of each decoder FiLM site.
      width: channels inside the fusion blocks.
      depth: number of fusion blocks.
      heads: attention heads.
      cond_proj: channels of the condition projected and concatenated with z.
    """

    latent_channels: int
    film_channels: tuple[int, ...]
    width: int = 32
    depth: int = 2
    heads: int = 2
    cond_proj: int = 4

    @nn.compact
    def __call__(self, z, wave, cond_features):
        """Args: z "b t h w c"; wave "b t" (target at the latent rate, standardised);
        cond_features "b e" (a `Conditioner`'s output).

        Returns: (dz "b t h w c", [(scale, shift) "b f_i" for each FiLM site]).
        """
        b, t, h, w, _ = z.shape
        cond = nn.silu(nn.Dense(self.width, name="cond_in")(cond_features))
        cond = nn.Dense(self.width, name="cond_out")(cond)
        proj = nn.Dense(self.cond_proj, name="cond_proj")(cond)
        parts = [
            z,
            jnp.broadcast_to(wave[:, :, None, None, None], (b, t, h, w, 1)),
            jnp.broadcast_to(proj[:, None, None, None, :], (b, t, h, w, self.cond_proj)),
        ]
        x = nn.Dense(self.width, name="fuse_in")(jnp.concatenate(parts, axis=-1))
        for i in range(self.depth):
            x = FusionBlock(self.width, self.heads, name=f"block{i}")(x, cond)
        x = nn.LayerNorm(name="norm_out")(x)
        dz = nn.Dense(self.latent_channels, kernel_init=nn.initializers.zeros, name="fuse_out")(x)
        film = []
        for i, ch in enumerate(self.film_channels):
            sc = nn.Dense(2 * ch, kernel_init=nn.initializers.zeros, name=f"film{i}")(cond)
            scale, shift = jnp.split(sc, 2, axis=-1)
            film.append((scale, shift))
        return dz, film
