"""Share-ready edits: every face edited, the input's sound kept, readings on the decoded file."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from rppgedit import pipeline, readings, targets
from rppgedit.data import synthetic
from rppgedit.video import crop, decode, encode, face, ffmpeg, probe

FPS = 30.0
TARGET = 110.0


def _job(estimators=("pos", "chrom"), **kw):
    return pipeline.EditJob(
        target=targets.TargetSpec(kind="sinusoid", hr_bpm=TARGET), estimators=estimators, **kw
    )


def _within(rows, estimators, hr, tol=3.0, key="hr_after"):
    return {r["estimator"]: r[key] for r in rows if r["estimator"] in estimators} | {
        "ok": all(abs(r[key] - hr) <= tol for r in rows if r["estimator"] in estimators)
    }


def test_two_faces_at_different_rates_both_read_the_target(tmp_path):
    two = synthetic.make_multi_face_clip((0, 1), (66.0, 84.0), num_frames=300)
    src = tmp_path / "two.mkv"
    encode.write_video(src, two.frames, FPS)
    out = tmp_path / "two_edited.mkv"
    summary = pipeline.run_edit(str(src), str(out), _job(), progress=False)
    assert [f["face"] for f in summary["faces"]] == [0, 1]
    assert all(f["edited"] for f in summary["faces"])
    back = decode.read_video(out).frames
    width = two.frames.shape[2]
    for i, truth in enumerate(two.faces):
        listed = summary["faces"][i]
        centre_x = np.mean([(b[0] + b[2]) / 2 for b in listed["boxes"]])
        assert (centre_x < width / 2) == (i == 0)  # left face first
        rows = [r for r in summary["rows"] if r["face"] == i]
        before = _within(rows, ("pos", "chrom"), truth.hr_bpm, key="hr_before")
        after = _within(rows, ("pos", "chrom"), TARGET)
        assert before["ok"], before  # each face carries its own rate before the edit ...
        assert after["ok"], after  # ... and the target after it
    # Outside both faces' pasted skin masks, the output is the input, bit for bit.
    tracks = face.track_faces(two.frames)
    for track, listed in zip(tracks, summary["faces"], strict=True):
        np.testing.assert_allclose(track.boxes, listed["boxes"], atol=0.051)
    result = pipeline.edit_frames(two.frames, FPS, tracks, _job())
    np.testing.assert_array_equal(
        result.frames, back
    )  # the streamed file equals the in-memory edit
    outside = ~result.mask_full
    np.testing.assert_array_equal(back[outside], two.frames[outside])
    for truth in two.faces:  # each face was changed
        assert (back[truth.mask] != two.frames[truth.mask]).mean() > 0.1


def test_face_present_for_too_few_frames_is_reported_not_edited(tmp_path):
    clip = synthetic.make_clip(2, num_frames=120, height=64, width=64)
    short = pipeline.face.FaceTrack(
        clip.crop_boxes,
        np.arange(120) < 20,
    )
    full = pipeline.face.FaceTrack(short.boxes, np.ones(120, bool))
    result = pipeline.edit_frames(clip.frames, FPS, [full, short], _job())
    assert result.faces[0].residual is not None and result.faces[1].residual is None
    with pytest.raises(pipeline.RppgEditError, match="nothing to edit .*too short"):
        pipeline.edit_frames(clip.frames, FPS, [short], _job())


def _with_audio(tmp_path, frames, name="in.mkv"):
    """A lossless video file of `frames` with a 440 Hz FLAC track and a title."""
    silent = tmp_path / ("silent_" + name)
    encode.write_video(silent, frames, FPS)
    path = tmp_path / name
    seconds = len(frames) / FPS
    cmd = [ffmpeg.exe(), "-hide_banner", "-loglevel", "error", "-i", str(silent), "-f", "lavfi"]
    cmd += ["-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    cmd += ["-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "flac"]
    cmd += ["-metadata", "title=share test", str(path)]
    subprocess.run(cmd, check=True)
    return path


def _pcm(path):
    cmd = [ffmpeg.exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "s16le", "-"]
    return subprocess.run(cmd, check=True, capture_output=True).stdout


@pytest.mark.parametrize("seed,skin_tone,motion", [(0, 0.3, False), (1, 0.6, True), (2, 0.1, True)])
def test_share_preset_read_on_the_decoded_file(tmp_path, seed, skin_tone, motion):
    clip = synthetic.make_clip(
        seed, hr_bpm=72.0, num_frames=300, height=128, width=128, skin_tone=skin_tone, motion=motion
    )
    src = _with_audio(tmp_path, clip.frames)
    out = tmp_path / "shared.mp4"
    estimators = ("pos", "chrom", "physnet_rlap")
    box = crop.enclosing_square(clip.crop_boxes)
    output = pipeline.OutputSpec(codec="h264", crf=23, verify_reencode=28)
    with pytest.warns(encode.LossyOutputWarning):
        summary = pipeline.run_edit(
            str(src), str(out), _job(estimators), face_box=box, output=output, progress=False
        )
    assert summary["measured_on"] == "the decoded output file"
    # The readings are those of the decoded file, through its own skin mask: recompute one.
    decoded = decode.read_video(out).frames
    boxes = np.tile(box, (300, 1))
    after, mask = pipeline.crop_and_mask(decoded, boxes, _job())
    pos = readings.read_heart_rates(after, mask, FPS, ("pos",))["pos"]["hr_bpm"]
    row = next(r for r in summary["rows"] if r["estimator"] == "pos")
    assert row["hr_after"] == pytest.approx(pos, abs=1e-6)
    for key in ("hr_after", "hr_reencoded"):
        hit = _within(summary["rows"], estimators, TARGET, key=key)
        assert hit["ok"], (key, hit)
        assert all(abs(r[key] - clip.hr_bpm) > 3 for r in summary["rows"]), key
    assert summary["psnr_db"] > 30 and summary["psnr_vs_same_codec_db"] > summary["psnr_db"]
    # A file that plays everywhere, with the input's sound unchanged.
    streams = probe.stream_info(out)
    video = next(s for s in streams if s["type"] == "video")
    assert (video["codec"], video["pix_fmt"], video["profile"]) == ("h264", "yuv420p", "High")
    assert video["color_primaries"] == "bt709" and probe.is_faststart(out)
    assert _pcm(out) == _pcm(src)
    assert any("audio #0" in note for note in summary["streams"])


def test_share_flag_on_the_command_line(tmp_path):
    clip = synthetic.make_clip(4, num_frames=96, height=64, width=64)
    src = _with_audio(tmp_path, clip.frames)
    before = src.read_bytes()
    out = tmp_path / "out.mp4"
    x0, y0, x1, y1 = crop.enclosing_square(clip.crop_boxes)
    args = [sys.executable, "-m", "rppgedit.main", "--noprogress", "--mode=edit", "--share"]
    args += [f"--input={src}", f"--output={out}", "--steps=3", "--window=64", "--overlap=16"]
    args += [f"--face_box={x0},{y0},{x1},{y1}", "--estimators=pos", "--verify_reencode=28"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "measured on the decoded output file" in done.stdout
    assert "HR after CRF 28" in done.stdout
    report = json.loads((tmp_path / "out.report.json").read_text())
    assert (report["codec"], report["crf"]) == ("h264", 23)
    # the rate printed counts the command's start-up and every stage after it, plots included
    seconds = report["seconds"]
    assert seconds["start_up"] > 0.5  # at least the imports of JAX and the weights
    assert report["frames"] / report["fps_end_to_end"] >= sum(seconds.values())
    assert f"{report['fps_end_to_end']:.1f} frames/s end to end" in done.stdout
    assert probe.is_faststart(out) and _pcm(out) == _pcm(src)
    assert src.read_bytes() == before
    bad = subprocess.run(
        args[:-1] + ["--codec=vp9", "--overwrite"], capture_output=True, text=True, timeout=600
    )
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "--share" in bad.stderr


def test_lossy_strength_applies_to_lossy_targets_only():
    lossy, lossless = pipeline.OutputSpec(codec="h264"), pipeline.OutputSpec()
    job = _job()
    removal = pipeline.EditJob(target=targets.TargetSpec(kind="none"))
    assert pipeline.codec_strength(lossy, True, job) == pipeline.LOSSY_STRENGTH
    assert pipeline.codec_strength(lossless, False, job) == 1.0
    assert pipeline.codec_strength(lossy, True, removal) == 1.0  # a stronger removal re-plants
    spec = pipeline.OutputSpec(codec="h264", lossy_strength=2.0)
    assert pipeline.codec_strength(spec, True, job) == 2.0
    for bad in (0.0, -1.0, float("nan"), 11.0):
        with pytest.raises(pipeline.RppgEditError, match="strength"):
            pipeline.codec_strength(pipeline.OutputSpec(lossy_strength=bad), True, job)


def test_paste_frames_scales_the_residual():
    clip = synthetic.make_clip(5, num_frames=64, height=48, width=48)
    box = clip.crop_boxes
    job = _job(quantize="round", window=64, overlap=16)
    result = pipeline.edit_frames(clip.frames, FPS, box, job)
    twice, mask = pipeline.paste_frames(clip.frames, result.faces, job, np.float32(2.0))
    once = result.frames.astype(np.float64) - clip.frames
    delta = twice.astype(np.float64) - clip.frames
    assert np.all(delta[~mask] == 0)
    moved = np.abs(once) > 0
    # Round to nearest of 2r against r: |2r - round(2r)| <= 0.5 and |r - round(r)| <= 0.5.
    assert np.abs(delta - 2 * once).max() <= 1.5
    assert np.abs(delta).sum() > 1.5 * np.abs(once[moved]).sum()


def test_lossy_outputs_edit_with_the_paper_optimiser_unless_told_otherwise():
    job = _job(method_options=(("learning_rate", 0.2),))
    lossless = pipeline.editor_config(pipeline.codec_job(job, False), FPS)
    assert (lossless.balance, lossless.colour, lossless.learning_rate) == ("softmax", "pulse", 0.2)
    lossy = pipeline.editor_config(pipeline.codec_job(job, True), FPS)
    assert (lossy.balance, lossy.colour, lossy.learning_rate) == ("mean", "free", 0.2)
    removal = dataclasses.replace(job, target=targets.TargetSpec(kind="none"))
    assert pipeline.codec_job(removal, True) is removal
