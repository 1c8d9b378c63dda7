"""`rppgedit live`: a synthetic stream through a pipe comes out whole, in order, reading the target;
the window blend is exact for every stream length; bad streams fail in one line."""

import io
import subprocess
import sys

import numpy as np
import pytest

from rppgedit import live, pipeline, readings, targets
from rppgedit.data import clips
from rppgedit.errors import RppgEditError
from rppgedit.video import encode

SIZE = 96
FAST_FLAGS = [
    "--surrogates=pos,chrom",
    "--steps=30",
    "--learning_rate=0.2",
    "--work_size=32",
    "--window=64",
    "--overlap=16",
]


@pytest.fixture(scope="module")
def clip():
    return clips.synthetic_clip(0, hr_bpm=72.0, num_frames=300, height=SIZE, width=SIZE)


def _outside(box, margin=8):
    """bool (SIZE, SIZE): pixels at least `margin` px outside `box` (x0, y0, x1, y1)."""
    y, x = np.mgrid[:SIZE, :SIZE]
    x0, y0, x1, y1 = box
    return (x < x0 - margin) | (x >= x1 + margin) | (y < y0 - margin) | (y >= y1 + margin)


def _hr(frames, boxes, fps):
    job = pipeline.EditJob(work_size=32)
    crop, mask = pipeline.crop_and_mask(frames, boxes, job)
    found = readings.read_heart_rates(crop, mask, fps, ["pos", "chrom"])
    return {name: r["hr_bpm"] for name, r in found.items()}


def test_a_pipe_stream_comes_out_whole_in_order_and_reads_the_target(clip):
    """The CLI: raw rgb24 frames on stdin, edited frames on stdout, one for one."""
    cmd = [sys.executable, "-m", "rppgedit.main", "live", "--input=-", "--output=-"]
    cmd += [f"--live_size={SIZE}x{SIZE}", "--live_fps=30", "--target_hr=120", *FAST_FLAGS]
    cmd += ["--estimators=pos,chrom,physnet_pure"]
    done = subprocess.run(cmd, input=clip.frames.tobytes(), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    data = done.stdout
    assert len(data) == clip.frames.nbytes  # exactly as many frames as went in
    out = np.frombuffer(data, np.uint8).reshape(clip.frames.shape)
    # Far from the face every pixel is the input's, frame by frame (the background is noisy, so
    # a lost, repeated or reordered frame would show).
    outside = _outside(clip.face_boxes.min(0)[:2].tolist() + clip.face_boxes.max(0)[2:].tolist())
    assert outside.mean() > 0.1
    np.testing.assert_array_equal(out[:, outside], clip.frames[:, outside])
    assert (out != clip.frames).any(axis=(1, 2, 3)).mean() > 0.95  # and the faces were edited
    before, after = _hr(clip.frames, clip.boxes, clip.fps), _hr(out, clip.boxes, clip.fps)
    assert all(abs(hr - 72.0) <= 3.0 for hr in before.values()), before
    assert all(abs(hr - 120.0) <= 3.0 for hr in after.values()), after
    lines = done.stderr.decode().strip().splitlines()
    (summary,) = [x for x in lines if x.startswith("live: ")]
    assert "300 frames in, 300 out, 0 dropped, 0 repeated" in summary, summary
    # The readings at the end: the skin trace of the frames written, before and after the edit.
    at = lines.index(next(x for x in lines if x.startswith("live readings: ")))
    assert "physnet_pure: deep readers, not read live" in lines[at], lines[at]
    table = {x.split()[0]: [float(v) for v in x.split()[1:]] for x in lines[at + 3 : at + 5]}
    assert set(table) == {"pos", "chrom"}, lines[at:]
    for name, (hr_before, hr_after) in table.items():
        assert abs(hr_before - 72.0) <= 3.0 and abs(hr_after - 120.0) <= 3.0, (name, table)
        assert abs(hr_after - after[name]) <= 1.0, (name, table, after)  # what a reader finds
    assert lines[at + 5].startswith("verdict: 2/2 estimators read 120 +/- 3 bpm; none reads"), lines


class _LateTracker:
    """No face in the first `late` frames, then a fixed box."""

    def __init__(self, late, box):
        self.late, self.box_, self.count = late, np.asarray(box, np.float32), 0

    def box(self, frame):
        self.count += 1
        return None if self.count <= self.late else self.box_


def _fake_editor(clips_, masks, waves):
    """Each window becomes crop + 0.01 * target * mask: the same residual for a frame whatever
    window holds it, so the blend must give exactly that back."""
    return clips_ + np.float32(0.01) * waves[:, :, None, None, None] * masks[..., None]


@pytest.mark.parametrize("num", [20, 45, 69, 117, 118, 131, 300])
def test_the_blend_gives_each_frame_its_residual_for_any_stream_length(clip, num, monkeypatch):
    late = 5
    job = pipeline.EditJob(
        target=targets.TargetSpec(hr_bpm=100.0, phase=0.3), work_size=16, window=64, overlap=16
    )
    pasted = {}
    paste = live.paste

    def spy(frames, boxes, masks, residual, job_, index):
        for k in range(len(frames)):
            pasted[index + k] = (residual[k], masks[k])
        return paste(frames, boxes, masks, residual, job_, index)

    monkeypatch.setattr(live, "paste", spy)
    edit = live.LiveEdit(
        job, 30.0, edit_batch=_fake_editor, batch_size=1, tracker=_LateTracker(late, clip.boxes[0])
    )
    frames = clip.frames[:num]
    sink = live.RawSink(io.BytesIO())
    stats = live.run_live(live.RawFrames(io.BytesIO(frames.tobytes()), SIZE, SIZE), sink, edit)
    out = np.frombuffer(sink.stream.getvalue(), np.uint8).reshape(frames.shape)
    assert stats.frames_out == num and stats.dropped == 0
    wave = targets.sinusoid(100.0, num, 30.0, 0.3)
    faced = num - late
    if faced < 32:  # too short to carry a pulse: everything goes out as it came
        assert not pasted and stats.unedited == num
        np.testing.assert_array_equal(out, frames)
        return
    first = late + faced % 4 if faced < job.window else late  # a short stream: one 4k window
    assert sorted(pasted) == list(range(first, num))
    assert stats.unedited == first
    np.testing.assert_array_equal(out[:first], frames[:first])
    for i, (residual, mask) in pasted.items():
        want = np.broadcast_to(np.float32(0.01) * wave[i] * mask[..., None], residual.shape)
        np.testing.assert_allclose(residual, want, atol=2e-6, err_msg=f"frame {i}")


def test_frames_are_dropped_only_with_a_count_when_a_realtime_source_outruns_the_edit(clip):
    job = pipeline.EditJob(work_size=16, window=64, overlap=16)

    def slow_editor(clips_, masks, waves):
        import time

        time.sleep(0.05)
        return _fake_editor(clips_, masks, waves)

    edit = live.LiveEdit(
        job, 30.0, edit_batch=slow_editor, batch_size=1, tracker=_LateTracker(0, clip.boxes[0])
    )
    sink = live.RawSink(io.BytesIO())
    lines = []
    source = live.RawFrames(io.BytesIO(clip.frames.tobytes()), SIZE, SIZE)  # faster than the edit
    stats = live.run_live(source, sink, edit, realtime=True, max_lag=4, log=lines.append)
    assert stats.frames_in == 300 and stats.frames_out + stats.dropped == 300
    assert stats.dropped > 0 and lines and "dropped" in lines[0]
    assert len(sink.stream.getvalue()) == stats.frames_out * SIZE * SIZE * 3


def test_a_file_decoded_in_process_into_a_file_keeps_every_frame(clip, tmp_path):
    from rppgedit.video import decode, encode

    source_path, out_path = tmp_path / "in.mkv", tmp_path / "out.mkv"
    frames = clip.frames[:100]
    encode.write_video(source_path, frames, clip.fps)
    edit = live.LiveEdit(
        pipeline.EditJob(work_size=16, window=64, overlap=16),
        clip.fps,
        edit_batch=_fake_editor,
        batch_size=1,
        tracker=_LateTracker(0, clip.boxes[0]),
    )
    source = live.FileFrames(str(source_path), clip.fps)
    sink = live.FileSink(out_path, SIZE, SIZE, clip.fps, inputs=(source_path,))
    stats = live.run_live(source, sink, edit)
    out = decode.read_video(out_path).frames
    assert stats.frames_out == len(out) == 100
    outside = _outside(clip.boxes[0])
    np.testing.assert_array_equal(out[:, outside], frames[:, outside])
    assert (out != frames).any()


def test_a_file_sink_hands_each_burst_to_the_encoder_in_few_items(clip, tmp_path, monkeypatch):
    from rppgedit.video import decode

    frames = list(clip.frames[:20])
    monkeypatch.setattr(live.FileSink, "BURST_BYTES", 8 * frames[0].nbytes)
    sink = live.FileSink(tmp_path / "out.mkv", SIZE, SIZE, clip.fps)
    items, write = [], sink.writer.write
    monkeypatch.setattr(sink.writer, "write", lambda f: (items.append(len(f)), write(f)))
    for burst in (frames[:12], [], frames[12:]):
        sink.write_all(burst)
    sink.close()
    assert items == [8, 4, 8]  # at most 8 frames' bytes per item, never an empty one
    np.testing.assert_array_equal(decode.read_video(tmp_path / "out.mkv").frames, clip.frames[:20])


def test_a_paced_file_hands_out_frames_no_faster_than_its_rate(clip, tmp_path, monkeypatch):
    """With pace, frame i is handed out no earlier than i / fps after the first (a clock that
    stands still makes the wanted waits add up to exactly 9 frame intervals for 10 frames)."""
    path = tmp_path / "in.mkv"
    encode.write_video(path, clip.frames[:10], 25.0)
    waits = []
    monkeypatch.setattr(live.time, "monotonic", lambda: 100.0)
    monkeypatch.setattr(live.time, "sleep", waits.append)
    paced = live.FileFrames(str(path), 25.0, pace=True)
    frames = [paced.read() for _ in range(10)]
    assert paced.read() is None
    np.testing.assert_array_equal(np.stack(frames), clip.frames[:10])
    assert waits == pytest.approx([i / 25.0 for i in range(1, 10)])
    monkeypatch.undo()
    unpaced = live.FileFrames(str(path), 25.0)
    count = 0
    while unpaced.read() is not None:
        count += 1
    assert count == 10


def test_a_torn_last_frame_is_a_one_line_error(clip):
    job = pipeline.EditJob(work_size=16, window=64, overlap=16)
    data = clip.frames[:40].tobytes() + clip.frames[40].tobytes()[:1000]
    edit = live.LiveEdit(
        job, 30.0, edit_batch=_fake_editor, batch_size=1, tracker=_LateTracker(0, clip.boxes[0])
    )
    with pytest.raises(RppgEditError, match=r"ended inside frame 40: 1000 of its 27648 bytes"):
        live.run_live(
            live.RawFrames(io.BytesIO(data), SIZE, SIZE), live.RawSink(io.BytesIO()), edit
        )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--input=-", "--output=-", "--live_size=96"], "want WIDTHxHEIGHT"),
        (["--input=-", "--output=-", "--live_size=8x8"], "out of range"),
        (["--input=-", "--output=-"], "needs --live_size"),
        (["--input=/dev/video99", "--output=-"], "no such capture device"),
        (["--input=/dev/null", "--live_format=v4l2", "--output=-"], "cannot read it (ffmpeg: "),
        (["--input=-", "--output=-", "--live_size=96x96", "--target=pulse"], "cannot be streamed"),
    ],
)
def test_bad_streams_fail_in_one_line(flags, message):
    cmd = [sys.executable, "-m", "rppgedit.main", "live", *flags, *FAST_FLAGS]
    done = subprocess.run(cmd, input="", capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_an_unreadable_device_is_a_one_line_error():
    source = live.FfmpegFrames("/dev/video99", 64, 48, fps=30.0, input_format="v4l2")
    with pytest.raises(RppgEditError, match=r"/dev/video99: cannot read it \(ffmpeg: "):
        source.read()
