"""Privacy-Phys: projected gradient descent on the video through frozen rPPG estimators.

Sun & Li, "Privacy-Phys: Facial Video-Based Physiological Modification for Privacy Protection",
IEEE Signal Processing Letters 29 (2022). The video x is optimised so that a frozen, pre-trained 3D-CNN
(PhysNet, Yu et al. 2019) reads a target waveform y from it:

    min_x  -Pearson(G(x), y) + lambda * MSE(x, z)   s.t. pixels outside the skin mask equal z,

with Adam (learning rate 0.1, 20 steps) and lambda = 0.1. Pixels are on the 0-255 scale inside the
loss, as in the paper, so the learning rate (paper 0.1, default here 0.07) moves a pixel by about that
many grey levels per step and 20 steps bound the edit to about +/-1.5-2 levels (~54-56 dB PSNR on a
face crop).

Beyond the paper (each a `PrivacyPhysConfig` field, defaults measured in the issue notes):
- the balance of the ensemble (`balance`, `temperature`): the surrogates' terms are combined by a
  weighted soft maximum (temperature 0.01, nearly the worst term), not the weighted mean, so the
  budget goes to whichever surrogate lags instead of to the easy ones; together with the pulse
  colour and a learning rate of 0.07 (the paper: 0.1, free colour, a mean). Measured with
  `benchmarks/ensemble_balance.py` (seeds 0-3, light/medium/dark skin, still and moving, targets
  60 and 120 bpm, the tracker's crop): the mean fooled 26/32 surrogate readings (PBV lagged on 6 of
  8 clips), held-back estimators 44/48, PSNR 53.93 dB; this default 32/32, 46/48, 53.98 dB (on
  held-out seeds 4-7: mean 30/32, 43/48, 53.93 dB; this default 32/32, 48/48, 54.02 dB). See the
  issue note for the other candidates (softmax alone, temperatures, an Adam that keeps the
  gradient's colour: not kept);
- a per-window step budget (`stop_pearson`): the edit stops once every surrogate's Pearson with the
  target reaches 0.8, so a window that is easy to move spends less of the fidelity budget. Measured
  with the same benchmark (seeds 0-3): running all 20 steps 32/32, 46/48, 53.98 dB; stopping at 0.9
  the same (no window got there); at 0.8 32/32, 46/48, 55.17 dB; at 0.7 32/32, 42/48, 56.18 dB. On
  the shared physrecorder clip (targets 60 and 120, 10 estimators read the target at both) 0.8
  gives 58.92 / 59.27 dB against 58.14 / 57.81 dB for all 20 steps;
- a start from the answer (`init_scale`): the perturbation begins as minus the target waveform
  along the pulse colour, as strong as 0.7 times the clip's own pulse, so the classical
  estimators read the target before the first step and Adam spends its steps on the rest: 14%
  less editor time for the same white-box success, 48/48 held-back hits instead of 45/48 and
  0.21 dB of PSNR (see the field);
- the perturbation can be parameterised at a coarse resolution (`param_size`, default the surrogate's
  32x32) and smoothly upsampled: the same transfer for far less elementwise work; `param_size=None` is
  the paper's per-pixel PGD with the exact projection after every step;
- an ensemble of surrogates (`surrogates`): the differentiable classical estimators (POS, CHROM, ...) on
  the skin-masked mean colour, weighted, next to PhysNet;
- the colour of the edit (`colour`): "free" lets every channel move on its own (the paper);
  "pulse" moves the pixels only along the blood-volume pulse colour signature of skin (de Haan & van
  Leest 2014, Physiol. Meas. 35:1913; relative strengths R:G:B = 0.33:0.77:0.53, scaled by the clip's
  mean skin colour as the pulse is a relative reflectance change). Every rPPG method is built on that
  skin-reflection model, so an edit along it looks like a real pulse to estimators the optimiser never
  saw, and no budget is spent on colour directions that no estimator reads (the default: in "free"
  colour PBV, which suppresses every colour change off that signature, kept the true rate);
- removal (`remove=True`): instead of a target waveform, every surrogate's output is given a flat
  spectrum inside the pulse band, so no estimator finds a stable peak (the history below; the
  default objective is now the divergence from a flat band notched at the original pulse,
  `removal_loss`). The detrended R, G and B skin traces are flattened too (weight
  `channel_weight`): estimators that were not surrogates (GREEN, ICA, PCA) read mixtures of those
  channels. Measured (synthetic clips, 8
  estimators, SNR at the true HR above 0 dB after removal counts as a failure): surrogates alone
  7/48 failures on seeds 0-3, 11, 12; channel weight 1: 3/48; weight 3: 0/32 on seeds 0, 2, 3, 12
  where it was chosen, 1/40 on seeds 1, 4-6, 11 (PBV at 0.2 dB). A flat band still has a bin at
  the true rate, and an estimator's peak lands there as often as anywhere (or more: a flattened
  pulse is rarely fully gone), so removal also minimises the edited signals' spectral overlap with
  the original clip's pulse spectrum (`notch_weight`, `removal_overlap`): the surrogates' outputs
  and the R, G, B traces keep their power off the true rate. Measured with
  `benchmarks/removal_codec.py` (seeds 0-7, light/medium/dark, still/moving, 10 estimators): readings
  within 3 bpm of the true rate losslessly 32/80 without it, 2/80 at weight 1 (0.5: 3/60, 2: 3/60
  on seeds 2-7); after H.264 CRF 23 22/80 -> 0/80; CRF 28 16/80 -> 5/80; PSNR 61.4 -> 59.8 dB. On
  the shared physrecorder clip: 8/10 -> 0/10 losslessly, 9/10 -> 0/10 after CRF 23, 0/10 after CRF
  28 and after CRF 23 then 28, 59.5 -> 58.4 dB. (Those readings went through the edit's skin mask
  of the original, which the pulse modulates; read through each output's own mask, as an observer
  of the output would, see `REMOVAL_DEFAULTS` for the figures and the coarser removal grid they
  led to.) A removal moves the colour freely and starts from the pulse cancelled in each channel
  (`REMOVAL_DEFAULTS`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from rppgedit import signals
from rppgedit.editors import contract
from rppgedit.editors.regions import pulse_direction
from rppgedit.estimators import registry, roi
from rppgedit.estimators.roi import spatial_mean
from rppgedit.optimize import optimize

LEVELS = 255.0  # the loss and the optimiser see pixels on the 0-255 scale

# The default ensemble, chosen on held-back estimators (benchmarks/surrogate_choice.py: 3 seeded
# synthetic clips, light/medium/dark skin with motion and lighting changes, targets 120 and 60 bpm).
# PhysNet alone: 39/45 held-back estimators read the target, PSNR ~55 dB; PBV never followed. PBV is a
# minimum-variance projection onto the blood-volume colour signature, so it suppresses any colour
# change not along that signature; with PBV (and POS, CHROM) in the ensemble the edit takes the pulse's
# colour: 10/10 estimators at 120 bpm on every clip, 5/6 held-back at 60 bpm, PSNR 57-58.5 dB.
DEFAULT_SURROGATES = (("physnet_pure", 1.0), ("pos", 0.5), ("chrom", 0.5), ("pbv", 0.5))


REMOVAL_LOSSES = ("flatness", "notched_flat")  # see `PrivacyPhysConfig.removal_loss`
BALANCES = ("mean", "softmax")  # ways to combine the surrogates' terms (see `combine_terms`)
# Fields a sweep varies: traced in the compiled edit (one program for every value; vmap-able).
HYPERPARAMETERS = ("learning_rate", "fidelity_weight")

# A removal's own defaults (`editors.make_config` applies them under the user's options): a
# coarser perturbation grid. x264 keeps smooth changes and drops fine ones, so the fine-grained
# anti-pulse of the 32x32 grid was lost to the codec and the true pulse came back. Measured with
# `benchmarks/removal_codec.py` (synthetic clips, light/medium/dark, still/moving, 10 estimators
# reading each output through its own skin mask), readings within 3 bpm of the true rate, lossless /
# after H.264 CRF 23, seeds 0-7 then 8-15: grid 32 1/80, 19/80; 3/80, 6/80. Grid 8: 1/80, 5/80;
# 2/80, 5/80 (CRF 28 on seeds 8-15: 8/80 at 32, 5/80 at 8). Grid 16: 1/80, 10/80; 3/80, 2/80.
# Grid 4: 2/80, 11/80 (seeds 0-7). PSNR 59.36 / 59.30 dB. Clips rendered without a pulse, read
# the same way: 5/80, 3/80 (seeds 0-7): grid 8 leaves the codec's output at that chance level.
# The deep surrogates run at every step (`deep_every` 1): a removal runs all its steps, and their
# linearisation between every 4th step let the pulse back through the codec (`removal_codec.py
# --seeds 0-7 --outputs lossless,crf23 --candidates default deep_every=4`, at 1 / 4: at the true
# rate 2 / 2 of 80 losslessly, 0 / 5 after CRF 23; largest group 5.6 / 6.0 and 4.9 / 5.6 of 10).
# A removal moves the colour freely (`colour` "free") and starts from the pulse cancelled in each
# channel (`own_pulse_grid` on a one-node grid): a real pulse is not exactly along the signature,
# and the part off it stayed for estimators that weight the channels their own way (ICA, PCA,
# GREEN, deep models).
# Measured (`removal_codec.py --outputs lossless,crf23 --candidates colour=pulse colour=free`, seeds
# 0-7 / 8-15, `channel_weight` 3), along the signature / free: at the true rate losslessly 3, 1 / 0,
# 0 of 80, after CRF 23 1, 1 / 3, 1; mean largest group losslessly 5.4, 5.1 / 3.8, 4.5 of 10 (clips
# rendered without a pulse: 4.8), after CRF 23 4.9, 4.9 / 5.2, 5.6; PSNR 60.29, 60.53 / 59.93, 60.39
# dB. The shared physrecorder clip, 20 readers (13 in-house, 7 open-rppg): largest group 7 / 6 of 20
# losslessly, 11 / 7 after CRF 23, none at the true rate; PSNR 58.75 / 58.79 dB. In free colour the
# R, G, B terms weigh twice as much (`channel_weight` 6: deeper at the true rate).
REMOVAL_DEFAULTS = {"param_size": 8, "deep_every": 1, "colour": "free"}


@dataclasses.dataclass(frozen=True)
class PrivacyPhysConfig:
    """Settings of one Privacy-Phys edit (hashable: a jit static argument, except the
    `HYPERPARAMETERS` fields, which reach the compiled edit as traced values).

    Attributes:
      fps: frame rate of the clip in Hz (the classical surrogates and the removal band need it).
      steps: Adam steps (paper: 20).
      learning_rate: Adam learning rate in grey levels per step (paper: 0.1).
      fidelity_weight: lambda, the weight of MSE(x, z) on the 0-255 scale (paper: 0.1).
      surrogates: (estimator name, weight) pairs; names from the estimator registry.
      param_size: side of the perturbation grid, upsampled bilinearly to the clip; None optimises
        every pixel (the paper's PGD). A removal's default is 8 (`REMOVAL_DEFAULTS`).
      remove: True to remove the pulse (`removal_loss`) instead of matching a target.
      band_hz: pulse band (of the removal objective, and of the clip's own pulse that sizes
        `init_scale`'s start).
      colour: "free" (any colour change) or "pulse" (only along the skin's pulse signature). A
        removal's default is "free" (`REMOVAL_DEFAULTS`).
      channel_weight: removal only: weight of the R, G, B skin traces' removal terms (flatness or
        divergence, as `removal_loss`), relative to the surrogates' weights. 6 since a removal
        moves the colour freely (`REMOVAL_DEFAULTS`; 3 before). Measured, 3 / 6
        (`removal_codec.py --seeds 0-15 --outputs lossless,crf23`): at the true rate 0 / 0 of
        160 losslessly, 4 / 0 after CRF 23; mean largest group 4.15 / 4.2 and 5.4 / 5.2 of 10;
        highest SNR at the true rate of any reading -2.9 / -7.3 and -1.2 / -2.4 dB; PSNR 60.16 /
        60.02 dB. Grid seeds 0-5 (`tests/removal_test.py`): group 3.8 / 4.8. The shared
        physrecorder clip, 20 readers: largest group 6 / 4 losslessly, 7 / 6 after CRF 23, none
        at the true rate. Terms for 3 or 6 more directions, of the chromaticity plane (each
        channel's trace divided by its mean, then projected, as chrominance estimators read it),
        with the R, G, B terms' weight, tried (`removal_codec.py --seeds 0-7 --outputs lossless`):
        at the true rate 2 / 2 of 80 (0 without), mean largest group 4.9 / 4.6 of 10 (4.5): not
        kept; with the weight shared among all nine signals, 6 directions: 4 of 80, group 5.2.
      unroll: Adam steps per iteration of the compiled loop (`optimize.optimize`; same result).
      balance: how the surrogates' terms are combined (`combine_terms`): "mean" (weighted mean) or
        "softmax" (a weighted soft maximum: whichever surrogate lags gets the larger weight).
      temperature: the soft maximum's temperature, in units of Pearson correlation.
      notch_weight: removal with `removal_loss` "flatness" only: weight of the edited signals'
        spectral overlap with the original's pulse (`removal_overlap`), which keeps the flattened
        spectrum away from the true rate instead of leaving it one bin among equals. Scored as a
        share of each signal's band power, it is also lowered by power planted elsewhere, and most
        estimators then agree on that new rate (`report` says so). Scored against the unedited
        signals' band power instead (no credit for planted power), tried on the 16 clips of
        `harmonic_weight`: the largest group fell from 7.1 to 5.8 of 10 and PSNR rose 1.8 dB, but
        the true rate came back (10/160 losslessly, from 3; on the physrecorder crop 6 and 9 of 10,
        lossless and after CRF 23, from 1 and 0): not kept.
      harmonic_weight: removal only: the notch also covers the pulse's first harmonic (twice the
        true rate, which gives the rate away as surely as the rate itself), with this weight
        relative to the fundamental (`pulse_reference`; with "notched_flat" also half the rate,
        `notched_flat`); 0 notches the fundamental alone. The history, with "flatness": The
        notch scores a signal's band *share* at the original rate, which falls as much when power
        is added elsewhere as when the pulse goes, so with the fundamental alone the optimiser
        often planted the pulse's own harmonic. Measured with own-mask readings
        (`benchmarks/removal_codec.py --seeds 0-7` and `8-15 --outputs lossless,crf23`, 10
        estimators x 16 clips), readings at
        the true rate / at twice or half it, lossless and after CRF 23: at 0, 3 / 25 and 10 / 10
        (160 each); at 1 (the default), 5 / 0 and 14 / 9; at 0.5 (seeds 0-7), 2 / 2 and 18 / 4;
        PSNR 59.30 / 59.05 dB; largest agreeing group 7.1 / 7.8 of 10 losslessly (clips rendered
        without a pulse: 5.0). The demo clip (true 71.6 bpm): 10 of 10 at 143.8 bpm at 0, 9 of
        10 at 97.3 bpm at 1. Real clips (`benchmarks/share_table.py --targets none --outputs
        lossless,h264_crf23,h264_crf28 --strengths 1`), readings at the true rate at 0 / 1:
        physrecorder crop 1/0/0, 1/0/0; evm face 2/0/0, 2/1/2; pyfeat 2/8/8, 2/8/8; none at the
        harmonic either way.
      region_weight: weight of the regional terms, relative to their surrogate's: every trace
        surrogate (POS, CHROM, PBV, ...) also reads each face region (`roi.FACE_REGIONS`: forehead,
        cheeks) and its term joins the balance and the stop rule, so that no region keeps the
        true pulse for an estimator that reads only there; 0 (the default) reads the whole face
        only. Measured (`benchmarks/ensemble_balance.py --seeds 0-3 --targets 60,120`, POS on each
        region after the edit): at 0, 20/24 region readings at the target (the forehead keeps the
        true rate on seed 0 and 1 at 60 bpm, where the synthetic pulse is strongest), surrogates
        32/32, held-back 45/48, PSNR 54.23 dB; at 1, 22/24, 31/32 (PBV on seed 3 at 60), 43/48,
        55.46 dB: the soft maximum spends the step budget on the region that lags. Not the
        default: it does not improve all three.
      removal_loss: what a removal minimises for each surrogate's output and each colour
        channel. "notched_flat" (the default): the divergence of its band spectrum from a flat
        band with the original pulse notched out (`notched_flat`, `removal_divergence`): a peak
        anywhere costs, power at the original rate, twice or half it (`harmonic_weight` deep)
        costs more. "flatness": the band's spectral flatness plus `notch_weight` times the overlap
        with the original pulse (`removal_overlap`), which is also lowered by a new peak planted
        elsewhere, and the optimiser planted one. Measured with `benchmarks/removal_codec.py
        --seeds 0-15 --outputs lossless,crf23` (10 estimators x 16 clips, read through each
        output's own skin mask), flatness / notched_flat: readings within 3 bpm of the true rate
        losslessly 7 / 3 of 160, after H.264 CRF 23 17 / 11; at twice or half the true rate 0 / 0
        and 8 / 1; the largest agreeing group 7.8 / 7.8 of 10 losslessly and 6.6 / 5.1 after CRF
        23 (clips rendered without a pulse: 4.8 losslessly, seeds 0-7); PSNR 59.10 / 59.20 dB. A
        first version whose harmonic notch was half as deep and had no notch at half the rate:
        group 6.1 / 7.2 (seeds 0-7 / 8-15) losslessly, but 9 of 160 readings at twice or half
        the rate. Also tried, not kept: a term that drives the readers' peaks apart. It scored
        how often the soft spectral peaks (softmax of 6 times the log band share) of
        the surrogates' outputs and the R, G, B traces fall within 3 bpm of one another. The
        original pulse, and the same spectrum at twice and half its rate, counted as three more
        signals to keep away from. Weight 0.3 (`removal_codec.py --outputs lossless`, seeds 0-7
        / 8-15), against the default: mean largest group 4.1 / 4.0 of 10 (4.5 / 4.1; largest
        5 / 6, from 6 / 7), none at the truth, highest SNR at the truth -5.8 / -6.8 dB (-6.9 /
        -7.8). Without the deep surrogate's output in the term, PhysNet-RLAP and -PURE joined
        the POS group instead (4.6). Without the truth among the signals, the truth came back:
        3 of 80. On the physrecorder crop, 20 readers (13 in-house, 7 open-rppg), the largest
        group grew from 5 to 9 (at 78 bpm). That was with one 602-frame window; the default's
        three 256-frame windows, read by 17 of the readers: 4 to 7, one at the truth. The term
        spreads the surrogates' peaks but not the readers', who weigh the colours and the face
        differently.
      cancel_init: removal only: the perturbation starts as this many times minus the clip's own
        pulse (`own_pulse`: its skin trace along the pulse colour, narrow-band around its strongest
        rate; in free colour each channel's, `own_pulse_grid`), uniform over the skin, instead
        of at zero: the pulse is cancelled before Adam starts, so the steps flatten what is left
        instead of covering the pulse with power planted elsewhere. Measured with
        `benchmarks/removal_codec.py --seeds 0-15 --outputs lossless,crf23` (notched_flat, 16 clips
        x 10 estimators, along the pulse colour), from zero / from 1 (the default): readings at the
        true rate 3 / 3 of 160 losslessly and 11 / 3 after H.264 CRF 23; at twice or half it 0 / 0
        and 1 / 5; the largest agreeing group 7.8 / 6.1 of 10 losslessly (clips rendered without a
        pulse: 4.8) and 5.1 / 5.0 after CRF 23; PSNR 59.20 / 60.41 dB.
      cancel_width_hz: removal only: `own_pulse` keeps the window's DFT bins within this many Hz
        of its strongest rate (at least one bin each side). 0.25 keeps one bin each side of a
        128-frame window at 30 fps (0.23 Hz apart, as 0.1 did) and two of a 256-frame one, the
        removal's default window (`windows.REMOVAL_WINDOW`), so that the cancelled band is as
        wide in Hz. Measured (`benchmarks/removal_codec.py --seeds 0-7
        --outputs lossless`, 256-frame windows), 0.1 / 0.25 / 0.4: readings at the true rate
        6 / 3 / 4 of 80, mean largest group 5.2 / 5.4 / 5.2 of 10.
      cancel_rate: removal only: the rate the start cancels (`cancel_init`): "trace" (the
        default), the strongest in-band rate of the skin trace along the pulse colour; or
        "surrogates", the rate where the surrogates' mean spectrum of the unedited window peaks
        (`pulse_rate_hz`). On the shared physrecorder clip the trace's strongest rate is not the
        pulse in any of its three 256-frame windows (49, 91, 84 bpm; the pulse 70.7): after the
        start alone (one step of a negligible learning rate) 18 of 20 readers (13 in-house, 7
        open-rppg) still read the truth with "trace", 3 with "surrogates" (median SNR drop at
        the truth 0.1 / 9.0 dB). But after Adam, "surrogates" alone left a rate the clip had
        under its pulse for most readers to agree on (largest group 13 and 18 of 20, at 99 bpm,
        with and without `cancel_grid`; "trace": 5), unless the start also cuts the band's other
        peaks (`cancel_excess`). Not the default yet: see `cancel_excess`.
      cancel_grid: removal in free colour only: the start is each node of the perturbation grid's
        own pulse (`own_pulse_grid`: the skin pixels the node reaches when upsampled) instead of
        the face's mean pulse everywhere: real skin pulses unevenly, and the face's mean left
        the physrecorder clip's regions within 2.5-4.7 dB of their original pulse (green and POS
        of the forehead and cheeks) and planted a pulse in cells where it had been weaker.
      cancel_excess: removal in free colour only: the start also takes from each channel
        the part of every other band bin above this many times the band's median magnitude
        (`signals.pulse_component`'s `excess_over`), so that no rate stands out of the band
        once the pulse is gone. Measured with `cancel_rate="surrogates"`, `cancel_grid` on /
        off, excess 1.5, against the defaults: the physrecorder clip, 20 readers: none at the
        truth in all; largest group 6 / 7 of 20 (defaults 5); median SNR drop at the truth 16.4
        / 10.6 dB (11.5), readers under 6 dB `pbv_raw` only (which read 81 bpm before the edit)
        (defaults: also `efficientphys_pure`, 4.8 dB); POS of the forehead and cheeks down
        10.2-10.4 / 5.2-8.4 dB (4.7-6.8). `benchmarks/removal_codec.py --seeds 0-7 --outputs
        lossless,crf23`: at the truth 0 / 0 of 80 losslessly (0), 1 / 0 after CRF 23 (0); mean
        largest group 5.0 / 4.8 of 10 losslessly (4.5), 5.2 / 4.9 after CRF 23 (5.9); highest
        SNR at the truth -7.8 / -7.4 dB losslessly (-6.9), -4.3 / -5.1 (-5.1); PSNR 59.67 /
        59.92 dB (59.78). The grid seeds 0-5 of `tests/removal_test.py` with the grid: largest
        groups 4, 3, 6, 8, 4, 7 (mean 5.3; defaults 4.8, no clip over 6): deeper at the truth on
        the real clip, a wider spread on the synthetic one, so not the default yet. Excess 1.2 /
        2.0 (with the surrogates' rate and the grid): the real clip's largest group 7 / 5 of 20,
        median SNR drop 16.5 / 16.5 dB, none at the truth; seeds 0-7 largest group 4.2 / 4.4
        losslessly and 4.9 / 5.6 after CRF 23, at the truth 0 / 0 and 0 / 3 of 80; seeds 8-15
        (excess 1.2 against the defaults) largest group 4.5 (4.1) losslessly and 5.0 (4.9)
        after CRF 23, at the truth 0 (0) and 6 (1) of 80, highest SNR at the truth after CRF 23
        -2.8 (-4.1) dB. With the trace's rate instead, grid and excess 1.5 / 2.0, the real
        clip's largest group is 8 / 15 of 20 (at 88 and 87 bpm, rates the clip's trace has
        under its pulse). No setting is better on every measure, so the defaults stay (with
        `cancel_floor` too: see there).
      cancel_floor: removal only: the start takes from each bin near the rate only its part above
        this many times the band's median magnitude (`signals.pulse_component`'s `floor_over`),
        leaving the band's noise floor at the rate instead of emptying those bins. From the empty
        bins the steps planted one rate that most readers shared, about `cancel_width_hz` from
        the truth (0.25: about 80 bpm on grid seed 3, true 64.3; 88 on seed 4, true 107.2; 0.5:
        about 93 and 76): R and B kept one peak there, the same in both. Measured with
        `benchmarks/removal_codec.py --outputs lossless`, grid seeds 0-5, 20 readers (the 13
        in-house of its docstring's last example, open-rppg's 7), default / floor 1.0: at the truth
        1 / 1 of 120; largest group mean 8.5 / 6.7 of 20, max 14 / 9 (clips rendered without a
        pulse: 5.2, max 8); clips where half the readers agree 2 / 0 of 6; highest SNR at the
        truth -6.9 / -7.7 dB; PSNR 59.86 / 59.74 dB. But with the 10 default readers, seeds 0-7,
        lossless / after H.264 CRF 23: largest group mean 4.5 / 4.9 and 5.9 / 6.9 of 10 (max 6 /
        7 and 8 / 9), none at the truth in either, PSNR 59.78 / 59.81 dB. Floor 1.5 alone: 4.8
        and 5.0 of 10, 1 of 80 at the truth losslessly, highest SNR there -2.9 dB. With
        `cancel_excess` 1.5 as well (`cancel_floor=1.0+cancel_excess=1.5`), the same 10
        readers: none at the truth, largest group mean 3.5 (max 5) losslessly and 5.8 (max 8)
        after CRF 23, highest SNR at the truth -5.7 / -4.0 dB, PSNR 60.01 dB; the 20 readers on
        seeds 0-5: 1 of 120 at the truth, largest group mean 5.7 of 20 (max 8, as without a
        pulse), no clip where half agree, highest SNR at the truth -5.7 dB, PSNR 59.95 dB; the
        shared physrecorder clip (602 frames, 256-frame windows), 20 readers, default / floor
        and excess: none at the truth in either, largest group 5 (at 59 bpm) / 4. But on seeds
        8-15 after CRF 23 the truth came back: 8 of 80 readings (3 clips), highest SNR at the
        truth -0.9 dB (default: 1 of 80, `cancel_excess`'s figures), none losslessly, largest
        group 4.6 / 4.5 of 10 losslessly / after CRF 23. The floor alone there: 4 of 80 at the
        truth after CRF 23 (none losslessly), highest SNR at the truth -2.9 dB, largest group 4.1
        / 5.5. With `cancel_grid` as well (`cancel_floor=1.0+cancel_grid=True`: each grid node's
        pulse taken down to the floor where it is, as the codec's blocks see it), seeds 0-7 /
        8-15, lossless and after CRF 23: at the truth 0 / 0 and 2 / 0 of 80; largest group mean
        5.0 / 5.0 and 4.9 / 4.9 of 10 (default 4.5 / 4.1 and 5.9 / 4.9); highest SNR at the truth
        after CRF 23 -1.6 / -4.5 dB; PSNR 59.68 / 60.20 dB. With `cancel_excess` 1.5 too, seeds
        8-15: 1 / 0 of 80, group 4.8 / 5.4. The shared physrecorder clip, 20 readers, floor and
        grid / default: none at the truth, losslessly or after CRF 23; largest group 7 / 5 of 20
        losslessly, 7 / 6 after CRF 23. The grid keeps the truth away after the codec, but its
        lossless groups are those of clips rendered without a pulse (4.8-5.2), larger than the
        default's; only after CRF 23 are they smaller on the synthetic clips, and on the real
        clip they are larger in both. So not the default yet.
      regional_timing: target mode only: in each face region (`roi.FACE_REGIONS`: forehead,
        cheeks) the start (`init_scale`) and, with `region_weight`, the region's target are the
        target delayed (by at most `PLANTED_LAG_S`) and scaled as that region's own pulse trails
        and outweighs the whole face's (`regional_timing`, `start_map`), so the edited regions
        keep the original's arrival order and relative strength instead of pulsing in lockstep,
        which a spatial-coherence detector of fakes would notice. Measured on the shared
        physrecorder crop (`benchmarks/regional_timing.py`: POS per region, physiological targets
        60 and 120 bpm; before: cheeks 1 frame behind the forehead, pair correlations 0.64 / 0.65
        / 0.73): on, lags 0 / 0 / 0 frames after at both, correlations at most 0.10 from the
        original's, PSNR 54.78 / 53.32 dB; off, lags -1 / 0 / 0 (the forehead trailing) at both,
        correlations up to 0.14 higher, 54.80 / 53.32 dB; the same editor time. Each window's
        delay estimate (128 frames) is noisy: allowed up to 0.2 s it kept the lags 1 / 1 / 0 at
        60 bpm but cost 29% more Adam steps (31 against 24 on the crop's windows) and 0.1-0.2 dB.
        On synthetic clips, whose regions pulse together (`benchmarks/ensemble_balance.py --seeds
        0-3 --targets 60,120`): the same hits (32/32, 48/48, 24/24), PSNR 53.79 / 53.81 dB on /
        off. A removal keeps cancelling the whole face's pulse everywhere: cancelling each
        region's own (tried, `benchmarks/removal_codec.py --seeds 0-7 --outputs lossless,crf23`)
        raised the largest agreeing group from 5.6 to 7.9 of 10 losslessly, 4.5 to 6.2 after
        CRF 23.
      deep_every: the deep (video) surrogates, about 85% of a step's cost on a 64x64 crop
        (PhysNet's forward and backward pass: 85 of 98 ms per step of a 128-frame window on this
        2-core CPU), run on every `deep_every`-th step only: that step takes their terms and
        gradients, and the steps until the next use the terms' first-order expansion around it
        (`optimize`'s `inner` and `refresh`), while the classical surrogates, the fidelity term
        and the stop rule are evaluated at every step; 1 runs them at every step (the exact
        gradient, the paper's optimiser; a removal's default, `REMOVAL_DEFAULTS`). Measured
        (`benchmarks/ensemble_balance.py --seeds 0-7
        --targets 60,120 --candidates softmax:0.01 softmax:0.01+deep_every=K`, 16 edits each),
        K = 1 / 2 / 3 / 4 / 5: surrogates fooled 64/64, held-back readers 96/96 and face regions
        47/48 at every K; PSNR mean 54.41 / 54.32 / 54.27 / 54.22 / 54.18 dB; editor seconds
        109.3 / 76.6 / 64.0 / 50.1 / 45.9. Seeds 8-15 at 1 / 4: 64/64 and 64/64, held-back 94/96
        and 94/96, regions 44/48 and 43/48, worst Pearson 0.74 / 0.73, PSNR 53.92 / 53.73 dB,
        editor seconds 130.5 / 62.2. The shared physrecorder crop's five windows at 1 / 4: 69 /
        72 Adam steps in 8.1 / 4.0 s at 60 bpm (crop PSNR 56.47 / 56.14 dB), 24 / 22 in 3.5 / 1.7 s
        at 120 (56.46 / 56.54 dB), worst Pearson 0.79 / 0.79.
      init_scale: target mode only: the perturbation starts as the target waveform, uniform
        over the skin along the pulse colour, instead of at zero (the paper), with this many
        times the standard deviation of the clip's own pulse along that colour
        (`initial_perturbation`, `signals.pulse_strength`): an edit every classical estimator already
        reads as the target, so Adam only refines what the deep surrogates and the face regions
        need, and the stop rule ends windows sooner; sized by the pulse it has to outweigh, so a
        faint pulse costs a faint start. Measured (`benchmarks/ensemble_balance.py --seeds 0-3
        --targets 60,120`, editor seconds summed over the 8 edits, one compile each): from zero
        32/32 surrogates, 45/48 held-back, 20/24 regions, PSNR 54.23 dB, 75.7 s; 0.7 (the
        default): 32/32, 48/48, 22/24, 54.02 dB, 64.9 s; 1.0: 32/32, 48/48, 24/24, 53.83 dB,
        59.1 s. Sized by the whole band's standard deviation instead of the pulse peak's (noise
        and motion counted as pulse): 0.5: 54.05 dB, 67.7 s; 0.7: 53.96 dB, 62.8 s; 1.0: 53.51
        dB; 1.5: 52.33 dB; 2.0: 50.97 dB (every reading as at 1.0). On real clips (10
        estimators, targets 60 and 120, all 10/10 either way): physrecorder 58.9 / 59.3 ->
        59.3 / 59.4 dB, pyfeat 59.9 / 60.8 -> 61.0 / 61.8 dB, evm face 54.3 / 54.9 -> 53.8 /
        53.9 dB (a clip where the optimiser from zero finds a smaller, less uniform edit).
      stop_pearson: target mode only: the edit stops (keeps its perturbation for the remaining
        steps) once every surrogate's Pearson with the target reaches this value, so a clip that is
        easy to move spends less of the fidelity budget; None runs every step.
      extra_steps: with `stop_pearson`, a window whose surrogates have not all reached it after
        `steps` steps gets up to this many more (it still stops as soon as they do); windows that
        stop within `steps` are unchanged. A surrogate that reads the clip far from the truth
        before the edit takes the soft maximum's steps first, and the others may still read the
        truth at step `steps`: PhysNet-PURE read a dark, moving grid clip (seed 11) at 43 bpm, and
        after 20 steps at the 120 bpm target POS, CHROM and PBV still read the true 66 bpm
        (Pearsons 0.52-0.60); with 20 more, all four read 120 (0.74-0.79), PSNR 51.8 dB.
        Measured (`benchmarks/ensemble_balance.py --seeds 0-31 --targets 60,120 --candidates
        softmax:0.01 softmax:0.01+steps=40`, 64 edits), at 0 / 20: surrogates fooled 253 / 256
        of 256, clips with all fooled 63 / 64, held-back readers at the target 376 / 378 of 384,
        face regions 169 / 176 of 192, worst Pearson 0.52 / 0.72, PSNR mean 54.60 / 54.42 dB
        (min 51.84 / 51.59), editor seconds 669 / 757; 17 of the 64 edits ran past step 20. The
        shared 320x320 clip's edit stops within 20 steps: the same output bits.
    """

    fps: float = 30.0
    steps: int = 20
    learning_rate: float = 0.07
    fidelity_weight: float = 0.1
    surrogates: tuple[tuple[str, float], ...] = DEFAULT_SURROGATES
    param_size: int | None = 32
    remove: bool = False
    band_hz: tuple[float, float] = (0.7, 3.0)
    colour: str = "pulse"
    channel_weight: float = 6.0
    notch_weight: float = 1.0
    harmonic_weight: float = 1.0
    unroll: int = 1
    balance: str = "softmax"
    temperature: float = 0.01
    stop_pearson: float | None = 0.8
    extra_steps: int = 20
    region_weight: float = 0.0
    init_scale: float = 0.7
    removal_loss: str = "notched_flat"
    cancel_init: float = 1.0
    regional_timing: bool = True
    deep_every: int = 4
    cancel_width_hz: float = 0.25
    cancel_rate: str = "trace"
    cancel_grid: bool = False
    cancel_excess: float | None = None
    cancel_floor: float | None = None

    def __post_init__(self):
        if self.steps < 1 or self.learning_rate <= 0 or self.fidelity_weight < 0:
            raise ValueError("steps >= 1, learning_rate > 0 and fidelity_weight >= 0 are required")
        if self.extra_steps < 0:
            raise ValueError(f"extra_steps must be >= 0, got {self.extra_steps}")
        if not self.surrogates or any(w <= 0 for _, w in self.surrogates):
            raise ValueError("at least one surrogate with a positive weight is required")
        if self.balance not in BALANCES or self.temperature <= 0:
            raise ValueError(
                f"balance must be one of {BALANCES} and temperature > 0, "
                f"got {self.balance!r}, {self.temperature}"
            )
        if not self.region_weight >= 0:
            raise ValueError(f"region_weight must be >= 0, got {self.region_weight}")
        if not (self.notch_weight >= 0 and self.harmonic_weight >= 0):
            raise ValueError(
                f"notch_weight and harmonic_weight must be >= 0, got {self.notch_weight}, "
                f"{self.harmonic_weight}"
            )
        if self.stop_pearson is not None and not -1.0 < self.stop_pearson <= 1.0:
            raise ValueError(f"stop_pearson must be in (-1, 1], got {self.stop_pearson}")
        if not self.init_scale >= 0:
            raise ValueError(f"init_scale must be >= 0, got {self.init_scale}")
        if not self.cancel_init >= 0:
            raise ValueError(f"cancel_init must be >= 0, got {self.cancel_init}")
        if self.removal_loss not in REMOVAL_LOSSES:
            raise ValueError(
                f"removal_loss must be one of {REMOVAL_LOSSES}, got {self.removal_loss!r}"
            )
        if self.deep_every < 1:
            raise ValueError(f"deep_every must be >= 1, got {self.deep_every}")
        if self.cancel_rate not in ("trace", "surrogates"):
            raise ValueError(
                f"cancel_rate must be 'trace' or 'surrogates', got {self.cancel_rate!r}"
            )
        if self.cancel_excess is not None and not self.cancel_excess > 0:
            raise ValueError(f"cancel_excess must be None or > 0, got {self.cancel_excess}")
        if self.cancel_floor is not None and not self.cancel_floor > 0:
            raise ValueError(f"cancel_floor must be None or > 0, got {self.cancel_floor}")
        if self.colour not in ("free", "pulse"):
            raise ValueError(f"colour must be 'free' or 'pulse', got {self.colour!r}")
        for name, _ in self.surrogates:
            if not registry.get(name).differentiable:
                raise ValueError(f"surrogate {name!r} is not differentiable")


def load_state(cfg: PrivacyPhysConfig) -> dict[str, Any]:
    """The surrogates' weights: {name: params} (None for the classical ones), loaded once."""
    state = {}
    for name, _ in cfg.surrogates:
        est = registry.get(name)
        state[name] = est.load_params() if est.input == "video" else None
    return state


def _apply_delta(clip, mask, delta, direction=None):
    """The edited clip: clip + upsampled delta (grey levels) on skin pixels, clipped to [0, 1].

    With `direction` (3,), `delta` has one channel: the amplitude along that colour direction."""
    shape = clip.shape[:-1] + (delta.shape[-1],)
    if delta.shape != shape:
        delta = jax.image.resize(delta, shape, method="linear")
    if direction is not None:
        delta = delta * direction.reshape((1,) * (delta.ndim - 1) + (3,))
    edited = jnp.clip(clip + delta / LEVELS, 0.0, 1.0)
    return jnp.where(mask[..., None], edited, clip)


def _surrogate_outputs(state, clip, mask, cfg: PrivacyPhysConfig):
    """{name: bvp (T,)} of every surrogate on `clip`."""
    trace = spatial_mean(clip, mask)
    out = {}
    for name, _ in cfg.surrogates:
        est = registry.get(name)
        out[name] = (
            est.fn(state[name], clip, cfg.fps) if est.input == "video" else est.fn(trace, cfg.fps)
        )
    return out


def _regional_surrogates(cfg: PrivacyPhysConfig) -> list[tuple[str, float]]:
    """(name, weight) of the terms that read each face region: the trace surrogates, weighted by
    `cfg.region_weight` (none when it is 0)."""
    if cfg.region_weight <= 0:
        return []
    return [
        (n, w * cfg.region_weight) for n, w in cfg.surrogates if registry.get(n).input == "trace"
    ]


def _regional_outputs(clip, mask, cfg: PrivacyPhysConfig):
    """[bvp "k t"] of each regional surrogate (`_regional_surrogates`) on the K face regions."""
    traces = roi.region_traces(clip, mask, spatial_mean(clip, mask))  # k t c
    return [
        jax.vmap(lambda t, n=n: registry.get(n).fn(t, cfg.fps))(traces)
        for n, _ in _regional_surrogates(cfg)
    ]


def rppg_objective(bvp, target, cfg: PrivacyPhysConfig, spectrum=None):
    """The rPPG term for one surrogate output: -Pearson to the target, or for removal -flatness
    or (`cfg.removal_loss` "notched_flat") the divergence from `spectrum` (`notched_flat`)."""
    if cfg.remove and cfg.removal_loss == "notched_flat":
        return removal_divergence(bvp, spectrum, cfg)
    if cfg.remove:
        return -signals.spectral_flatness(bvp, cfg.fps, band_hz=cfg.band_hz)
    return -signals.pearson(bvp, target)


def removal_divergence(signals_, spectrum, cfg: PrivacyPhysConfig):
    """KL(band share of each signal "... t" || `spectrum`): 0 only for a signal whose band power
    is spread as `spectrum` (flat off the notch); a peak anywhere costs about log(number of
    bins), power in the notch more."""
    shares = signals.band_share(signals_, cfg.fps, band_hz=cfg.band_hz)
    spectrum = jnp.reshape(spectrum, (1,) * (shares.ndim - 1) + spectrum.shape)
    return jnp.sum(shares * (jnp.log(shares + 1e-12) - jnp.log(spectrum)), axis=-1)


def pulse_share(state, clip, mask, cfg: PrivacyPhysConfig):
    """The original clip's pulse spectrum over the band's bins (constant: no gradient flows into
    it): the mean band share (`signals.band_share`, summing to 1) of the surrogates' outputs on
    the unedited clip."""
    outputs = _surrogate_outputs(state, clip, mask, cfg)
    shares = [
        signals.band_share(outputs[n], cfg.fps, band_hz=cfg.band_hz) for n, _ in cfg.surrogates
    ]
    return jax.lax.stop_gradient(jnp.mean(jnp.stack(shares), axis=0))


def _rescaled(spectrum, num_samples: int, cfg: PrivacyPhysConfig, factor: float):
    """`spectrum` over the band's bins moved to `factor` times its frequencies (zero where it
    would come from outside the band)."""
    freqs = jnp.asarray(signals.band_frequencies(num_samples, cfg.fps, band_hz=cfg.band_hz))
    return jnp.interp(freqs / factor, freqs, spectrum, left=0.0, right=0.0)


def pulse_reference(state, clip, mask, cfg: PrivacyPhysConfig):
    """`pulse_share` plus `cfg.harmonic_weight` times the same spectrum moved to twice its
    frequencies (the first harmonic, its mass scaled to the fundamental's; added, not shared, so
    the fundamental's notch keeps its full weight)."""
    reference = pulse_share(state, clip, mask, cfg)
    if cfg.harmonic_weight > 0:
        # the stretch doubles the harmonic's width, so half of it carries the fundamental's mass
        harmonic = _rescaled(reference, clip.shape[0], cfg, 2.0)
        reference = reference + cfg.harmonic_weight * 0.5 * harmonic
    return reference


def notched_flat(share, num_samples: int, cfg: PrivacyPhysConfig, floor: float = 1e-3):
    """The band spectrum a "notched_flat" removal aims for (sums to 1): flat, notched where the
    original pulse `share` (`pulse_share`) is, in proportion to its height (bins at its peak get
    `floor`), and, `cfg.harmonic_weight` times as deep, at twice and at half its rate, which give
    the rate away as well."""
    peak = share / jnp.max(share)
    notch = peak
    if cfg.harmonic_weight > 0:
        for factor in (2.0, 0.5):
            moved = _rescaled(peak, num_samples, cfg, factor)
            notch = jnp.maximum(notch, cfg.harmonic_weight * moved)
    shape = jnp.clip(1.0 - notch, floor, 1.0)
    return shape / jnp.sum(shape)


def removal_overlap(signals_, reference, cfg: PrivacyPhysConfig):
    """Spectral overlap of each signal "k t" with the original pulse `reference` (band bins): the
    number of bins times sum(share * reference), 1 for a flat spectrum, large for a spectrum that
    still peaks where the original pulse did, near 0 for one that avoids the original rate."""
    shares = signals.band_share(signals_, cfg.fps, band_hz=cfg.band_hz)
    reference = jnp.reshape(reference, (1,) * (shares.ndim - 1) + reference.shape)
    return reference.shape[-1] * jnp.sum(shares * reference, axis=-1)


def combine_terms(terms, weights, cfg: PrivacyPhysConfig):
    """One rPPG term from the surrogates' terms "k" and their weights "k" (normalised here).

    "mean": sum_k w_k t_k. "softmax": T log sum_k w_k exp(t_k / T), a soft maximum equal to the mean
    when the terms agree; its gradient weights each surrogate by w_k exp(t_k / T), so a surrogate that
    lags (a larger term) draws the perturbation until it catches up."""
    weights = weights / jnp.sum(weights)
    if cfg.balance == "softmax":
        return cfg.temperature * jax.nn.logsumexp(terms / cfg.temperature, b=weights)
    return jnp.sum(weights * terms)


def _stop_rule(cfg: PrivacyPhysConfig):
    """`optimize`'s `done`: every surrogate's Pearson with the target reached `cfg.stop_pearson`."""
    if cfg.stop_pearson is None or cfg.remove:
        return None
    return lambda metrics: metrics["worst"] >= cfg.stop_pearson


def initial_perturbation(clip, mask, target, direction, cfg: PrivacyPhysConfig):
    """The perturbation's start "t" (grey levels along `direction`, the pulse colour): minus the
    target waveform (blood absorbs: the skin darkens as the estimators' pulse rises), scaled to
    `cfg.init_scale` times the standard deviation of the clip's own pulse (`signals.pulse_strength` of its
    skin trace projected on `direction`, detrended)."""
    own = _colour_trace(clip, mask, direction)
    strength = signals.pulse_strength(own, cfg.fps, band_hz=cfg.band_hz)
    centred = target - jnp.mean(target)
    unit = centred / jnp.maximum(jnp.std(centred), 1e-6)
    return -cfg.init_scale * strength * unit


def _colour_trace(clip, mask, direction):
    """The skin trace's component "t" along the colour `direction`, in grey levels, detrended."""
    return _along(spatial_mean(clip, mask), direction)


def _region_colour_traces(clip, mask, direction):
    """`_colour_trace` of each face region (`roi.FACE_REGIONS`): "k t"."""
    return _along(roi.region_traces(clip, mask, spatial_mean(clip, mask)), direction)


def _along(trace, direction):
    """Traces "... t 3" (in [0, 1]) projected on the colour `direction`, in grey levels,
    detrended: "... t"."""
    return signals.detrend((trace * LEVELS @ direction) / jnp.sum(direction * direction))


def own_pulse(clip, mask, direction, cfg: PrivacyPhysConfig, rate_hz=None):
    """The clip's own pulse "t" in grey levels along `direction` (the pulse colour): the skin
    trace's component along it, narrow-band around `rate_hz` (`pulse_rate_hz`: the rate the
    surrogates read) or, without it, around the trace's strongest rate
    (`signals.pulse_component`, the part `signals.pulse_strength` measures), so that noise,
    motion and lighting elsewhere in the band are left alone."""
    own = _colour_trace(clip, mask, direction)
    return signals.pulse_component(
        own,
        cfg.fps,
        band_hz=cfg.band_hz,
        half_width_hz=cfg.cancel_width_hz,
        centre_hz=rate_hz,
        floor_over=cfg.cancel_floor,
    )


def pulse_rate_hz(share, num_samples: int, cfg: PrivacyPhysConfig):
    """The rate in Hz where the surrogates' mean band spectrum `share` (`pulse_share`) peaks:
    the rate a removal cancels with `cancel_rate="surrogates"`. On real skin the trace's own
    strongest rate is often not the pulse's (the shared physrecorder clip's face trace along the
    pulse colour peaks at 49, 91 and 84 bpm in its three 256-frame windows; the pulse is at
    70.7), while the estimators' projections of it read the pulse."""
    freqs = signals.band_frequencies(num_samples, cfg.fps, band_hz=cfg.band_hz)
    return jnp.asarray(freqs, jnp.float32)[jnp.argmax(share)]


def _upsampling_weights(size: int, out: int):
    """(out, size): the weight of each of `size` grid values in each of `out` pixels, as
    `_apply_delta`'s linear `jax.image.resize` spreads them (separable: rows, then columns)."""
    return jax.image.resize(jnp.eye(size, dtype=jnp.float32), (out, size), method="linear")


def own_pulse_grid(clip, mask, direction, shape, cfg: PrivacyPhysConfig, rate_hz=None):
    """The clip's own pulse at each node of a perturbation grid of `shape` (gh, gw), in each
    colour channel: "t gh gw 3", grey levels. A node's trace is the mean colour of the pixels it
    reaches when upsampled (`_upsampling_weights`), each weighed as the node reaches it, with the
    pixels that are not skin taken as the face's mean (a node over little skin takes the face's
    pulse, not its few pixels' noise); each detrended channel keeps the bins `own_pulse` keeps
    (around `rate_hz`, or found along `direction` on the whole face), and with
    `cfg.cancel_excess` the excess of its other band bins. A start of minus this cancels the
    pulse where it is, as strong or as weak as it is there, in whatever colour; a (1, 1) grid
    is the whole face's pulse in each channel."""
    rows = _upsampling_weights(shape[0], clip.shape[-3])  # h i
    cols = _upsampling_weights(shape[1], clip.shape[-2])  # w j
    face = spatial_mean(clip, mask)  # t 3
    filled = jnp.where(mask[..., None], clip, face[:, None, None])
    reach = jnp.einsum("hi,wj->ij", rows, cols)[None, ..., None]  # each node's weight in all
    nodes = jnp.einsum("thwc,hi,wj->tijc", filled, rows, cols) / reach
    traces = signals.detrend(nodes * LEVELS, axis=0)  # t i j 3
    pulse = signals.pulse_component(
        jnp.moveaxis(traces, 0, -1),
        cfg.fps,
        band_hz=cfg.band_hz,
        half_width_hz=cfg.cancel_width_hz,
        reference=_along(face, direction),  # `_colour_trace` of the same mean
        centre_hz=rate_hz,
        excess_over=cfg.cancel_excess,
        floor_over=cfg.cancel_floor,
    )
    return jnp.moveaxis(pulse, -1, 0)


# The largest delay a face region's start is given: the pulse reaches the forehead and the cheeks
# within a few tens of ms of each other, and a window's estimate beyond that is noise.
PLANTED_LAG_S = 0.05


def regional_timing(clip, mask, direction, cfg: PrivacyPhysConfig):
    """(lags "k" in frames, gains "k"): how the pulse of each face region (`roi.FACE_REGIONS`)
    along `direction` follows the whole face's (`signals.pulse_lag`: positive lags trail, gains
    are the region's pulse over the face's), gains clipped to 0.5-2 so that a region where noise
    hides the pulse keeps a start near the face's."""
    lag_s, gain = signals.pulse_lag(
        _region_colour_traces(clip, mask, direction),
        _colour_trace(clip, mask, direction),
        cfg.fps,
        band_hz=cfg.band_hz,
        max_lag_s=PLANTED_LAG_S,
    )
    return lag_s * cfg.fps, jnp.clip(gain, 0.5, 2.0)


def delayed(signal, lags):
    """`signal` "t" delayed by each of `lags` "k" (frames, fractional: linear interpolation, the
    ends held): "k t"."""
    t = jnp.arange(signal.shape[0], dtype=jnp.float32)
    return jax.vmap(lambda lag: jnp.interp(t - lag, t, signal))(lags)


def start_map(
    clip, mask, target, direction, shape, cfg: PrivacyPhysConfig, timing=None, rate_hz=None
):
    """The perturbation's start "t h w" on a grid of `shape` (h, w), grey levels along
    `direction`: a removal cancels the clip's own pulse (`own_pulse`, `cfg.cancel_init` times)
    everywhere, a target starts as the target waveform (`initial_perturbation`), with `timing`
    (`regional_timing`'s lags and gains) in each face region (`roi.FACE_REGIONS`, on the grid)
    delayed and scaled as the region's own pulse trails and outweighs the face's, so that the
    edited forehead and cheeks keep the original's arrival order."""
    if cfg.remove:
        face = -cfg.cancel_init * own_pulse(clip, mask, direction, cfg, rate_hz)
    else:
        face = initial_perturbation(clip, mask, target, direction, cfg)
    if timing is None:
        return jnp.broadcast_to(face[:, None, None], face.shape + tuple(shape))
    lags, gains = timing
    regions = gains[:, None] * delayed(face, lags)
    where = jnp.asarray(roi.region_masks(*shape), jnp.float32)  # k h w
    elsewhere = 1.0 - jnp.sum(where, axis=0)
    return face[:, None, None] * elsewhere[None] + jnp.einsum("kt,khw->thw", regions, where)


@contract.editor_function(HYPERPARAMETERS)
def edit(state, clip, mask, target, cfg: PrivacyPhysConfig):
    """Edits one clip so the surrogates read `target`.

    Args:
      state: surrogate weights from `load_state(cfg)`.
      clip: float32 "t h w 3" in [0, 1] (the face crop at the working resolution).
      mask: bool "t h w": the pixels that may change (skin).
      target: float32 "t" target waveform (ignored when `cfg.remove`).
      cfg: settings (`learning_rate` and `fidelity_weight` traced).

    Returns:
      (edited clip "t h w 3" in [0, 1], aux) with aux = {"history": {"loss", "rppg", "mse", "worst"
      (the least-fooled surrogate's Pearson with the target, or flatness when removing), and
      "updated" with `stop_pearson`} each (steps,), "surrogates": {name: bvp "t"} on the edited clip}. Pixels outside `mask` are
      bit-identical to `clip`.
    """
    clip = clip.astype(jnp.float32)
    target = target.astype(jnp.float32)
    regional = _regional_surrogates(cfg)
    num_regions = len(roi.FACE_REGIONS)
    weights = [w for _, w in cfg.surrogates] + [w for _, w in regional for _ in range(num_regions)]
    weights = jnp.asarray(weights, jnp.float32)
    total = sum(w for _, w in cfg.surrogates)

    direction = pulse_direction(clip, mask) if cfg.colour == "pulse" else None
    channels = 1 if cfg.colour == "pulse" else 3
    divergence = cfg.remove and cfg.removal_loss == "notched_flat"
    notch = cfg.remove and cfg.notch_weight > 0 and not divergence
    reference = pulse_reference(state, clip, mask, cfg) if notch else None
    by_surrogates = cfg.remove and cfg.cancel_rate == "surrogates"
    # the original's pulse spectrum, for the aim and (by_surrogates) the rate the start cancels
    share = pulse_share(state, clip, mask, cfg) if divergence or by_surrogates else None
    spectrum = notched_flat(share, clip.shape[0], cfg) if divergence else None
    rate = pulse_rate_hz(share, clip.shape[0], cfg) if by_surrogates else None

    colour = pulse_direction(clip, mask) if direction is None else direction  # of the start
    # each face region's delay and gain, for its start and (with regional terms) its target
    use_timing = cfg.regional_timing and not cfg.remove
    timing = regional_timing(clip, mask, colour, cfg) if use_timing else None
    region_targets = target[None] if timing is None else delayed(target, timing[0])

    deep = [n for n, _ in cfg.surrogates if registry.get(n).input == "video"]

    def deep_values(delta):
        """The video surrogates' terms "d" (with the notch, then their overlaps "d"): the costly
        part of a step, which `cfg.deep_every` evaluates on every k-th step only."""
        x = _apply_delta(clip, mask, delta, direction)
        bvps = [registry.get(n).fn(state[n], x, cfg.fps) for n in deep]
        values = [rppg_objective(b, target, cfg, spectrum) for b in bvps]
        if notch:
            values += list(removal_overlap(jnp.stack(bvps), reference, cfg))
        return jnp.stack(values)

    def loss_fn(delta, deep_vals):
        x = _apply_delta(clip, mask, delta, direction)
        trace = spatial_mean(x, mask)
        outputs = {
            n: registry.get(n).fn(trace, cfg.fps) for n, _ in cfg.surrogates if n not in deep
        }
        term = {n: rppg_objective(b, target, cfg, spectrum) for n, b in outputs.items()}
        term.update((n, deep_vals[i]) for i, n in enumerate(deep))
        terms = jnp.stack([term[n] for n, _ in cfg.surrogates])
        if regional:  # each region's reading joins the balance and the stop rule
            per_region = [
                rppg_objective(b, region_targets, cfg, spectrum)
                for b in _regional_outputs(x, mask, cfg)
            ]
            terms = jnp.concatenate([terms, *per_region])
        rppg = combine_terms(terms, weights, cfg)
        if cfg.remove and (cfg.channel_weight > 0 or notch or divergence):
            trace = signals.detrend(trace, axis=0)
        if cfg.remove and cfg.channel_weight > 0:
            if divergence:
                flat = -removal_divergence(trace.T, spectrum, cfg)
            else:
                flat = signals.spectral_flatness(trace, cfg.fps, band_hz=cfg.band_hz, axis=0)
            rppg = (total * rppg - cfg.channel_weight * jnp.mean(flat)) / (
                total + cfg.channel_weight
            )
        if notch:  # the surrogates' outputs and every colour channel keep off the original rate
            edited = (
                jnp.concatenate([jnp.stack(list(outputs.values())), trace.T])
                if outputs
                else trace.T
            )
            overlaps = removal_overlap(edited, reference, cfg)
            if deep:
                overlaps = jnp.concatenate([deep_vals[len(deep) :], overlaps])
            rppg = rppg + cfg.notch_weight * jnp.mean(overlaps)
        mse = jnp.mean(jnp.square((x - clip) * LEVELS))
        # the least-fooled surrogate's Pearson with the target (flatness for removal)
        worst = -jnp.max(terms)
        return rppg + cfg.fidelity_weight * mse, {"rppg": rppg, "mse": mse, "worst": worst}

    if cfg.param_size is None:
        delta0 = jnp.zeros(clip.shape[:-1] + (channels,), jnp.float32)
        low, high = -clip * LEVELS, (1.0 - clip) * LEVELS

        def project(delta):  # the paper's projection: background reset, values kept in range
            if direction is None:
                delta = jnp.clip(delta, low, high)
            return jnp.where(mask[..., None], delta, 0.0)

    else:
        delta0 = jnp.zeros((clip.shape[0], cfg.param_size, cfg.param_size, channels), jnp.float32)
        project = None  # masking and clipping happen in `_apply_delta`
    # the start (`start_map`; a free-colour removal: `own_pulse_grid`)
    if (cfg.cancel_init if cfg.remove else cfg.init_scale) > 0:
        if cfg.remove and direction is None:  # free colour: the pulse cancelled in every channel
            grid = delta0.shape[1:3] if cfg.cancel_grid else (1, 1)
            start = -cfg.cancel_init * own_pulse_grid(clip, mask, colour, grid, cfg, rate)
        else:
            start = start_map(clip, mask, target, colour, delta0.shape[1:3], cfg, timing, rate)
            start = start[..., None]
            if direction is None:  # free colour: the start along the pulse colour
                start = start * colour.reshape(1, 1, 1, 3)
        delta0 = delta0 + start
    done = _stop_rule(cfg)
    delta, history = optimize(
        delta0,
        loss_fn if deep else lambda delta: loss_fn(delta, None),
        optax.adam(cfg.learning_rate),
        cfg.steps + (cfg.extra_steps if done is not None else 0),
        project=project,
        unroll=cfg.unroll,
        done=done,
        inner=deep_values if deep else None,
        refresh=cfg.deep_every,
    )
    edited = _apply_delta(clip, mask, delta, direction)
    return edited, {"history": history, "surrogates": _surrogate_outputs(state, edited, mask, cfg)}


edit_batch = contract.vmapped(edit)


Config = PrivacyPhysConfig
