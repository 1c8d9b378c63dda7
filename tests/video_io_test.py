"""Tests for rppgedit.video's probe, decode and encode: bit-exact round trips, streaming, timing,
refusals, atomic writes."""

import os
import pathlib
import subprocess
import sys
import tracemalloc
import warnings
from fractions import Fraction

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import shared_file

from rppgedit.errors import RppgEditError
from rppgedit.video import decode, encode, ffmpeg, probe

T, H, W = 12, 32, 48
LOSSLESS_8BIT = [".mkv", ".mp4", ".avi", ".npy", "frames/"]
LOSSLESS_16BIT = [".mkv", ".avi", ".npy", "frames16/"]


def _path(tmp_path, name):
    """Output path for a format: '.mkv' -> tmp/out.mkv, 'frames/' -> tmp/frames/."""
    return str(tmp_path / f"out{name}") if name.startswith(".") else str(tmp_path / name) + "/"


def _read(path, **kw):
    """read_video, giving fps= only where the source stores none."""
    if os.path.isdir(path) or path.endswith(".npy"):
        kw.setdefault("fps", 30.0)
    return decode.read_video(path, **kw)


def _listing(directory):
    """Every name under ``directory`` (hidden temporaries included)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def _assert_user_error(excinfo, path):
    message = str(excinfo.value)
    assert os.fspath(path).rstrip("/") in message, message
    assert "\n" not in message


def _ffmpeg(*args):
    subprocess.run([ffmpeg.exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture
def frames8(rng):
    return rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", LOSSLESS_8BIT)
def test_uint8_round_trip_is_bit_exact(tmp_path, frames8, name):
    written = encode.write_video(_path(tmp_path, name), frames8, 30.0)
    video = _read(written)
    assert video.frames.dtype == np.uint8
    np.testing.assert_array_equal(video.frames, frames8)
    assert video.fps == 30.0
    assert video.timestamps is None
    info = probe.probe(written, **({} if name in (".mkv", ".mp4", ".avi") else {"fps": 30.0}))
    assert (info.num_frames, info.width, info.height) == (T, W, H)
    assert not info.variable_frame_rate


def test_default_codecs_are_the_lossless_ones(tmp_path, frames8):
    """.mkv/.avi hold FFV1 in bgr0, .mp4 holds RGB H.264 (libx264rgb decodes as gbrp)."""
    formats = {}
    for ext in (".mkv", ".avi", ".mp4"):
        formats[ext] = probe.probe(
            encode.write_video(tmp_path / f"a{ext}", frames8, 25.0)
        ).pixel_format
    assert formats == {".mkv": "bgr0", ".avi": "bgr0", ".mp4": "gbrp"}
    names = sorted(os.listdir(encode.write_video(tmp_path / "seq", frames8, 25.0)))
    assert names == [f"{i:06d}.png" for i in range(T)]


def test_lossless_h264_uses_the_fast_preset(tmp_path, frames8):
    """libx264rgb encodes lossless RGB with x264's ultrafast preset (at 1080p 4.5x less CPU than
    its medium preset, for files about a quarter larger): the settings x264 writes into the
    stream say so (no CABAC, one reference frame, no subpixel refinement)."""
    written = encode.write_video(tmp_path / "a.mp4", frames8, 25.0)
    data = pathlib.Path(written).read_bytes()
    start = data.index(b"x264 - core")
    settings = data[start : data.index(b"\x00", start)].decode("ascii", "replace")
    for option in ("cabac=0", "ref=1", "subme=0", "qp=0"):
        assert option in settings.split(), (option, settings)


@pytest.mark.parametrize("name", LOSSLESS_16BIT)
def test_uint16_round_trip_is_bit_exact(tmp_path, rng, name):
    frames = rng.integers(0, 65536, (T, H, W, 3), dtype=np.uint16)
    written = encode.write_video(_path(tmp_path, name), frames, 30.0)
    video = _read(written, allow_16bit=True)
    assert video.frames.dtype == np.uint16
    np.testing.assert_array_equal(video.frames, frames)
    with pytest.raises(RppgEditError, match="allow_16bit") as excinfo:
        _read(written)
    _assert_user_error(excinfo, written)


def test_uint16_refused_by_8bit_codec(tmp_path, rng):
    frames = rng.integers(0, 65536, (2, H, W, 3), dtype=np.uint16)
    before = _listing(tmp_path)
    with pytest.raises(RppgEditError, match="8-bit only") as excinfo:
        encode.write_video(tmp_path / "x.mp4", frames, 30.0)
    _assert_user_error(excinfo, tmp_path / "x.mp4")
    assert _listing(tmp_path) == before


@pytest.mark.parametrize("name", LOSSLESS_8BIT)
def test_one_level_edit_survives_exactly(tmp_path, rng, name):
    """A +/-1 change on 1% of the pixels comes back as exactly the same difference map."""
    base = rng.integers(1, 255, (T, H, W, 3), dtype=np.uint8)
    change = np.zeros(base.shape, np.int16)
    where = rng.random(base.shape) < 0.01
    change[where] = rng.choice(np.array([-1, 1], np.int16), size=int(where.sum()))
    edited = (base.astype(np.int16) + change).astype(np.uint8)
    assert 0.005 < np.mean(change != 0) < 0.015
    decoded = []
    for label, frames in (("a", base), ("b", edited)):
        (tmp_path / label).mkdir()
        decoded.append(
            _read(encode.write_video(_path(tmp_path / label, name), frames, 30.0)).frames
        )
    np.testing.assert_array_equal(decoded[1].astype(np.int16) - decoded[0], change)


def _smooth_frames(n=10, h=32, w=48):
    """Smooth colour ramps that move over time (H.264 compresses these well)."""
    t, y, x = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), indexing="ij")
    r = 128 + 100 * np.sin(0.2 * x + 0.3 * t)
    g = 128 + 100 * np.cos(0.15 * y - 0.2 * t)
    b = 128 + 60 * np.sin(0.1 * (x + y))
    return np.clip(np.stack([r, g, b], -1), 0, 255).round().astype(np.uint8)


def test_lossy_codec_warns_with_the_measured_text(tmp_path):
    """A sharing codec needs no permission any more (allow_lossy is accepted and ignored), warns
    with what was measured, and really is lossy yet close."""
    frames = _smooth_frames()
    for name, kw in (("lossy.mp4", {}), ("old_caller.mp4", {"allow_lossy": True})):
        out = tmp_path / name
        with pytest.warns(encode.LossyOutputWarning, match="after x264 CRF 23") as record:
            encode.write_video(out, frames, 30.0, codec="h264", **kw)
        assert f"{out}: lossy h264 at CRF 23" in str(record[0].message)
        decoded = decode.read_video(out).frames.astype(np.float64)
        assert decoded.shape == frames.shape
        mse = np.mean((decoded - frames) ** 2)
        assert 0 < mse < 255.0**2 / 10 ** (30 / 10)  # really lossy, yet above 30 dB PSNR


def test_unknown_codec_and_type_refused(tmp_path, frames8):
    for path, kw, text in [
        (tmp_path / "a.flv", {}, "unsupported output"),
        (tmp_path / "a.mkv", {"codec": "prores"}, "unknown codec"),
        (tmp_path / "a.mp4", {"codec": "ffv1"}, "cannot be written"),
    ]:
        with pytest.raises(RppgEditError, match=text) as excinfo:
            encode.write_video(path, frames8, 30.0, **kw)
        _assert_user_error(excinfo, path)
    assert _listing(tmp_path) == []


def _expected_windows(frames, window, overlap):
    starts = range(0, max(len(frames) - overlap, 1), window - overlap)
    return [(s, frames[s : s + window]) for s in starts]


@pytest.mark.parametrize("name", [".mkv", ".npy", "frames/"])
@pytest.mark.parametrize("overlap", [0, 3])
def test_windows_equal_whole_file(tmp_path, rng, name, overlap):
    frames = rng.integers(0, 256, (23, H, W, 3), dtype=np.uint8)
    written = encode.write_video(_path(tmp_path, name), frames, 30.0)
    whole = _read(written).frames
    kw = {} if name == ".mkv" else {"fps": 30.0}
    got = list(decode.iter_chunks(written, 5, overlap=overlap, **kw))
    expected = _expected_windows(whole, 5, overlap)
    assert [s for s, _ in got] == [s for s, _ in expected]
    for (_, a), (_, b) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(got[-1][1]) == (23 - got[-1][0] if 23 - got[-1][0] < 5 else 5)


@pytest.mark.parametrize("name", [".mkv", ".mp4", ".npy", "frames/"])
@pytest.mark.parametrize("num", [23, 21, 1])  # the last frame off and on the cadence; one frame
def test_sparse_frames_are_the_decoded_key_frames_and_the_last(tmp_path, rng, name, num):
    frames = rng.integers(0, 256, (num, H, W, 3), dtype=np.uint8)
    written = encode.write_video(_path(tmp_path, name), frames, 30.0)
    whole = _read(written).frames
    got = [f for chunk in decode.iter_sparse(written, 5, 4) for f in chunk]
    assert len(got) == num
    for t, frame in enumerate(got):
        if t % 5 == 0 or t == num - 1 or name in (".npy", "frames/"):
            np.testing.assert_array_equal(frame, whole[t])
        else:
            assert frame is None  # decoded, never converted


def test_sparse_decoding_refuses_damaged_and_empty_files(tmp_path, frames8):
    damaged = _truncated(tmp_path, frames8, ".avi")
    with pytest.raises(RppgEditError, match="not a readable video") as excinfo:
        list(decode.iter_sparse(damaged, 5, 4))
    _assert_user_error(excinfo, damaged)
    with pytest.raises(ValueError, match="every >= 1"):
        next(decode.iter_sparse(damaged, 0, 4))
    empty = _zero_frames_avi(tmp_path)
    with pytest.raises(RppgEditError) as excinfo:
        list(decode.iter_sparse(empty, 5, 4))
    _assert_user_error(excinfo, empty)


def test_windows_memory_is_bounded_by_the_window(tmp_path, rng):
    frames = rng.integers(0, 256, (320, 64, 64, 3), dtype=np.uint8)
    path = encode.write_video(tmp_path / "long.mkv", frames, 30.0)
    window, overlap = 8, 2
    window_bytes = window * 64 * 64 * 3
    bound = 5 * window_bytes  # previous + new window, the test's comparison, interpreter noise
    assert frames.nbytes > 5 * bound  # a reader holding the whole file could not pass
    starts = []
    tracemalloc.start()
    try:
        for start, chunk in decode.iter_chunks(path, window, overlap=overlap):
            assert np.array_equal(chunk, frames[start : start + window])
            starts.append(start)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert starts == list(range(0, 320 - overlap, window - overlap))
    assert peak < bound, (peak, bound)


def test_max_frames_reads_the_prefix(tmp_path, frames8):
    path = encode.write_video(tmp_path / "a.mkv", frames8, 30.0)
    np.testing.assert_array_equal(decode.read_video(path, max_frames=5).frames, frames8[:5])
    folder = encode.write_video(tmp_path / "f/", frames8, 30.0)
    np.testing.assert_array_equal(
        decode.read_video(folder, max_frames=4, fps=30).frames, frames8[:4]
    )


def test_variable_frame_rate_timestamps(tmp_path):
    """Frames 10+ come 100 ms late and 15+ another 33 ms late: timestamps show both gaps."""
    path = tmp_path / "vfr.mkv"
    expr = "N/30/TB+if(gte(N,10),0.1/TB,0)+if(gte(N,15),1/30/TB,0)"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=48x32:rate=30", "-frames:v", "20", "-vf",
            f"setpts='{expr}'", "-fps_mode", "passthrough", "-c:v", "ffv1", str(path))  # fmt: skip
    n = np.arange(20)
    expected = n / 30 + 0.1 * (n >= 10) + (n >= 15) / 30
    video = decode.read_video(path)
    info = probe.probe(path)
    assert info.variable_frame_rate and info.num_frames == 20
    assert video.timestamps is not None and video.frames.shape[0] == 20
    np.testing.assert_allclose(video.timestamps, expected, atol=0.0011)  # mkv stores ms
    steps = np.diff(video.timestamps)
    assert steps.max() - steps.min() > 0.09
    assert video.fps == pytest.approx(19 / expected[-1], rel=1e-3)


def test_packets_before_the_first_keyframe_are_not_counted_as_frames(tmp_path):
    """A stream cut before its first keyframe (the first 10 packets of a 30-frame GOP dropped):
    the decoder gives no frame for the 20 P-frames that come before the next keyframe, and the
    probe's count (from packets, without decoding) says the same."""
    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mkv"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=4", "-c:v", "libx264",
            "-g", "30", "-bf", "0", "-pix_fmt", "yuv420p", str(whole))  # fmt: skip
    _ffmpeg("-i", str(whole), "-c", "copy", "-copyinkf", "-bsf:v", "noise=drop='lt(n,10)'",
            str(cut))  # fmt: skip
    info = probe.probe(cut)
    video = decode.read_video(cut)
    assert info.num_frames == video.frames.shape[0] == 90
    assert not info.variable_frame_rate and info.fps == 30.0


def test_ntsc_rate_is_exact(tmp_path, frames8):
    ntsc = 30000 / 1001
    mp4 = tmp_path / "ntsc.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=48x32:rate=30000/1001", "-frames:v", "20",
            "-c:v", "libx264", "-bf", "2", "-pix_fmt", "yuv420p", str(mp4))  # fmt: skip
    assert probe.probe(mp4).fps == pytest.approx(ntsc, abs=1e-12)
    # Matroska keeps milliseconds only (33/34 ms steps): the rate is recovered, not read.
    mkv = encode.write_video(tmp_path / "ntsc.mkv", np.concatenate([frames8] * 5), ntsc)
    video = decode.read_video(mkv)
    assert video.fps == pytest.approx(ntsc, abs=1e-12) and video.timestamps is None


def test_display_rotation_is_applied_losslessly(tmp_path, frames8):
    plain = encode.write_video(tmp_path / "plain.mp4", frames8, 30.0)
    rotated = tmp_path / "rot.mp4"
    _ffmpeg("-display_rotation:v", "90", "-i", plain, "-c", "copy", str(rotated))
    info = probe.probe(rotated)
    video = decode.read_video(rotated)
    assert (info.width, info.height) == (H, W) and video.frames.shape == (T, W, H, 3)
    assert any(np.array_equal(video.frames, np.rot90(frames8, k, axes=(1, 2))) for k in (1, -1))


def _cli_rgb24(path) -> np.ndarray:
    """Every frame as the ffmpeg command line decodes it (autorotate on), flat."""
    cmd = [ffmpeg.exe(), "-loglevel", "error", "-i", str(path), "-f", "rawvideo"]
    raw = subprocess.run([*cmd, "-pix_fmt", "rgb24", "-"], capture_output=True, check=True)
    return np.frombuffer(raw.stdout, np.uint8)


@pytest.mark.parametrize("turn", ["0", "90", "180", "270"])
@pytest.mark.parametrize("flip", ["", "-display_hflip:v", "-display_vflip:v"])
def test_every_display_orientation_decodes_as_ffmpeg_shows_it(tmp_path, frames8, turn, flip):
    plain = encode.write_video(tmp_path / "plain.mp4", frames8, 30.0)
    tagged = tmp_path / "tagged.mp4"
    _ffmpeg("-display_rotation:v", turn, *([flip] if flip else []), "-i", plain, "-c", "copy",
            str(tagged))  # fmt: skip
    video = decode.read_video(tagged)
    expected = _cli_rgb24(tagged)
    assert video.frames.size == expected.size
    np.testing.assert_array_equal(video.frames.reshape(-1), expected)
    streamed = np.concatenate([c for _, c in decode.iter_chunks(tagged, 5, overlap=1)][:1])
    np.testing.assert_array_equal(streamed, video.frames[:5])
    if turn in ("90", "270"):
        assert video.frames.shape == (T, W, H, 3)
    if turn == "0" and not flip:
        np.testing.assert_array_equal(video.frames, frames8)


def test_a_rotation_that_is_not_a_quarter_turn_is_refused(tmp_path, frames8):
    plain = encode.write_video(tmp_path / "plain.mp4", frames8, 30.0)
    tilted = tmp_path / "tilted.mp4"
    _ffmpeg("-display_rotation:v", "45", "-i", plain, "-c", "copy", str(tilted))
    with pytest.raises(RppgEditError, match="45 degrees is not a quarter turn") as excinfo:
        decode.read_video(tilted)
    _assert_user_error(excinfo, tilted)


def test_decoding_a_damaged_file_twice_refuses_it_twice(tmp_path, frames8):
    """FFmpeg skips a repeated log line; the second read of the same damaged file must still see
    its error (PyAV's decoder is in-process: its log state outlives one read)."""
    damaged = _truncated(tmp_path, frames8, ".avi")
    for _ in range(3):
        with pytest.raises(RppgEditError, match="not a readable video") as excinfo:
            decode.read_video(damaged)
        _assert_user_error(excinfo, damaged)
    import av.logging

    assert av.logging.get_level() is None  # PyAV's default (logs dropped) is restored after


def test_a_consumer_that_stops_early_stops_the_decoder_thread(tmp_path, frames8):
    """iter_chunks decodes one chunk ahead on a thread: leaving the loop (or an error in the
    consumer) ends that thread and closes the decoder, and PyAV's log state is put back."""
    import threading

    import av.logging

    path = encode.write_video(tmp_path / "clip.mp4", np.concatenate([frames8] * 4), 30.0)

    def decoding():
        return [t for t in threading.enumerate() if t.name == "rppgedit-decode"]

    chunks = decode.iter_chunks(path, 4)
    _, first = next(chunks)
    assert len(decoding()) == 1
    chunks.close()
    assert decoding() == [] and av.logging.get_level() is None
    np.testing.assert_array_equal(first, frames8[:4])
    with pytest.raises(ZeroDivisionError):
        for _start, _chunk in decode.iter_chunks(path, 4):
            1 / 0  # noqa: B018 - the consumer fails on its first chunk
    assert decoding() == [] and av.logging.get_level() is None


_PARTIAL_READS = """
import sys
from rppgedit.video import avlog, decode
avlog.ERRORS.open()  # another reader open: FFmpeg's error lines go through Python
for i in range(300):
    assert len(decode.read_video(sys.argv[1], max_frames=3 + i % 7).frames) == 3 + i % 7
print("done")
"""


@pytest.mark.parametrize("codec", [None, "h264"])
def test_reads_stopped_part_way_free_their_decoder(tmp_path, rng, codec):
    """A read stopped part-way leaves frames in the decoder's frame threads; PyAV frees the
    decoder holding the GIL, so a thread logging meanwhile (its line needs the GIL while any
    reader is open) deadlocked the process (before the fix: hung within 300 reads of such a
    clip, as it hung the test suite once). Run in a child so that a hang fails, not stalls."""
    base = rng.integers(0, 256, (1, 96, 128, 3)).astype(np.float64)
    t = np.arange(60)[:, None, None, None]
    frames = np.clip(base + 20 * np.sin(t / 5 + base / 40), 0, 255).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", encode.LossyOutputWarning)
        clip = encode.write_video(tmp_path / "clip.mp4", frames, 30.0, codec=codec)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PARTIAL_READS, clip], capture_output=True, timeout=240
        )
    except subprocess.TimeoutExpired:
        pytest.fail("300 partial reads did not finish in 240 s (decoder teardown deadlock)")
    assert done.returncode == 0 and done.stdout.strip() == b"done", done.stderr[-2000:]


@pytest.mark.parametrize("kind", ["palette", "gray16", "gray_alpha"])
def test_png_colour_types_decode_as_pillow_reads_them(tmp_path, rng, kind):
    """PNG frames decode in-process (FFmpeg's PNG decoder through PyAV) to the pixels Pillow
    reads, for the colour types beside plain RGB: palette, 16-bit gray, gray with alpha."""
    from PIL import Image

    folder = tmp_path / kind
    folder.mkdir()
    if kind == "palette":
        images = [
            Image.fromarray(f).quantize(16) for f in rng.integers(0, 256, (3, H, W, 3), np.uint8)
        ]
        expected = np.stack([np.asarray(i.convert("RGB")) for i in images])
    elif kind == "gray16":
        gray = rng.integers(0, 65536, (3, H, W), np.uint16)
        images = [Image.fromarray(g) for g in gray]
        expected = np.repeat(gray[..., None], 3, axis=-1)
    else:
        la = rng.integers(0, 256, (3, H, W, 2), np.uint8)
        la[..., 1] = 255
        images = [Image.fromarray(f, "LA") for f in la]
        expected = np.repeat(la[..., :1], 3, axis=-1)
    for i, image in enumerate(images):
        image.save(folder / f"{i}.png")
    video = decode.read_video(folder, fps=30, allow_16bit=kind == "gray16")
    assert video.frames.dtype == expected.dtype
    np.testing.assert_array_equal(video.frames, expected)


def test_png_folder_order_gray_and_alpha(tmp_path, rng):
    folder = tmp_path / "gray"
    folder.mkdir()
    gray = rng.integers(0, 256, (12, H, W), dtype=np.uint8)
    for i, g in enumerate(gray):
        iio.imwrite(folder / f"f{i}.png", g)  # f10.png after f9.png: natural order
    (folder / "notes.txt").write_text("not a frame")
    video = decode.read_video(folder, fps=25)
    np.testing.assert_array_equal(video.frames, np.repeat(gray[..., None], 3, axis=-1))
    assert video.fps == 25.0
    with pytest.warns(probe.FrameRateAssumedWarning):
        assert decode.read_video(folder).fps == 30.0

    rgba = rng.integers(0, 256, (3, H, W, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    opaque = tmp_path / "opaque"
    opaque.mkdir()
    for i, f in enumerate(rgba):
        iio.imwrite(opaque / f"{i:03d}.png", f)
    np.testing.assert_array_equal(decode.read_video(opaque, fps=30).frames, rgba[..., :3])
    rgba[1, 5, 7, 3] = 254
    iio.imwrite(opaque / "001.png", rgba[1])
    with pytest.raises(RppgEditError, match="transparent") as excinfo:
        decode.read_video(opaque, fps=30)
    _assert_user_error(excinfo, opaque / "001.png")


def _raw_to_ffv1(tmp_path, frames, in_fmt, out_fmt, name):
    """Encode raw frames with the ffmpeg CLI directly (independent of io's writer)."""
    raw = tmp_path / f"{name}.raw"
    raw.write_bytes(np.ascontiguousarray(frames).tobytes())
    path = tmp_path / f"{name}.mkv"
    _ffmpeg("-f", "rawvideo", "-pix_fmt", in_fmt, "-s", f"{W}x{H}", "-i", str(raw),
            "-c:v", "ffv1", "-pix_fmt", out_fmt, str(path))  # fmt: skip
    return path


def test_gray_and_alpha_videos(tmp_path, rng):
    gray = rng.integers(0, 256, (4, H, W), dtype=np.uint8)
    path = _raw_to_ffv1(tmp_path, gray, "gray", "gray", "gray")
    assert probe.probe(path).pixel_format == "gray"
    np.testing.assert_array_equal(decode.read_video(path).frames, np.repeat(gray[..., None], 3, -1))

    rgba = rng.integers(0, 256, (4, H, W, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    path = _raw_to_ffv1(tmp_path, rgba, "rgba", "bgra", "opaque")
    np.testing.assert_array_equal(decode.read_video(path).frames, rgba[..., :3])
    rgba[2, 0, 0, 3] = 0
    path = _raw_to_ffv1(tmp_path, rgba, "rgba", "bgra", "holed")
    with pytest.raises(RppgEditError, match="transparent") as excinfo:
        decode.read_video(path)
    _assert_user_error(excinfo, path)
    assert "frame 2" in str(excinfo.value)


def test_sixteen_bit_png_policy(tmp_path, rng):
    folder = tmp_path / "deep"
    folder.mkdir()
    frames = rng.integers(0, 65536, (2, H, W, 3), dtype=np.uint16)
    for i, f in enumerate(frames):  # written by ffmpeg's PNG encoder, independent of io
        raw = tmp_path / f"{i}.rgb"
        raw.write_bytes(f.astype("<u2").tobytes())
        _ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb48le", "-s", f"{W}x{H}", "-i", str(raw),
                "-pix_fmt", "rgb48be", str(folder / f"{i:02d}.png"))  # fmt: skip
    with pytest.raises(RppgEditError, match="16 bits") as excinfo:
        decode.read_video(folder, fps=30)
    _assert_user_error(excinfo, folder)
    np.testing.assert_array_equal(
        decode.read_video(folder, fps=30, allow_16bit=True).frames, frames
    )


def _truncated(tmp_path, frames, ext):
    full = encode.write_video(tmp_path / f"full{ext}", frames, 30.0)
    data = open(full, "rb").read()
    cut = tmp_path / f"half{ext}"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def _zero_frames_avi(tmp_path):
    path = tmp_path / "zero.avi"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=48x32:rate=30", "-frames:v", "0", "-c:v", "ffv1",
            str(path))  # fmt: skip
    return path


@pytest.mark.parametrize(
    "case",
    ["missing", "empty", "trunc_mkv", "trunc_mp4", "trunc_avi", "zero_avi", "zero_npy",
     "empty_dir", "no_png_dir", "not_video", "npy_float", "npy_shape", "png_sizes"],
)  # fmt: skip
def test_bad_inputs_are_one_line_errors(tmp_path, frames8, case):
    src = tmp_path / "src"
    src.mkdir()
    if case == "missing":
        path = src / "nope.mp4"
    elif case == "empty":
        path = src / "empty.mp4"
        path.write_bytes(b"")
    elif case.startswith("trunc_"):
        path = _truncated(src, frames8, "." + case[6:])
    elif case == "zero_avi":
        path = _zero_frames_avi(src)
    elif case == "zero_npy":
        path = src / "zero.npy"
        np.save(path, np.zeros((0, H, W, 3), np.uint8))
    elif case == "empty_dir":
        path = src / "dir"
        path.mkdir()
    elif case == "no_png_dir":
        path = src / "dir"
        path.mkdir()
        (path / "a.jpg").write_bytes(b"\xff\xd8")
    elif case == "not_video":
        path = src / "text.mkv"
        path.write_text("hello\nworld\n")
    elif case == "npy_float":
        path = src / "f.npy"
        np.save(path, frames8.astype(np.float32))
    elif case == "npy_shape":
        path = src / "s.npy"
        np.save(path, np.zeros((2, H, W, 4), np.uint8))
    else:
        path = src / "dir"
        path.mkdir()
        iio.imwrite(path / "0.png", frames8[0])
        iio.imwrite(path / "1.png", frames8[1, :, :-2])
    before = _listing(tmp_path)
    kw = {"fps": 30.0} if case.startswith(("zero_npy", "npy", "empty_dir", "no_png", "png")) else {}
    with pytest.raises(RppgEditError) as excinfo:
        decode.read_video(path, **kw)
    _assert_user_error(excinfo, path if case != "png_sizes" else path / "1.png")
    with pytest.raises(RppgEditError):
        for _ in decode.iter_chunks(path, 4, **kw):
            pass
    if case not in ("trunc_avi",):  # a truncated AVI keeps a valid index: found on decoding
        with pytest.raises(RppgEditError):
            probe.probe(path, **kw)
    assert _listing(tmp_path) == before


def test_output_equal_to_input_is_refused(tmp_path, frames8, rng):
    src = encode.write_video(tmp_path / "in.mkv", frames8, 30.0)
    original = open(src, "rb").read()
    link = tmp_path / "link.mkv"
    link.symlink_to(src)
    other = rng.integers(0, 256, frames8.shape, dtype=np.uint8)
    before = _listing(tmp_path)
    for target in (src, link, str(tmp_path / "." / "in.mkv")):
        with pytest.raises(RppgEditError, match="input") as excinfo:
            encode.write_video(target, other, 30.0, overwrite=True, inputs=[src])
        _assert_user_error(excinfo, target)
    assert _listing(tmp_path) == before
    assert open(src, "rb").read() == original
    np.testing.assert_array_equal(decode.read_video(src).frames, frames8)


def test_existing_output_needs_overwrite(tmp_path, frames8):
    for name in (".mkv", ".npy", "frames/"):
        path = _path(tmp_path, name)
        encode.write_video(path, frames8, 30.0)
        before = _listing(tmp_path)
        with pytest.raises(RppgEditError, match="overwrite") as excinfo:
            encode.write_video(path, frames8[::-1].copy(), 30.0)
        _assert_user_error(excinfo, path)
        assert _listing(tmp_path) == before
        np.testing.assert_array_equal(_read(path).frames, frames8)
        encode.write_video(path, frames8[:5][::-1].copy(), 30.0, overwrite=True)
        np.testing.assert_array_equal(_read(path).frames, frames8[:5][::-1])
        stale = [f"frames/{i:06d}.png" for i in range(5, T)] if name == "frames/" else []
        assert _listing(tmp_path) == [n for n in before if n not in stale]


def test_folder_with_foreign_files_is_never_replaced(tmp_path, frames8):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    with pytest.raises(RppgEditError, match="other than frame PNGs"):
        encode.write_video(folder, frames8, 30.0, overwrite=True)
    assert (folder / "thesis.tex").read_text() == "precious"
    assert _listing(tmp_path) == ["mine", "mine/thesis.tex"]


def test_unwritable_directory(tmp_path, frames8):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    before = _listing(tmp_path)
    for target in (blocker / "out.mkv", blocker / "frames/", tmp_path / "missing" / "out.npy"):
        with pytest.raises(RppgEditError, match="cannot write") as excinfo:
            encode.write_video(target, frames8, 30.0)
        _assert_user_error(excinfo, target)
    assert _listing(tmp_path) == before


def test_writer_cleans_up_after_failures(tmp_path, frames8):
    out = tmp_path / "out.mkv"
    with pytest.raises(KeyError):
        with encode.VideoWriter(out, 30.0, W, H) as writer:
            writer.write(frames8[:3])
            assert len(_listing(tmp_path)) == 1  # the hidden temporary
            raise KeyError("boom")
    assert _listing(tmp_path) == []
    with pytest.raises(RppgEditError, match="uint8") as excinfo:
        with encode.VideoWriter(out, 30.0, W, H) as writer:
            writer.write(frames8.astype(np.float32) / 255)
    _assert_user_error(excinfo, out)
    assert _listing(tmp_path) == []
    with pytest.raises(RppgEditError, match="ffmpeg") as excinfo:
        with encode.VideoWriter(out, 30.0, W, H) as writer:

            def disk_full(*_):
                raise OSError(28, "No space left on device")

            writer._output._encode = disk_full  # the encoder fails mid-stream
            for _ in range(50):
                writer.write(frames8)
    _assert_user_error(excinfo, out)
    assert _listing(tmp_path) == []
    with pytest.raises(RppgEditError, match="no frames"):
        with encode.VideoWriter(tmp_path / "empty.npy", 30.0, W, H):
            pass
    assert _listing(tmp_path) == []


def test_streaming_writer_matches_whole_writer(tmp_path, frames8):
    with encode.VideoWriter(tmp_path / "s.mkv", 30.0, W, H) as writer:
        for i in range(0, T, 5):
            writer.write(frames8[i : i + 5])
        writer.write(frames8[0])  # a single (H, W, 3) frame
    np.testing.assert_array_equal(
        decode.read_video(tmp_path / "s.mkv").frames, np.concatenate([frames8, frames8[:1]])
    )


def test_writer_copies_frames_unless_they_are_unchanging(tmp_path, frames8):
    """The encoder runs on its own thread: by default it encodes a private copy, so a caller may
    reuse its buffer at once; `unchanging=True` hands the array over without the copy."""
    buffer = frames8[:5].copy()
    with encode.VideoWriter(tmp_path / "copied.mkv", 30.0, W, H) as writer:
        writer.write(buffer)
        buffer[:] = 0  # before the encoder has read it, most likely
        writer.write(frames8[5:], unchanging=True)
    np.testing.assert_array_equal(decode.read_video(tmp_path / "copied.mkv").frames, frames8)


def test_real_clip_counts_and_rate():
    """UBFC subject 1 excerpt: 74 XviD frames, AVI time base 125/3658 s."""
    path = shared_file("ubfc_stmap", "vid.avi")
    info = probe.probe(path)
    video = decode.read_video(path)
    assert info.num_frames == video.frames.shape[0] == 74
    assert video.fps == pytest.approx(float(Fraction(3658, 125)), abs=1e-12)
    assert video.frames.shape[1:] == (480, 640, 3) and video.timestamps is None
    total = 0
    for start, chunk in decode.iter_chunks(path, 30, overlap=10):
        np.testing.assert_array_equal(chunk, video.frames[start : start + 30])
        total = start + len(chunk)
    assert total == 74
