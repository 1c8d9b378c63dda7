"""Tests of rppgedit.open_rppg: open-rppg's deep models, run in a worker process, as black boxes.

The worker loads and compiles each Keras model (20-40 s each on a 2-core CPU), so one module-scoped
call reads every clip with two fast attackers, one built under open-rppg's ``mixed_float16`` policy
(PhysNet) and one under ``float32`` (TS-CAN; efficientphys_test.py runs a third, open-rppg's Keras
EfficientPhys, for its parity test): a synthetic face, the same crops declared at 25 fps, a clip
too short to read, and, when the slow test is selected and the file exists, the real physrecorder
clip.
"""

import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal
from conftest import shared_file

from rppgedit import open_rppg
from rppgedit.data.synthetic import make_clip
from rppgedit.errors import RppgEditError

# The test extra installs the attackers extra (open-rppg): these tests run, never skip.

FAST = ("physnet_keras", "tscan")
BOGUS = "no_such_model"
SYNTH_HR = 96.0
SYNTH_FRAMES = 300  # not a multiple of 128 or 160: every model gets a padded last chunk
REAL_HR = 70.7  # contact PPG of the physrecorder clip (../shared/data/README.md)


def _synthetic():
    clip = make_clip(
        3, hr_bpm=SYNTH_HR, num_frames=SYNTH_FRAMES, height=64, width=64, pulse_amplitude=0.01
    )
    x0, y0, x1, y1 = clip.face_boxes[0]
    assert np.all(clip.face_boxes == clip.face_boxes[0])  # no motion: one box
    return clip, clip.frames[:, y0:y1, x0:x1]


def _wants_real_clip(request) -> bool:
    """True when a test of this module that needs the real clip is selected."""
    return any(
        item.module is request.module and "real" in item.fixturenames
        for item in request.session.items
    )


@pytest.fixture(scope="module")
def real(request):
    if not _wants_real_clip(request):
        return None
    path = shared_file("physrecorder", "v01_facecrop320_lossless_ffv1.mkv")
    from rppgedit.video.decode import read_video

    video = read_video(path)
    return video.frames[:, 112:272, 96:256], video.fps


@pytest.fixture(scope="module")
def readings(request):
    """{"synthetic", "at_25fps", "short", "real"?: results} from one `read_open_rppg_many` call."""
    clip, crops = _synthetic()
    clips = {
        "synthetic": (crops, clip.fps),
        "at_25fps": (crops, 25.0),  # the same crops declared at 25 fps: a slower pulse
        "short": (crops[:45], clip.fps),
    }
    if _wants_real_clip(request):
        try:
            clips["real"] = request.getfixturevalue("real")
        except pytest.skip.Exception:
            pass
    results = open_rppg.read_open_rppg_many(
        list(clips.values()), (*FAST, BOGUS), timeout_s=1200, return_bvp=True
    )
    return dict(zip(clips, results, strict=True))


def _reference_hr(bvp: np.ndarray, fps: float) -> float:
    """Spectral peak in 40-180 bpm of a finely zero-padded Hann periodogram (float64 SciPy)."""
    freqs, psd = scipy.signal.periodogram(bvp, fps, window="hann", nfft=1 << 16, detrend=False)
    band = (freqs >= 40 / 60) & (freqs <= 180 / 60)
    return float(freqs[band][np.argmax(psd[band])] * 60.0)


def _check_entry(name: str, entry: dict, num_frames: int) -> None:
    """Structure of one successful reading, and rppgedit's HR against a SciPy reference."""
    assert set(open_rppg.RESULT_KEYS) <= set(entry)
    assert entry["error"] is None, (name, entry["error"])
    model, spec = open_rppg.resolve(name)
    assert entry["model"] == model
    assert entry["precision"] == ("float32" if spec.float32 else "mixed_float16")
    assert entry["num_samples"] == num_frames  # 30 fps in, 30 fps out: one sample per frame
    bvp = entry["bvp"]
    assert bvp.shape == (num_frames,) and np.all(np.isfinite(bvp)) and entry["bvp_fps"] == 30.0
    assert abs(entry["hr_bpm"] - _reference_hr(bvp, 30.0)) < 0.5
    assert math.isfinite(entry["snr_db"]) and 0.0 <= entry["sqi"] <= 1.0
    assert entry["load_s"] > 0 and entry["run_s"] > 0
    assert entry["seconds"] == pytest.approx(entry["load_s"] + entry["run_s"])


# --- no worker needed ---------------------------------------------------------------------------


def test_resolve_names_and_weights():
    assert open_rppg.resolve("tscan")[0] == "TSCAN.rlap"
    assert open_rppg.resolve("physnet_keras.pure")[0] == "PhysNet.pure"
    assert open_rppg.resolve("ME")[0] == "ME-chunk.rlap"
    assert set(open_rppg.OPEN_RPPG_MODELS) <= set(open_rppg.MODELS)
    assert "physmamba" not in open_rppg.OPEN_RPPG_MODELS  # slow: only by name
    for bad in ("nope", "facephys.pure", "tscan.ubfc"):
        with pytest.raises(ValueError):
            open_rppg.resolve(bad)


def test_unknown_names_give_error_entries_without_raising():
    frames = np.zeros((10, 8, 8, 3), np.uint8)
    out = open_rppg.read_open_rppg(frames, 30.0, [BOGUS, "facephys.pure", BOGUS])
    assert list(out) == [BOGUS, "facephys.pure"]
    for entry in out.values():
        assert set(entry) == set(open_rppg.RESULT_KEYS)
        assert entry["hr_bpm"] is None and "\n" not in entry["error"]
    assert "unknown" in out[BOGUS]["error"] and "rlap" in out["facephys.pure"]["error"]


def test_bad_frames_are_a_value_error():
    with pytest.raises(ValueError, match="uint8"):
        open_rppg.read_open_rppg(np.zeros((10, 8, 8, 3), np.float32), 30.0, FAST)
    with pytest.raises(ValueError, match="uint8"):
        open_rppg.read_open_rppg(np.zeros((10, 8, 8), np.uint8), 30.0, FAST)
    with pytest.raises(ValueError, match="fps"):
        open_rppg.read_open_rppg(np.zeros((10, 8, 8, 3), np.uint8), 0.0, FAST)


def test_not_installed_gives_error_entries(monkeypatch):
    monkeypatch.setattr(open_rppg, "available", lambda: False)
    out = open_rppg.read_open_rppg(np.zeros((10, 8, 8, 3), np.uint8), 30.0, ("tscan",))
    assert "not installed" in out["tscan"]["error"] and out["tscan"]["hr_bpm"] is None


def test_require_installed_names_the_flag_and_the_extra(monkeypatch):
    open_rppg.require_installed()  # the test extra includes the attackers extra
    monkeypatch.setattr(open_rppg, "available", lambda: False)
    with pytest.raises(RppgEditError) as err:
        open_rppg.require_installed()
    message = str(err.value)
    assert "\n" not in message
    assert "--attackers=open_rppg" in message and "rppgedit[attackers]" in message


def test_available_does_not_import_open_rppg():
    code = (
        "import sys; from rppgedit import open_rppg; a = open_rppg.available(); "
        "print(a, 'rppg' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "False"]


def test_worker_timeout_gives_error_entries():
    frames = np.zeros((10, 8, 8, 3), np.uint8)
    out = open_rppg.read_open_rppg(frames, 30.0, ("tscan", "physnet_keras"), timeout_s=0.5)
    for entry in out.values():
        assert entry["hr_bpm"] is None and "timed out" in entry["error"]


# --- one worker call for the rest ---------------------------------------------------------------


def test_synthetic_face_is_read_at_its_rate(readings):
    clip, _ = _synthetic()
    truth = _reference_hr(clip.bvp, clip.fps)  # the pulse's own spectral peak
    out = readings["synthetic"]
    assert list(out) == [*FAST, BOGUS]
    for name in FAST:
        entry = out[name]
        _check_entry(name, entry, SYNTH_FRAMES)
        assert abs(entry["hr_bpm"] - truth) < 3.0, (name, entry["hr_bpm"], truth)
        assert abs(entry["hr_open_rppg_bpm"] - truth) < 3.0, (name, entry["hr_open_rppg_bpm"])
    assert "unknown" in out[BOGUS]["error"]


def test_other_frame_rates_are_resampled_to_30_fps(readings):
    # open-rppg repeats frames (nearest neighbour) to reach 30 fps: TS-CAN sees zero frame
    # differences in every chunk, which would be NaN under float16.
    clip, _ = _synthetic()
    truth = _reference_hr(clip.bvp, clip.fps) * 25.0 / clip.fps
    for name in FAST:
        entry = readings["at_25fps"][name]
        assert entry["error"] is None, (name, entry["error"])
        assert abs(entry["num_samples"] - SYNTH_FRAMES * 30 / 25) <= 1
        assert entry["bvp_fps"] == 30.0 and np.all(np.isfinite(entry["bvp"]))
        assert abs(entry["hr_bpm"] - truth) < 3.0, (name, entry["hr_bpm"], truth)


def test_clip_too_short_gives_error_entries(readings):
    for name in FAST:
        entry = readings["short"][name]
        assert entry["hr_bpm"] is None and "2 s" in entry["error"], (name, entry["error"])
        assert entry["model"] == open_rppg.resolve(name)[0]


@pytest.mark.slow
def test_real_physrecorder_clip_read_within_5_bpm(readings, real):
    if "real" not in readings:
        pytest.skip("physrecorder clip not available")
    frames, _ = real
    out = readings["real"]
    for name in FAST:
        entry = out[name]
        _check_entry(name, entry, len(frames))
        assert abs(entry["hr_bpm"] - REAL_HR) < 5.0, (name, entry["hr_bpm"])
