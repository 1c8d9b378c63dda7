"""`pipeline.run_edit` streams the file: same bits as the in-memory `edit_frames`, bounded memory."""

import dataclasses
import json
import time
import tracemalloc

import numpy as np
import pytest

from rppgedit import metrics, pipeline, targets
from rppgedit.data import synthetic
from rppgedit.video import crop, decode, encode, probe

FPS = 30.0


def _job(**kw):
    return pipeline.EditJob(
        target=targets.TargetSpec(kind="sinusoid", hr_bpm=110.0),
        work_size=32,
        window=64,
        overlap=16,
        batch_windows=2,
        method_options=(("surrogates", (("pos", 1.0), ("chrom", 1.0))), ("steps", 5)),
        estimators=("pos",),
        **kw,
    )


def _source(tmp_path, num_frames, size):
    clip = synthetic.make_clip(3, hr_bpm=70.0, num_frames=num_frames, height=size, width=size)
    path = tmp_path / "in.mkv"
    encode.write_video(path, clip.frames, FPS)
    box = crop.enclosing_square(clip.crop_boxes)
    return clip, path, box


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_streamed_file_edit_equals_in_memory_edit(tmp_path, monkeypatch, bit_depth):
    # Small chunks (10 frames of 48x48) so that the 150 frames span many chunks.
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 10 * 48 * 48 * 3 * 4)
    monkeypatch.setattr(pipeline, "chunk_frames", lambda h, w: 10)
    clip, path, box = _source(tmp_path, 150, 48)
    job = _job(bit_depth=bit_depth)
    out = tmp_path / "out.mkv"
    # a caller that started 1000 s ago: the rate counts its start-up; else from the first decode
    started = {"started": time.perf_counter() - 1000.0} if bit_depth == 8 else {}
    summary = pipeline.run_edit(str(path), str(out), job, face_box=box, progress=False, **started)
    if started:
        assert summary["seconds"]["start_up"] >= 1000.0
        assert 150 / summary["fps_end_to_end"] >= sum(summary["seconds"].values())
    else:
        assert "start_up" not in summary["seconds"]
        assert 150 / summary["fps_end_to_end"] == pytest.approx(sum(summary["seconds"].values()))
    boxes = np.tile(box, (150, 1))
    expected = pipeline.edit_frames(clip.frames, FPS, boxes, job)
    back = decode.read_video(out, allow_16bit=bit_depth == 16).frames
    np.testing.assert_array_equal(back, expected.frames)
    assert (back != (clip.frames.astype(back.dtype) * (257 if bit_depth == 16 else 1))).any()
    # The report's PSNR/SSIM, accumulated chunk by chunk, equal those of the whole arrays.
    report = json.loads((tmp_path / "out.report.json").read_text())
    top = 255.0 if bit_depth == 8 else 65535.0
    original, edited = clip.frames / 255.0, back / top  # float64 references
    assert report["psnr_db"] == pytest.approx(metrics.psnr(original, edited), abs=1e-4)
    assert report["ssim"] == pytest.approx(metrics.ssim(original, edited), abs=1e-6)
    assert 45.0 < report["psnr_db"] < 80.0
    assert summary["frames"] == 150


def test_rounding_does_not_depend_on_the_chunking(tmp_path, monkeypatch):
    # Chunks are seeded by their index, so the same chunk size gives the same bits; a different
    # chunk size draws other rounding noise but the same values to within one level.
    clip, path, box = _source(tmp_path, 96, 48)
    boxes = np.tile(box, (96, 1))
    job = _job()
    monkeypatch.setattr(pipeline, "chunk_frames", lambda h, w: 16)
    a = pipeline.edit_frames(clip.frames, FPS, boxes, job).frames
    monkeypatch.setattr(pipeline, "chunk_frames", lambda h, w: 96)
    b = pipeline.edit_frames(clip.frames, FPS, boxes, job).frames
    diff = np.abs(a.astype(int) - b)
    assert diff.max() == 1 and diff.mean() < 0.5


def test_host_memory_stays_below_the_decoded_video(tmp_path, monkeypatch):
    num, size = 600, 256
    monkeypatch.setattr(pipeline, "chunk_frames", lambda h, w: 8)
    monkeypatch.setattr(pipeline, "HOLD_BYTES", 0)  # a longer video than the replay holds
    clip, path, box = _source(tmp_path, num, size)
    video_bytes = clip.frames.nbytes  # 118 MB as uint8; edit_frames holds 4x that as float32
    del clip
    tracemalloc.start()
    try:
        pipeline.run_edit(str(path), str(tmp_path / "o.mkv"), _job(), face_box=box, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Measured: peak 57 MB (crops of the whole clip at 32 px and their edit windows, 8-frame chunks
    # of full frames); reading the video whole would hold 118 MB, pasting it whole 4x more.
    assert peak < 0.75 * video_bytes, (peak, video_bytes)


def _peak_bytes(tmp_path, num_frames) -> int:
    """Peak traced host memory of `run_edit` (report included) on a `num_frames` clip."""
    tmp_path.mkdir()
    _, path, box = _source(tmp_path, num_frames, 64)
    tracemalloc.start()
    try:
        out = tmp_path / f"o{num_frames}.mkv"
        pipeline.run_edit(str(path), str(out), _job(), face_box=box, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def test_the_edit_holds_a_window_not_the_video(tmp_path, monkeypatch):
    """A clip 4x longer edits and reports in the same memory: the crops and residuals stream through
    the engine and the report's readers a window at a time. Holding them whole would add 3 x 12 KB
    per frame of float32 32x32 crops, 28 MB for the 768 more frames; what may grow is each face's
    skin mask (1 KB per frame), boxes, target and RGB traces."""
    monkeypatch.setattr(pipeline, "chunk_frames", lambda h, w: 8)
    monkeypatch.setattr(pipeline, "HOLD_BYTES", 0)  # longer videos than the replay holds
    _peak_bytes(tmp_path / "warm", 256)  # one-time allocations (weights, compiled programs)
    short = _peak_bytes(tmp_path / "short", 256)
    long = _peak_bytes(tmp_path / "long", 1024)
    # Measured: 9.3 MB short and long (the code that held the crops: 26 and 59 MB).
    assert long < short + 4 * 2**20, (short, long)


def _counted_decodes(monkeypatch) -> list:
    """Paths that `decode.iter_chunks` is asked to decode from now on; "sparse:" + path for
    `decode.iter_sparse` (decoded, key frames converted)."""
    calls, real, real_sparse = [], decode.iter_chunks, decode.iter_sparse

    def counted(path, *args, **kw):
        calls.append(str(path))
        return real(path, *args, **kw)

    def counted_sparse(path, *args, **kw):
        calls.append(f"sparse:{path}")
        return real_sparse(path, *args, **kw)

    monkeypatch.setattr(decode, "iter_chunks", counted)
    monkeypatch.setattr(decode, "iter_sparse", counted_sparse)
    return calls


def test_a_small_video_is_decoded_once_and_edited_to_the_same_bits(tmp_path, monkeypatch):
    """Tracking, the edit's crops and the paste each pass over the input; a video that fits in
    `HOLD_BYTES` is decoded by the first and replayed to the others, with the bits of decoding it
    three times (lossless output; with a lossy one, the report decodes the input once more). A
    larger one is tracked on a decode that converts only the tracker's frames to RGB."""
    _, path, box = _source(tmp_path, 96, 48)
    monkeypatch.setattr(pipeline, "chunk_frames", lambda h, w: 16)
    outputs, real = {}, decode.iter_chunks
    for hold in (0, pipeline.HOLD_BYTES):
        monkeypatch.setattr(pipeline, "HOLD_BYTES", hold)
        calls = _counted_decodes(monkeypatch)
        out = tmp_path / f"o{hold}.mkv"
        pipeline.run_edit(str(path), str(out), _job(), face_box=box, progress=False)
        assert calls.count(str(path)) == (2 if hold == 0 else 1)
        assert calls.count(f"sparse:{path}") == (1 if hold == 0 else 0)
        outputs[hold] = decode.read_video(out).frames
        monkeypatch.setattr(decode, "iter_chunks", real)
    assert np.array_equal(*outputs.values())


def test_replay_holds_a_whole_first_pass_within_its_limit():
    chunk = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    passes = []

    def decode_chunks():
        passes.append(1)
        for start in (0, 2, 4):
            yield start, chunk + start

    within = pipeline.Replay(decode_chunks, 3 * chunk.nbytes)
    first = list(within())
    assert len(passes) == 1 and [s for s, _ in first] == [0, 2, 4]
    again = list(within())
    assert len(passes) == 1  # replayed, not decoded
    assert all(a[0] == b[0] and a[1] is b[1] for a, b in zip(first, again, strict=True))
    with pytest.raises(ValueError, match="read-only"):
        again[0][1][0, 0, 0, 0] = 7  # one pass cannot change the frames the next one reads
    over = pipeline.Replay(decode_chunks, 3 * chunk.nbytes - 1)
    list(over()), list(over())
    assert len(passes) == 3  # too large: decoded on every pass, in O(chunk) memory
    partial = pipeline.Replay(decode_chunks, 3 * chunk.nbytes)
    next(partial())  # a pass left part-way holds nothing
    list(partial())
    list(partial())
    assert len(passes) == 5


@pytest.mark.parametrize("claimed", [-7, 9])
@pytest.mark.parametrize("tracked", [False, True])
def test_a_header_that_lies_about_the_frame_count_edits_the_decoded_frames(
    tmp_path, monkeypatch, claimed, tracked
):
    """The header's frame count is a claim: the edit covers every decoded frame (no more, no fewer),
    equals the in-memory edit of those frames, and says so in its notes."""
    clip, path, box = _source(tmp_path, 96, 48)
    real_probe = probe.probe

    def lying_probe(p, **kw):
        info = real_probe(p, **kw)
        return dataclasses.replace(info, num_frames=info.num_frames + claimed)

    monkeypatch.setattr(probe, "probe", lying_probe)
    out = tmp_path / "out.mkv"
    kwargs = {} if tracked else {"face_box": box}
    if tracked:
        kwargs["allow_no_face"] = True  # a 48 px synthetic face may be too small to track
    summary = pipeline.run_edit(str(path), str(out), _job(), progress=False, **kwargs)
    back = decode.read_video(out).frames
    assert back.shape[0] == 96 == summary["frames"]
    assert any(f"claims {96 + claimed} frames; 96 were decoded" in n for n in summary["notes"])
    if not tracked:
        boxes = np.tile(np.asarray(box, np.float32), (96, 1))
        expected = pipeline.edit_frames(clip.frames, FPS, boxes, _job()).frames
        np.testing.assert_array_equal(back, expected)


@pytest.mark.parametrize("num", [300, 100])  # several deep-model windows; shorter than one
@pytest.mark.parametrize("in_flight", [0, 4])  # each window waited for at once, or left running
def test_stream_reader_reads_what_read_heart_rates_reads(num, in_flight, monkeypatch):
    from rppgedit import readings

    monkeypatch.setattr(readings, "_IN_FLIGHT", in_flight)
    names = ("green", "pos", "physnet_pure")
    clip = synthetic.make_clip(2, num_frames=num, height=96, width=96)
    crop_, mask = pipeline.crop_and_mask(clip.frames, clip.crop_boxes, pipeline.EditJob())
    whole = readings.read_heart_rates(crop_, mask, FPS, names, with_bvp=True)
    reader = readings.StreamReader(names, num, FPS)
    for start in range(0, num, 7):  # chunks that do not line up with the windows
        reader.add(crop_[start : start + 7], mask[start : start + 7])
    assert len(reader._in_flight) <= in_flight
    got = reader.readings(with_bvp=True)
    for name in names:
        np.testing.assert_array_equal(got[name]["bvp"], whole[name]["bvp"])
        assert got[name]["hr_bpm"] == whole[name]["hr_bpm"]
    with pytest.raises(ValueError, match="read 7 of"):
        partial = readings.StreamReader(names, num, FPS)
        partial.add(crop_[:7], mask[:7])
        partial.readings()


def test_an_editor_error_is_not_reported_as_a_second_decode_that_differed(tmp_path, monkeypatch):
    """Only a frame-count mismatch between the passes reads as "decoded differently"; any other
    error of the editor reaches the caller as itself, and no output is left behind."""
    _, path, box = _source(tmp_path, 96, 48)
    real = pipeline.job_editor

    def broken_editor(job, state, cfg):
        _, batch_size = real(job, state, cfg)

        def edit_batch(clips, masks, waves):
            raise ValueError("editor bug")

        return edit_batch, batch_size

    monkeypatch.setattr(pipeline, "job_editor", broken_editor)
    out = tmp_path / "o.mkv"
    with pytest.raises(ValueError, match="editor bug") as caught:
        pipeline.run_edit(str(path), str(out), _job(), face_box=box, progress=False)
    assert "decoded differently" not in str(caught.value)
    assert not out.exists()
