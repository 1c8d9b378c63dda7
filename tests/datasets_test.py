"""Tests for rppgedit.data.datasets: each published layout, time alignment, refusals and clips.

Fixtures are generated here in each dataset's layout (tiny synthetic faces from
`rppgedit.data.synthetic.make_clip`). The ground truth written to disk is a known continuous waveform
`_wave(t)` sampled on the dataset's own (jittered, offset) clock, so the loaded per-frame BVP is checked
against `_wave` evaluated at the true frame times in float64, with a tolerance that covers linear
interpolation (|f''| h^2 / 8) and the file's quantisation.
"""

import json
import os

import imageio.v3 as iio
import numpy as np
import pytest
import scipy.io
from conftest import shared_file

from rppgedit.data import datasets
from rppgedit.data.synthetic import make_clip
from rppgedit.errors import RppgEditError
from rppgedit.video.encode import write_video
from rppgedit.video.probe import FrameRateAssumedWarning

SIZE = 32
# |f''| of _wave is at most (2 pi 1.3)^2 + 0.4 (2 pi 2.6)^2 = 174 / s^2.
WAVE_CURVATURE = 174.0


def _wave(t):
    """A known pulse-like waveform (unit-ish amplitude, 78 bpm fundamental plus a harmonic)."""
    t = np.asarray(t, np.float64)
    return np.sin(2 * np.pi * 1.3 * t + 0.3) + 0.4 * np.sin(2 * np.pi * 2.6 * t + 1.1)


def _interp_tolerance(rate_hz):
    return WAVE_CURVATURE / (8.0 * rate_hz**2)


def _frames(seed, num_frames, fps, stamp=False):
    """Synthetic face frames carrying _wave as their pulse; optionally the frame index in a corner."""
    clip = make_clip(
        seed,
        num_frames=num_frames,
        fps=fps,
        height=SIZE,
        width=SIZE,
        bvp=_wave(np.arange(num_frames) / fps),
    )
    frames = clip.frames.copy()
    if stamp:
        frames[:, :6, :6] = (7 * np.arange(num_frames) % 256).astype(np.uint8)[:, None, None, None]
    return frames


def _assert_user_error(excinfo, *names):
    message = str(excinfo.value)
    assert "\n" not in message, message
    for name in names:
        assert os.fspath(name) in message, message


def _write_ubfc2(folder, ppg, hr, times):
    """UBFC-rPPG DATASET_2 ground_truth.txt: rows PPG, HR, time (s), scientific notation."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / "ground_truth.txt", np.stack([ppg, hr, times]), fmt="%.8e")


# --------------------------------------------------------------------------------------------
# UBFC-rPPG.


def test_ubfc_dataset2_ground_truth_is_one_sample_per_frame(tmp_path, rng):
    num, fps = 45, 30.0
    frames = _frames(1, num, fps)
    subject = tmp_path / "DATASET_2" / "subject1"
    subject.mkdir(parents=True)
    write_video(subject / "vid.avi", frames, fps)
    # The time row is jittered (as in the real file) and starts at 3 s; the GT runs past the video.
    extra = 15
    times = 3.0 + np.cumsum(1 / fps + rng.uniform(-0.012, 0.012, num + extra))
    ppg = rng.standard_normal(num + extra)
    _write_ubfc2(subject, ppg, np.full(num + extra, 84.0), times)

    samples = datasets.list_samples("ubfc_rppg", tmp_path / "DATASET_2")
    assert [s.id for s in samples] == ["subject1"]
    sample = samples[0]
    assert sample.fps == fps and sample.meta["layout"] == "DATASET_2"
    video, bvp = datasets.load_sample(sample)
    np.testing.assert_array_equal(video.frames, frames)
    assert video.fps == fps
    assert bvp.dtype == np.float32 and bvp.shape == (num,)
    # Column i is frame i: interpolating at i / fps instead would not give these values.
    np.testing.assert_allclose(bvp, ppg[:num], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(sample.ground_truth.hr_bpm, np.full(num + extra, 84.0))

    video, bvp = datasets.load_sample(sample, max_frames=10)
    assert video.frames.shape == (10, SIZE, SIZE, 3)
    np.testing.assert_allclose(bvp, ppg[:10], rtol=1e-6, atol=1e-6)


def test_ubfc_dataset1_gtdump_is_interpolated_at_frame_times(tmp_path, rng):
    num, fps, rate = 40, 30.0, 60.0
    frames = _frames(2, num, fps)
    subject = tmp_path / "10-gt"
    subject.mkdir()
    write_video(subject / "vid.avi", frames, fps)
    count = int((num / fps + 0.3) * rate)
    t = np.arange(count) / rate + np.concatenate([[0.0], rng.uniform(-0.003, 0.003, count - 1)])
    table = np.stack([5000.0 + 1000.0 * t, np.full(count, 78.0), np.full(count, 98.0), _wave(t)], 1)
    np.savetxt(subject / "gtdump.xmp", table, fmt="%.6f", delimiter=",")

    (sample,) = datasets.list_samples("ubfc_rppg", tmp_path)
    assert sample.id == "10-gt" and sample.meta["layout"] == "DATASET_1"
    video, bvp = datasets.load_sample(sample)
    np.testing.assert_array_equal(video.frames, frames)
    expected = _wave(np.arange(num) / fps)
    np.testing.assert_allclose(bvp, expected, atol=_interp_tolerance(rate) + 1e-5)
    # Reading the 60 Hz samples as if they were per frame would be far off.
    assert np.max(np.abs(_wave(np.arange(num) / rate) - expected)) > 0.5


def test_ubfc_ground_truth_shorter_than_video_is_refused(tmp_path):
    subject = tmp_path / "subject7"
    subject.mkdir()
    write_video(subject / "vid.avi", _frames(3, 20, 30.0), 30.0)
    _write_ubfc2(subject, np.zeros(15), np.full(15, 70.0), np.arange(15) / 30.0)
    (sample,) = datasets.list_samples("ubfc_rppg", tmp_path)
    with pytest.raises(RppgEditError, match="shorter than the video") as excinfo:
        datasets.load_sample(sample)
    _assert_user_error(excinfo, subject / "ground_truth.txt")
    video, bvp = datasets.load_sample(sample, max_frames=15)  # the covered part still loads
    assert len(bvp) == 15


def test_few_uncovered_edge_frames_are_dropped_with_a_warning(tmp_path, caplog):
    # As in the physrecorder recording: the oximeter (20 Hz, own clock) stops before the camera.
    frames = _frames(3, 300, 30.0)
    write_video(tmp_path / "a.mkv", frames, 30.0)
    times = np.arange(198) * 0.05  # to 9.85 s (+ one 50 ms interval): frames 298, 299 lie past it
    np.savetxt(tmp_path / "a.csv", np.stack([times, np.sin(times)], 1), delimiter=",")
    (sample,) = datasets.list_samples("folder", tmp_path)
    with caplog.at_level("WARNING"):
        video, bvp = datasets.load_sample(sample)
    assert len(video.frames) == len(bvp) == 298
    np.testing.assert_array_equal(video.frames, frames[:298])
    inside = np.arange(296) / 30.0  # frames 296, 297 are within one interval: held at the end
    np.testing.assert_allclose(bvp[:296], np.sin(inside), atol=2e-3)
    assert "does not cover 2 edge frame(s) of 300" in caplog.text
    # 8 frames (2.7%) uncovered are refused.
    np.savetxt(tmp_path / "a.csv", np.stack([times[:-4], np.sin(times[:-4])], 1), delimiter=",")
    (sample,) = datasets.list_samples("folder", tmp_path)
    with pytest.raises(RppgEditError, match="shorter than the video"):
        datasets.load_sample(sample)


def test_ubfc_missing_or_malformed_ground_truth_is_refused(tmp_path):
    subject = tmp_path / "subject2"
    subject.mkdir()
    write_video(subject / "vid.avi", _frames(4, 8, 30.0), 30.0)
    with pytest.raises(RppgEditError, match="ground_truth.txt") as excinfo:
        datasets.list_samples("ubfc_rppg", tmp_path)
    _assert_user_error(excinfo, subject / "vid.avi")

    np.savetxt(subject / "ground_truth.txt", np.zeros((2, 8)))  # 2 rows, not 3
    with pytest.raises(RppgEditError) as excinfo:
        datasets.list_samples("ubfc_rppg", tmp_path)
    _assert_user_error(excinfo, subject / "ground_truth.txt")

    (subject / "ground_truth.txt").unlink()
    (subject / "gtdump.xmp").write_text("0,70,98\n33,70,98\n")  # 3 columns, not 4
    with pytest.raises(RppgEditError, match="4 numbers") as excinfo:
        datasets.list_samples("ubfc_rppg", tmp_path)
    _assert_user_error(excinfo, subject / "gtdump.xmp")


# --------------------------------------------------------------------------------------------
# PURE.

_PURE_EPOCH_NS = 1392643993583834000


def _write_pure(root, name, num, rng, *, beside=False):
    """A PURE session with jittered 30 Hz frame and 60 Hz pulse timestamps (integer ns).

    Returns:
      (frames, frame times in s relative to the first pulse sample) of the fixture.
    """
    fps, rate = 30.0, 60.0
    frame_off = np.arange(num) / fps + rng.uniform(-0.006, 0.006, num)
    frame_ns = _PURE_EPOCH_NS + np.round(frame_off * 1e9).astype(np.int64)
    # The oximeter starts 150 ms before the camera and stops 200 ms after it.
    count = int((num / fps + 0.35) * rate)
    pulse_off = -0.15 + np.arange(count) / rate + rng.uniform(-0.002, 0.002, count)
    pulse_ns = _PURE_EPOCH_NS + np.round(pulse_off * 1e9).astype(np.int64)
    pulse_t = (pulse_ns - pulse_ns[0]).astype(np.float64) * 1e-9
    waveform = np.round(128 + 50 * _wave(pulse_t)).astype(int)
    doc = {
        "/FullPackage": [
            {
                "Timestamp": int(ns),
                "Value": {
                    "pulseRate": 72,
                    "o2saturation": 98,
                    "signalStrength": 4,
                    "waveform": int(w),
                },
            }
            for ns, w in zip(pulse_ns, waveform, strict=True)
        ],
        "/Image": [{"Timestamp": int(ns)} for ns in frame_ns],
    }
    session = root / name
    frames_dir = session if beside else session / name
    frames_dir.mkdir(parents=True)
    json_path = (root if beside else session) / f"{name}.json"
    json_path.write_text(json.dumps(doc))
    frames = _frames(5, num, fps)
    for ns, frame in zip(frame_ns, frames, strict=True):
        iio.imwrite(frames_dir / f"Image{ns}.png", frame)
    return frames, (frame_ns - pulse_ns[0]).astype(np.float64) * 1e-9


@pytest.mark.parametrize("beside", [False, True])
def test_pure_uses_per_frame_and_per_pulse_timestamps(tmp_path, rng, beside):
    num = 40
    frames, frame_t = _write_pure(tmp_path, "03-02", num, rng, beside=beside)
    (sample,) = datasets.list_samples("pure", tmp_path)
    assert sample.id == "03-02"
    assert sample.meta["subject"] == 3 and sample.meta["setup"] == 2
    assert sample.fps == pytest.approx(30.0, rel=0.01)
    video, bvp = datasets.load_sample(sample)
    np.testing.assert_array_equal(video.frames, frames)
    np.testing.assert_allclose(video.timestamps, frame_t - frame_t[0], atol=1e-9)
    expected = 128 + 50 * _wave(frame_t)
    tolerance = 0.5 + 50 * _interp_tolerance(60.0) + 1e-4  # integer waveform + interpolation
    np.testing.assert_allclose(bvp, expected, atol=tolerance)
    # The fixture's offset and jitter matter: uniform frame times from 0 would be far off.
    naive = 128 + 50 * _wave(np.arange(num) / sample.fps)
    assert np.max(np.abs(naive - expected)) > 10 * tolerance

    video, bvp = datasets.load_sample(sample, max_frames=7)
    assert len(video.frames) == 7 and len(video.timestamps) == 7
    np.testing.assert_allclose(bvp, expected[:7], atol=tolerance)


def test_pure_malformed_json_and_missing_frames_are_refused(tmp_path, rng):
    _write_pure(tmp_path, "01-01", 6, rng)
    json_path = tmp_path / "01-01" / "01-01.json"
    doc = json.loads(json_path.read_text())

    json_path.write_text(json.dumps({"/FullPackage": doc["/FullPackage"]}))
    with pytest.raises(RppgEditError, match="/Image") as excinfo:
        datasets.list_samples("pure", tmp_path)
    _assert_user_error(excinfo, json_path)

    broken = dict(doc, **{"/FullPackage": [{"Timestamp": 1, "Value": {"pulseRate": 70}}]})
    json_path.write_text(json.dumps(broken))
    with pytest.raises(RppgEditError, match="waveform") as excinfo:
        datasets.list_samples("pure", tmp_path)
    _assert_user_error(excinfo, json_path)

    json_path.write_text("{not json")
    with pytest.raises(RppgEditError, match="JSON") as excinfo:
        datasets.list_samples("pure", tmp_path)
    _assert_user_error(excinfo, json_path)

    json_path.write_text(json.dumps(doc))
    missing = tmp_path / "01-01" / "01-01" / f"Image{doc['/Image'][3]['Timestamp']}.png"
    missing.unlink()
    with pytest.raises(RppgEditError, match="missing") as excinfo:
        datasets.list_samples("pure", tmp_path)
    _assert_user_error(excinfo, missing)

    json_path.unlink()
    with pytest.raises(RppgEditError, match="01-01.json") as excinfo:
        datasets.list_samples("pure", tmp_path)
    _assert_user_error(excinfo, tmp_path / "01-01")


# --------------------------------------------------------------------------------------------
# MMPD.

_MMPD_LABELS = {
    "light": "LED-low",
    "motion": "Stationary",
    "exercise": "False",
    "skin_color": np.array([[3]]),
    "gender": "female",
    "glasser": "False",
    "hair_cover": "False",
    "makeup": "False",
}


def test_mmpd_reads_float_and_uint8_videos_with_labels(tmp_path):
    num, fps = 36, 30.0
    frames = _frames(6, num, fps)
    subject = tmp_path / "subject3"
    subject.mkdir()
    ppg = _wave(np.arange(num) / fps)
    video_f = frames.astype(np.float32) / np.float32(255)
    scipy.io.savemat(subject / "p3_1.mat", {"video": video_f, "GT_ppg": ppg[None], **_MMPD_LABELS})
    # A second recording: uint8 video and a waveform with 3T-7 samples spanning the video.
    count = 3 * num - 7
    t_gt = np.linspace(0.0, (num - 1) / fps, count)
    scipy.io.savemat(subject / "p3_2.mat", {"video": frames, "GT_ppg": _wave(t_gt)[:, None]})

    first, second = datasets.list_samples("mmpd", tmp_path)
    assert (first.id, second.id) == ("subject3/p3_1", "subject3/p3_2")
    assert first.fps == 30.0 and first.reader == "mat"
    assert first.meta["light"] == "LED-low" and first.meta["motion"] == "Stationary"
    assert first.meta["skin_color"] == 3 and first.meta["subject"] == "subject3"
    assert "light" not in second.meta

    video, bvp = datasets.load_sample(first)
    np.testing.assert_array_equal(video.frames, frames)
    np.testing.assert_allclose(bvp, ppg, rtol=1e-6, atol=1e-6)

    video, bvp = datasets.load_sample(second, max_frames=20)
    np.testing.assert_array_equal(video.frames, frames[:20])
    expected = _wave(np.arange(20) / fps)
    np.testing.assert_allclose(bvp, expected, atol=_interp_tolerance(count / (num / fps)) + 1e-5)
    assert np.max(np.abs(_wave(np.arange(20) / (3 * fps)) - expected)) > 0.5


def test_mmpd_malformed_files_are_refused(tmp_path):
    subject = tmp_path / "subject1"
    subject.mkdir()
    path = subject / "p1_0.mat"
    scipy.io.savemat(path, {"GT_ppg": np.zeros((1, 10))})
    with pytest.raises(RppgEditError, match="'video'") as excinfo:
        datasets.list_samples("mmpd", tmp_path)
    _assert_user_error(excinfo, path)

    scipy.io.savemat(path, {"video": np.zeros((4, 8, 8, 3), np.uint8)})
    with pytest.raises(RppgEditError, match="GT_ppg") as excinfo:
        datasets.list_samples("mmpd", tmp_path)
    _assert_user_error(excinfo, path)

    scipy.io.savemat(path, {"video": np.full((4, 8, 8, 3), 2.0), "GT_ppg": np.zeros((1, 4))})
    (sample,) = datasets.list_samples("mmpd", tmp_path)
    with pytest.raises(RppgEditError, match=r"\[0, 1\]") as excinfo:
        datasets.load_sample(sample)
    _assert_user_error(excinfo, path)

    path.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(RppgEditError, match="mat") as excinfo:
        datasets.list_samples("mmpd", tmp_path)
    _assert_user_error(excinfo, path)


# --------------------------------------------------------------------------------------------
# MMSE-HR.


def _write_jpegs(folder, frames):
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):  # names 1.jpg .. N.jpg: natural, not lexical, order
        iio.imwrite(folder / f"{i + 1}.jpg", frame, quality=100, subsampling=0)


def test_mmse_hr_both_layouts_align_1khz_physiology(tmp_path):
    num, fps, rate = 30, 25.0, 1000.0
    frames = _frames(7, num, fps, stamp=True)
    count = int(num / fps * rate) + 100
    bp = 100.0 + 20.0 * _wave(np.arange(count) / rate)
    # Layout 1: physiology in the frame folder. Layout 2: a twin <subject>/<task> tree.
    _write_jpegs(tmp_path / "F013" / "T1", frames)
    np.savetxt(tmp_path / "F013" / "T1" / "BP_mmHg.txt", bp, fmt="%.6f")
    np.savetxt(tmp_path / "F013" / "T1" / "Pulse Rate_BPM.txt", np.full(count, 71.0), fmt="%.1f")
    _write_jpegs(tmp_path / "2D" / "M005" / "T8", frames[:20])
    (tmp_path / "Phydata" / "M005" / "T8").mkdir(parents=True)
    np.savetxt(tmp_path / "Phydata" / "M005" / "T8" / "BP_mmHg.txt", bp, fmt="%.6f")

    samples = {s.id: s for s in datasets.list_samples("mmse_hr", tmp_path)}
    assert set(samples) == {"F013/T1", "M005/T8"}
    first = samples["F013/T1"]
    assert first.fps == 25.0 and first.meta["task"] == "T1"
    np.testing.assert_array_equal(first.ground_truth.hr_bpm, np.full(count, 71.0))
    assert samples["M005/T8"].ground_truth.hr_bpm is None

    video, bvp = datasets.load_sample(first)
    assert video.frames.shape == (num, SIZE, SIZE, 3)
    # JPEG is lossy: frames match on average, and the stamped corner gives the order.
    assert np.mean(np.abs(video.frames.astype(float) - frames)) < 3.0
    corner = video.frames[:, 1:5, 1:5].reshape(num, -1).mean(1)
    np.testing.assert_allclose(corner, 7 * np.arange(num), atol=3.0)
    np.testing.assert_allclose(bvp, 100.0 + 20.0 * _wave(np.arange(num) / fps), atol=1e-4)

    video, bvp = datasets.load_sample(samples["M005/T8"])
    assert len(video.frames) == 20
    np.testing.assert_allclose(bvp, 100.0 + 20.0 * _wave(np.arange(20) / fps), atol=1e-4)


def test_mmse_hr_missing_or_mismatched_physiology_is_refused(tmp_path):
    task = tmp_path / "F001" / "T2"
    _write_jpegs(task, _frames(8, 4, 25.0))
    with pytest.raises(RppgEditError, match="BP_mmHg.txt") as excinfo:
        datasets.list_samples("mmse_hr", tmp_path)
    _assert_user_error(excinfo, task)

    np.savetxt(task / "BP_mmHg.txt", np.full(200, 90.0))
    np.savetxt(task / "Pulse Rate_BPM.txt", np.full(199, 70.0))
    with pytest.raises(RppgEditError, match="199") as excinfo:
        datasets.list_samples("mmse_hr", tmp_path)
    _assert_user_error(excinfo, task / "Pulse Rate_BPM.txt")

    (task / "Pulse Rate_BPM.txt").unlink()
    np.savetxt(task / "BP_mmHg.txt", np.full(100, 90.0))  # 0.1 s for 4 frames = 0.12 s
    (sample,) = datasets.list_samples("mmse_hr", tmp_path)
    with pytest.raises(RppgEditError, match="shorter than the video") as excinfo:
        datasets.load_sample(sample)
    _assert_user_error(excinfo, task / "BP_mmHg.txt")

    (task / "BP_mmHg.txt").write_text("90.0\nabc\n")
    with pytest.raises(RppgEditError, match="one number per line") as excinfo:
        datasets.list_samples("mmse_hr", tmp_path)
    _assert_user_error(excinfo, task / "BP_mmHg.txt")


# --------------------------------------------------------------------------------------------
# Any folder.


def test_folder_videos_png_folders_and_their_ground_truth(tmp_path):
    fps, rate = 30.0, 50.0
    frames = _frames(9, 24, fps)
    (tmp_path / "a").mkdir()
    write_video(tmp_path / "a" / "clip.mp4", frames, fps)
    t = np.arange(int(1.0 * rate) + 5) / rate
    np.savetxt(
        tmp_path / "a" / "clip_bvp.csv",
        np.stack([t, _wave(t)], 1),
        fmt="%.6f",
        delimiter=",",
        header="time,bvp",
        comments="",
    )
    (tmp_path / "b").mkdir()
    write_video(str(tmp_path / "b" / "frames") + "/", frames[:12], fps)
    ppg = np.linspace(-1.0, 1.0, 12)
    _write_ubfc2(tmp_path / "b" / "frames", ppg, np.full(12, 60.0), np.arange(12) / fps)
    write_video(tmp_path / "c.mkv", frames[:5], fps)

    with pytest.warns(FrameRateAssumedWarning):
        samples = datasets.list_samples("folder", tmp_path)
    assert [s.id for s in samples] == ["c.mkv", "a/clip.mp4", "b/frames"]
    loaded = {s.id: datasets.load_sample(s) for s in samples}

    video, bvp = loaded["a/clip.mp4"]
    np.testing.assert_array_equal(video.frames, frames)
    np.testing.assert_allclose(bvp, _wave(np.arange(24) / fps), atol=_interp_tolerance(rate) + 1e-5)
    video, bvp = loaded["b/frames"]
    np.testing.assert_array_equal(video.frames, frames[:12])
    assert video.fps == 30.0
    np.testing.assert_allclose(bvp, ppg, atol=1e-6)
    video, bvp = loaded["c.mkv"]
    assert bvp is None and len(video.frames) == 5


def test_folder_ambiguous_ground_truth_is_refused(tmp_path):
    frames = _frames(10, 4, 30.0)
    write_video(tmp_path / "x.mkv", frames, 30.0)
    write_video(tmp_path / "y.mkv", frames, 30.0)
    _write_ubfc2(tmp_path, np.zeros(4), np.zeros(4), np.arange(4) / 30.0)
    with pytest.raises(RppgEditError, match="ambiguous") as excinfo:
        datasets.list_samples("folder", tmp_path)
    _assert_user_error(excinfo, tmp_path / "ground_truth.txt")

    (tmp_path / "ground_truth.txt").unlink()
    for name in ("x.csv", "x_bvp.csv"):
        (tmp_path / name).write_text("0,1\n1,2\n")
    with pytest.raises(RppgEditError, match="ambiguous") as excinfo:
        datasets.list_samples("folder", tmp_path)
    _assert_user_error(excinfo, "x.mkv")


# --------------------------------------------------------------------------------------------
# Common refusals and clips.


@pytest.mark.parametrize("name", sorted(datasets.DATASETS))
def test_missing_or_empty_data_dir_is_refused(tmp_path, name):
    with pytest.raises(RppgEditError, match="not an existing folder") as excinfo:
        datasets.list_samples(name, tmp_path / "nope")
    _assert_user_error(excinfo, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RppgEditError, match="no .* found") as excinfo:
        datasets.list_samples(name, tmp_path / "empty")
    _assert_user_error(excinfo, tmp_path / "empty")


def test_unknown_dataset_is_refused(tmp_path):
    with pytest.raises(RppgEditError, match="ubfc_rppg") as excinfo:
        datasets.list_samples("ubfc", tmp_path)
    assert "\n" not in str(excinfo.value)


def test_clips_cut_consecutive_full_length_pieces(tmp_path):
    fps, num = 10.0, 47
    frames = _frames(11, num, fps)
    write_video(tmp_path / "v.mkv", frames, fps)
    t = np.arange(100) / 20.0
    np.savetxt(tmp_path / "v.csv", np.stack([t, _wave(t)], 1), delimiter=",")
    write_video(tmp_path / "w.mkv", frames[:9], fps)  # no ground truth, shorter than a clip
    samples = datasets.list_samples("folder", tmp_path)
    _, bvp_full = datasets.load_sample(samples[0])

    got = list(datasets.clips(samples, clip_seconds=2.0))
    assert [(c[0], c[1]) for c in got] == [("v.mkv", 0), ("v.mkv", 20)]
    for _, start, clip_frames, clip_fps, bvp in got:
        assert clip_fps == fps and clip_frames.shape == (20, SIZE, SIZE, 3)
        np.testing.assert_array_equal(clip_frames, frames[start : start + 20])
        np.testing.assert_array_equal(bvp, bvp_full[start : start + 20])

    got = list(datasets.clips(samples, clip_seconds=2.0, drop_last=False))
    assert [(c[0], c[1], len(c[2])) for c in got] == [
        ("v.mkv", 0, 20),
        ("v.mkv", 20, 20),
        ("v.mkv", 40, 7),
        ("w.mkv", 0, 9),
    ]
    assert got[3][4] is None
    np.testing.assert_array_equal(got[2][2], frames[40:])


# --------------------------------------------------------------------------------------------
# Real data: UBFC-rPPG DATASET_2 subject 1, first 74 frames (shared/data/ubfc_stmap).


def test_real_ubfc_subject_clip_aligns_first_74_columns(tmp_path):
    video_src = shared_file("ubfc_stmap", "vid.avi")
    gt_src = shared_file("ubfc_stmap", "ground_truth.txt")
    subject = tmp_path / "subject1"
    subject.mkdir()
    os.symlink(video_src, subject / "vid.avi")
    os.symlink(gt_src, subject / "ground_truth.txt")

    (sample,) = datasets.list_samples("ubfc_rppg", tmp_path)
    assert sample.fps == pytest.approx(29.264, abs=0.01)
    video, bvp = datasets.load_sample(sample)
    assert video.frames.shape == (74, 480, 640, 3)
    reference = np.loadtxt(gt_src)  # independent parse: rows PPG, HR, time
    assert reference.shape == (3, 1547)
    np.testing.assert_allclose(bvp, reference[0, :74], rtol=1e-6, atol=1e-7)
    assert np.mean(sample.ground_truth.hr_bpm[:74]) == pytest.approx(97.0, abs=1.0)
    # Beat-to-beat rate of the aligned waveform on the GT clock: 86-90 bpm over these 2.4 s (the
    # oximeter's HR row, a lagging average, reads 97); a misaligned or wrong row would not give it.
    times = reference[2, :74]
    peaks = [i for i in range(1, 73) if bvp[i] >= bvp[i - 1] and bvp[i] > bvp[i + 1]]
    peaks = [p for p in peaks if bvp[p] > np.percentile(bvp, 70)]
    hr = 60.0 / np.median(np.diff(times[peaks]))
    assert 80.0 < hr < 100.0
