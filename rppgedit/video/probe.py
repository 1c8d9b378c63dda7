"""What a video source holds, learned without decoding a frame.

A source is a container file ffmpeg reads, a folder of PNG frames or a ``.npy`` array.

* `probe` gives its `VideoInfo` (frame count, rate, size, pixel format). For a container
  (`probe_container`, in-process through PyAV) the stream's parameters give the header and its
  packets, demuxed without decoding, the frame count, time base and whether the frame rate is
  variable; packets an edit list discards are not counted as frames. Only the first frame is
  decoded, for its display rotation. Frame sizes are checked against the memory budget
  (`rppgedit.validate`) from the header before that, and the probing decoders refuse frames over
  it; a demuxer that logs an error (a damaged file) is refused.
* PNG folders (`scan_png_folder`) and ``.npy`` arrays (`open_npy`) carry no frame rate: pass
  ``fps=``; without it 30 fps (`DEFAULT_FPS`) is assumed and a `FrameRateAssumedWarning` is
  emitted (`assumed_fps`). Rates outside `MIN_FPS`-`MAX_FPS` are refused (`check_rate`).
* `check_input_path` refuses missing and empty files, devices, pipes and sockets.
* With PyAV (headers only): `stream_info` says what each stream of a file holds (codec, profile,
  colour tags, ...), `side_streams` lists the audio and subtitle streams an output can carry over
  (`rppgedit.video.encode`), and `is_faststart` says whether an MP4/MOV file's index comes first.

All refusals raise `RppgEditError` with a one-line message naming the file.
"""

import dataclasses
import fractions
import os
import re
import struct
import warnings

import av
import av.sidedata.sidedata
import numpy as np

from rppgedit import validate
from rppgedit.errors import path_error
from rppgedit.video import avlog, ffmpeg

DEFAULT_FPS = 30.0

# Frame rates a pulse can be read from (and edited into): the heart band reaches 4 Hz.
MIN_FPS, MAX_FPS = 8.0, 1000.0

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class FrameRateAssumedWarning(UserWarning):
    """A PNG folder or .npy file was read without ``fps=``; 30 fps was assumed."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns without decoding.

    Attributes:
      num_frames: number of video frames (packets of the first video stream, files of a folder,
        rows of an array).
      fps: frames per second (mean rate for variable-frame-rate files).
      width: frame width in pixels, after display rotation.
      height: frame height in pixels, after display rotation.
      variable_frame_rate: True when frame intervals differ by more than timestamp rounding.
      pixel_format: ffmpeg's name of the stored pixel format ("rgb24", "yuv420p", "gbrp16le"...).
    """

    num_frames: int
    fps: float
    width: int
    height: int
    variable_frame_rate: bool
    pixel_format: str = ""


# --------------------------------------------------------------------------------------------
# Checks every reader makes.


def check_input_path(path: str) -> None:
    """Refuses a missing or empty file, and anything but a regular file or a folder."""
    if not os.path.exists(path):
        raise path_error(path, "no such file or directory")
    if not (os.path.isfile(path) or os.path.isdir(path)):
        raise path_error(
            path, "not a regular file or folder (devices, pipes and sockets are refused)"
        )
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise path_error(path, "empty file")


_FPS_WARNED: set[str] = set()


def assumed_fps(path: str, fps: float | None) -> float:
    """`fps`, or the default rate with a warning given once per file and process (an edit reads
    its input several times)."""
    if fps is None:
        key = os.path.abspath(path)
        if key not in _FPS_WARNED:
            _FPS_WARNED.add(key)
            warnings.warn(
                f"{path}: PNG folders and .npy files store no frame rate; assuming "
                f"{DEFAULT_FPS:g} fps (to keep the real rate, give the clip as a video file, e.g. "
                ".mkv, written at that rate)",
                FrameRateAssumedWarning,
                stacklevel=3,
            )
        return DEFAULT_FPS
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return float(fps)


def refuse_fps(path: str, fps: float | None) -> None:
    """Refuses ``fps=`` for a container, which carries its own rate."""
    if fps is not None:
        raise ValueError(
            f"{path}: fps= applies to PNG folders and .npy files; a container has its own"
        )


def check_rate(path: str, fps: float) -> None:
    """Refuses a frame rate outside `MIN_FPS`-`MAX_FPS`."""
    if not MIN_FPS <= fps <= MAX_FPS:
        raise path_error(
            path,
            f"frame rate {fps:.3g} fps is outside {MIN_FPS:g}-{MAX_FPS:g} fps (a pulse of up to "
            "240 bpm needs at least 8 frames per second)",
        )


# --------------------------------------------------------------------------------------------
# Container files: header and packet list.


@dataclasses.dataclass(frozen=True)
class StreamHeader:
    """A video stream's frame size as displayed (after a quarter-turn rotation), pixel format and
    average frame rate (None when the container gives none)."""

    width: int
    height: int
    pix_fmt: str
    fps: float | None


def format_traits(pix_fmt: str) -> tuple[bool, int]:
    """(may carry alpha, bits per channel) of an FFmpeg pixel format."""
    try:
        fmt = av.VideoFormat(pix_fmt)
    except (ValueError, av.error.FFmpegError):
        return False, 8
    components = len(fmt.components)
    depth = max((c.bits for c in fmt.components), default=8)
    return components in (2, 4) or fmt.has_palette, depth


@dataclasses.dataclass(frozen=True)
class Container:
    path: str
    header: StreamHeader
    num_frames: int
    fps: float
    variable: bool
    # Presentation timestamps of the frames (sorted, in `time_base` units), when all are known.
    pts: np.ndarray | None = dataclasses.field(default=None, compare=False)
    time_base: fractions.Fraction | None = None


def _rate_candidates(header_fps: float | None) -> list[float]:
    """Exact rates that a header's rate may stand for when it was stored rounded (29.97 for
    30000/1001: NTSC rates first)."""
    if not header_fps:
        return []
    candidates = []
    whole = round(header_fps * 1.001)
    if abs(header_fps - round(header_fps)) > 1e-6 and abs(whole / 1.001 - header_fps) < 0.006:
        candidates.append(float(fractions.Fraction(whole * 1000, 1001)))
    candidates.append(header_fps)
    return candidates


def _frame_rate(
    pts: np.ndarray, time_base: fractions.Fraction, header_fps: float | None
) -> tuple[float | None, bool]:
    """Frame rate and variable-rate flag from presentation timestamps.

    Args:
      pts: (N,) int64 presentation timestamps in ``time_base`` units, any order.
      time_base: seconds per tick.
      header_fps: the stream's average rate from its header (possibly stored rounded), or None.

    Returns:
      (fps, variable): intervals all equal -> the exact rate 1 / (interval * time_base); intervals
      that differ only by timestamp rounding (at most one tick from the mean) -> constant rate,
      the header rate when it fits the measured span within one tick, else (N-1)/span; anything
      else -> variable rate with the mean rate (N-1)/span.
    """
    n = len(pts)
    p = np.sort(np.asarray(pts, dtype=np.int64))
    span = int(p[-1] - p[0]) if n else 0
    if n < 2 or span <= 0:
        return header_fps, False
    d = np.diff(p)
    if np.all(d == d[0]):
        return float(1 / (int(d[0]) * time_base)), False
    mean_rate = float((n - 1) / (span * time_base))
    if np.max(np.abs(d - span / (n - 1))) > 1.0 + 1e-9:
        return mean_rate, True
    for candidate in _rate_candidates(header_fps):
        if abs((n - 1) / candidate / float(time_base) - span) <= 1.0 + 1e-9:
            return candidate, False
    return mean_rate, False


def probe_container(path: str) -> Container:
    """Header and packet list of the first video stream, without decoding (remembered per file
    version: an edit opens its input several times)."""
    try:
        st = os.stat(path)
        version = (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError:
        return _probe_container_uncached(path)
    found = _PROBED.get(version)
    if found is None:
        found = _probe_container_uncached(path)
        if len(_PROBED) > 64:
            _PROBED.clear()
        _PROBED[version] = found
    return dataclasses.replace(found, path=path)


_PROBED: dict[tuple, Container] = {}


def _probe_container_uncached(path: str) -> Container:
    log_start = avlog.ERRORS.open()
    try:
        return _read_packets(path, log_start)
    finally:
        avlog.ERRORS.close(log_start)


def _refusal(path: str, problem: str) -> Exception:
    too_big = re.search(r"Picture size (\d+)x(\d+) (is invalid|exceeds)", problem)
    if too_big:  # a probing decoder refused a frame over the memory budget
        validate.check_frame_size(path, int(too_big.group(1)), int(too_big.group(2)))
        return path_error(path, f"frame size {too_big.group(1)}x{too_big.group(2)} is too large")
    if "not on whitelist" in problem:
        return path_error(
            path,
            "not a video container (playlists such as ffconcat, image patterns and network "
            "formats are refused as inputs)",
        )
    return path_error(path, f"not a readable video (ffmpeg: {problem})")


def _read_packets(path: str, log_start: int) -> Container:
    """Header from the stream's parameters; frame count and timestamps from its packets (those an
    edit list discards, and those before the first keyframe, which no decoder turns into frames,
    are not counted); the display rotation from the first decoded frame."""
    try:  # the probing decoders of `av.open` held to the memory budget too
        container = _av_open(path, ffmpeg.decoder_options())
    except _AV_OPEN_ERRORS as e:
        raise _refusal(path, avlog.ERRORS.first_since(log_start) or str(e)) from None
    with container:
        stream = video_stream(container, path)
        context = stream.codec_context
        problem = avlog.ERRORS.first_since(log_start)  # e.g. a frame over the memory budget
        if (context.width and context.height) or not problem:
            validate.check_frame_size(path, context.width, context.height)
        if problem:
            raise _refusal(path, problem)
        context.options = ffmpeg.decoder_options()
        time_base = stream.time_base
        pts, keyframe_seen, turns = [], False, None
        try:
            for packet in container.demux(stream):
                if packet.size == 0 and packet.pts is None and packet.dts is None:
                    frames = packet.decode() if turns is None else ()  # the end: flush
                elif packet.is_discard or not (keyframe_seen or packet.is_keyframe):
                    continue
                else:
                    keyframe_seen = True
                    pts.append(packet.pts)
                    frames = packet.decode() if turns is None else ()
                for frame in frames[:1]:
                    turns = orientation(path, frame)[0]
        except av.error.FFmpegError as e:
            raise _refusal(path, avlog.ERRORS.first_since(log_start) or str(e)) from None
        problem = avlog.ERRORS.first_since(log_start)
        if problem:
            raise _refusal(path, problem)
        width, height = context.width, context.height
        if turns is not None and turns % 2:
            width, height = height, width
        rate = stream.average_rate
        header = StreamHeader(width, height, context.pix_fmt or "", float(rate) if rate else None)
    if not pts:
        raise path_error(path, "contains zero video frames")
    known = time_base is not None and all(p is not None for p in pts)
    pts_array = np.sort(np.asarray(pts, dtype=np.int64)) if known else None
    if known:
        fps, variable = _frame_rate(pts_array, time_base, header.fps)
    else:
        fps, variable = header.fps, False
    if not fps or not np.isfinite(fps) or fps <= 0:
        raise path_error(path, "cannot determine the frame rate")
    return Container(
        path, header, len(pts), float(fps), variable, pts_array, time_base if known else None
    )


def video_stream(container, path):
    """The first video stream that is not cover art (ffmpeg's ``0:V:0``)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise path_error(path, "no video stream")


# Display matrices (the 2x2 part, rounded) -> (quarter turns counter-clockwise, mirrored first):
# the transform that makes a frame upright, the same pixels ffmpeg's autorotate gives (measured
# on every rotation and flip the command line can tag).
_ORIENTATIONS = {
    (1, 0, 0, 1): (0, False),
    (-1, 0, 0, 1): (0, True),
    (1, 0, 0, -1): (2, True),
    (-1, 0, 0, -1): (2, False),
    (0, -1, 1, 0): (1, False),
    (0, 1, 1, 0): (1, True),
    (0, 1, -1, 0): (3, False),
    (0, -1, -1, 0): (3, True),
}


def orientation(path, frame) -> tuple[int, bool]:
    """How to turn a decoded ``frame``'s pixels upright, from its display matrix:
    (quarter turns counter-clockwise, mirrored first)."""
    for item in frame.side_data:
        # PyAV up to 18.1.0 iterates over the side data, 18.1.1 over their types (a mapping).
        data = item if hasattr(item, "type") else frame.side_data[item]
        if data.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
            matrix = np.frombuffer(bytes(data), np.int32)[[0, 1, 3, 4]] / 65536.0
            key = tuple(int(v) for v in np.round(matrix))
            if key not in _ORIENTATIONS or np.abs(matrix - key).max() > 1e-3:
                raise path_error(
                    path, f"display rotation of {frame.rotation} degrees is not a quarter turn"
                )
            return _ORIENTATIONS[key]
    return 0, False


# --------------------------------------------------------------------------------------------
# PNG folders and .npy arrays.


@dataclasses.dataclass(frozen=True)
class PngFolder:
    path: str
    files: tuple[str, ...]
    width: int
    height: int
    bit_depth: int


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _png_header(file: str) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk (PNG spec, section 11.2.2)."""
    try:
        with open(file, "rb") as f:
            head = f.read(33)
    except OSError as e:
        raise path_error(file, f"cannot read ({e.strerror})") from None
    if len(head) == 0:
        raise path_error(file, "empty file")
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise path_error(file, "not a PNG file")
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    return width, height, depth, colour


def scan_png_folder(path: str) -> PngFolder:
    try:
        names = [n for n in os.listdir(path) if n.lower().endswith(".png")]
    except OSError as e:
        raise path_error(path, f"cannot list directory ({e.strerror})") from None
    names = [n for n in names if os.path.isfile(os.path.join(path, n))]
    if not names:
        raise path_error(path, "directory contains no PNG frames")
    files = tuple(os.path.join(path, n) for n in sorted(names, key=_natural_key))
    width, height, depth, _ = _png_header(files[0])
    validate.check_frame_size(files[0], width, height)
    for file in files[1:]:
        w, h, d, _ = _png_header(file)
        if (w, h) != (width, height):
            raise path_error(
                file, f"frame size {w}x{h} differs from {width}x{height} of {files[0]}"
            )
        if (d == 16) != (depth == 16):
            raise path_error(file, f"bit depth {d} differs from {depth} of {files[0]}")
    return PngFolder(path, files, width, height, 16 if depth == 16 else 8)


def open_npy(path: str) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise path_error(path, f"not a readable .npy array ({e})") from None
    if not isinstance(array, np.ndarray):
        raise path_error(path, "not a single .npy array")
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] != 3):
        raise path_error(path, f"array shape {array.shape} is not (T,H,W,3) or (T,H,W)")
    if array.dtype not in (np.uint8, np.uint16):
        raise path_error(path, f"array dtype {array.dtype} is not uint8 or uint16")
    if array.shape[0] == 0:
        raise path_error(path, "contains zero frames")
    validate.check_frame_size(path, array.shape[2], array.shape[1])
    return array


# --------------------------------------------------------------------------------------------
# Any source.


def probe(path, *, fps: float | None = None) -> VideoInfo:
    """Frame count, rate and size of a video file, PNG folder or .npy array, without decoding.

    Args:
      path: a container file ffmpeg reads, a folder of PNG frames, or a .npy (T,H,W,3) array.
      fps: frame rate of a PNG folder or .npy file (default 30, with a warning); not allowed for
        containers.

    Returns:
      VideoInfo. For containers, ``num_frames`` counts the packets of the first video stream,
      which equals the decoded frame count for intra and standard inter codecs (checked on the
      lossless formats written here and the H.264/MPEG-4 real clips).
    """
    path = os.fspath(path)
    check_input_path(path)
    if os.path.isdir(path):
        folder = scan_png_folder(path)
        rate = assumed_fps(path, fps)
        fmt = "rgb48be" if folder.bit_depth == 16 else "rgb24"
        return VideoInfo(len(folder.files), rate, folder.width, folder.height, False, fmt)
    if path.lower().endswith(".npy"):
        array = open_npy(path)
        rate = assumed_fps(path, fps)
        fmt = "rgb48le" if array.dtype == np.uint16 else "rgb24"
        return VideoInfo(array.shape[0], rate, array.shape[2], array.shape[1], False, fmt)
    refuse_fps(path, fps)
    c = probe_container(path)
    check_rate(path, c.fps)
    h = c.header
    return VideoInfo(c.num_frames, c.fps, h.width, h.height, c.variable, h.pix_fmt)


# --------------------------------------------------------------------------------------------
# Streams, read with PyAV (no frame is decoded).


_AV_OPEN_ERRORS = (av.error.FFmpegError, OSError, ValueError)


def _av_open(path: str, options=None):
    """`av.open` of a plain file with a video demuxer (`ffmpeg.av_options`) and ``options``."""
    return av.open(os.path.abspath(path), options={**ffmpeg.av_options(), **(options or {})})


def open_av(path: str):
    """A PyAV input container (a plain file with a video demuxer), or a one-line error."""
    try:
        return _av_open(path)
    except _AV_OPEN_ERRORS as e:
        raise path_error(path, f"cannot read its streams ({e})") from None


def codec_name(stream) -> str:
    """ffmpeg's canonical codec name of a PyAV stream ("mp3", not the decoder "mp3float")."""
    try:
        context = stream.codec_context
        codec = context.codec if context is not None else None
    except (av.error.FFmpegError, ValueError):
        codec = None
    if codec is not None:
        return codec.canonical_name
    return getattr(stream, "name", None) or "unknown"  # data streams: ffmpeg's codec id name


@dataclasses.dataclass(frozen=True)
class SideStream:
    """An audio or subtitle stream of a source file.

    Attributes:
      index: stream index in the file.
      type: "audio" or "subtitle".
      number: index among the file's streams of that type (the "#0" of the notes).
      codec: ffmpeg's codec name ("aac", "pcm_s16le", "subrip", "hdmv_pgs_subtitle", ...).
      channels: audio channels (0 for subtitles).
      text: a text subtitle format.
      bitmap: a bitmap subtitle format.
    """

    index: int
    type: str
    number: int
    codec: str
    channels: int = 0
    text: bool = False
    bitmap: bool = False


@dataclasses.dataclass(frozen=True)
class SideStreams:
    """The side streams of a file, and when its first video frame comes after the file start."""

    path: str
    streams: tuple[SideStream, ...]
    video_delay: float


def _subtitle_kind(stream) -> tuple[bool, bool]:
    """(text, bitmap) of a PyAV subtitle stream."""
    try:
        codec = stream.codec_context.codec
    except (AttributeError, av.error.FFmpegError, ValueError):
        return False, False
    return bool(codec.text_sub), bool(codec.bitmap_sub)


def _video_delay(container) -> float:
    """Seconds from the file's start (its earliest stream) to its first video frame."""
    attached = int(av.stream.Disposition.attached_pic)
    for stream in container.streams.video:
        if int(stream.disposition) & attached:
            continue
        if stream.start_time is None or container.start_time is None:
            return 0.0
        start = float(stream.start_time * stream.time_base)
        return max(0.0, start - container.start_time / 1_000_000)
    return 0.0


def side_streams(path: str) -> SideStreams:
    """The audio and subtitle streams of a container file, in file order."""
    check_input_path(path)
    if os.path.isdir(path):
        raise path_error(path, "is a directory, not a video file")
    with open_av(path) as container:
        streams, counts = [], {"audio": 0, "subtitle": 0}
        for stream in container.streams:
            if stream.type not in counts:
                continue
            number = counts[stream.type]
            counts[stream.type] += 1
            codec = codec_name(stream)
            if stream.type == "audio":
                channels = getattr(stream.codec_context, "channels", 0) or 0
                streams.append(SideStream(stream.index, "audio", number, codec, channels))
            else:
                text, bitmap = _subtitle_kind(stream)
                streams.append(
                    SideStream(stream.index, "subtitle", number, codec, text=text, bitmap=bitmap)
                )
        delay = _video_delay(container)
    return SideStreams(path, tuple(streams), delay)


# ffmpeg's names of the AVColorSpace, AVColorPrimaries, AVColorTransferCharacteristic and
# AVColorRange values (libavutil/pixfmt.h), which PyAV reports as integers.
_COLOR_SPACES = (
    "gbr bt709 unknown reserved fcc bt470bg smpte170m smpte240m ycgco bt2020nc bt2020c "
    "smpte2085 chroma-derived-nc chroma-derived-c ictcp ipt-c2 ycgco-re ycgco-ro"
).split()

_COLOR_PRIMARIES = {
    1: "bt709",
    2: "unknown",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "ebu3213",
}

_COLOR_TRCS = (
    "reserved bt709 unknown reserved bt470m bt470bg smpte170m smpte240m linear log100 log316 "
    "iec61966-2-4 bt1361e iec61966-2-1 bt2020-10 bt2020-12 smpte2084 smpte428 arib-std-b67"
).split()

_COLOR_RANGES = ("unknown", "tv", "pc")


def _enum_name(names, value) -> str:
    """The name of an ffmpeg colour enum value, or its number when it has none here."""
    value = int(value)
    if isinstance(names, dict):
        return names.get(value, str(value))
    return names[value] if 0 <= value < len(names) else str(value)


def _video_fields(context) -> dict:
    """Pixel format, profile, colour tags and size of a PyAV video codec context."""
    return {
        "pix_fmt": context.pix_fmt,
        "profile": context.profile,
        "color_space": _enum_name(_COLOR_SPACES, context.colorspace),
        "color_primaries": _enum_name(_COLOR_PRIMARIES, context.color_primaries),
        "color_trc": _enum_name(_COLOR_TRCS, context.color_trc),
        "color_range": _enum_name(_COLOR_RANGES, context.color_range),
        "width": context.width,
        "height": context.height,
    }


def stream_info(path) -> list[dict]:
    """What each stream of a container file holds, read with PyAV (no frame is decoded).

    Returns:
      One dict per stream in file order: ``index``, ``type`` ("video", "audio", "subtitle",
      "data", "attachment"), ``codec`` (ffmpeg's name: "h264", "aac", "mov_text", ...),
      ``metadata`` (the stream's tags); for video also ``pix_fmt``, ``profile`` ("High", "Main",
      or None), ``color_space``, ``color_primaries``, ``color_trc``, ``color_range`` (ffmpeg's
      names: "bt709", "tv", "unknown", ...), ``width``, ``height``; for audio ``sample_rate``
      and ``channels``.

    Raises:
      RppgEditError: missing, empty or unreadable file.
    """
    path = os.fspath(path)
    check_input_path(path)
    streams = []
    with open_av(path) as container:
        for stream in container.streams:
            info = {"index": stream.index, "type": stream.type, "codec": codec_name(stream)}
            info["metadata"] = dict(stream.metadata)
            context = stream.codec_context if stream.type in ("video", "audio") else None
            if stream.type == "video" and context is not None:
                info.update(_video_fields(context))
            elif stream.type == "audio" and context is not None:
                info.update(sample_rate=context.sample_rate, channels=context.channels)
            streams.append(info)
    return streams


def is_faststart(path) -> bool:
    """True when an MP4/MOV file's top-level ``moov`` box (the index) comes before ``mdat`` (the
    media), so a player can start before the whole file has arrived.

    Reads only the top-level box headers (ISO/IEC 14496-12, section 4.2): a 32-bit big-endian
    size and a 4-character type; size 1 means a 64-bit size follows, size 0 that the box runs to
    the end of the file.

    Raises:
      RppgEditError: missing or empty file, or one that is not a sequence of ISO boxes.
    """
    path = os.fspath(path)
    check_input_path(path)
    if os.path.isdir(path):
        raise path_error(path, "is a directory, not an MP4/MOV file")
    total = os.path.getsize(path)
    with open(path, "rb") as f:
        offset = 0
        while offset + 8 <= total:
            f.seek(offset)
            size, kind = struct.unpack(">I4s", f.read(8))
            header = 8
            if size == 1:
                if offset + 16 > total:
                    raise path_error(path, f"not an MP4/MOV file (cut box header at byte {offset})")
                (size,) = struct.unpack(">Q", f.read(8))
                header = 16
            elif size == 0:
                size = total - offset
            if not all(32 <= c < 127 for c in kind):
                raise path_error(path, f"not an MP4/MOV file (no box type at byte {offset})")
            if kind == b"moov":
                return True
            if kind == b"mdat":
                return False
            if size < header:
                raise path_error(
                    path, f"not an MP4/MOV file (bad box size {size} at byte {offset})"
                )
            offset += size
    if offset == 0:
        raise path_error(path, "not an MP4/MOV file")
    return False
