"""Tests for the sharing outputs of rppgedit.video.encode: the input's audio, subtitles and metadata
in the output, the h264/h265/vp9 codecs at a CRF, fast start, reproducible bytes and reencode."""

import hashlib
import os
import struct
import subprocess
import warnings

import av
import numpy as np
import pytest

from rppgedit.errors import RppgEditError
from rppgedit.video import decode, encode, ffmpeg, mux, probe

T, H, W, FPS = 60, 48, 64, 30.0  # 2 s of video
AUDIO_SECONDS = 2.5  # longer than the video: any -shortest would cut it
TITLE = "pulse clip"


def _ffmpeg(*args):
    subprocess.run([ffmpeg.exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _pcm(path, *, rate=None):
    """The first audio stream decoded to signed 16-bit PCM (resampled to mono ``rate`` if given)."""
    cmd = [ffmpeg.exe(), "-hide_banner", "-loglevel", "error", "-i", os.fspath(path)]
    cmd += ["-map", "0:a:0"] + (["-ac", "1", "-ar", str(rate)] if rate else [])
    return subprocess.run(cmd + ["-f", "s16le", "-"], capture_output=True, check=True).stdout


def _seconds(path):
    """Duration of the first audio stream, decoded (priming and padding removed by the decoder)."""
    return len(_pcm(path, rate=48000)) / 2 / 48000


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _title(path):
    with av.open(os.fspath(path)) as container:
        return container.metadata.get("title")


def _chapters(path):
    """(start s, end s, title) of every chapter."""
    with av.open(os.fspath(path)) as container:
        chapters = container.chapters()
    return [
        (
            float(c["start"] * c["time_base"]),
            float(c["end"] * c["time_base"]),
            c["metadata"]["title"],
        )
        for c in chapters
    ]


CHAPTERS = [(0.0, 1.0, "first"), (1.0, 2.0, "second")]


def _container(path):
    """'mp4' (ISO ftyp box first), 'webm' or 'matroska' (EBML header with that DocType)."""
    with open(path, "rb") as f:
        head = f.read(64)
    if head[4:8] == b"ftyp":
        return "mp4"
    assert head[:4] == b"\x1a\x45\xdf\xa3", head[:8]
    return "webm" if b"webm" in head else "matroska"


def _streams(path):
    """(type, codec) of every stream."""
    return [(s["type"], s["codec"]) for s in probe.stream_info(path)]


def _cues(path):
    """(start s, end s, text) of every non-empty cue of the first subtitle stream."""
    with av.open(os.fspath(path)) as container:
        stream = container.streams.subtitles[0]
        cues = []
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            for cue in stream.decode(packet):
                start = float(packet.pts * packet.time_base)
                end = start + float(packet.duration * packet.time_base)
                cues.append((round(start, 3), round(end, 3), cue.dialogue.decode()))
    return cues


CUES = [(0.2, 1.0, "hello"), (1.1, 1.8, "bye")]


def _assert_user_error(excinfo, path):
    message = str(excinfo.value)
    assert os.fspath(path) in message, message
    assert "\n" not in message


def _write(path, frames, **kw):
    """write_video with the lossy warning silenced (tested on its own)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", encode.LossyOutputWarning)
        return encode.write_video(path, frames, FPS, **kw)


def _writer_notes(path, frames, **kw):
    """Writes through VideoWriter and returns its stream notes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", encode.LossyOutputWarning)
        with encode.VideoWriter(path, FPS, W, H, **kw) as writer:
            writer.write(frames)
    return writer.stream_notes


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Inputs with audio 0.5 s longer than their 2 s of video, a text subtitle and a title."""
    folder = tmp_path_factory.mktemp("inputs")
    srt = folder / "subs.srt"
    srt.write_text(
        "1\n00:00:00,200 --> 00:00:01,000\nhello\n\n2\n00:00:01,100 --> 00:00:01,800\nbye\n"
    )
    video = ["-f", "lavfi", "-t", "2", "-i", f"testsrc2=size={W}x{H}:rate=30"]
    tone = ["-f", "lavfi", "-t", str(AUDIO_SECONDS), "-i", "sine=frequency=440:sample_rate=48000"]
    chapters = folder / "chapters.txt"
    chapters.write_text(
        ";FFMETADATA1\ntitle=ignored\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1000\n"
        "title=first\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=1000\nEND=2000\ntitle=second\n"
    )
    tag = ["-metadata", f"title={TITLE}"]
    paths = {name: folder / name for name in ("flac.mkv", "pcm.mkv", "aac.mp4", "late.mp4")}
    extra = ["-i", srt, "-i", chapters, "-map", "0", "-map", "1", "-map", "2"]
    extra += ["-map_chapters", "3", "-c:v", "ffv1", "-c:s", "srt", *tag]
    for name, audio in (("flac.mkv", "flac"), ("pcm.mkv", "pcm_s16le")):
        _ffmpeg(*video, *tone, *extra, "-c:a", audio, paths[name])
    _ffmpeg(*video, *tone, "-c:v", "libx264", "-c:a", "aac", *tag, paths["aac.mp4"])
    _ffmpeg("-itsoffset", "0.1", *video, *tone, "-c:v", "libx264", "-c:a", "aac", paths["late.mp4"])
    frames = np.random.default_rng(0).integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    return paths, frames


def test_inputs_are_what_the_tests_assume(media):
    paths, _ = media
    assert _streams(paths["flac.mkv"]) == [
        ("video", "ffv1"),
        ("audio", "flac"),
        ("subtitle", "subrip"),
    ]
    assert _streams(paths["aac.mp4"]) == [("video", "h264"), ("audio", "aac")]
    assert abs(_seconds(paths["pcm.mkv"]) - AUDIO_SECONDS) < 1e-3
    assert _chapters(paths["flac.mkv"]) == _chapters(paths["pcm.mkv"]) == CHAPTERS
    assert not probe.is_faststart(paths["aac.mp4"])  # ffmpeg's default: mdat, then moov


@pytest.mark.parametrize("source", ["flac.mkv", "pcm.mkv"])
def test_mkv_copies_audio_and_subtitles_and_keeps_the_video_lossless(tmp_path, media, source):
    paths, frames = media
    out = tmp_path / "out.mkv"
    notes = _writer_notes(out, frames, streams_from=paths[source])
    codec = source.split(".")[0].replace("pcm", "pcm_s16le")
    assert notes == [f"audio #0 {codec}: copied", "subtitle #0 subrip: copied"]
    assert _pcm(out) == _pcm(paths[source])  # copied, and neither cut to the video nor padded
    assert _streams(out) == [("video", "ffv1"), ("audio", codec), ("subtitle", "subrip")]
    assert _title(out) == TITLE
    assert _chapters(out) == CHAPTERS
    np.testing.assert_array_equal(decode.read_video(out).frames, frames)


def test_mp4_h264_copies_aac_with_share_settings(tmp_path, media):
    paths, frames = media
    out = tmp_path / "share.mp4"
    notes = _writer_notes(out, frames, codec="h264", streams_from=paths["aac.mp4"])
    assert notes == ["audio #0 aac: copied"]
    assert _pcm(out) == _pcm(paths["aac.mp4"])
    video, audio = probe.stream_info(out)
    assert (video["codec"], video["pix_fmt"], video["profile"]) == ("h264", "yuv420p", "High")
    tags = [video[k] for k in ("color_space", "color_primaries", "color_trc", "color_range")]
    assert tags == ["bt709", "bt709", "bt709", "tv"]
    assert (audio["type"], audio["codec"], audio["sample_rate"]) == ("audio", "aac", 48000)
    assert _title(out) == TITLE
    assert probe.is_faststart(out)
    assert probe.probe(out).num_frames == T


def test_mp4_reencodes_pcm_to_aac_and_text_subtitles_to_mov_text(tmp_path, media):
    paths, frames = media
    out = tmp_path / "share.mp4"
    notes = _writer_notes(out, frames, codec="h264", streams_from=paths["pcm.mkv"])
    assert notes == [
        "audio #0 pcm_s16le: re-encoded to aac (mp4 cannot hold pcm_s16le)",
        "subtitle #0 subrip: converted to mov_text",
    ]
    # MP4 keeps chapters in a QuickTime text track, listed as a data stream.
    assert _streams(out) == [
        ("video", "h264"),
        ("audio", "aac"),
        ("subtitle", "mov_text"),
        ("data", "bin_data"),
    ]
    assert _cues(out) == _cues(paths["pcm.mkv"]) == CUES
    assert abs(_seconds(out) - AUDIO_SECONDS) < 0.05
    assert _title(out) == TITLE
    assert _chapters(out) == CHAPTERS


def test_webm_vp9_reencodes_audio_to_opus_and_subtitles_to_webvtt(tmp_path, media):
    paths, frames = media
    out = tmp_path / "share.webm"
    notes = _writer_notes(out, frames, codec="vp9", streams_from=paths["flac.mkv"])
    assert notes == [
        "audio #0 flac: re-encoded to opus (webm cannot hold flac)",
        "subtitle #0 subrip: converted to webvtt",
    ]
    assert _streams(out) == [("video", "vp9"), ("audio", "opus"), ("subtitle", "webvtt")]
    assert abs(_seconds(out) - AUDIO_SECONDS) < 0.05
    assert _cues(out) == CUES
    assert _container(out) == "webm"  # the EBML DocType: a WebM file, not generic Matroska
    assert len(decode.read_video(out).frames) == T


def test_audio_is_resampled_to_a_rate_the_encoder_takes_and_avi_gets_mp3(tmp_path, media):
    """An 11025 Hz track into WebM: libopus takes 8-48 kHz at fixed steps (and refuses 11025), so
    it is resampled to the nearest (12000 Hz), with its length kept; AAC into AVI is re-encoded to
    MP3 (or PCM)."""
    paths, frames = media
    source = tmp_path / "low.mkv"
    tone = ["-f", "lavfi", "-t", str(AUDIO_SECONDS), "-i", "sine=frequency=440:sample_rate=11025"]
    video = ["-f", "lavfi", "-t", "2", "-i", f"testsrc2=size={W}x{H}:rate=30"]
    _ffmpeg(*video, *tone, "-c:v", "ffv1", "-c:a", "pcm_s16le", source)
    out = tmp_path / "low.webm"
    notes = _writer_notes(out, frames, codec="vp9", streams_from=source)
    assert notes == ["audio #0 pcm_s16le: re-encoded to opus (webm cannot hold pcm_s16le)"]
    assert _streams(out) == [("video", "vp9"), ("audio", "opus")]
    assert abs(_seconds(out) - AUDIO_SECONDS) < 0.05
    avi = tmp_path / "a.avi"
    notes = _writer_notes(avi, frames, streams_from=paths["aac.mp4"])
    lame = "mp3" if ffmpeg.has_encoder("libmp3lame") else "pcm_s16le"
    assert notes == [f"audio #0 aac: re-encoded to {lame} (avi cannot hold aac)"]
    assert _streams(avi) == [("video", "ffv1"), ("audio", lame)]
    assert abs(_seconds(avi) - AUDIO_SECONDS) < 0.06
    np.testing.assert_array_equal(decode.read_video(avi).frames, frames)


@pytest.mark.parametrize(
    ("name", "codec", "stored"),
    [("a.mp4", "h265", "hevc"), ("a.mkv", "h265", "hevc"), ("a.webm", "vp9", "vp9")],
)
def test_h265_and_vp9_outputs_decode_every_frame(tmp_path, media, name, codec, stored):
    _, frames = media
    out = _write(tmp_path / name, frames, codec=codec)
    assert _streams(out) == [("video", stored)]
    assert _container(out) == {"a.mp4": "mp4", "a.mkv": "matroska", "a.webm": "webm"}[name]
    with av.open(out) as container:
        tag = container.streams.video[0].codec_tag
    if name.endswith(".mp4"):
        assert tag == "hvc1"  # Apple players refuse hev1
        assert probe.is_faststart(out)
    decoded = decode.read_video(out).frames
    assert decoded.shape == frames.shape


@pytest.mark.parametrize(("codec", "ext"), [("h264", ".mp4"), ("h265", ".mov"), ("vp9", ".webm")])
def test_colour_matrix_matches_the_tags(tmp_path, codec, ext):
    """A flat saturated colour comes back within 3 levels only when the matrix used to encode
    is the one tagged (BT.601 decoding of BT.709 data is off by about 10 levels)."""
    frames = np.empty((4, H, W, 3), np.uint8)
    frames[...] = (200, 30, 40)
    decoded = decode.read_video(_write(tmp_path / f"flat{ext}", frames, codec=codec, crf=10)).frames
    assert np.abs(decoded.astype(int) - frames).max() <= 3


def test_video_starts_as_late_as_in_the_input(tmp_path, media):
    """The input's video starts 0.1 s after its audio; so does the output's, keeping sync."""
    paths, frames = media
    out = tmp_path / "late.mp4"
    _writer_notes(out, frames, streams_from=paths["late.mp4"])
    with av.open(out) as container:
        starts = {s.type: float(s.start_time * s.time_base) for s in container.streams}
    assert abs(starts["video"] - 0.1) < 0.002
    assert abs(starts["audio"]) < 0.002
    assert _pcm(out) == _pcm(paths["late.mp4"])


@pytest.mark.parametrize(("name", "holder"), [("frames/", "a PNG folder"), ("a.npy", "a .npy")])
def test_png_and_npy_outputs_ignore_streams_from(tmp_path, media, name, holder):
    paths, frames = media
    notes = _writer_notes(str(tmp_path / name), frames, streams_from=paths["flac.mkv"])
    assert notes == [f"audio not written: {holder} output holds no audio"]
    if name.endswith("/"):
        assert sorted(os.listdir(tmp_path / name)) == [f"{i:06d}.png" for i in range(T)]


def _side(type_, codec, number=0, **kw):
    return probe.SideStream(index=number + 1, type=type_, number=number, codec=codec, **kw)


def test_plan_drops_bitmap_subtitles_and_picks_audio_per_container():
    pgs = _side("subtitle", "hdmv_pgs_subtitle", bitmap=True)
    plan = encode._plan_side_streams([_side("audio", "pcm_s16le"), pgs], ".mp4", "x.mp4")
    assert plan.notes == (
        "audio #0 pcm_s16le: re-encoded to aac (mp4 cannot hold pcm_s16le)",
        "subtitle #0 hdmv_pgs_subtitle: dropped (mp4 cannot hold bitmap subtitles)",
    )
    assert plan.actions == (mux.SideAction(1, "audio", "aac", 192_000),)  # pgs not kept
    mkv = encode._plan_side_streams([pgs, _side("subtitle", "mov_text", 1, text=True)], ".mkv", "x")
    assert mkv.notes == (
        "subtitle #0 hdmv_pgs_subtitle: copied",
        "subtitle #1 mov_text: converted to subrip (mkv cannot hold mov_text)",
    )
    avi = encode._plan_side_streams(
        [
            _side("audio", "pcm_s24le"),
            _side("audio", "aac", 1),
            _side("subtitle", "ass", text=True),
        ],
        ".avi",
        "x.avi",
    )
    lame = "mp3" if ffmpeg.has_encoder("libmp3lame") else "pcm_s16le"
    assert avi.notes == (
        "audio #0 pcm_s24le: copied",
        f"audio #1 aac: re-encoded to {lame} (avi cannot hold aac)",
        "subtitle #0 ass: dropped (avi cannot hold subtitles)",
    )
    webm = encode._plan_side_streams(
        [_side("audio", "opus"), _side("audio", "ac3", 1)], ".webm", ""
    )
    assert webm.notes == (
        "audio #0 opus: copied",
        "audio #1 ac3: re-encoded to opus (webm cannot hold ac3)",
    )
    assert not encode._plan_side_streams([], ".mp4", "x.mp4").notes  # no audio, no notes


def test_is_faststart_reads_top_level_boxes(tmp_path):
    def box(kind, payload=b"", large=False):
        if large:
            return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
        return struct.pack(">I4s", 8 + len(payload), kind) + payload

    ftyp = box(b"ftyp", b"isom\0\0\0\0")
    cases = {
        "moov_first.mp4": (
            ftyp + box(b"free", b"x" * 9, large=True) + box(b"moov") + box(b"mdat"),
            True,
        ),
        "mdat_first.mp4": (ftyp + box(b"mdat", b"\0" * 20, large=True) + box(b"moov"), False),
        "no_moov.mp4": (ftyp + box(b"mdat", b"\0" * 4), False),
    }
    for name, (data, expected) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert probe.is_faststart(tmp_path / name) is expected, name
    (tmp_path / "junk.mp4").write_bytes(b"\x1aE\xdf\xa3" + b"\0" * 20)
    with pytest.raises(RppgEditError) as excinfo:
        probe.is_faststart(tmp_path / "junk.mp4")
    _assert_user_error(excinfo, tmp_path / "junk.mp4")


@pytest.mark.parametrize(
    ("name", "kw", "text"),
    [
        ("a.mp4", {"codec": "h264", "crf": 52}, "out of range"),
        ("a.mkv", {"codec": "h265", "crf": -1}, "out of range"),
        ("a.webm", {"codec": "vp9", "crf": 64}, "out of range"),
        ("a.mp4", {"codec": "h264", "crf": 23.5}, "integer"),
        ("a.mkv", {"crf": 20}, "crf applies to the lossy codecs"),
        ("a.mp4", {"codec": "vp9"}, "cannot be written to .mp4"),
        ("a.webm", {"codec": "h264"}, "cannot be written to .webm"),
    ],
)
def test_bad_crf_or_container_refused_leaving_nothing(tmp_path, media, name, kw, text):
    _, frames = media
    out = tmp_path / name
    with pytest.raises(RppgEditError, match=text) as excinfo:
        encode.write_video(out, frames, FPS, **kw)
    _assert_user_error(excinfo, out)
    assert os.listdir(tmp_path) == []


def test_vp9_accepts_crf_63_that_x264_refuses(tmp_path, media):
    _, frames = media
    out = _write(tmp_path / "a.webm", frames[:4], codec="vp9", crf=63)
    assert probe.probe(out).num_frames == 4


def test_lossy_needs_no_permission_and_warns_with_the_measurement(tmp_path, media):
    _, frames = media
    expected = {"h264": 23, "h265": 28, "vp9": 32}
    for codec, crf in expected.items():
        out = tmp_path / f"{codec}.{'webm' if codec == 'vp9' else 'mp4'}"
        with pytest.warns(encode.LossyOutputWarning) as record:
            writer = encode.VideoWriter(out, FPS, W, H, codec=codec)
        writer.write(frames[:4])
        writer.close()
        assert (writer.codec, writer.crf) == (codec, crf)
        assert str(record[0].message) == (
            f"{out}: lossy {codec} at CRF {crf}: on a real clip, estimators still read an edit to "
            "60-120 bpm after x264 CRF 23 (18-19 of 20 readers) and fewer at higher CRF; the "
            "report reads the decoded output"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # lossless outputs do not warn
        encode.write_video(tmp_path / "ok.mkv", frames[:4], FPS)


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("a.mkv", {}),
        ("a.mp4", {}),
        ("b.mkv", {"streams_from": "flac.mkv"}),
        ("b.mp4", {"streams_from": "pcm.mkv"}),  # audio encoded to AAC too
    ],
)
def test_same_frames_give_the_same_bytes(tmp_path, media, name, kw):
    """The lossless codecs (the sharing codecs' threaded encoders are not held to it, `encode`:
    libx264 at the medium preset made different bitstreams of the same frames, once in CI)."""
    paths, frames = media
    if "streams_from" in kw:
        kw = {**kw, "streams_from": paths[kw["streams_from"]]}
    digests = []
    for attempt in ("one", "two"):
        (tmp_path / attempt).mkdir()
        digests.append(_sha256(_write(tmp_path / attempt / name, frames, **kw)))
    assert digests[0] == digests[1]


def test_lossless_mov_round_trip_is_bit_exact(tmp_path, media):
    _, frames = media
    out = encode.write_video(tmp_path / "a.mov", frames, FPS)
    np.testing.assert_array_equal(decode.read_video(out).frames, frames)
    assert probe.is_faststart(out)


def test_reencode_keeps_audio_and_every_frame(tmp_path, media):
    paths, frames = media
    first = tmp_path / "first.mp4"
    _writer_notes(first, frames, codec="h264", crf=23, streams_from=paths["aac.mp4"])
    second = encode.reencode(first, tmp_path / "second.mp4", crf=28)
    assert _pcm(second) == _pcm(paths["aac.mp4"])  # copied through both encodes
    video = probe.stream_info(second)[0]
    assert (video["codec"], video["profile"], video["color_primaries"]) == ("h264", "High", "bt709")
    assert probe.is_faststart(second)
    assert _title(second) == TITLE
    once, twice = decode.read_video(first).frames, decode.read_video(second).frames
    assert twice.shape == frames.shape
    assert 0 < np.mean((once.astype(float) - twice) ** 2)  # really encoded again
    webm = encode.reencode(paths["pcm.mkv"], tmp_path / "second.webm", codec="vp9", crf=None)
    assert _streams(webm) == [("video", "vp9"), ("audio", "opus"), ("subtitle", "webvtt")]
    assert abs(_seconds(webm) - AUDIO_SECONDS) < 0.05
    assert probe.probe(webm).num_frames == T


def test_reencode_refuses_its_source_and_leaves_it_unchanged(tmp_path, media):
    paths, frames = media
    src = _write(tmp_path / "src.mp4", frames[:8], codec="h264")
    before = _sha256(src)
    for kw in ({}, {"overwrite": True}):
        with pytest.raises(RppgEditError, match="input") as excinfo:
            encode.reencode(src, src, **kw)
        _assert_user_error(excinfo, src)
    with pytest.raises(RppgEditError, match="out of range") as excinfo:
        encode.reencode(src, tmp_path / "x.mp4", crf=99)
    _assert_user_error(excinfo, tmp_path / "x.mp4")
    assert _sha256(src) == before
    assert sorted(os.listdir(tmp_path)) == ["src.mp4"]


def test_streams_from_must_not_be_the_output(tmp_path, media):
    paths, frames = media
    src = tmp_path / "in.mkv"
    src.write_bytes(paths["flac.mkv"].read_bytes())
    before = _sha256(src)
    with pytest.raises(RppgEditError, match="input") as excinfo:
        encode.VideoWriter(src, FPS, W, H, streams_from=src, overwrite=True)
    _assert_user_error(excinfo, src)
    assert _sha256(src) == before


def test_source_without_audio_gives_no_notes_and_a_missing_one_is_refused(tmp_path, media):
    _, frames = media
    silent = encode.write_video(tmp_path / "silent.mkv", frames[:4], FPS)
    out = tmp_path / "out.mp4"
    assert _writer_notes(out, frames[:4], codec="h264", streams_from=silent) == []
    assert _streams(out) == [("video", "h264")]
    missing = tmp_path / "missing.mkv"
    with pytest.raises(RppgEditError, match="no such file") as excinfo:
        encode.VideoWriter(tmp_path / "x.mkv", FPS, W, H, streams_from=missing)
    _assert_user_error(excinfo, missing)
    assert sorted(os.listdir(tmp_path)) == ["out.mp4", "silent.mkv"]
