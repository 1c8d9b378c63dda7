"""Quantisation of float frames back to uint8 or uint16 without losing the pulse.

- "stochastic" (the default): round up with probability equal to the fraction. It is unbiased,
  E[q(x)] = x, so a sub-level pulse survives in the average over pixels (the 8-bit output step of
  the PulseEdit editor, and of the Privacy-Phys reproduction in this project's notes); plain
  rounding erases changes below half a level. "round": nearest level, ties to even.
  "error_diffusion": first-order temporal error feedback (sigma-delta): each pixel carries its
  rounding error to the next frame, so the running sum of its output stays within half a level of
  the running sum of the input and the error moves to high temporal frequencies, above the pulse
  band. Exact integers come out unchanged in every mode (under "error_diffusion" while the pixel
  has been an integer in every earlier frame of the window: always true outside the edit mask).
- The random numbers are counter-based: value k of frame t of an array (its flat index in the frame,
  or its index in whole frames for a `window=`) rounds with a hash of (k, the frame's key), so any
  rectangle of frames, quantised alone, gets the bits that quantising the whole frames gives there,
  and the rounding is one fused XLA loop over the values (`round_change`, also the last step of
  `rppgedit.video.paste`).

The functions are pure and work on one chunk of frames at a time: chunk i of an edit seeded s
draws from `rounding_seed(s, i)` (the one rule, used by the file edit, the sweeps, the experiments
and the live mode).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rppgedit import program_cache

MODES = ("stochastic", "round", "error_diffusion")


def rounding_seed(seed: int, index: int) -> tuple[int, int]:
    """The seed of the stochastic rounding of chunk `index` of an edit seeded `seed`.

    Plain integers (a NumPy `SeedSequence` entropy pair), not a JAX key: deriving a key on the host
    waits for every computation queued before it, so the paste would stall behind the editor."""
    return (int(seed), int(index))


def _entropy(key_or_seed) -> list[int]:
    """The `SeedSequence` entropy of an int, a tuple of ints (`rounding_seed`) or the bits of a
    JAX PRNG key (raw or typed)."""
    if isinstance(key_or_seed, (int, np.integer)):
        return [int(key_or_seed)]
    if isinstance(key_or_seed, tuple):
        return [int(v) for v in key_or_seed]
    key = jnp.asarray(key_or_seed)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key, np.uint32).ravel().tolist()


def frame_keys(key_or_seed, num: int) -> np.ndarray:
    """uint32 (num, 2): the rounding keys of frames 0 .. num - 1 of a chunk."""
    state = np.random.SeedSequence(_entropy(key_or_seed)).generate_state(2 * max(num, 1))
    return state.reshape(-1, 2)[:num]


def _mix(x):
    """A 32-bit integer hash with strong avalanche (Wellons' "lowbias32")."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def uniform(keys, origin, shape):
    """float32 (T, h, w, C) in [0, 1), multiples of 2^-24: the number of each value of a
    (T, h, w, C) block whose first value is at row `origin[0]`, column `origin[1]` of frames
    `origin[2]` pixels wide; frame t hashes its values' flat indices in the frame with `keys[t]`."""
    _, h, w, c = shape
    y0, x0, width = (jnp.asarray(origin[i], jnp.uint32) for i in range(3))
    rows = (jnp.arange(h, dtype=jnp.uint32) + y0) * width
    cols = jnp.arange(w, dtype=jnp.uint32) + x0
    pixel = (rows[:, None] + cols[None, :]) * jnp.uint32(c)
    index = pixel[None, :, :, None] + jnp.arange(c, dtype=jnp.uint32)[None, None, None, :]
    k0, k1 = keys[:, 0, None, None, None], keys[:, 1, None, None, None]
    bits = _mix(_mix(index ^ k0) ^ k1)
    return (bits >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)


def round_change(base, change, keys, origin, mode: str, top: float):
    """`base` (T, h, w, C), integer values as float32, plus `change` (float32, same shape), rounded
    to integers in [0, top] by `mode` (traced: the caller fuses it into its program).

    "stochastic" is base + floor(change + u), u uniform in [0, 1) (`uniform`): exact integers
    (change 0) stay, and E[out] = base + change inside [0, top]. The other modes round the sum."""
    if mode == "stochastic":
        out = base + jnp.floor(change + uniform(keys, origin, base.shape))
    elif mode == "round":
        out = jnp.round(jnp.clip(base + change, 0.0, top))
    elif mode == "error_diffusion":

        def step(error, frame):
            target = frame + error
            out = jnp.round(target)
            return target - out, out

        frames = jnp.clip(base + change, 0.0, top)
        _, out = jax.lax.scan(step, jnp.zeros_like(frames[0]), frames)
    else:
        raise ValueError(f"unknown quantisation mode {mode!r}; choose from {sorted(MODES)}")
    return jnp.clip(out, 0.0, top)


@functools.cache
def _program(mode: str, dtype: str):
    top = float(np.iinfo(dtype).max)

    def run(values, keys, origin):
        values = jnp.clip(values, 0.0, top)
        base = jnp.floor(values)
        out = round_change(base, values - base, keys, origin, mode, top)
        return out.astype(dtype)

    return program_cache.cached_program(jax.jit(run), "quantise.quantize", (mode, dtype))


def _quantize(values, key_or_seed, mode: str, dtype, window=None) -> np.ndarray:
    if mode not in MODES:
        raise ValueError(f"unknown quantisation mode {mode!r}; choose from {sorted(MODES)}")
    values = np.asarray(values, np.float32)
    if not np.all(np.isfinite(values)):
        raise ValueError("quantize got non-finite values")
    num = values.shape[0] if values.ndim else 1
    if window is None:
        blocks = values.reshape(num, 1, -1, 1)  # a frame's values in one row
        origin = (0, 0, blocks.shape[2])
    else:
        (height, width, channels), (y0, y1, x0, x1) = window
        if values.shape[1:] != (y1 - y0, x1 - x0, channels) or y1 > height or x1 > width:
            raise ValueError(
                f"window {window[1]} of frames {window[0]} does not fit {values.shape}"
            )
        blocks, origin = values, (y0, x0, width)
    keys = frame_keys(key_or_seed, num)
    out = _program(mode, np.dtype(dtype).name)(blocks, keys, np.asarray(origin, np.uint32))
    return np.asarray(out).reshape(values.shape)


def quantize(frames_f32_255, key_or_seed, *, mode: str = "stochastic", window=None) -> np.ndarray:
    """Round 0-255 float frames to uint8.

    Values are clipped to [0, 255] first. Exact integers come out unchanged in every mode.

    Args:
      frames_f32_255: float (T, H, W, 3) on the 0-255 scale (any shape works; axis 0 is time,
        along which "error_diffusion" carries its error).
      key_or_seed: an int, a tuple of ints (`rounding_seed`) or a JAX PRNG key (used by
        "stochastic" only). Use a different seed per chunk of a long video, `rounding_seed`.
      mode: "stochastic" (floor with probability ceil(x) - x, else ceil: unbiased, E[out] = x),
        "round" (nearest, ties to even) or "error_diffusion" (temporal error feedback).
      window: None, or ((H, W, C), (y0, y1, x0, x1)) when `frames_f32_255` (T, y1-y0, x1-x0, C)
        is that rectangle of whole frames (T, H, W, C): each value is then rounded with the
        number the whole frames use for it, so the rectangle comes out with the bits that
        quantising the whole frames gives there.

    Returns:
      uint8 array of the input's shape.
    """
    return _quantize(frames_f32_255, key_or_seed, mode, np.uint8, window)


def quantize_16bit(
    frames_f32_65535, key_or_seed, *, mode: str = "stochastic", window=None
) -> np.ndarray:
    """`quantize` for 16-bit output: float frames on the 0-65535 scale to uint16."""
    return _quantize(frames_f32_65535, key_or_seed, mode, np.uint16, window)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """uint16 frames (0-65535) rounded to the nearest 8-bit level; uint8 frames as they are."""
    if frames.dtype == np.uint8:
        return frames
    return ((frames.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
