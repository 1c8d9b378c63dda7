"""Synthetic face videos with a known pulse: the project's own test and demo data.

A clip is a cartoon head (an ellipse with hair, brows, eyes and mouth, on a neck and a shirt, in front
of a smooth seeded background) whose skin reflectance is modulated by a ground-truth blood-volume pulse
(BVP). The model follows the usual rPPG image model (Wang et al., "Algorithmic principles of remote
PPG", IEEE TBME 2017): the colour of a skin pixel is

    C_c(t, x) = L(t) * rho_c(x) * (1 - a * w_c * s(x) * bvp(t)) + noise,

with `L` a global illumination level (slow drift and flicker when asked), `rho_c` the skin reflectance
of channel c (light to dark skin, lightly textured and shaded), `a` the relative pulse amplitude,
`w` the normalised pulse signature R:G:B = 0.33:0.77:0.53 of de Haan & van Leest, "Improved motion
robustness of remote-PPG by using the blood volume pulse signature" (Physiol. Meas. 2014, the PBV
method; green strongest) and `s` a spatial strength map (forehead and cheeks stronger), scaled so that
its green-intensity-weighted mean over the skin mask is 1. Hence the relative standard deviation of the
mean skin green trace is `pulse_amplitude`; in absolute 8-bit levels dark skin carries a weaker pulse
because its reflectance is lower.

Sign convention: `bvp` is blood volume (systolic peak upward, as a contact PPG displays it). More
blood absorbs more light, so the skin gets darker: the mean skin green trace is ANTI-correlated with
`bvp`. Spectral heart-rate estimates do not care; correlation-based checks must flip the sign.

The pulse multiplies only `mask` pixels: every pulse-carrying pixel is in the mask and every pixel
outside it is constant over time when motion, illumination and noise are off (the neck is skin
coloured but carries no pulse, so the mask stays inside the face box).

The waveform has a fast systolic upstroke, a slower decay, a dicrotic notch and a diastolic wave, so it
has harmonics; its instantaneous rate varies smoothly (respiratory sinus arrhythmia near 0.25 Hz and a
Mayer wave near 0.1 Hz; see Task Force of the ESC/NASPE, "Heart rate variability", Circulation 1996).

The head is drawn analytically in canonical face coordinates, which are mapped to pixels by a
per-frame similarity transform (translation, rotation, scale), vectorised over frames; edges are
anti-aliased by a one-pixel signed-distance ramp. Random draws come from independent child streams
of `np.random.SeedSequence(seed)`, so switching `motion`, `illumination` or `noise_std` keeps the same
face, background and pulse.

Camera model, measured on the one uncompressed real recording at hand (`physrecorder`, a Logitech
C930c webcam captured as YUY2 and stored losslessly, 320x320 face crop, indoor light):

- Sensor noise is Gaussian with a standard deviation that is the same at every 8-bit level:
  `noise_std` levels, 0.6 by default. The webcam's temporal noise (frame minus the mean of its two
  neighbours, flat regions) is 0.45-0.69 levels in green, 0.54-0.85 in red and 0.59-1.06 in blue at
  every level from 20 to 160, not growing with the level: the camera's gamma encoding turns the
  photon shot noise, whose variance grows with the linear intensity, into a nearly constant noise in
  8-bit levels (sRGB's slope falls as the shot noise rises), so dark skin is not less noisy in 8-bit
  levels than light skin. At 0.6 levels the noise still dithers the 8-bit rounding of the
  sub-level pulse (a Gaussian dither of 0.5 levels or more leaves the rounding error independent of
  the signal). Measured effect on PhysNet-PURE, dark skin (0.85), seeds 0-15 still and moving, 300
  frames of 128x128: 24/32 clips read at noise 1 (the old default), 24/32 at 0.6, 28/32 at 0;
  26/32 with noise growing as sqrt(level) (1 at level 128) and 24/32 with shot plus read noise in
  linear light encoded to sRGB: the noise model is not what defeats it on dark skin.
- The illumination's per-frame flicker is 0.03% (the webcam's: 0.014-0.030% per frame on the static
  background, high-passed). The old 0.2% white flicker, half the pulse's amplitude, was the rate
  EfficientPhys (open-rppg) read on every clip of seed 3 with lighting changes (76.6 bpm for a
  64.3 bpm pulse, the same on all three skin tones); at 0.03% it reads 64.1-64.4 on those six clips.
- The pulse amplitude is 0.005 by default: the webcam clip's skin green, band-passed to 0.7-3 Hz,
  has a relative std of 0.0045; the old default 0.004 gives 0.0035 after the same band-pass.

Dark skin is still the hardest case for the deep readers, and for a physical reason: the pulse is
a fixed fraction of the skin's reflected light, so a dark face carries a smaller pulse in 8-bit levels
next to the same bright eyes, background and edges. PhysNet standardises each channel over the crop,
so the pulse it sees is the skin's pulse over the crop's contrast: on the old 32-seed grid the dark
misses of the two PhysNets were mostly on the 12 seeds whose crop green std is above 2/3 of the skin's
mean green (8 of them missed, 30 misses; 3 of the other 20 seeds, 8 misses), and moving dark faces
are missed even without noise (PhysNet-PURE 12/16 at noise 0). A larger relative pulse is what
helps (PhysNet-PURE 29/32 at twice the amplitude), but real skin gives no reason for a larger one on
dark skin; nor does exposing the dark face 1.5 or 2 times brighter (28/32, 27/32): the
standardisation removes any gain, only clipping changes anything.

Measured since (issue 23; 32 seeds, dark, still and moving, lighting off and on, 300 frames of
128x128, tracker crop): the pulse reaches PhysNet as a * skin_contrast standard deviations, with
skin_contrast the crop's mean skin green over its green std (recorded by
`benchmarks/synthetic_readability.py`): 2.70-3.46 on light faces (medium 2.16-4.05), 0.93-3.35 on dark ones. Of the
clips POS reads, PhysNet-PURE reads 115/127 dark ones and PhysNet-RLAP 115/127; 10 of the 12 misses
of each are among the 52 clips below 1.5 (a fifth of them missed), 2 among the 76 above. What sets
the crop's std on a dark face is what is brighter than the skin: the background in the crop's lower
corners beside the jaw (15% of its area, 63-69% of its green variance on seeds 0 and 2; 4-8% on
light faces) and the sclera (2% of the area, 6-50%). Renderer changes tried against that, none kept:
the background scaled down with the skin's reflectance makes both read all 12 clips that either
missed with lighting off, but backgrounds do not darken with the skin; a neck of anthropometric
width (half-width 0.55 instead of 0.36: neck breadth is about 0.8 of face breadth) with the
shoulders at about chin level, as in the real webcam frame: PURE 113/127, RLAP 118/127, no gain;
the shoulders raised into the crop's lower corners (shirt instead of background there, as in the
tracker's crops of both real clips, which sit lower on real faces: eye to chin 58-63% of the side,
here 66%): RLAP 127/127 but PURE 116/127, with the shoulders above the chin in the frame. So the
dark misses are a limit of the readers on a small pulse next to a contrast that does not depend on
the skin, which a faithful dark face in a bright scene has; no change of the renderer that we could
justify physically removes them.

`make_multi_face_clip` puts several such clips side by side (one panel per face, each with its own
seed, heart rate and skin tone) for multi-face tracking and editing tests.
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np
from scipy import ndimage

# Named skin-tone presets for `make_clip(skin_tone=...)` (0 very light ... 1 very dark).
SKIN_TONES = types.MappingProxyType({"light": 0.1, "medium": 0.45, "dark": 0.85})

# Representative sRGB skin colours (in [0, 1]) at skin_tone 0, 1/3, 2/3 and 1, roughly Fitzpatrick
# types I-II, III-IV, V and VI. Illustrative values chosen for this generator, not measurements.
_SKIN_ANCHORS = np.array(
    [
        [0.93, 0.78, 0.69],
        [0.78, 0.58, 0.45],
        [0.50, 0.33, 0.24],
        [0.26, 0.16, 0.11],
    ]
)

# Relative pulsatile strengths R:G:B (PBV signature, de Haan & van Leest 2014), green normalised to 1.
_PBV = np.array([0.33, 0.77, 0.53]) / 0.77

# Canonical face geometry (units: head half-height; u to the right, v downward, head centre at 0).
_HEAD_AXES = (0.78, 1.0)
_HAIR_CENTRE_V, _HAIR_AXES = -0.05, (0.85, 1.07)
# Face box in canonical units: the hair ellipse's extent on top, the chin below.
_BOX_U, _BOX_V = (-0.85, 0.85), (-1.12, 1.0)
# The square face crop that the pipeline's tracker (`video.face.track_face`: BlazeFace, then
# open-rppg's forehead-to-chin crop, the crop the shipped deep weights were trained on) takes on these
# faces: centre 0.16 below the head centre, side 1.63 (measured on seeds 0-5 at 128 and 256 px: centre
# 0.15-0.18, side 1.59-1.66). Deep models read this crop; the looser head box (hair, and for a moving
# head the square enclosing its whole path) is 25-35% skin instead of 60-67%, and PhysNet-PURE then read
# 22 of 32 clips (seeds 0-15, motion off/on, 100 bpm) against 32 of 32 on the tracked crop.
_CROP_CENTRE_V, _CROP_SIDE = 0.16, 1.63
# A pixel is in `mask` (and carries the pulse) when at least this fraction of it is skin. Mixed edge
# pixels are left out: with a 0.5 threshold, edge pixels half covered by hair or background entered and
# left the mask under motion and their jumps swamped a dark-skin pulse at 32x32 (measured: 12 of 30
# motion clips at skin_tone 0.85 gave a wrong FFT peak; none at 0.9).
_MASK_MIN = 0.9
_BACKGROUNDS = ("texture", "flat")


@dataclasses.dataclass(frozen=True)
class SyntheticClip:
    """A synthetic face clip with its ground truth.

    Attributes:
      frames: uint8 video "t h w 3", RGB.
      fps: frame rate in Hz.
      bvp: float64 "t" ground-truth blood-volume pulse, zero mean and unit std (see the module
        docstring for its sign relative to the pixels); all zeros for a single frame.
      hr_bpm: mean heart rate of the clip in beats per minute.
      mask: bool "t h w", face-skin pixels of each frame (at least 90% covered by skin, so not hair,
        brows, eyes, mouth or mixed edge pixels); exactly the pixels that carry the pulse.
      face_boxes: int64 "t 4", (x0, y0, x1, y1) of the head bounding box per frame in pixels, with
        x1, y1 exclusive (`frames[t, y0:y1, x0:x1]`), clipped to the frame.
      crop_boxes: float32 "t 4", the square face crop (x0, y0, x1, y1) per frame that the face tracker
        takes (forehead to chin, following the head): the box to crop for editing and for reading
        with deep models, which were trained on such crops. Not clipped to the frame.
    """

    frames: np.ndarray
    fps: float
    bvp: np.ndarray
    hr_bpm: float
    mask: np.ndarray
    face_boxes: np.ndarray
    crop_boxes: np.ndarray


def skin_rgb(skin_tone: float) -> np.ndarray:
    """Skin reflectance for a tone in [0, 1] (0 very light ... 1 very dark).

    Args:
      skin_tone: scalar in [0, 1].

    Returns:
      float64 "3" RGB reflectance in [0, 1], piecewise-linear between four representative colours.
    """
    if not 0.0 <= skin_tone <= 1.0:
        raise ValueError(f"skin_tone must be in [0, 1], got {skin_tone}")
    grid = np.linspace(0.0, 1.0, len(_SKIN_ANCHORS))
    return np.array([np.interp(skin_tone, grid, _SKIN_ANCHORS[:, c]) for c in range(3)])


def pulse_waveform(phase: np.ndarray) -> np.ndarray:
    """One-beat-periodic PPG shape: systolic peak, dicrotic notch, diastolic wave.

    Args:
      phase: float array of cardiac phase in cycles (any shape); the shape repeats every 1.0.

    Returns:
      float64 array of the same shape, unnormalised (peak about 1, minimum 0).
    """
    x = np.mod(phase, 1.0)
    d = np.mod(x - 0.2 + 0.5, 1.0) - 0.5
    width = np.where(d < 0.0, 0.06, 0.11)  # fast upstroke, slow decay
    systolic = np.exp(-0.5 * (d / width) ** 2)
    d2 = np.mod(x - 0.52 + 0.5, 1.0) - 0.5
    diastolic = 0.35 * np.exp(-0.5 * (d2 / 0.08) ** 2)
    return systolic + diastolic


def spectral_peak_bpm(signal: np.ndarray, fps: float, *, band_bpm=(30.0, 240.0)) -> float:
    """Frequency of the largest spectral peak of a signal, in bpm.

    Mean-removed, Hann-windowed, zero-padded FFT (at least 2**16 points) with a parabolic refinement
    of the peak bin.

    Args:
      signal: float "t".
      fps: sampling rate in Hz.
      band_bpm: (low, high) search band in bpm.

    Returns:
      peak frequency in bpm.
    """
    x = np.asarray(signal, np.float64)
    x = (x - x.mean()) * np.hanning(len(x))
    n = max(1 << 16, 1 << int(np.ceil(np.log2(len(x)))) + 1)
    power = np.abs(np.fft.rfft(x, n)) ** 2
    bpm = np.fft.rfftfreq(n, 1.0 / fps) * 60.0
    idx = np.flatnonzero((bpm >= band_bpm[0]) & (bpm <= band_bpm[1]))
    k = idx[np.argmax(power[idx])]
    if 0 < k < len(power) - 1:
        a, b, c = np.log(power[k - 1 : k + 2] + 1e-300)
        denom = a - 2 * b + c
        k = k + (0.5 * (a - c) / denom if denom != 0 else 0.0)
    return float(k * (bpm[1] - bpm[0]))


def _smooth_sines(rng, t, freqs_hz, amps):
    """Sum of sinusoids with random phases and slightly jittered frequencies, unit theoretical std."""
    freqs = np.asarray(freqs_hz) * rng.uniform(0.8, 1.2, len(freqs_hz))
    phases = rng.uniform(0, 2 * np.pi, len(freqs_hz))
    amps = np.asarray(amps, np.float64)
    x = np.sum(amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t[None] + phases[:, None]), 0)
    return x / np.sqrt(np.sum(amps**2) / 2)


def _make_bvp(rng, hr_bpm, hrv, num_frames, fps):
    """Standardised waveform and its exact mean rate (bpm)."""
    t = np.arange(num_frames) / fps
    z = _smooth_sines(rng, t, [0.25, 0.1], [1.0, 0.7])
    z = z - z.mean()
    rate_hz = hr_bpm / 60.0 * (1.0 + hrv * z)
    phase = rng.uniform() + np.concatenate([[0.0], np.cumsum(rate_hz[:-1]) / fps])
    wave = pulse_waveform(phase)
    wave = wave - wave.mean()
    std = wave.std()
    return (wave / std if std > 0 else wave), float(np.mean(rate_hz) * 60.0)


def _coverage(dist_px):
    """Anti-aliased coverage of a region from a signed distance in pixels (negative inside)."""
    return np.clip(0.5 - dist_px, 0.0, 1.0)


def _ellipse(u, v, ppu, cu, cv, au, av):
    """Coverage of an axis-aligned ellipse in canonical coordinates (ppu: pixels per unit)."""
    du, dv = (u - cu) / au, (v - cv) / av
    f = du * du + dv * dv - 1.0
    grad = 2.0 * np.sqrt((du / au) ** 2 + (dv / av) ** 2)
    return _coverage(f / np.maximum(grad, 1e-6) * ppu)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _plane_waves(rng, count, max_freq):
    """Random plane-wave texture parameters: (freqs_u, freqs_v, phases, amplitudes)."""
    ang = rng.uniform(0, np.pi, count)
    freq = rng.uniform(0.3, 1.0, count) * max_freq
    return (
        (freq * np.cos(ang)).astype(np.float32),
        (freq * np.sin(ang)).astype(np.float32),
        rng.uniform(0, 2 * np.pi, count).astype(np.float32),
        (np.sqrt(2.0 / count) * np.ones(count)).astype(np.float32),
    )


def _texture(u, v, waves):
    fu, fv, ph, amp = waves
    out = np.zeros_like(u)
    for k in range(len(fu)):
        out += amp[k] * np.cos(2 * np.pi * (fu[k] * u + fv[k] * v) + ph[k])
    return out


@dataclasses.dataclass(frozen=True)
class _Look:
    """Seeded appearance: colours and textures."""

    skin: np.ndarray
    hair: np.ndarray
    lips: np.ndarray
    iris: np.ndarray
    sclera: np.ndarray
    shirt: np.ndarray
    skin_waves: tuple
    background: np.ndarray


def _make_look(rng, skin_tone, height, width, background):
    skin = skin_rgb(skin_tone) * rng.uniform(0.96, 1.04, 3)
    hair = np.array([0.16, 0.11, 0.07]) * rng.uniform(0.4, 2.0) * rng.uniform(0.9, 1.1, 3)
    lips = skin * np.array([0.85, 0.55, 0.55])
    iris = np.array([0.25, 0.16, 0.1]) * rng.uniform(0.4, 1.2)
    sclera = np.array([0.85, 0.83, 0.8])
    shirt = rng.uniform(0.1, 0.8, 3)
    skin_waves = _plane_waves(rng, 6, 3.0)
    base = rng.uniform(0.25, 0.75, 3)
    if background == "texture":
        sigma = max(height, width) / 12.0
        noise = rng.standard_normal((height, width, 4))
        smooth = np.stack(
            [ndimage.gaussian_filter(noise[..., i], sigma, mode="wrap") for i in range(4)], -1
        )
        smooth /= smooth.reshape(-1, 4).std(0) + 1e-12
        gray, colour = smooth[..., :1], smooth[..., 1:]
        ramp = np.linspace(-1.0, 1.0, height)[:, None, None] * rng.uniform(-0.1, 0.1)
        bg = base * (1.0 + 0.2 * gray + ramp) + 0.04 * colour
    else:
        bg = np.broadcast_to(base, (height, width, 3))
    return _Look(
        skin, hair, lips, iris, sclera, shirt, skin_waves, np.clip(bg, 0, 1).astype(np.float32)
    )


def _render(look, u, v, ub, vb, ppu, background):
    """Render frames from canonical head (u, v) and body (ub, vb) coordinates, all "n h w".

    Layers are painted back to front with anti-aliased coverage. Only the pixels near the head are
    evaluated for the head layers (a gathered subset), which keeps moving clips fast.

    Args:
      look: the seeded appearance.
      u, v: float32 "n h w" canonical head coordinates of every pixel.
      ub, vb: float32 "n h w" canonical body coordinates (translation only).
      ppu: pixels per canonical unit, scalar or "n 1 1".
      background: float32 "h w 3" background image.

    Returns:
      colour float32 "n h w 3" in [0, 1] (before pulse, illumination and noise), skin fraction
      float32 "n h w" and pulse strength map float32 "n h w" (unnormalised, 0 off the head).
    """
    f32 = np.float32
    shape = u.shape
    img = np.broadcast_to(background, shape + (3,)).astype(f32).reshape(-1, 3)
    ppu_full = np.broadcast_to(np.asarray(ppu, f32), shape).reshape(-1)

    def paint(dst, alpha, colour):
        """Blend `colour` ("3" or "k 3") over the gathered pixels dst "k 3" with coverage "k"."""
        dst += alpha[:, None] * (np.asarray(colour, f32) - dst)

    # Neck (skin coloured, no pulse), then the shirt with a V collar and sloping shoulders.
    ubf, vbf = ub.reshape(-1), vb.reshape(-1)
    body = np.flatnonzero(vbf > 0.4)
    ub1, vb1, k1 = ubf[body], vbf[body], ppu_full[body]
    sub = img[body]
    neck = _coverage((np.abs(ub1) - 0.36) * k1) * _coverage((0.5 - vb1) * k1)
    paint(sub, neck, look.skin * 0.75)
    shirt_top = (
        1.45 - 0.25 * np.clip(np.abs(ub1), 0.0, 1.0) + 0.25 * np.maximum(0.25 - np.abs(ub1), 0)
    )
    paint(sub, _coverage((shirt_top - vb1) * k1), look.shirt)
    img[body] = sub

    # Head pixels: inside the (slightly grown) face box in canonical coordinates.
    uf, vf = u.reshape(-1), v.reshape(-1)
    margin = 2.0 / ppu_full
    near = (np.abs(uf) < _BOX_U[1] + margin) & (vf > _BOX_V[0] - margin) & (vf < _BOX_V[1] + margin)
    idx = np.flatnonzero(near)
    u, v, k = uf[idx], vf[idx], ppu_full[idx]

    # Shaded, lightly textured skin.
    au, av = _HEAD_AXES
    head = _ellipse(u, v, k, 0.0, 0.0, au, av)
    r2 = np.minimum((u / au) ** 2 + (v / av) ** 2, 1.0)
    shade = 0.72 + 0.28 * np.sqrt(1.0 - r2)
    tex = 1.0 + 0.03 * _texture(u, v, look.skin_waves)
    cheeks = np.exp(-((np.abs(u) - 0.38) ** 2 + (v - 0.22) ** 2) / f32(2 * 0.13**2))
    forehead = np.exp(-0.5 * ((u / 0.35) ** 2 + ((v + 0.35) / 0.12) ** 2))
    nose = np.exp(-0.5 * (((np.abs(u) - 0.09) / 0.03) ** 2 + ((v - 0.18) / 0.12) ** 2))
    skin_col = (shade * tex * (1.0 - 0.12 * nose))[:, None] * np.asarray(look.skin, f32)
    skin_col[:, 0] *= 1.0 + 0.05 * cheeks  # a little blush
    sub = img[idx]
    paint(sub, head, skin_col)

    # Non-skin features on the head.
    hairline = -0.5 + 0.55 * _smoothstep((np.abs(u) - 0.5) / 0.2)
    hu, hv = _HAIR_AXES
    hair = _ellipse(u, v, k, 0.0, _HAIR_CENTRE_V, hu, hv) * _coverage((v - hairline) * k)
    au_ = np.abs(u)  # features are mirror-symmetric
    brows = _ellipse(au_, v, k, 0.32, -0.25, 0.16, 0.035)
    eyes = _ellipse(au_, v, k, 0.32, -0.08, 0.14, 0.065)
    irises = _ellipse(au_, v, k, 0.32, -0.08, 0.055, 0.055)
    mouth = _ellipse(u, v, k, 0.0, 0.52, 0.24, 0.065)
    paint(sub, hair, look.hair)
    paint(sub, brows, look.hair)
    paint(sub, eyes, look.sclera)
    paint(sub, irises * eyes, look.iris)
    paint(sub, mouth, look.lips)

    img[idx] = sub
    skin_frac = np.zeros(uf.shape, f32)
    skin_frac[idx] = head * (1 - hair) * (1 - brows) * (1 - eyes) * (1 - mouth)
    strength = np.zeros(uf.shape, f32)
    strength[idx] = 0.5 + 1.0 * forehead + 0.8 * cheeks
    img = np.clip(img, 0.0, 1.0).reshape(shape + (3,))
    return img, skin_frac.reshape(shape), strength.reshape(shape)


def _coords(height, width, cx, cy, theta, scale, ppu):
    """Canonical head and body coordinates for frames with the given pose, each "n h w" float32."""
    f32 = np.float32
    y = np.arange(height, dtype=f32)[None, :, None]
    x = np.arange(width, dtype=f32)[None, None, :]
    cx, cy = cx.astype(f32)[:, None, None], cy.astype(f32)[:, None, None]
    c = np.cos(theta).astype(f32)[:, None, None]
    s = np.sin(theta).astype(f32)[:, None, None]
    k = (ppu * scale).astype(f32)[:, None, None]
    dx, dy = x - cx, y - cy
    u = (c * dx + s * dy) / k
    v = (-s * dx + c * dy) / k
    ub = np.broadcast_to(dx / f32(ppu), u.shape)
    vb = np.broadcast_to(dy / f32(ppu), u.shape)
    return u, v, ub, vb, k


def _face_boxes(height, width, cx, cy, theta, scale, ppu):
    """Axis-aligned bounding boxes "t 4" (x0, y0, x1 exclusive, y1 exclusive) of the head box."""
    cu = np.array([_BOX_U[0], _BOX_U[1], _BOX_U[0], _BOX_U[1]])
    cv = np.array([_BOX_V[0], _BOX_V[0], _BOX_V[1], _BOX_V[1]])
    c, s, k = np.cos(theta)[:, None], np.sin(theta)[:, None], (ppu * scale)[:, None]
    xs = cx[:, None] + k * (c * cu - s * cv)
    ys = cy[:, None] + k * (s * cu + c * cv)
    boxes = np.stack(
        [
            np.floor(xs.min(1)),
            np.floor(ys.min(1)),
            np.ceil(xs.max(1)) + 1,
            np.ceil(ys.max(1)) + 1,
        ],
        -1,
    ).astype(np.int64)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    return boxes


def _crop_boxes(cx, cy, theta, scale, ppu):
    """Square face crops "t 4" (x0, y0, x1, y1) float32 following the head pose (see `_CROP_SIDE`)."""
    k = ppu * scale
    x = cx - np.sin(theta) * k * _CROP_CENTRE_V
    y = cy + np.cos(theta) * k * _CROP_CENTRE_V
    half = 0.5 * _CROP_SIDE * k
    return np.stack([x - half, y - half, x + half, y + half], -1).astype(np.float32)


def make_clip(
    seed: int,
    *,
    hr_bpm: float = 72.0,
    num_frames: int = 300,
    fps: float = 30.0,
    height: int = 64,
    width: int = 64,
    skin_tone: float = 0.3,
    pulse_amplitude: float = 0.005,
    hrv: float = 0.02,
    motion: bool = False,
    illumination: bool = False,
    noise_std: float = 0.6,
    flicker: float = 0.0003,
    background: str = "texture",
    face_fraction: float = 0.6,
    bvp: np.ndarray | None = None,
) -> SyntheticClip:
    """Render a seeded synthetic face clip with a known pulse.

    Args:
      seed: integer seed; the same seed and arguments give a bit-identical clip.
      hr_bpm: mean heart rate in bpm (ignored when `bvp` is given); must be below the Nyquist rate.
      num_frames: number of frames T.
      fps: frame rate in Hz.
      height, width: frame size in pixels.
      skin_tone: 0 very light ... 1 very dark (see `SKIN_TONES` for named presets).
      pulse_amplitude: relative pulse amplitude a (std of the mean skin green over its mean);
        real skin is about 0.001-0.01 (the default matches a real webcam clip, see the module
        docstring). 0 gives a clip without pulse (bvp is still returned).
      hrv: relative std of the smooth instantaneous heart rate (0 gives a strictly periodic pulse).
      motion: smooth head translation (std about 4% of the frame), rotation (about 3 degrees) and
        scale (about 3%) below 0.4 Hz; mask and boxes follow the head.
      illumination: global multiplicative drift (a few percent, below 0.1 Hz) and flicker
        (`flicker`), applied to the whole frame.
      noise_std: Gaussian sensor noise std in 8-bit levels, the same at every level (as measured
        on a real webcam, see the module docstring), added before rounding (it dithers the
        sub-level pulse).
      flicker: relative std of the per-frame illumination flicker with `illumination`; the default
        0.03% is a real webcam's (module docstring).
      background: "texture" (seeded smooth colour noise) or "flat" (one colour).
      face_fraction: height of the head box as a fraction of min(height, width).
      bvp: optional float "t" waveform (T = num_frames) to use instead of the generated one; it is
        standardised, and `hr_bpm` is then read from its spectrum (largest peak in 30-240 bpm).

    Returns:
      SyntheticClip (see its docstring).
    """
    if num_frames < 1 or height < 8 or width < 8:
        raise ValueError(
            f"need num_frames >= 1 and a frame of at least 8x8, got {num_frames}x{height}x{width}"
        )
    if fps <= 0 or not 0.0 < face_fraction <= 1.5:
        raise ValueError(f"need fps > 0 and face_fraction in (0, 1.5], got {fps}, {face_fraction}")
    if background not in _BACKGROUNDS:
        raise ValueError(f"background must be one of {_BACKGROUNDS}, got {background!r}")
    if not 0.0 <= pulse_amplitude <= 0.2 or hrv < 0 or noise_std < 0 or flicker < 0:
        raise ValueError(
            "need pulse_amplitude in [0, 0.2], hrv >= 0, noise_std >= 0 and flicker >= 0"
        )
    look_rng, pulse_rng, motion_rng, light_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
    )
    look = _make_look(look_rng, skin_tone, height, width, background)

    if bvp is None:
        if not 0.0 < hr_bpm < 30.0 * fps:
            raise ValueError(f"hr_bpm must be in (0, {30.0 * fps}) at {fps} fps, got {hr_bpm}")
        wave, mean_hr = _make_bvp(pulse_rng, hr_bpm, hrv, num_frames, fps)
    else:
        wave = np.asarray(bvp, np.float64)
        if wave.shape != (num_frames,) or not np.all(np.isfinite(wave)) or wave.std() == 0:
            raise ValueError(
                f"bvp must be a finite, non-constant array of shape ({num_frames},), "
                f"got shape {wave.shape}"
            )
        wave = (wave - wave.mean()) / wave.std()
        mean_hr = spectral_peak_bpm(wave, fps)

    t = np.arange(num_frames) / fps
    ppu = face_fraction * min(height, width) / (_BOX_V[1] - _BOX_V[0])
    cx0, cy0 = (width - 1) / 2.0, (height - 1) / 2.0 - 0.15 * ppu
    if motion:
        amp = 0.04 * min(height, width)
        freqs, amps = [0.07, 0.17, 0.33], [1.0, 0.6, 0.3]
        cx = cx0 + amp * _smooth_sines(motion_rng, t, freqs, amps)
        cy = cy0 + 0.6 * amp * _smooth_sines(motion_rng, t, freqs, amps)
        theta = np.deg2rad(3.0) * _smooth_sines(motion_rng, t, freqs, amps)
        scale = 1.0 + 0.03 * _smooth_sines(motion_rng, t, freqs, amps)
        pose = (cx, cy, theta, scale)
    else:
        pose = tuple(np.full(num_frames, p) for p in (cx0, cy0, 0.0, 1.0))

    # Pulse-strength normalisation on the rest pose, so that `a` is the relative green amplitude.
    rest = _coords(height, width, *(np.array([p]) for p in (cx0, cy0, 0.0, 1.0)), ppu)
    img0, frac0, strength0 = _render(look, *rest[:4], rest[4], look.background)
    mask0 = frac0[0] >= _MASK_MIN
    green0 = img0[0, ..., 1][mask0]
    norm = np.sum(green0) / max(np.sum(green0 * strength0[0][mask0]), 1e-12)

    pulse = (pulse_amplitude * norm * wave).astype(np.float32)
    pbv = _PBV.astype(np.float32)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    mask = np.empty((num_frames, height, width), bool)
    if illumination:
        drift = 0.03 * _smooth_sines(light_rng, t, [0.02, 0.05, 0.09], [1.0, 0.5, 0.3])
        light = 1.0 + drift + flicker * light_rng.standard_normal(num_frames)
    else:
        light = np.ones(num_frames)
    light = light.astype(np.float32)

    chunk = max(1, 2_000_000 // (height * width))
    for start in range(0, num_frames, chunk):
        sl = slice(start, min(start + chunk, num_frames))
        n = sl.stop - sl.start
        if motion:
            u, v, ub, vb, k = _coords(height, width, *(p[sl] for p in pose), ppu)
            img, frac, strength = _render(look, u, v, ub, vb, k, look.background)
        else:
            img, frac, strength = img0, frac0, strength0
        m = frac >= _MASK_MIN
        factor = 1.0 - (pulse[sl, None, None] * (strength * m))[..., None] * pbv
        out = img * factor * (255.0 * light[sl, None, None, None])
        if noise_std > 0:
            out += np.float32(noise_std) * noise_rng.standard_normal(out.shape, np.float32)
        frames[sl] = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        mask[sl] = np.broadcast_to(m, (n, height, width))

    return SyntheticClip(
        frames=frames,
        fps=float(fps),
        bvp=wave,
        hr_bpm=mean_hr,
        mask=mask,
        face_boxes=_face_boxes(height, width, *pose, ppu),
        crop_boxes=_crop_boxes(*(np.asarray(p, np.float64) for p in pose), ppu),
    )


# True rates of `grid_clip`, drawn from the seed alone (bpm).
GRID_HR_BPM = (60.0, 110.0)


def grid_hr_bpm(seed: int) -> float:
    """The mean heart rate (bpm) drawn for `grid_clip(seed)`: uniform in `GRID_HR_BPM`, seed alone."""
    return float(np.random.default_rng(seed).uniform(*GRID_HR_BPM))


def grid_clip(
    seed: int,
    *,
    tone: str | None = None,
    motion: bool | None = None,
    illumination: bool | None = None,
    num_frames: int = 256,
    size: int = 128,
    **camera,
) -> SyntheticClip:
    """The benchmarks' and tests' seeded clip: a size x size face at `grid_hr_bpm(seed)`.

    Unless given, the skin tone cycles with the seed (light, medium, dark for seed % 3 = 0, 1, 2),
    and odd seeds move with lighting changes (`motion` and `illumination`) while even ones are still.
    `camera` passes further `make_clip` arguments (e.g. `noise_std`, `pulse_amplitude`). Read it on
    `clip.crop_boxes` (the tracker's crop).
    """
    tone = tuple(SKIN_TONES)[seed % 3] if tone is None else tone
    if tone not in SKIN_TONES:
        raise ValueError(f"tone must be one of {tuple(SKIN_TONES)}, got {tone!r}")
    motion = seed % 2 == 1 if motion is None else motion
    return make_clip(
        seed,
        hr_bpm=grid_hr_bpm(seed),
        num_frames=num_frames,
        height=size,
        width=size,
        skin_tone=SKIN_TONES[tone],
        motion=motion,
        illumination=motion if illumination is None else illumination,
        **camera,
    )


@dataclasses.dataclass(frozen=True)
class MultiFaceClip:
    """Several synthetic faces side by side in one video, with per-face ground truth.

    Attributes:
      frames: uint8 video "t h w 3", RGB; face i fills the panel of columns
        [i * face_width, (i + 1) * face_width).
      fps: frame rate in Hz.
      faces: one `SyntheticClip` per face, left to right, in full-frame coordinates: its `frames`
        is this clip's `frames` (the same array), its `mask` is "t h w" over the full frame (False
        outside its panel) and its `face_boxes` and `crop_boxes` are shifted by the panel's x offset; `bvp` and
        `hr_bpm` are that face's pulse.
    """

    frames: np.ndarray
    fps: float
    faces: tuple[SyntheticClip, ...]


def make_multi_face_clip(
    seeds,
    hr_bpms,
    *,
    num_frames: int = 300,
    fps: float = 30.0,
    height: int = 128,
    face_width: int = 128,
    skin_tones=None,
    motion: bool = False,
    **kwargs,
) -> MultiFaceClip:
    """Render several seeded faces with their own pulses side by side in one video.

    Face i is `make_clip(seeds[i], hr_bpm=hr_bpms[i], skin_tone=skin_tones[i], ...)` rendered in a
    (height, face_width) panel; the panels are concatenated along the width, left to right, so the
    video is (height, len(seeds) * face_width). Each face keeps its own background, motion,
    illumination and noise (drawn from its seed).

    Args:
      seeds: integer seeds, one per face.
      hr_bpms: mean heart rates in bpm, one per face.
      num_frames, fps, height: as in `make_clip`.
      face_width: width of each face's panel in pixels.
      skin_tones: skin tones in [0, 1], one per face; None uses `make_clip`'s default (or a
        `skin_tone` given in `kwargs`) for every face.
      motion: as in `make_clip`, for every face.
      **kwargs: further `make_clip` arguments, shared by every face (e.g. `noise_std`,
        `illumination`, `pulse_amplitude`, `face_fraction`, `background`).

    Returns:
      MultiFaceClip (see its docstring).
    """
    seeds, hr_bpms = list(seeds), list(hr_bpms)
    tones = [None] * len(seeds) if skin_tones is None else list(skin_tones)
    if not seeds or len(hr_bpms) != len(seeds) or len(tones) != len(seeds):
        raise ValueError(
            f"need one or more faces with as many heart rates and skin tones, got {len(seeds)} "
            f"seeds, {len(hr_bpms)} heart rates, {len(tones)} skin tones"
        )
    panels = []
    for seed, hr_bpm, tone in zip(seeds, hr_bpms, tones, strict=True):
        tone_arg = {} if tone is None else {"skin_tone": tone}
        panels.append(
            make_clip(
                seed,
                hr_bpm=hr_bpm,
                num_frames=num_frames,
                fps=fps,
                height=height,
                width=face_width,
                motion=motion,
                **tone_arg,
                **kwargs,
            )
        )
    return _combine_panels(panels, face_width)


def _combine_panels(panels: list[SyntheticClip], face_width: int) -> MultiFaceClip:
    """Concatenate single-face clips along the width; ground truth moved to full-frame coordinates."""
    frames = np.concatenate([clip.frames for clip in panels], axis=2)
    faces = []
    for i, clip in enumerate(panels):
        mask = np.zeros(frames.shape[:3], bool)
        mask[:, :, i * face_width : (i + 1) * face_width] = clip.mask
        shift = np.array([i * face_width, 0, i * face_width, 0])
        faces.append(
            dataclasses.replace(
                clip,
                frames=frames,
                mask=mask,
                face_boxes=clip.face_boxes + shift,
                crop_boxes=(clip.crop_boxes + shift).astype(np.float32),
            )
        )
    return MultiFaceClip(frames=frames, fps=panels[0].fps, faces=tuple(faces))
