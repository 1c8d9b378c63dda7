"""Removal keeps the estimators off the true rate, losslessly and after an H.264 re-encode.

The outputs are read as an observer who has only them would: through the skin mask of their own
crops. (Through the edit's mask of the original, which the pulse modulates, clips rendered with no
pulse at all were read at the true rate 24 times in 80 (`benchmarks/removal_codec.py`, seeds 0-7,
10 estimators), and the removal was steered by that artefact.) Read that way a pulse-free clip is
still read at its true rate by chance, 5 and 3 times in 80 losslessly and after CRF 23 (0.6 and 0.4
of 10 estimators per clip), so each clip here may keep one estimator within 3 bpm of the true rate
and no more; the unedited clips keep 9 or 10, and the removal before the coarse removal grid
(`privacy_phys.REMOVAL_DEFAULTS`) kept 6-8 after CRF 23 on 3 of 16 clips.

The first test's clip is `benchmarks/removal_codec.py`'s seed 1 (medium skin, moving), where removal
without the spectral notch (flatness alone, `removal_loss="flatness"` with `notch_weight=0`) left 8
of the 10 estimators at the true rate losslessly and 3 after CRF 23 (seed 0, light skin still: 4
and 6; measured with that benchmark, through the edit's mask), rendered with the camera those
numbers were measured on (`OLD_CAMERA`: 1 level of noise, 0.2% flicker, pulse amplitude 0.004; issue
23 made the renderer's default camera a real webcam's: 0.6, 0.03%, 0.005). Light skin after H.264 is
grid seed 12's test (the default camera), dark skin seed 2's. Seed 0 on the old camera was checked
here as well until 2026-12-07 (at most one at the truth, losslessly and after CRF 23); it was
dropped for the suite's time, as the light, still case after H.264 is seed 12's.
"""

import dataclasses
import functools

import numpy as np

from rppgedit import editors, pipeline, readings, report, signals, targets
from rppgedit.data import synthetic
from rppgedit.editors import privacy_phys
from rppgedit.editors.regions import PULSE_SIGNATURE
from rppgedit.estimators import registry
from rppgedit.video import decode, encode

FPS, HIT_BPM = 30.0, 3.0
OLD_CAMERA = dict(noise_std=1.0, flicker=0.002, pulse_amplitude=0.004)
ESTIMATORS = registry.DEFAULT_READERS


def _at_true_rate(frames, clip, job, params):
    """The estimators reading `frames` within 3 bpm of the true rate, through the skin mask of
    the frames' own crop (as an observer of the output would)."""
    face, mask = pipeline.crop_and_mask(frames, clip.crop_boxes, job)
    read = readings.read_heart_rates(face, mask, FPS, ESTIMATORS, params)
    return {
        n: round(r["hr_bpm"], 1)
        for n, r in read.items()
        if abs(r["hr_bpm"] - clip.hr_bpm) <= HIT_BPM
    }


def test_removal_leaves_at_most_one_estimator_at_the_true_rate_after_h264(tmp_path):
    clip = synthetic.grid_clip(1, **OLD_CAMERA)
    job = pipeline.EditJob(target=targets.TargetSpec(kind="none"), estimators=())
    assert pipeline.editor_config(job, FPS).removal_loss == "notched_flat"  # notched at the truth
    result = pipeline.edit_frames(clip.frames, FPS, clip.crop_boxes, job)
    params = {}
    before = _at_true_rate(clip.frames, clip, job, params)
    assert len(before) >= 9, before  # the estimators read the clip before the edit
    assert len(_at_true_rate(result.frames, clip, job, params)) <= 1
    lossless = encode.write_video(tmp_path / "removed.mkv", result.frames, FPS)
    shared = encode.reencode(lossless, tmp_path / "removed.mp4", codec="h264", crf=23)
    decoded = decode.read_video(shared).frames
    assert len(_at_true_rate(decoded, clip, job, params)) <= 1


def test_removal_overlap_is_one_for_a_flat_spectrum_and_falls_with_a_notch():
    """`removal_overlap` (the notch term): white noise ~1 against any reference, the reference's own
    sinusoid well above 1, the same sinusoid moved 30 bpm away near 0."""
    cfg = privacy_phys.Config(fps=FPS)
    t = np.arange(256) / FPS
    pulse = np.sin(2 * np.pi * 72.0 / 60.0 * t).astype(np.float32)
    reference = signals.band_share(pulse, FPS, band_hz=cfg.band_hz)
    noise = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    flat = float(np.mean(privacy_phys.removal_overlap(noise, reference, cfg)))
    same = float(privacy_phys.removal_overlap(pulse[None], reference, cfg)[0])
    moved = np.sin(2 * np.pi * 102.0 / 60.0 * t).astype(np.float32)
    away = float(privacy_phys.removal_overlap(moved[None], reference, cfg)[0])
    np.testing.assert_allclose(float(np.sum(reference)), 1.0, rtol=1e-5)
    assert 0.8 < flat < 1.2
    assert same > 5.0
    assert away < 0.1


def test_the_notched_flat_spectrum_and_the_divergence_from_it():
    """The removal's aim (`notched_flat`) is flat across the band except at the original pulse's
    rate, twice and half it, where it falls to the floor; the divergence from it is 0 for a
    signal spread that way, small for white noise and large for a lone peak anywhere."""
    cfg = privacy_phys.Config(fps=FPS, remove=True)
    num = 256
    freqs = signals.band_frequencies(num, FPS)
    share = np.exp(-0.5 * ((freqs - 0.9) / 0.03) ** 2)  # a pulse at 54 bpm
    aim = np.asarray(privacy_phys.notched_flat(share / share.sum(), num, cfg))
    np.testing.assert_allclose(aim.sum(), 1.0, rtol=1e-5)
    level = aim * len(aim)  # 1 where flat
    at = lambda hz: level[np.argmin(np.abs(freqs - hz))]  # noqa: E731
    assert at(0.9) < 0.01 and at(1.8) < 0.01  # the rate and its harmonic (its half: below band)
    assert 0.9 < at(1.3) < 1.3 and 0.9 < at(2.5) < 1.3
    half = np.asarray(privacy_phys.notched_flat(_peak(freqs, 2.0), num, cfg))
    assert half[np.argmin(np.abs(freqs - 1.0))] * len(half) < 0.01  # half of 120 bpm

    t = np.arange(num) / FPS
    rng = np.random.default_rng(0)
    lone = np.cos(2 * np.pi * 1.4 * t)  # 84 bpm: away from every notch
    noise = rng.standard_normal((16, num))
    div = lambda x: np.asarray(privacy_phys.removal_divergence(x, aim, cfg))  # noqa: E731
    assert float(div(lone)) > 2.0
    assert float(np.median(div(noise))) < 1.0
    at_truth = np.cos(2 * np.pi * 0.9 * t) + noise[0]
    assert float(div(at_truth)) > float(div(noise[0])) + 1.0


def _peak(freqs, hz):
    p = np.exp(-0.5 * ((freqs - hz) / 0.03) ** 2)
    return p / p.sum()


def test_removal_on_dark_skin_with_the_default_camera_leaves_at_most_one_at_the_true_rate():
    """Seed 2 (dark skin, still) on the default (webcam) camera: the estimators read the truth
    before, at most one within 3 bpm of it after."""
    clip, job, read = _removed_and_read(2)
    assert len(_at_true_rate(clip.frames, clip, job, {})) >= 9
    after = {n: r["hr_bpm"] for n, r in read.items() if abs(r["hr_bpm"] - clip.hr_bpm) <= HIT_BPM}
    assert len(after) <= 1, after


@functools.cache
def _removed_and_read(seed: int):
    """(clip, job, readings): grid clip `seed` after the default removal, read losslessly by the
    10 estimators through the output's own skin mask. Kept for the module: seeds 2 and 3 are
    also among the four of the common-rate test."""
    clip = synthetic.grid_clip(seed)
    job = pipeline.EditJob(target=targets.TargetSpec(kind="none"), estimators=())
    result = pipeline.edit_frames(clip.frames, FPS, clip.crop_boxes, job)
    face, mask = pipeline.crop_and_mask(result.frames, clip.crop_boxes, job)
    return clip, job, readings.read_heart_rates(face, mask, FPS, ESTIMATORS, {})


def test_removal_does_not_move_the_pulse_to_its_harmonic():
    """Seed 3 (medium skin, still, true 64.3 bpm, default camera): the removal without the
    harmonic notch (`harmonic_weight=0`) left 8 of 10 estimators at twice the true rate, which gives
    it away as surely (`benchmarks/removal_codec.py`); the default leaves at most one at twice or
    half the rate. At the true rate itself this seed sits at the edge: ICA and PCA read 62.7 and
    63.5 bpm with the older objective (`removal_loss="flatness"`), none did with the notched flat
    spectrum and the first stochastic rounding, and with the counter-based rounding
    (`quantise.uniform`) rounding seeds 0-3 leave 2 (ICA and PCA at 62.5), 1, 1 and 1 there. At
    most two, as after H.264 below: one more than a pulse-free clip's chance level."""
    clip, job, read = _removed_and_read(3)
    assert pipeline.editor_config(job, FPS).harmonic_weight == 1.0

    def near(rates):
        return {
            n: round(r["hr_bpm"], 1)
            for n, r in read.items()
            if any(abs(r["hr_bpm"] - rate) <= HIT_BPM for rate in rates)
        }

    harmonics = near((2.0 * clip.hr_bpm, clip.hr_bpm / 2.0))
    assert len(harmonics) <= 1, harmonics
    truth = near((clip.hr_bpm,))
    assert len(truth) <= 2, truth


def test_removal_keeps_the_truth_away_after_h264_where_the_flatness_objective_let_it_back(tmp_path):
    """Grid seed 12 (true 72.5 bpm, default camera) after H.264 CRF 23: the flatness objective
    (`removal_loss="flatness"`) let 7 of the 10 estimators back to the true rate; the notched flat
    spectrum 1 (`benchmarks/removal_codec.py --seeds 0-15 --outputs lossless,crf23`: 17 and 11
    of 160 readings). At most two here, one more than a pulse-free clip's chance level per clip,
    for CPUs whose last bits differ."""
    clip = synthetic.grid_clip(12)
    job = pipeline.EditJob(target=targets.TargetSpec(kind="none"), estimators=())
    result = pipeline.edit_frames(clip.frames, FPS, clip.crop_boxes, job)
    params = {}
    assert len(_at_true_rate(clip.frames, clip, job, params)) >= 9
    lossless = encode.write_video(tmp_path / "removed.mkv", result.frames, FPS)
    shared = encode.reencode(lossless, tmp_path / "removed.mp4", codec="h264", crf=23)
    decoded = decode.read_video(shared).frames
    assert len(_at_true_rate(decoded, clip, job, params)) <= 2


def test_a_removal_starts_from_the_editors_removal_defaults_under_the_users_options():
    assert privacy_phys.REMOVAL_DEFAULTS == {"param_size": 8, "deep_every": 1, "colour": "free"}
    removal = editors.make_config("privacy_phys", FPS, True, ())
    target = editors.make_config("privacy_phys", FPS, False, ())
    assert (removal.param_size, removal.deep_every, removal.colour) == (8, 1, "free")
    assert (target.param_size, target.deep_every, target.colour) == (32, 4, "pulse")
    options = (("param_size", 16), ("deep_every", 2), ("colour", "pulse"))
    mine = editors.make_config("privacy_phys", FPS, True, options)
    assert (mine.param_size, mine.deep_every, mine.colour) == (16, 2, "pulse")
    for name in editors.METHODS:  # every removal default names a field of its editor's Config
        module = editors.get(name)
        fields = {f.name for f in dataclasses.fields(module.Config)}
        assert set(getattr(module, "REMOVAL_DEFAULTS", {})) <= fields, name


def _skin_trace_clip(pulse_colour, num=256, size=8):
    """(clip, pulse, tone): a still skin trace (float32 "t h w 3" in [0, 1]) with a 1.3 Hz pulse
    "t" of colour `pulse_colour` (grey levels per unit of `pulse`), a weaker 2.4 Hz tone "t" along
    the signature, a slow drift and noise in every channel."""
    t = np.arange(num) / FPS
    rng = np.random.default_rng(1)
    pulse = 2.0 * np.cos(2 * np.pi * 1.3 * t + 0.4)
    tone = 0.8 * np.cos(2 * np.pi * 2.4 * t)
    level = pulse[:, None] * pulse_colour + tone[:, None] * np.array(PULSE_SIGNATURE)
    level += (6.0 * t / t[-1])[:, None] + rng.normal(0.0, 0.3, (num, 3))
    trace = (np.array([150.0, 110.0, 90.0]) + level) / 255.0
    clip = np.broadcast_to(trace[:, None, None, :], (num, size, size, 3)).astype(np.float32)
    return clip, pulse, tone


def test_the_own_pulse_is_the_narrow_band_around_the_strongest_rate():
    """`own_pulse`: the skin trace's component along the pulse colour, detrended and kept within
    `cancel_width_hz` of its strongest in-band rate: a planted 1.3 Hz pulse is recovered (float64 reference:
    correlation and amplitude) from a trace with a slow drift, a weaker 2.4 Hz tone and noise."""
    direction = np.array(PULSE_SIGNATURE)
    clip, pulse, other = _skin_trace_clip(direction)  # the pulse along the direction
    cfg = privacy_phys.Config(fps=FPS, remove=True)
    got = np.asarray(
        privacy_phys.own_pulse(clip, np.ones(clip.shape[:3], bool), direction, cfg), np.float64
    )
    inner = slice(16, -16)  # the detrending filter's ends
    assert np.corrcoef(got[inner], pulse[inner])[0, 1] > 0.97
    assert 0.8 < got[inner].std() / pulse[inner].std() < 1.2
    assert abs(np.corrcoef(got[inner], other[inner])[0, 1]) < 0.1


def test_a_free_colour_removal_cancels_the_pulse_in_every_channel_before_adam_starts():
    """The pulse of real skin is not exactly along the pulse colour that a target edit moves
    along (`regions.pulse_direction`: the signature scaled by the skin colour). `own_pulse_grid`
    (on a one-node grid: the whole face) recovers each channel's pulse (float64 reference: a
    pulse coloured (0.6, 0.9, 0.3), 11 degrees off that direction), and a removal (`colour`
    "free", its default) starts from it cancelled: after one step of a negligible learning rate
    every channel keeps under 0.15 of its pulse.
    Along the pulse colour alone (`colour="pulse"`) the part of the pulse off it stays (the blue
    channel keeps over half of its pulse)."""
    colour = np.array([0.6, 0.9, 0.3])
    clip, pulse, _ = _skin_trace_clip(colour)
    mask = np.ones(clip.shape[:3], bool)
    cfg = editors.make_config("privacy_phys", FPS, True, [("surrogates", (("pos", 1.0),))])
    assert cfg.colour == "free" and cfg.cancel_init == 1.0
    direction = np.asarray(privacy_phys.pulse_direction(clip, mask))
    got = privacy_phys.own_pulse_grid(clip, mask, direction, (1, 1), cfg)
    got = np.asarray(got, np.float64)[:, 0, 0]
    inner = slice(16, -16)  # the detrending filter's ends
    for c in range(3):
        want = pulse[inner] * colour[c]
        assert np.corrcoef(got[inner, c], want)[0, 1] > 0.97, c
        assert 0.8 < got[inner, c].std() / want.std() < 1.2, c

    def left(colour_mode):
        quiet = dataclasses.replace(cfg, colour=colour_mode, steps=1, learning_rate=1e-6)
        edited, _ = privacy_phys.edit({}, clip, mask, np.zeros(len(clip), np.float32), quiet)
        trace = np.asarray(edited, np.float64).mean(axis=(1, 2)) * 255.0
        return [
            abs(np.dot(trace[inner, c] - trace[inner, c].mean(), pulse[inner]))
            / np.dot(pulse[inner], pulse[inner] * colour[c])
            for c in range(3)
        ]

    free, along = left("free"), left("pulse")
    assert max(free) < 0.15, free  # measured 0.04, 0.02, 0.11 (the blue pulse is the weakest)
    assert along[2] > 0.5, along  # measured 0.17, 0.02, 0.73


def test_a_removal_with_a_cancel_floor_starts_at_the_noise_level_at_the_rate():
    """`cancel_floor`: the start leaves each channel's bins near the pulse's rate at the band's
    median magnitude (its noise floor), or as they were where they were under it, instead of
    emptying them, so that the steps have no hole to fill around the rate (float64 reference:
    the start's residual against the detrended trace's spectrum)."""
    colour = np.array([0.6, 0.9, 0.3])
    clip, _, _ = _skin_trace_clip(colour)
    mask = np.ones(clip.shape[:3], bool)
    cfg = editors.make_config("privacy_phys", FPS, True, [("surrogates", (("pos", 1.0),))])
    direction = np.asarray(privacy_phys.pulse_direction(clip, mask))
    trace = np.asarray(signals.detrend(clip[:, 0, 0] * 255.0, axis=0), np.float64)
    spectrum = np.fft.rfft(trace - trace.mean(0), axis=0)
    freqs = np.fft.rfftfreq(len(clip), 1.0 / FPS)
    floor = np.median(np.abs(spectrum[(freqs >= 0.7) & (freqs <= 3.0)]), axis=0)
    near = np.abs(freqs - 1.3) <= cfg.cancel_width_hz
    kept = np.minimum(np.abs(spectrum[near]), floor)  # a bin under the floor stays as it was
    for cancel_floor, level in ((None, 0.0), (1.0, kept)):
        start = privacy_phys.own_pulse_grid(
            clip, mask, direction, (1, 1), dataclasses.replace(cfg, cancel_floor=cancel_floor)
        )
        residual = trace - np.asarray(start, np.float64)[:, 0, 0]
        left = np.abs(np.fft.rfft(residual - residual.mean(0), axis=0))[near]
        np.testing.assert_allclose(left, level * np.ones_like(left), atol=0.02 * floor.min())


def test_a_removal_cancels_the_rate_the_surrogates_read_not_the_traces_strongest():
    """On real skin the face trace's strongest in-band rate is often not the pulse (the shared
    physrecorder clip along the pulse colour: 49, 91 and 84 bpm in its three removal windows, the
    pulse at 70.7): a start cancelling that rate left 18 of 20 readers at the truth. With
    `cancel_rate="surrogates"` the start cancels the rate the surrogates read (`pulse_rate_hz`):
    on a skin trace whose light flickers at 2.2 Hz, more strongly along the pulse colour than the
    1.3 Hz pulse, POS reads 1.3 Hz, and after one step of a negligible learning rate each
    channel keeps under 0.2 of its pulse while the flicker, which is not the pulse, stays (over
    0.8 of it); the trace's own peak (`cancel_rate="trace"`, the default) keeps the pulse."""
    num = 256
    t = np.arange(num) / FPS
    rng = np.random.default_rng(3)
    pulse = np.cos(2 * np.pi * 1.3 * t + 0.4)
    flicker = np.cos(2 * np.pi * 2.2 * t)
    base = np.array([150.0, 110.0, 90.0])
    colour = np.array(PULSE_SIGNATURE)
    level = base * (1.0 + 0.02 * flicker[:, None]) + 2.0 * pulse[:, None] * colour
    level += rng.normal(0.0, 0.3, level.shape)
    clip = np.broadcast_to((level / 255.0)[:, None, None], (num, 8, 8, 3)).astype(np.float32)
    mask = np.ones(clip.shape[:3], bool)
    cfg = editors.make_config("privacy_phys", FPS, True, [("surrogates", (("pos", 1.0),))])
    assert cfg.cancel_rate == "trace"  # the default, for now: see `PrivacyPhysConfig.cancel_rate`
    direction = np.asarray(privacy_phys.pulse_direction(clip, mask))
    strongest = privacy_phys.own_pulse(clip, mask, direction, cfg)  # the trace's own peak
    assert abs(np.corrcoef(np.asarray(strongest)[16:-16], flicker[16:-16])[0, 1]) > 0.9
    share = privacy_phys.pulse_share({}, clip, mask, cfg)
    assert abs(float(privacy_phys.pulse_rate_hz(share, num, cfg)) - 1.3) < 0.02
    inner = slice(16, -16)  # the detrending filter's ends

    def kept(rate_rule, signal, amplitude):  # each channel's part of `signal` after the start
        quiet = dataclasses.replace(cfg, cancel_rate=rate_rule, steps=1, learning_rate=1e-6)
        edited, _ = privacy_phys.edit({}, clip, mask, np.zeros(num, np.float32), quiet)
        trace = np.asarray(edited, np.float64).mean(axis=(1, 2)) * 255.0
        centred = trace[inner] - trace[inner].mean(axis=0)
        s = signal[inner] - signal[inner].mean()
        return centred.T @ s / (s @ s) / amplitude

    pulse_kept = kept("surrogates", pulse, 2.0 * colour)
    assert np.max(np.abs(pulse_kept)) < 0.2, pulse_kept  # measured 0.06, 0.02, 0.03
    assert np.min(kept("surrogates", flicker, 0.02 * base)) > 0.8  # the flicker stays
    assert np.min(kept("trace", pulse, 2.0 * colour)) > 0.8  # the trace's peak rule keeps it


def test_a_removal_starts_by_cancelling_the_pulse_where_it_is_as_strong_as_it_is_there():
    """Real skin pulses unevenly (on the shared physrecorder clip, cancelling the face's mean
    pulse everywhere left its forehead and left cheek within 2.5-4.7 dB of their original
    pulse, and planted one in cells where it had been weaker). With `cancel_grid` the
    free-colour removal's start is each grid node's own pulse (`own_pulse_grid`: the skin it
    reaches when upsampled): on a
    clip whose pulse grows fourfold from its left edge to its right, beneath a background that
    flickers at the pulse's rate, each skin column keeps under a fifth of its pulse after one
    step of a negligible learning rate (float64 reference: the column's planted pulse; the two
    outermost columns of the weak edge under 0.4), where the face's mean pulse everywhere
    (`cancel_grid=False`, the default) leaves the weak left edge with more than it had
    (inverted) and the strong right edge with over 0.3 of its own."""
    num, size, top = 256, 32, 8
    t = np.arange(num) / FPS
    rng = np.random.default_rng(2)
    pulse = np.cos(2 * np.pi * 1.3 * t + 0.4)
    colour = np.array([0.6, 0.9, 0.3])
    gain = np.linspace(0.5, 2.0, size)  # the pulse's strength in each column, grey levels
    level = pulse[:, None, None, None] * gain[None, None, :, None] * colour
    level = level + (6.0 * t / t[-1])[:, None, None, None] + rng.normal(0.0, 0.3, level.shape)
    level = np.broadcast_to(level, (num, size, size, 3)).copy()
    level += np.array([150.0, 110.0, 90.0])
    level[:, :top] = 60.0 + 3.0 * pulse[:, None, None, None]  # a background, not skin
    clip = (level / 255.0).astype(np.float32)
    mask = np.zeros(clip.shape[:3], bool)
    mask[:, top:] = True
    cfg = editors.make_config("privacy_phys", FPS, True, [("surrogates", (("pos", 1.0),))])
    assert cfg.param_size == 8
    inner = slice(16, -16)  # the detrending filter's ends
    want = pulse[inner] - pulse[inner].mean()

    def left(cancel_grid):
        quiet = dataclasses.replace(cfg, cancel_grid=cancel_grid, steps=1, learning_rate=1e-6)
        assert quiet.cancel_excess is None  # the pulse alone
        edited, _ = privacy_phys.edit({}, clip, mask, np.zeros(num, np.float32), quiet)
        green = np.asarray(edited, np.float64)[inner, top:, :, 1].mean(axis=1) * 255.0  # t w
        kept = (green - green.mean(axis=0)).T @ want / (want @ want)  # each column's pulse
        return kept / (gain * colour[1])

    grid, face = left(True), left(False)
    # measured: -0.34, -0.25 in the two columns where the upsampling holds the edge node's value
    # flat over a pulse four times weaker than the right edge's, within 0.17 elsewhere
    assert np.max(np.abs(grid[2:])) < 0.2 and np.max(np.abs(grid)) < 0.4, np.round(grid, 2)
    assert face[0] < -1.0 and face[-1] > 0.3, np.round(face, 2)  # measured -1.6, 0.35


def test_a_removal_that_starts_by_cancelling_the_pulse_plants_no_common_rate():
    """Grid seeds 0-3 (default camera, 256 frames: one 256-frame removal window each; seeds 2 and 3
    are the removals of the two tests above), read by the 10 readers: the largest group agreeing
    on one rate, on average no more than the chance level of clips rendered without a pulse
    (`benchmarks/removal_codec.py`: 4.8 of 10, 3-8). Measured, largest group on seeds 0-5 (and
    readings at the true rate in all): started from zero (`cancel_init=0`) 8, 10, 7, 7, 9, 5 (mean
    7.7); from the pulse cancelled along the signature (`colour="pulse"`) 6, 5, 9, 6, 4, 4 (5.7; 2
    at the truth; seed 2 kept 7-9 over rounding seeds 0-3); from the pulse cancelled in each channel
    with free colour 2, 4, 4, 4, 4, 5 (3.8; none at the truth) and with the R, G, B terms at twice
    the weight (`channel_weight` 6, the default: deeper at the true rate,
    `PrivacyPhysConfig.channel_weight`) 4, 3, 5, 6, 5, 6 (4.8; none at the truth). Checked on seeds
    0-3, which tell those starts apart as seeds 0-5 do (the first two fail on seeds 0-3 alone), with
    four removals instead of six: a mean of at most 5.2, no clip over 6, at most 2 of the 40
    readings at the true rate (a reader of a pulse-free clip lands within 3 bpm of a given rate
    about 6/140 of the time: 0.43 of 10 per clip)."""
    groups, at_truth = [], 0
    for seed in range(4):
        clip, job, read = _removed_and_read(seed)
        cfg = pipeline.editor_config(job, FPS)
        assert (cfg.cancel_init, cfg.colour, cfg.channel_weight) == (1.0, "free", 6.0)
        hrs = [read[n]["hr_bpm"] for n in ESTIMATORS]
        at_truth += sum(abs(h - clip.hr_bpm) <= HIT_BPM for h in hrs)
        groups.append(sum(report.consensus(hrs)[1]))
    assert at_truth <= 2, at_truth
    assert np.mean(groups) <= 5.2 and max(groups) <= 6, groups
