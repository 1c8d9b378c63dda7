"""Video reading and writing at the file boundary (uint8 or uint16 RGB frames).

Everything that decodes or encodes goes through the ffmpeg binary shipped with imageio-ffmpeg,
driven through subprocess pipes with raw ``rgb24`` (8-bit) or ``rgb48le`` (16-bit) frames, so no
frame is resampled, re-timed, dropped or duplicated on the way; PyAV (``av``) only probes stream
headers (`stream_info`, the side streams copied by `VideoWriter`):

* decoding uses ``-fps_mode passthrough`` and reads the exact pts of every decoded frame from
  ffmpeg's own ``-stats_enc_pre`` report; the container's packet list (``-c copy -f framecrc``)
  gives the frame count, time base and whether the frame rate is variable;
* encoding is lossless by default: FFV1 (Niedermayer, RFC 9043) in ``.mkv``/``.avi``, H.264 in
  RGB with ``-qp 0`` (libx264rgb) in ``.mp4``/``.mov``, a ``%06d.png`` folder, or a ``.npy``
  array;
* the sharing codecs are written when asked by name (``.webm`` holds only vp9): "h264"
  (libx264, High profile), "h265" (libx265, tagged ``hvc1`` in MP4/MOV) and "vp9"
  (libvpx-vp9, constant quality), all yuv420p with BT.709 matrix, primaries, transfer and
  limited range tagged, at a CRF (defaults 23, 28, 32); MP4/MOV get ``+faststart`` (the ``moov``
  index first, see `is_faststart`). They warn (`LossyOutputWarning`) with what was measured:
  estimators still read an edit after x264 CRF 23, fewer after higher CRF;
* ``streams_from=`` (the edit's input) brings the input's audio, subtitles, global metadata and
  chapters into a container output. Audio is stream-copied (bit-exact, never cut or padded:
  the video starts where the input's video starts, no ``-shortest``) when the container can hold
  its codec, else re-encoded (AAC 192k in MP4/MOV, Opus 128k in WebM, MP3 or PCM in AVI);
  text subtitles are converted to the container's text format and bitmap ones dropped where
  the container cannot hold them. `VideoWriter.stream_notes` says what happened to each stream;
* encodes are reproducible: ``+bitexact`` muxing and coding, so the same frames (and side
  streams) give the same file bytes;
* `reencode` decodes a file and encodes it again as a sharing platform would (same lossy
  settings, audio copied where possible), to measure what survives a second compression;
* writes follow `rppgedit.safe_write`: a temporary file (or folder) in the destination directory,
  created with O_EXCL, is filled, checked (frame count) and renamed over the destination with
  `os.replace`; on any failure or signal it is removed and nothing is left behind. An input of the
  run (after links) is never overwritten;
* inputs are opened as plain files (ffmpeg's ``file`` protocol only) with a video demuxer
  (`_INPUT_FORMATS`: no concat/ffconcat playlists, image patterns or HLS), so an input never pulls
  in other files; frame sizes are checked against the memory budget (`rppgedit.validate`) from
  the header, before decoding, and the decoders refuse larger frames (``-max_pixels``); packets an
  edit list discards are not counted as frames.

Policies (all refusals raise `RppgEditError` with a one-line message naming the file):

* grayscale sources are returned as RGB (R = G = B);
* sources with an alpha channel (RGBA PNGs, ``yuva``/``rgba`` videos) are accepted only when
  every pixel is fully opaque (alpha dropped); any transparency is refused, since there is no
  right background to composite onto;
* sources with more than 8 bits per channel are refused unless ``allow_16bit=True``, in which case
  frames are returned as uint16 spanning 0..65535 (ffmpeg's ``rgb48le``); reading them as 8-bit
  would silently discard the precision an edit may need;
* decoding that logs an ffmpeg error (truncated or corrupt file) is refused, because frames would
  be missing or damaged;
* display-rotation metadata is applied (ffmpeg's autorotate), so frames come out upright and are
  written without rotation metadata;
* PNG folders and ``.npy`` files carry no frame rate: pass ``fps=``; without it 30 fps is assumed
  and a `FrameRateAssumedWarning` is emitted.
"""

import dataclasses
import fractions
import functools
import math
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Iterable, Iterator

import av
import imageio_ffmpeg
import numpy as np

from rppgedit import safe_write, validate
from rppgedit.errors import RppgEditError

DEFAULT_FPS = 30.0
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FRAME_NAME = re.compile(r"^\d{6,}\.png$")
_NOPTS = -(2**63)
_NPY_HEADER_BYTES = 128
_CONTAINER_FORMATS = {
    ".mkv": "matroska",
    ".mp4": "mp4",
    ".avi": "avi",
    ".mov": "mov",
    ".webm": "webm",
}
_DEFAULT_CODEC = {
    ".mkv": "ffv1",
    ".avi": "ffv1",
    ".mp4": "libx264rgb",
    ".mov": "libx264rgb",
    ".webm": "vp9",
}
_CODEC_CONTAINERS = {
    "ffv1": (".mkv", ".avi"),
    "libx264rgb": (".mp4", ".mkv", ".mov"),
    "h264": (".mp4", ".mkv", ".mov"),
    "h265": (".mp4", ".mkv", ".mov"),
    "vp9": (".webm", ".mkv"),
}


@dataclasses.dataclass(frozen=True)
class _LossyCodec:
    """A sharing codec: ffmpeg encoder, default CRF and the largest valid CRF."""

    encoder: str
    default_crf: int
    max_crf: int


_LOSSY_CODECS = {
    "h264": _LossyCodec("libx264", 23, 51),
    "h265": _LossyCodec("libx265", 28, 51),
    "vp9": _LossyCodec("libvpx-vp9", 32, 63),
}
_LOSSY_WARNING = (
    "{path}: lossy {codec} at CRF {crf}: on a real clip, estimators still read an edit to "
    "60-120 bpm after x264 CRF 23 (18-19 of 20 readers) and fewer at higher CRF; the report "
    "reads the decoded output"
)
# Audio codecs (ffmpeg descriptor names) each container holds as they are; .mkv holds all.
_AUDIO_HELD = {
    ".mp4": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}),
    ".mov": frozenset({"aac", "mp3", "ac3", "eac3", "alac"}),  # ffmpeg's mov: no opus/flac
    ".webm": frozenset({"opus", "vorbis"}),
    ".avi": frozenset({"mp3", "ac3"}),
}
# Containers that also hold any PCM audio stream as it is.
_PCM_HELD = (".mov", ".avi")
# Text subtitle format each container holds (None: no subtitles); .mkv holds all but mov_text.
_SUBTITLE_TEXT_FORMAT = {".mp4": "mov_text", ".mov": "mov_text", ".webm": "webvtt", ".avi": None}


class LossyOutputWarning(UserWarning):
    """A lossy (sharing) codec was requested: compression weakens the edited pulse."""


class FrameRateAssumedWarning(UserWarning):
    """A PNG folder or .npy file was read without ``fps=``; 30 fps was assumed."""


@dataclasses.dataclass(frozen=True, eq=False)
class Video:
    """Decoded frames and their timing.

    Attributes:
      frames: (T, H, W, 3) uint8 RGB, or uint16 (0..65535) for high-bit-depth sources read with
        ``allow_16bit=True``.
      fps: frames per second (for variable-frame-rate files the mean rate, (T-1)/duration).
      timestamps: (T,) float64 seconds since the first frame, only for variable-frame-rate
        containers; None when frame i is at i / fps.
      path: the file or folder the frames came from, or None.
    """

    frames: np.ndarray
    fps: float
    timestamps: np.ndarray | None = None
    path: str | None = None


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
# Small helpers.


def _error(path, problem: str) -> RppgEditError:
    """A one-line user error naming ``path``."""
    text = " ".join(f"{os.fspath(path)}: {problem}".split())
    return RppgEditError(text)


@functools.cache
def _ffmpeg() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def _pixel_formats() -> dict[str, tuple[int, int, bool]]:
    """ffmpeg pixel formats: name -> (number of components, max bits per component, paletted)."""
    out = subprocess.run(
        [_ffmpeg(), "-hide_banner", "-pix_fmts"], capture_output=True, text=True, check=True
    ).stdout
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 5 or len(parts[0]) != 5 or not parts[2].isdigit():
            continue
        depths = [int(d) for d in parts[4].split("-") if d.isdigit()]
        table[parts[1]] = (int(parts[2]), max(depths, default=8), parts[0][3] == "P")
    return table


def _format_traits(pix_fmt: str) -> tuple[bool, int]:
    """(may carry alpha, bits per channel) of an ffmpeg pixel format."""
    components, depth, paletted = _pixel_formats().get(pix_fmt, (3, 8, False))
    return components in (2, 4) or paletted, depth


_LOG_PREFIX = re.compile(r"^(\[[^\]]*\]\s*)+")
_LEVELS = ("panic", "fatal", "error", "warning", "info", "verbose", "debug")


def _log_lines(stderr: str) -> list[tuple[str, str]]:
    """(level, message) for each line of ffmpeg output run with ``-loglevel level+...``."""
    lines = []
    for raw in stderr.splitlines():
        prefix = _LOG_PREFIX.match(raw)
        tags = re.findall(r"\[([^\]]*)\]", prefix.group(0)) if prefix else []
        level = next((t for t in tags if t in _LEVELS), "")
        lines.append((level, raw[prefix.end() :] if prefix else raw))
    return lines


def _ffmpeg_error(stderr: str) -> str | None:
    """The first error message ffmpeg logged, or None."""
    for level, message in _log_lines(stderr):
        if level in ("error", "fatal", "panic") and message.strip():
            return message.strip()
    return None


def _split_top(text: str) -> list[str]:
    """Split on ", " outside parentheses and brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


@dataclasses.dataclass(frozen=True)
class _StreamHeader:
    width: int
    height: int
    pix_fmt: str
    fps: float | None


def _parse_header(stderr: str) -> _StreamHeader | None:
    """The first non-cover-art video stream of input #0, from ffmpeg's stream dump."""
    messages = [m for _, m in _log_lines(stderr)]
    try:
        start = next(i for i, m in enumerate(messages) if m.startswith("Input #0"))
    except StopIteration:
        return None
    for i in range(start + 1, len(messages)):
        line = messages[i].strip()
        if line.startswith(("Output #", "Stream mapping")):
            return None
        match = re.match(r"Stream #0:\d+\S*: Video: (.*)$", line)
        if not match or "(attached pic)" in line:
            continue
        fields = _split_top(match.group(1))
        at = next((k for k, f in enumerate(fields) if k and re.match(r"\d+x\d+", f)), None)
        if at is None:
            return None
        pix_fmt = re.sub(r"\(.*\)$", "", fields[at - 1]).strip() if at >= 2 else ""
        size = re.match(r"(\d+)x(\d+)", fields[at])
        width, height = int(size.group(1)), int(size.group(2))
        fps = None
        for field in fields:
            rate = re.fullmatch(r"([\d.]+)(k?) fps", field)
            if rate:
                fps = float(rate.group(1)) * (1000.0 if rate.group(2) else 1.0)
        for side in messages[i + 1 :]:
            side = side.strip()
            if side.startswith(("Stream #", "Output #", "Stream mapping", "Input #")):
                break
            rotation = re.search(r"rotation of (-?[\d.]+) degrees", side)
            if rotation and round(float(rotation.group(1))) % 180 == 90:
                width, height = height, width
        return _StreamHeader(width, height, pix_fmt, fps if fps and fps > 0 else None)
    return None


def _rate_candidates(header_fps: float | None) -> list[float]:
    """Exact rates that ffmpeg's rounded header value may stand for (NTSC rates first)."""
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
      header_fps: the rate ffmpeg printed for the stream (rounded to 2 decimals), or None.

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


def _widen_pipe(stream) -> None:
    """Ask Linux for a 1 MiB pipe buffer (3x faster transfers than the 64 KiB default)."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError):
        pass


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


# --------------------------------------------------------------------------------------------
# Sources: container files, PNG folders, .npy arrays.


@dataclasses.dataclass(frozen=True)
class _Container:
    path: str
    header: _StreamHeader
    num_frames: int
    fps: float
    variable: bool
    # Presentation timestamps of the frames (sorted, in `time_base` units), when all are known.
    pts: np.ndarray | None = dataclasses.field(default=None, compare=False)
    time_base: fractions.Fraction | None = None


# Demuxers an input may be read with: video containers and elementary video streams. Playlists
# (concat/ffconcat, HLS, DASH), image patterns (image2) and network or device formats are refused,
# so an input never pulls in other files, and only the file protocol is allowed.
_INPUT_FORMATS = (
    "matroska,webm,mov,mp4,m4a,3gp,3g2,mj2,avi,mpegts,mpeg,mpegvideo,flv,live_flv,ogg,asf,nut,"
    "ivf,yuv4mpegpipe,h264,hevc,m4v,mjpeg,gif,apng,dv,mxf,obu,av1,rm,wtv,nuv,smjpeg,webp_anim"
)


def _input_args(path: str) -> list[str]:
    """ffmpeg options that open ``path`` as a plain file with a video demuxer, never as stdin, a
    device, a network URL or a playlist, and whose decoders refuse frames over the memory budget."""
    args = ["-protocol_whitelist", "file", "-format_whitelist", _INPUT_FORMATS]
    args += ["-max_pixels", str(validate.max_pixels())]
    return args + ["-i", "file:" + os.path.abspath(path)]


def _av_options() -> dict[str, str]:
    """The same restrictions for PyAV's `av.open`."""
    return {"protocol_whitelist": "file", "format_whitelist": _INPUT_FORMATS}


def _check_input_path(path: str) -> None:
    if not os.path.exists(path):
        raise _error(path, "no such file or directory")
    if not (os.path.isfile(path) or os.path.isdir(path)):
        raise _error(path, "not a regular file or folder (devices, pipes and sockets are refused)")
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise _error(path, "empty file")


def _probe_container(path: str) -> _Container:
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


_PROBED: dict[tuple, _Container] = {}


def _probe_container_uncached(path: str) -> _Container:
    cmd = [_ffmpeg(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info"]
    cmd += _input_args(path) + ["-map", "0:V:0", "-c", "copy", "-f", "framecrc", "pipe:1"]
    proc = subprocess.run(cmd, capture_output=True)
    stderr = proc.stderr.decode("utf-8", "replace")
    header = _parse_header(stderr)
    problem = _ffmpeg_error(stderr)
    too_big = re.search(r"Picture size (\d+)x(\d+) exceeds", stderr)
    if too_big:  # the decoders' -max_pixels refused it while probing
        validate.check_frame_size(path, int(too_big.group(1)), int(too_big.group(2)))
        raise _error(path, f"frame size {too_big.group(1)}x{too_big.group(2)} is too large")
    if header is not None:
        validate.check_frame_size(path, header.width, header.height)
    if problem and "not on whitelist" in problem:
        raise _error(
            path,
            "not a video container (playlists such as ffconcat, image patterns and network "
            "formats are refused as inputs)",
        )
    if header is None:
        if "Input #0" in stderr:
            raise _error(path, "no video stream")
        raise _error(path, f"not a readable video (ffmpeg: {problem or 'unknown error'})")
    if proc.returncode != 0 or problem:
        raise _error(
            path, f"not a readable video (ffmpeg: {problem or 'exit ' + str(proc.returncode)})"
        )
    time_base, pts = None, []
    for line in proc.stdout.decode("ascii", "replace").splitlines():
        if line.startswith("#tb 0:"):
            time_base = fractions.Fraction(line.split(":", 1)[1].strip())
        elif line and not line.startswith("#"):
            fields = line.split(",")
            flags = fields[-1].strip() if len(fields) > 6 else ""
            if flags.startswith("F=") and int(flags[2:], 16) & 0x4:
                continue  # AV_PKT_FLAG_DISCARD (outside an edit list): never decoded to a frame
            pts.append(int(fields[2]))
    if not pts:
        raise _error(path, "contains zero video frames")
    pts_array = np.asarray(pts, dtype=np.int64)
    if time_base is None or np.any(pts_array == _NOPTS):
        fps, variable = header.fps, False
    else:
        fps, variable = _frame_rate(pts_array, time_base, header.fps)
    if not fps or not np.isfinite(fps) or fps <= 0:
        raise _error(path, "cannot determine the frame rate")
    known = time_base is not None and not np.any(pts_array == _NOPTS)
    return _Container(
        path,
        header,
        len(pts),
        float(fps),
        variable,
        np.sort(pts_array) if known else None,
        time_base if known else None,
    )


@dataclasses.dataclass(frozen=True)
class _PngFolder:
    path: str
    files: tuple[str, ...]
    width: int
    height: int
    bit_depth: int


def _png_header(file: str) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk (PNG spec, section 11.2.2)."""
    try:
        with open(file, "rb") as f:
            head = f.read(33)
    except OSError as e:
        raise _error(file, f"cannot read ({e.strerror})") from None
    if len(head) == 0:
        raise _error(file, "empty file")
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise _error(file, "not a PNG file")
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    return width, height, depth, colour


def _scan_png_folder(path: str) -> _PngFolder:
    try:
        names = [n for n in os.listdir(path) if n.lower().endswith(".png")]
    except OSError as e:
        raise _error(path, f"cannot list directory ({e.strerror})") from None
    names = [n for n in names if os.path.isfile(os.path.join(path, n))]
    if not names:
        raise _error(path, "directory contains no PNG frames")
    files = tuple(os.path.join(path, n) for n in sorted(names, key=_natural_key))
    width, height, depth, _ = _png_header(files[0])
    validate.check_frame_size(files[0], width, height)
    for file in files[1:]:
        w, h, d, _ = _png_header(file)
        if (w, h) != (width, height):
            raise _error(file, f"frame size {w}x{h} differs from {width}x{height} of {files[0]}")
        if (d == 16) != (depth == 16):
            raise _error(file, f"bit depth {d} differs from {depth} of {files[0]}")
    return _PngFolder(path, files, width, height, 16 if depth == 16 else 8)


def _open_npy(path: str) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise _error(path, f"not a readable .npy array ({e})") from None
    if not isinstance(array, np.ndarray):
        raise _error(path, "not a single .npy array")
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] != 3):
        raise _error(path, f"array shape {array.shape} is not (T,H,W,3) or (T,H,W)")
    if array.dtype not in (np.uint8, np.uint16):
        raise _error(path, f"array dtype {array.dtype} is not uint8 or uint16")
    if array.shape[0] == 0:
        raise _error(path, "contains zero frames")
    validate.check_frame_size(path, array.shape[2], array.shape[1])
    return array


_FPS_WARNED: set[str] = set()


def _assumed_fps(path: str, fps: float | None) -> float:
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


def _refuse_fps(path: str, fps: float | None) -> None:
    if fps is not None:
        raise ValueError(
            f"{path}: fps= applies to PNG folders and .npy files; a container has its own"
        )


def _check_depth(path: str, depth: int, allow_16bit: bool, what: str) -> None:
    if depth > 8 and not allow_16bit:
        raise _error(
            path,
            f"{what} has {depth} bits per channel; pass allow_16bit=True to read it as uint16 "
            "(reading it as 8-bit would discard precision)",
        )


# Frame rates a pulse can be read from (and edited into): the heart band reaches 4 Hz.
MIN_FPS, MAX_FPS = 8.0, 1000.0


def _check_rate(path: str, fps: float) -> None:
    if not MIN_FPS <= fps <= MAX_FPS:
        raise _error(
            path,
            f"frame rate {fps:.3g} fps is outside {MIN_FPS:g}-{MAX_FPS:g} fps (a pulse of up to "
            "240 bpm needs at least 8 frames per second)",
        )


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
    _check_input_path(path)
    if os.path.isdir(path):
        folder = _scan_png_folder(path)
        rate = _assumed_fps(path, fps)
        fmt = "rgb48be" if folder.bit_depth == 16 else "rgb24"
        return VideoInfo(len(folder.files), rate, folder.width, folder.height, False, fmt)
    if path.lower().endswith(".npy"):
        array = _open_npy(path)
        rate = _assumed_fps(path, fps)
        fmt = "rgb48le" if array.dtype == np.uint16 else "rgb24"
        return VideoInfo(array.shape[0], rate, array.shape[2], array.shape[1], False, fmt)
    _refuse_fps(path, fps)
    c = _probe_container(path)
    _check_rate(path, c.fps)
    h = c.header
    return VideoInfo(c.num_frames, c.fps, h.width, h.height, c.variable, h.pix_fmt)


class _FfmpegFrames:
    """Raw frames from one ffmpeg decoding process, read into caller-owned buffers.

    Args:
      path: name used in error messages.
      input_args: ffmpeg arguments up to and including ``-i ...``.
      height, width: output frame size.
      alpha: decode with an alpha channel (checked opaque, then dropped).
      bit_depth: 8 (uint8) or 16 (uint16 little-endian).
      max_frames: stop after this many frames, or None.
      stats_file: where ffmpeg writes one "n pts time_base" line per decoded frame, or None.
      feed: files whose bytes are streamed into ffmpeg's stdin (PNG folders), or None.
    """

    def __init__(
        self,
        path,
        input_args,
        height,
        width,
        *,
        alpha,
        bit_depth,
        max_frames=None,
        stats_file=None,
        feed=None,
    ):
        self.path = path
        self.channels = 4 if alpha else 3
        self.dtype = np.dtype("<u2") if bit_depth == 16 else np.dtype(np.uint8)
        self.shape = (height, width, self.channels)
        self.frame_bytes = height * width * self.channels * self.dtype.itemsize
        self.count = 0
        self.feed = feed
        self.finished = False
        if alpha:
            pix_fmt = "rgba64le" if bit_depth == 16 else "rgba"
        else:
            pix_fmt = "rgb48le" if bit_depth == 16 else "rgb24"
        cmd = [_ffmpeg(), "-hide_banner", "-nostats", "-loglevel", "level+warning"]
        cmd += ([] if feed else ["-nostdin"]) + list(input_args)
        cmd += ["-map", "0:V:0", "-fps_mode", "passthrough", "-an", "-sn", "-dn"]
        # The demuxer's time base for every reader (one- or many-pass): variable-rate frames keep
        # their own timestamps instead of colliding on a coarser encoder time base.
        cmd += ["-enc_time_base:v", "demux"]
        if stats_file:
            cmd += ["-stats_enc_pre:v", stats_file, "-stats_enc_pre_fmt:v", "{n} {pts} {tb}"]
        if max_frames is not None:
            cmd += ["-frames:v", str(max_frames)]
        cmd += ["-f", "rawvideo", "-pix_fmt", pix_fmt, "pipe:1"]
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,
            start_new_session=True,  # a terminal's Ctrl-C reaches rppgedit, which stops it
        )
        safe_write.register_process(self.proc)
        _widen_pipe(self.proc.stdout)
        self._feeder = None
        if feed:
            self._feeder = threading.Thread(target=self._feed, args=(feed,), daemon=True)
            self._feeder.start()

    def _feed(self, files):
        try:
            for file in files:
                with open(file, "rb") as f:
                    shutil.copyfileobj(f, self.proc.stdin, 1 << 20)
        except (BrokenPipeError, OSError, ValueError):
            pass
        finally:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def readinto(self, out: np.ndarray) -> int:
        """Fill ``out`` ((K, H, W, 3) of the output dtype) with up to K frames; returns how many."""
        view = memoryview(self._scratch(out)).cast("B")
        filled = 0
        while filled < len(view):
            n = self.proc.stdout.readinto(view[filled:])
            if not n:
                break
            filled += n
        frames = filled // self.frame_bytes
        if filled % self.frame_bytes:
            self.finish()
            raise _error(self.path, "decoded a partial frame (frame size differs from the header)")
        if self.channels == 4:
            rgba = self._rgba[:frames]
            top = np.iinfo(self.dtype).max
            opaque = rgba[..., 3] == top
            if not opaque.all():
                bad = self.count + int(np.argmin(opaque.reshape(frames, -1).all(axis=1)))
                self.finish(check=False)
                name = self.feed[bad] if self.feed else f"{self.path} (frame {bad})"
                raise _error(
                    name,
                    "has transparent pixels (alpha < max); flatten it onto a background first",
                )
            out[:frames] = rgba[..., :3]
        self.count += frames
        return frames

    def _scratch(self, out: np.ndarray) -> np.ndarray:
        if self.channels == 3:
            return out
        rgba = getattr(self, "_rgba", None)
        if rgba is None or rgba.shape[0] != out.shape[0]:
            rgba = np.empty((out.shape[0], *self.shape), self.dtype)
            self._rgba = rgba
        return rgba

    def finish(self, check: bool = True) -> None:
        """Wait for ffmpeg; with ``check``, raise on a non-zero exit or any logged error.

        Idempotent: later calls do nothing.
        """
        if self.finished:
            return
        self.finished = True
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()
        if self.proc.poll() is None and not check:
            self.proc.kill()
        rc = self.proc.wait()
        safe_write.release_process(self.proc)
        if self._feeder is not None:
            self._feeder.join()
        self._stderr.seek(0)
        stderr = self._stderr.read().decode("utf-8", "replace")
        self._stderr.close()
        if check:
            problem = _ffmpeg_error(stderr)
            if rc != 0 or problem:
                detail = problem or f"exit status {rc}"
                raise _error(self.path, f"not a readable video (ffmpeg: {detail})")


def _open_frames(path, allow_16bit, max_frames, stats_file=None):
    """Start decoding ``path`` (container or PNG folder): returns (_FfmpegFrames, source info)."""
    if os.path.isdir(path):
        folder = _scan_png_folder(path)
        _check_depth(path, folder.bit_depth, allow_16bit, "the PNG folder")
        files = folder.files if max_frames is None else folder.files[:max_frames]
        stream = _FfmpegFrames(
            path,
            ["-f", "png_pipe", "-i", "pipe:0"],
            folder.height,
            folder.width,
            alpha=True,
            bit_depth=folder.bit_depth,
            max_frames=max_frames,
            feed=files,
        )
        return stream, folder
    container = _probe_container(path)
    h = container.header
    has_alpha, depth = _format_traits(h.pix_fmt)
    _check_depth(path, depth, allow_16bit, f"pixel format {h.pix_fmt}")
    stream = _FfmpegFrames(
        path,
        _input_args(path),
        h.height,
        h.width,
        alpha=has_alpha,
        bit_depth=16 if depth > 8 else 8,
        max_frames=max_frames,
        stats_file=stats_file,
    )
    return stream, container


def read_video(
    path, *, max_frames: int | None = None, fps: float | None = None, allow_16bit: bool = False
) -> Video:
    """Read every frame of a video file, PNG folder or .npy array, bit-exactly.

    Args:
      path: a file ffmpeg reads (mp4, avi, mkv, mov, webm, ...), a folder of PNG frames (files
        ``*.png`` in natural order, so ``f2.png`` precedes ``f10.png``), or a .npy array of shape
        (T,H,W,3) or (T,H,W), dtype uint8 or uint16.
      max_frames: read at most this many frames from the start.
      fps: frame rate of a PNG folder or .npy file (default 30, with a FrameRateAssumedWarning);
        not allowed for containers, which carry their own rate.
      allow_16bit: return high-bit-depth sources as uint16 instead of refusing them.

    Returns:
      Video with frames (T, H, W, 3) uint8 (or uint16), fps, and timestamps for variable-rate
      containers.

    Raises:
      RppgEditError: missing, empty, truncated or corrupt input, no frames, no video stream,
        transparency, or high bit depth without ``allow_16bit``.
    """
    path = os.fspath(path)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    _check_input_path(path)
    if path.lower().endswith(".npy") and not os.path.isdir(path):
        array = _open_npy(path)
        _check_depth(path, 16 if array.dtype == np.uint16 else 8, allow_16bit, "the array")
        rate = _assumed_fps(path, fps)
        num = array.shape[0] if max_frames is None else min(max_frames, array.shape[0])
        validate.check_decode_total(path, num, array.shape[2], array.shape[1], array.itemsize)
        frames = np.array(array[:max_frames])
        if frames.ndim == 3:
            frames = np.repeat(frames[..., None], 3, axis=-1)
        return Video(frames, rate, None, path)
    if os.path.isdir(path):
        rate = _assumed_fps(path, fps)
        stream, folder = _open_frames(path, allow_16bit, max_frames)
        expected = len(folder.files) if max_frames is None else min(max_frames, len(folder.files))
        try:
            frames = _read_all(stream, expected)
        except BaseException:
            stream.finish(check=False)
            raise
        stream.finish()
        if len(frames) != expected:
            raise _error(path, f"decoded {len(frames)} frames from {expected} PNG files")
        return Video(frames, rate, None, path)
    _refuse_fps(path, fps)
    with safe_write.scratch_dir() as tmp:
        stats_file = os.path.join(tmp, "frames.txt")
        stream, container = _open_frames(path, allow_16bit, max_frames, stats_file)
        try:
            _check_rate(path, container.fps)
        except RppgEditError:
            stream.finish(check=False)
            raise
        expected = (
            container.num_frames if max_frames is None else min(max_frames, container.num_frames)
        )
        try:
            frames = _read_all(stream, expected)
        except BaseException:
            stream.finish(check=False)
            raise
        stream.finish()
        with open(stats_file) as f:
            stats = [line.split() for line in f if line.strip()]
    if len(frames) == 0:
        raise _error(path, "contains zero decodable video frames")
    if len(stats) != len(frames):
        raise _error(path, f"ffmpeg reported {len(stats)} frames but sent {len(frames)}")
    timestamps = None
    if container.variable:
        time_base = fractions.Fraction(stats[0][2])
        pts = np.array([int(s[1]) for s in stats], dtype=np.int64)
        timestamps = (pts - pts[0]).astype(np.float64) * float(time_base)
    return Video(frames, container.fps, timestamps, path)


def _read_all(stream: _FfmpegFrames, expected: int) -> np.ndarray:
    """All frames of ``stream``, preallocating ``expected`` frames and growing if there are more
    (never past the memory budget: a header's count is not trusted)."""
    height, width = stream.shape[:2]
    itemsize = stream.dtype.itemsize
    validate.check_decode_total(stream.path, max(expected, 1), width, height, itemsize)
    frames = np.empty((max(expected, 1), *stream.shape[:2], 3), stream.dtype)
    count = stream.readinto(frames)
    while count == len(frames):
        grow = max(len(frames) // 2, 16)
        validate.check_decode_total(stream.path, len(frames) + grow, width, height, itemsize)
        more = np.empty((grow, *stream.shape[:2], 3), stream.dtype)
        got = stream.readinto(more)
        if got == 0:
            break
        frames = np.concatenate([frames, more[:got]])
        count += got
    return frames[:count] if count < len(frames) else frames


def iter_windows(
    path, window: int, *, overlap: int = 0, fps: float | None = None, allow_16bit: bool = False
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream a video as windows of ``window`` frames sharing ``overlap`` frames.

    One decoder runs for the whole file; each step reads ``window - overlap`` new frames into a
    fresh buffer that starts with the last ``overlap`` frames of the previous window, so memory
    stays at about two windows however long the file is. Errors of a truncated or corrupt file
    surface before the last window is yielded (earlier windows have already been yielded).

    Args:
      path: as for `read_video`.
      window: frames per window, >= 1.
      overlap: frames shared by consecutive windows, 0 <= overlap < window.
      fps: as for `read_video` (only checked/used for PNG folders and .npy files).
      allow_16bit: as for `read_video`.

    Yields:
      (start, frames): index of the window's first frame and (W_t, H, W, 3) uint8 (or uint16)
      frames, with W_t == window except possibly for the last window. Windows start at
      0, s, 2s, ... (s = window - overlap) and one is yielded only while it has new frames.
    """
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"need window >= 1 and 0 <= overlap < window, got {window}, {overlap}")
    path = os.fspath(path)
    _check_input_path(path)
    step = window - overlap
    if path.lower().endswith(".npy") and not os.path.isdir(path):
        array = _open_npy(path)
        _check_depth(path, 16 if array.dtype == np.uint16 else 8, allow_16bit, "the array")
        _assumed_fps(path, fps)
        total = array.shape[0]
        for start in range(0, max(total - overlap, 1), step):
            frames = np.array(array[start : start + window])
            if frames.ndim == 3:
                frames = np.repeat(frames[..., None], 3, axis=-1)
            yield start, frames
        return
    if os.path.isdir(path):
        _assumed_fps(path, fps)
    else:
        _refuse_fps(path, fps)
    stream, _ = _open_frames(path, allow_16bit, None)
    try:
        previous, start = None, 0
        while True:
            frames = np.empty((window, *stream.shape[:2], 3), stream.dtype)
            kept = 0 if previous is None else overlap
            if kept:
                frames[:kept] = previous[len(previous) - kept :]
            got = stream.readinto(frames[kept:])
            if got < window - kept:
                stream.finish()
                if got > 0 or previous is None:
                    if got == 0:
                        raise _error(path, "contains zero video frames")
                    yield start, frames[: kept + got]
                return
            yield start, frames
            previous, start = frames, start + step
    finally:
        stream.finish(check=False)


# --------------------------------------------------------------------------------------------
# Writing.


def _output_kind(path: str) -> tuple[str, str]:
    """(kind, normalised path): kind is 'png', 'npy' or a container extension ('.mkv', ...)."""
    is_dir_like = path.endswith(("/", os.sep)) or os.path.isdir(path)
    stripped = path.rstrip("/" + os.sep) or path
    ext = os.path.splitext(os.path.basename(stripped))[1].lower()
    if os.path.isdir(path) and (ext in _CONTAINER_FORMATS or ext == ".npy"):
        raise _error(path, f"exists and is a directory (a {ext} output must be a file)")
    if is_dir_like or ext == "":
        return "png", stripped
    if ext == ".npy":
        return "npy", path
    if ext in _CONTAINER_FORMATS:
        return ext, path
    raise _error(
        path,
        f"unsupported output type {ext!r}; use .mkv, .mp4, .mov, .webm, .avi, .npy or a folder",
    )


def check_output_path(path, *, inputs: Iterable = (), overwrite: bool = False) -> None:
    """Refuses an output path before any work is done (`rppgedit.safe_write` policy): the output
    may not be (a link to) one of `inputs`, its folder must exist and be writable, and an existing
    output is kept unless `overwrite`; a PNG folder is replaced only if it holds frame PNGs."""
    path = os.fspath(path)
    kind, normal = _output_kind(path)
    if kind != "png":
        if os.path.isdir(path):
            raise _error(path, "exists and is a directory")
        safe_write.check_destination(path, inputs=inputs, overwrite=overwrite)
        return
    safe_write.check_destination(normal, inputs=inputs, overwrite=True)
    if os.path.lexists(normal) and not os.path.isdir(normal):
        raise _error(path, "exists and is not a directory")
    if os.path.isdir(normal):
        entries = os.listdir(normal)
        if entries and not overwrite:
            raise _error(path, "output folder exists and is not empty (pass --overwrite)")
        if any(not _FRAME_NAME.match(e) for e in entries):
            raise _error(path, "folder holds files other than frame PNGs; refusing to replace it")
        for entry in entries:
            for source in inputs:
                if source is not None and safe_write.same_file(os.path.join(normal, entry), source):
                    raise _error(
                        path, f"holds the input {os.fspath(source)}; refusing to replace it"
                    )


def json_safe(value):
    """A JSON-writable copy of nested dicts/lists: NaN and inf become None, NumPy scalars Python
    ones, keys strings (reports, records and manifests are written with ``allow_nan=False``)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_text_atomic(path, text: str, *, overwrite: bool = True, inputs: Iterable = ()) -> str:
    """Writes a text file atomically under the `rppgedit.safe_write` policy (its folder is
    created; never onto one of `inputs`; an existing file only with `overwrite`)."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise _error(path, f"cannot create {parent} ({e.strerror})") from None
    return safe_write.write_text(path, text, inputs=inputs, overwrite=overwrite)


def _umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """A fixed-size .npy version 1.0 header (NumPy's NEP 1 format), space padded."""
    text = f"{{'descr': '{dtype.str}', 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    body = text.encode("latin1")
    pad = _NPY_HEADER_BYTES - 10 - len(body) - 1
    if pad < 0:
        raise ValueError(f"array shape {shape} too large for the .npy header")
    return (
        b"\x93NUMPY\x01\x00" + struct.pack("<H", _NPY_HEADER_BYTES - 10) + body + b" " * pad + b"\n"
    )


# --------------------------------------------------------------------------------------------
# Encoder settings and the side streams (audio, subtitles) brought from the input.


@functools.cache
def _encoders() -> frozenset[str]:
    """Names of the encoders the bundled ffmpeg has (``ffmpeg -encoders``)."""
    out = subprocess.run(
        [_ffmpeg(), "-hide_banner", "-encoders"], capture_output=True, text=True, check=True
    ).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


def _check_encoder(path: str, encoder: str, what: str) -> None:
    """Refuses a codec whose encoder the bundled ffmpeg lacks."""
    if encoder not in _encoders():
        raise _error(path, f"the bundled ffmpeg has no {encoder} encoder (needed for {what})")


def _check_crf(path: str, codec: str, crf) -> int | None:
    """The CRF to use: the codec's default for None; refuses a CRF out of range or for a
    lossless codec."""
    lossy = _LOSSY_CODECS.get(codec)
    if lossy is None:
        if crf is not None:
            raise _error(
                path, f"crf applies to the lossy codecs {sorted(_LOSSY_CODECS)}, not {codec}"
            )
        return None
    if crf is None:
        return lossy.default_crf
    if isinstance(crf, bool) or not isinstance(crf, int | np.integer):
        raise _error(path, f"crf must be an integer, got {crf!r}")
    if not 0 <= int(crf) <= lossy.max_crf:
        raise _error(path, f"crf {crf} out of range for {codec} (0-{lossy.max_crf})")
    return int(crf)


def _lossy_video_args(codec: str, crf: int, kind: str) -> list[str]:
    """ffmpeg output options of a sharing codec: yuv420p, BT.709 matrix and tags, at ``crf``."""
    # The scaler converts with the BT.709 matrix to limited range; setparams tags the frames,
    # since encoders take their colour tags from the frames (output options alone are ignored).
    tags = "colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv"
    chain = f"scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,setparams={tags}"
    args = ["-vf", chain, "-pix_fmt", "yuv420p"]
    if codec == "h264":
        args += ["-c:v", "libx264", "-profile:v", "high", "-preset", "medium", "-crf", str(crf)]
    elif codec == "h265":
        args += ["-c:v", "libx265", "-preset", "medium", "-crf", str(crf)]
        args += ["-x265-params", "log-level=error"]
        if kind in (".mp4", ".mov"):
            args += ["-tag:v", "hvc1"]  # Apple players refuse the default hev1 tag
    else:  # vp9: constant quality needs -b:v 0
        args += ["-c:v", "libvpx-vp9", "-crf", str(crf), "-b:v", "0", "-row-mt", "1"]
    args += ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"]
    return args + ["-color_range", "tv"]


def _container_args(kind: str, encodes_audio: bool) -> list[str]:
    """Reproducible-bytes flags, MP4/MOV fast start, and the muxer name."""
    args = ["-fflags", "+bitexact", "-flags:v", "+bitexact"]
    if encodes_audio:
        args += ["-flags:a", "+bitexact"]
    if kind in (".mp4", ".mov"):
        args += ["-movflags", "+faststart"]
    return args + ["-f", _CONTAINER_FORMATS[kind]]


@dataclasses.dataclass(frozen=True)
class _SideStream:
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
class _Source:
    """The side streams of a file, and when its first video frame comes after the file start."""

    path: str
    streams: tuple[_SideStream, ...]
    video_delay: float


def _codec_name(stream) -> str:
    """ffmpeg's canonical codec name of a PyAV stream ("mp3", not the decoder "mp3float")."""
    try:
        context = stream.codec_context
        codec = context.codec if context is not None else None
    except (av.error.FFmpegError, ValueError):
        codec = None
    if codec is not None:
        return codec.canonical_name
    return getattr(stream, "name", None) or "unknown"  # data streams: ffmpeg's codec id name


def _subtitle_kind(stream) -> tuple[bool, bool]:
    """(text, bitmap) of a PyAV subtitle stream."""
    try:
        codec = stream.codec_context.codec
    except (AttributeError, av.error.FFmpegError, ValueError):
        return False, False
    return bool(codec.text_sub), bool(codec.bitmap_sub)


def _open_av(path: str):
    """A PyAV input container (a plain file with a video demuxer), or a one-line error."""
    try:
        return av.open(os.path.abspath(path), options=_av_options())
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise _error(path, f"cannot read its streams ({e})") from None


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


def _side_streams(path: str) -> _Source:
    """The audio and subtitle streams of a container file, in file order."""
    _check_input_path(path)
    if os.path.isdir(path):
        raise _error(path, "is a directory, not a video file")
    with _open_av(path) as container:
        streams, counts = [], {"audio": 0, "subtitle": 0}
        for stream in container.streams:
            if stream.type not in counts:
                continue
            number = counts[stream.type]
            counts[stream.type] += 1
            codec = _codec_name(stream)
            if stream.type == "audio":
                channels = getattr(stream.codec_context, "channels", 0) or 0
                streams.append(_SideStream(stream.index, "audio", number, codec, channels))
            else:
                text, bitmap = _subtitle_kind(stream)
                streams.append(
                    _SideStream(stream.index, "subtitle", number, codec, text=text, bitmap=bitmap)
                )
        delay = _video_delay(container)
    return _Source(path, tuple(streams), delay)


@dataclasses.dataclass(frozen=True)
class _StreamPlan:
    """How the side streams go into the output: ffmpeg arguments, notes, audio encoded or not."""

    args: tuple[str, ...]
    notes: tuple[str, ...]
    encodes_audio: bool


_AUDIO_ENCODER_NAMES = {
    "aac": "aac",
    "libopus": "opus",
    "libmp3lame": "mp3",
    "pcm_s16le": "pcm_s16le",
}


def _audio_encoder(codec: str, kind: str) -> tuple[str, str] | None:
    """None when ``kind`` holds the audio ``codec`` as it is, else (encoder, bitrate or '')."""
    if kind == ".mkv" or codec in _AUDIO_HELD[kind]:
        return None
    if kind in _PCM_HELD and codec.startswith("pcm_"):
        return None
    if kind in (".mp4", ".mov"):
        return "aac", "192k"
    if kind == ".webm":
        return "libopus", "128k"
    return ("libmp3lame", "192k") if "libmp3lame" in _encoders() else ("pcm_s16le", "")


def _audio_plan(stream: _SideStream, kind: str, out: int, path: str) -> tuple[list, str, bool]:
    """(ffmpeg codec options, note, encoded) for audio stream ``stream`` as output audio ``out``."""
    label = f"audio #{stream.number} {stream.codec}"
    target = _audio_encoder(stream.codec, kind)
    if target is None:
        return [f"-c:a:{out}", "copy"], f"{label}: copied", False
    encoder, bitrate = target
    _check_encoder(path, encoder, f"{label} in {kind[1:]}")
    name = _AUDIO_ENCODER_NAMES[encoder]
    args = [f"-c:a:{out}", encoder] + ([f"-b:a:{out}", bitrate] if bitrate else [])
    note = f"{label}: re-encoded to {name} ({kind[1:]} cannot hold {stream.codec})"
    if encoder == "libmp3lame" and stream.channels > 2:
        args += [f"-ac:a:{out}", "2"]
        note += ", downmixed to stereo (mp3 holds at most 2 channels)"
    return args, note, True


def _subtitle_plan(stream: _SideStream, kind: str, out: int) -> tuple[list | None, str]:
    """(ffmpeg codec options or None to drop it, note) for a subtitle stream as output ``out``."""
    label, container = f"subtitle #{stream.number} {stream.codec}", kind[1:]
    if kind == ".mkv":
        if stream.codec == "mov_text":  # the one text format Matroska lacks
            note = f"{label}: converted to subrip (mkv cannot hold mov_text)"
            return [f"-c:s:{out}", "srt"], note
        return [f"-c:s:{out}", "copy"], f"{label}: copied"
    target = _SUBTITLE_TEXT_FORMAT[kind]
    if target is None:
        return None, f"{label}: dropped ({container} cannot hold subtitles)"
    if stream.bitmap:
        return None, f"{label}: dropped ({container} cannot hold bitmap subtitles)"
    if not stream.text:
        return None, f"{label}: dropped ({container} holds only text subtitles)"
    if stream.codec == target:
        return [f"-c:s:{out}", "copy"], f"{label}: copied"
    return [f"-c:s:{out}", target], f"{label}: converted to {target}"


def _plan_side_streams(
    streams: Iterable[_SideStream], kind: str, input_index: int, path: str
) -> _StreamPlan:
    """Maps each audio and subtitle stream of input ``input_index`` into a ``kind`` container.

    Audio is copied when the container holds its codec, else re-encoded; subtitles are copied,
    converted to the container's text format, or dropped. ``path`` names the output in errors.
    """
    args, notes, encodes = [], [], False
    out_audio = out_subtitle = 0
    for stream in streams:
        if stream.type == "audio":
            codec_args, note, encoded = _audio_plan(stream, kind, out_audio, path)
            out_audio += 1
            encodes = encodes or encoded
        else:
            codec_args, note = _subtitle_plan(stream, kind, out_subtitle)
            if codec_args is not None:
                out_subtitle += 1
        notes.append(note)
        if codec_args is not None:
            args += ["-map", f"{input_index}:{stream.index}", *codec_args]
    return _StreamPlan(tuple(args), tuple(notes), encodes)


def _source_input(path: str) -> list[str]:
    """ffmpeg input options for a side-stream source: read as a plain file, never as stdin, a
    device, a network protocol or a playlist, whatever its name looks like."""
    args = ["-protocol_whitelist", "file", "-format_whitelist", _INPUT_FORMATS]
    return args + ["-i", "file:" + os.path.abspath(path)]


def _make_temp_file(path: str) -> str:
    """An empty registered temporary file beside ``path`` with the same extension (O_EXCL)."""
    return safe_write.make_temp_file(path)


class VideoWriter:
    """Write frames to a video file, PNG folder or .npy array, atomically, as they come.

    The destination appears only when the writer closes without error (``with`` block exits
    normally, or `close`): until then frames go to a hidden temporary file (or folder) in the same
    directory, which is removed on any failure or exception.

    Args:
      path: output path. ``.mkv`` / ``.avi`` -> FFV1 (8-bit as bgr0, 16-bit as gbrp16le);
        ``.mp4`` / ``.mov`` -> libx264rgb with ``-qp 0`` (8-bit only); ``.webm`` -> vp9;
        ``.npy`` -> (T,H,W,3) array; a path ending in ``/``, an existing directory or a name
        without extension -> a folder of ``000000.png``, ``000001.png``, ...
      fps: frames per second (> 0).
      width, height: frame size in pixels.
      codec: None (by extension), the lossless "ffv1" or "libx264rgb", or a sharing codec:
        "h264" (libx264 High, .mp4/.mkv/.mov), "h265" (libx265, .mp4/.mkv/.mov) or "vp9"
        (libvpx-vp9, .webm/.mkv), all yuv420p BT.709 (even frame sizes only); a sharing codec
        warns `LossyOutputWarning`.
      overwrite: replace an existing output (a folder only if it holds nothing but frame PNGs).
      inputs: paths the run read; writing onto any of them is refused, even with ``overwrite``.
      bit_depth: 8 (uint8 frames) or 16 (uint16 frames).
      allow_lossy: kept for backward compatibility; sharing codecs no longer need it.
      streams_from: a container file (the edit's input) whose audio and subtitle streams, global
        metadata and chapters go into a container output (see the module notes); a PNG folder or
        .npy output ignores it. Writing onto it is refused like onto ``inputs``.
      crf: constant rate factor of a sharing codec (None -> 23 for h264, 28 for h265, 32 for
        vp9; 0-51 for h264/h265, 0-63 for vp9).

    Attributes:
      codec: the codec written (None for PNG folders and .npy).
      crf: the CRF of a sharing codec, else None.
      stream_notes: one line per side stream saying what was done with it ("audio #0 aac:
        copied", "audio #0 pcm_s16le: re-encoded to aac (mp4 cannot hold pcm_s16le)", ...).

    Raises:
      RppgEditError: unsupported type or codec, CRF out of range, codec missing from the bundled
        ffmpeg, output equal to an input, existing output without ``overwrite``, missing or
        unwritable directory, unreadable ``streams_from``, wrong frames, or an ffmpeg failure.
    """

    def __init__(
        self,
        path,
        fps: float,
        width: int,
        height: int,
        *,
        codec: str | None = None,
        overwrite: bool = False,
        inputs: Iterable = (),
        bit_depth: int = 8,
        allow_lossy: bool = False,
        streams_from=None,
        crf: int | None = None,
    ):
        del allow_lossy  # sharing codecs are allowed; the parameter stays for old callers
        raw_path = os.fspath(path)
        kind, path = _output_kind(raw_path)
        self.path, self.kind = path, kind
        if bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
        if not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be positive, got {fps}")
        if width < 1 or height < 1:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        self.fps, self.width, self.height, self.bit_depth = float(fps), width, height, bit_depth
        self.dtype = np.dtype("<u2") if bit_depth == 16 else np.dtype(np.uint8)
        self.codec = self._choose_codec(codec)
        self.crf = _check_crf(self.path, self.codec, crf) if self.codec else None
        if self.codec is None and crf is not None:
            raise _error(self.path, f"crf does not apply to a {kind} output")
        sources = [] if streams_from is None else [os.fspath(streams_from)]
        self._check_destination(overwrite, [*inputs, *sources])
        self.stream_notes: list[str] = []
        self._source, self._plan = None, None
        self._timing, self._nut = None, None
        if sources:
            self._plan_streams(sources[0])
            self._timing = self._source_timing(sources[0])
        if self.codec in _LOSSY_CODECS:
            warnings.warn(
                _LOSSY_WARNING.format(path=self.path, codec=self.codec, crf=self.crf),
                LossyOutputWarning,
                stacklevel=2,
            )
        self.num_frames = 0
        self._proc = None
        self._stderr = None
        self._file = None
        self._temp = None
        self._closed = False
        self._open_temp()

    # -- setup -------------------------------------------------------------------------------

    def _choose_codec(self, codec: str | None) -> str | None:
        path, kind = self.path, self.kind
        if kind in ("png", "npy"):
            if codec not in (None, kind):
                raise _error(path, f"codec {codec!r} does not apply to a {kind} output")
            return None
        codec = codec or _DEFAULT_CODEC[kind]
        if codec not in _CODEC_CONTAINERS:
            raise _error(path, f"unknown codec {codec!r}; use one of {sorted(_CODEC_CONTAINERS)}")
        if kind not in _CODEC_CONTAINERS[codec]:
            holds = "/".join(_CODEC_CONTAINERS[codec])
            raise _error(path, f"codec {codec} cannot be written to {kind} (use {holds})")
        if codec in _LOSSY_CODECS and (self.width % 2 or self.height % 2):
            raise _error(
                path,
                f"{codec} with yuv420p needs even frame sizes, got {self.width}x{self.height}",
            )
        if self.bit_depth == 16 and codec != "ffv1":
            raise _error(
                path,
                f"codec {codec} is 8-bit only; write 16-bit frames to .mkv, .avi, .npy or a folder",
            )
        encoder = _LOSSY_CODECS[codec].encoder if codec in _LOSSY_CODECS else codec
        _check_encoder(path, encoder, f"codec {codec}")
        return codec

    def _check_destination(self, overwrite: bool, inputs: Iterable) -> None:
        check_output_path(self.path, inputs=inputs, overwrite=overwrite)

    def _plan_streams(self, source: str) -> None:
        """Probes ``source`` and decides what to do with each of its audio/subtitle streams."""
        if self.kind in ("png", "npy"):
            holder = "a PNG folder" if self.kind == "png" else "a .npy"
            self.stream_notes.append(f"audio not written: {holder} output holds no audio")
            return
        if os.path.isdir(source) or source.lower().endswith(".npy"):
            return  # a PNG folder or an array has no audio, subtitles or metadata
        self._source = _side_streams(source)
        self._plan = _plan_side_streams(self._source.streams, self.kind, 1, self.path)
        self.stream_notes.extend(self._plan.notes)

    def _source_timing(self, source: str):
        """(pts from 0, time base) of a variable-frame-rate source, so that the output keeps its
        frames' timestamps; None for a constant rate (frame i at i / fps)."""
        if self.kind not in _CONTAINER_FORMATS or os.path.isdir(source):
            return None
        if source.lower().endswith(".npy"):
            return None
        container = _probe_container(source)
        if not container.variable or container.pts is None:
            return None
        return container.pts - container.pts[0], container.time_base

    def _open_temp(self) -> None:
        if self.kind == "png":
            self._temp = safe_write.make_temp_dir(self.path)
        else:
            self._temp = _make_temp_file(self.path)
        try:
            if self.kind == "npy":
                self._file = open(self._temp, "wb")
                self._file.write(_npy_header(self.dtype, (0, self.height, self.width, 3)))
            else:
                self._start_ffmpeg()
        except BaseException:
            self.abort()
            raise

    def _pipe_input(self) -> list[str]:
        """ffmpeg options of the raw-frame input on stdin (input 0)."""
        rate = fractions.Fraction(self.fps).limit_denominator(1_000_000)
        in_fmt = "rgb48le" if self.bit_depth == 16 else "rgb24"
        args = []
        if self._plan is not None and self._plan.args and self._source.video_delay > 5e-4:
            # The input's video starts after its audio: start ours as late, to stay in sync.
            args += ["-itsoffset", f"{self._source.video_delay:.6f}"]
        if self._timing is not None:  # frames with their own timestamps, in NUT (see `write`)
            return args + ["-f", "nut", "-i", "pipe:0"]
        args += ["-f", "rawvideo", "-pix_fmt", in_fmt, "-s", f"{self.width}x{self.height}"]
        return args + ["-framerate", f"{rate.numerator}/{rate.denominator}", "-i", "pipe:0"]

    def _video_args(self) -> list[str]:
        """ffmpeg output options of the video stream for a container output."""
        if self.codec == "ffv1":
            out_fmt = "gbrp16le" if self.bit_depth == 16 else "bgr0"
            return ["-c:v", "ffv1", "-level", "3", "-slicecrc", "1", "-pix_fmt", out_fmt]
        if self.codec == "libx264rgb":
            return ["-c:v", "libx264rgb", "-qp", "0", "-pix_fmt", "rgb24"]
        return _lossy_video_args(self.codec, self.crf, self.kind)

    def _encode_command(self) -> list[str]:
        """The whole ffmpeg command that encodes stdin's frames (and side streams) to the temp."""
        cmd = [_ffmpeg(), "-hide_banner", "-nostats", "-loglevel", "level+error", "-y"]
        cmd += self._pipe_input()
        side = self._plan is not None
        if side:
            cmd += _source_input(self._source.path)
        cmd += ["-map", "0:v:0", "-fps_mode", "passthrough"]
        if self._timing is not None:
            cmd += ["-enc_time_base:v", "demux"]
        if side:
            cmd += ["-map_metadata", "1", "-map_chapters", "1", *self._plan.args]
        else:
            cmd += ["-map_metadata", "-1"]
        if self.kind == "png":
            out_fmt = "rgb48be" if self.bit_depth == 16 else "rgb24"
            cmd += ["-c:v", "png", "-pix_fmt", out_fmt, "-fflags", "+bitexact"]
            cmd += ["-flags:v", "+bitexact", "-f", "image2", "-start_number", "0"]
            return cmd + [os.path.join(self._temp, "%06d.png")]
        cmd += self._video_args()
        cmd += _container_args(self.kind, side and self._plan.encodes_audio)
        return cmd + [self._temp]

    def _start_ffmpeg(self) -> None:
        cmd = self._encode_command()
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            start_new_session=True,  # a terminal's Ctrl-C reaches rppgedit, which stops it
        )
        safe_write.register_process(self._proc)
        _widen_pipe(self._proc.stdin)
        if self._timing is not None:
            self._nut = av.open(self._proc.stdin, mode="w", format="nut")
            stream = self._nut.add_stream("rawvideo", rate=round(self.fps))
            stream.width, stream.height = self.width, self.height
            stream.pix_fmt = "rgb48le" if self.bit_depth == 16 else "rgb24"
            stream.time_base = self._timing[1]
            stream.codec_context.time_base = self._timing[1]
            self._nut_stream = stream

    def _write_timed(self, data: np.ndarray) -> None:
        """Frames as NUT packets carrying the source's timestamps."""
        pts, time_base = self._timing
        if self.num_frames + len(data) > len(pts):
            raise _error(
                self.path, f"more frames than the {len(pts)} timestamps of the variable-rate input"
            )
        fmt = "rgb48le" if self.bit_depth == 16 else "rgb24"
        for i, frame in enumerate(data):
            video_frame = av.VideoFrame.from_ndarray(frame, format=fmt)
            video_frame.pts = int(pts[self.num_frames + i])
            video_frame.time_base = time_base
            for packet in self._nut_stream.encode(video_frame):
                self._nut.mux(packet)

    def _close_nut(self, flush: bool) -> None:
        if self._nut is None:
            return
        nut, self._nut = self._nut, None
        try:
            if flush:
                for packet in self._nut_stream.encode():
                    nut.mux(packet)
        finally:
            try:
                nut.close()
            except Exception:  # noqa: BLE001 - ffmpeg may already be gone; its error is reported
                if flush:
                    raise

    # -- writing -----------------------------------------------------------------------------

    def write(self, frames: np.ndarray) -> None:
        """Append frames: (T, H, W, 3) or (H, W, 3), uint8 (bit_depth 8) or uint16 (16)."""
        if self._closed:
            raise _error(self.path, "writer is closed")
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        expected = (self.height, self.width, 3)
        if frames.ndim != 4 or frames.shape[1:] != expected or frames.dtype != self.dtype:
            self.abort()
            raise _error(
                self.path,
                f"frames must be (T,{self.height},{self.width},3) {self.dtype.name}, got "
                f"{frames.shape} {frames.dtype}",
            )
        data = np.ascontiguousarray(frames, dtype=self.dtype)
        try:
            if self._file is not None:
                self._file.write(memoryview(data).cast("B"))
            elif self._nut is not None:
                self._write_timed(data)
            else:
                self._proc.stdin.write(memoryview(data).cast("B"))
        except RppgEditError:
            self.abort()
            raise
        except (BrokenPipeError, av.error.FFmpegError):
            problem = self._stop_ffmpeg()
            self.abort()
            raise _error(self.path, f"ffmpeg stopped while writing ({problem})") from None
        except OSError as e:
            self.abort()
            raise _error(self.path, f"cannot write ({e.strerror})") from None
        self.num_frames += len(frames)

    def _stop_ffmpeg(self) -> str:
        """Close ffmpeg's input, wait, and return its first error (or '' when it succeeded)."""
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        rc = self._proc.wait()
        safe_write.release_process(self._proc)
        self._stderr.seek(0)
        stderr = self._stderr.read().decode("utf-8", "replace")
        self._stderr.close()
        problem = _ffmpeg_error(stderr)
        if rc != 0 or problem:
            return problem or f"exit status {rc}"
        return ""

    def close(self) -> None:
        """Finish the file, check it, and move it into place."""
        if self._closed:
            return
        try:
            if self.num_frames == 0:
                raise _error(self.path, "no frames were written")
            if self._file is not None:
                self._file.seek(0)
                self._file.write(
                    _npy_header(self.dtype, (self.num_frames, self.height, self.width, 3))
                )
                self._file.close()
                if np.load(self._temp, mmap_mode="r").shape[0] != self.num_frames:
                    raise _error(self.path, "the written array has the wrong length")
            else:
                try:
                    self._close_nut(flush=True)
                except (OSError, av.error.FFmpegError):
                    pass  # ffmpeg stopped: its own error follows
                problem = self._stop_ffmpeg()
                if problem:
                    raise _error(self.path, f"ffmpeg failed ({problem})")
                self._verify_count()
            self._move_into_place()
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def _verify_count(self) -> None:
        if self.kind == "png":
            written = len([n for n in os.listdir(self._temp) if _FRAME_NAME.match(n)])
        else:
            written = _probe_container(self._temp).num_frames
        if written != self.num_frames:
            raise _error(self.path, f"wrote {written} frames instead of {self.num_frames}")

    def _move_into_place(self) -> None:
        try:
            if self.kind == "png" and os.path.isdir(self.path) and os.listdir(self.path):
                parent = os.path.dirname(os.path.abspath(self.path))
                old = tempfile.mkdtemp(
                    prefix=f".{os.path.basename(self.path)}.", suffix=".old", dir=parent
                )
                os.replace(self.path, old)
                try:
                    os.replace(self._temp, self.path)
                except OSError:
                    os.replace(old, self.path)
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(self._temp, self.path)
        except OSError as e:
            raise _error(
                self.path, f"cannot move the finished output into place ({e.strerror})"
            ) from None
        safe_write.release(self._temp)
        self._temp = None

    def abort(self) -> None:
        """Stop writing and remove the temporary output; the destination is left untouched."""
        self._closed = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close_nut(flush=False)
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._proc is not None:
            safe_write.release_process(self._proc)
            for stream in (self._proc.stdin, self._stderr):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
        if self._file is not None and not self._file.closed:
            self._file.close()
        if self._temp is not None:
            safe_write.remove(self._temp)
            self._temp = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self):
        if not getattr(self, "_closed", True):
            self.abort()


def write_video(
    path,
    frames: np.ndarray,
    fps: float,
    *,
    codec: str | None = None,
    overwrite: bool = False,
    inputs: Iterable = (),
    allow_lossy: bool = False,
    streams_from=None,
    crf: int | None = None,
) -> str:
    """Write (T, H, W, 3) uint8 or uint16 frames atomically (losslessly unless a sharing codec
    is named).

    Args:
      path: output path; the format follows the extension as in `VideoWriter`.
      frames: (T, H, W, 3) uint8, or uint16 for a 16-bit output (.mkv, .avi, .npy, folder).
      fps: frames per second.
      codec, overwrite, inputs, allow_lossy, streams_from, crf: as in `VideoWriter`.

    Returns:
      The path written (a folder path without trailing slash for PNG folders).
    """
    frames = np.asarray(frames)
    raw = os.fspath(path)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype not in (np.uint8, np.uint16):
        raise _error(
            raw, f"frames must be (T,H,W,3) uint8 or uint16, got {frames.shape} {frames.dtype}"
        )
    if frames.shape[0] == 0:
        raise _error(raw, "no frames to write")
    bit_depth = 16 if frames.dtype == np.uint16 else 8
    with VideoWriter(
        raw,
        fps,
        frames.shape[2],
        frames.shape[1],
        codec=codec,
        overwrite=overwrite,
        inputs=inputs,
        bit_depth=bit_depth,
        allow_lossy=allow_lossy,
        streams_from=streams_from,
        crf=crf,
    ) as writer:
        writer.write(frames)
    return writer.path


def reencode(
    src, dst, *, codec: str = "h264", crf: int | None = 23, overwrite: bool = False
) -> str:
    """Decode a video file and encode it again the way a sharing platform does, atomically.

    The video gets the writer's sharing-codec settings (yuv420p, BT.709, ``crf``), with every
    frame kept at its timestamp; audio is stream-copied where the container holds it (else
    re-encoded as `VideoWriter` does), subtitles, metadata and chapters follow as with
    ``streams_from``. Used to measure what of an edit survives a second compression (e.g. CRF 23
    then 28).

    Args:
      src: a container file ffmpeg reads.
      dst: the output file (.mp4/.mkv/.mov for h264 and h265, .webm/.mkv for vp9); never ``src``.
      codec: "h264", "h265" or "vp9".
      crf: as in `VideoWriter` (None -> the codec's default).
      overwrite: replace an existing ``dst``.

    Returns:
      The path written.

    Raises:
      RppgEditError: unreadable ``src``, ``dst`` equal to ``src`` or existing without
        ``overwrite``, a codec that is not a sharing codec or does not fit the container, CRF out
        of range, odd frame size, or an ffmpeg failure.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    kind, dst = _output_kind(dst)
    if codec not in _LOSSY_CODECS:
        raise _error(dst, f"reencode writes a sharing codec {sorted(_LOSSY_CODECS)}, not {codec!r}")
    if kind not in _CODEC_CONTAINERS[codec]:
        holds = "/".join(_CODEC_CONTAINERS[codec])
        raise _error(dst, f"codec {codec} cannot be written to {kind} (use {holds})")
    crf = _check_crf(dst, codec, crf)
    _check_encoder(dst, _LOSSY_CODECS[codec].encoder, f"codec {codec}")
    check_output_path(dst, inputs=(src,), overwrite=overwrite)
    source = _side_streams(src)
    video = _probe_container(src)
    if video.header.width % 2 or video.header.height % 2:
        size = f"{video.header.width}x{video.header.height}"
        raise _error(src, f"{codec} with yuv420p needs even frame sizes, got {size}")
    plan = _plan_side_streams(source.streams, kind, 0, dst)
    temp = _make_temp_file(dst)
    try:
        cmd = [_ffmpeg(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+error"]
        cmd += ["-y", *_input_args(src), "-map", "0:V:0", "-fps_mode", "passthrough"]
        cmd += ["-map_metadata", "0", "-map_chapters", "0", *plan.args]
        cmd += _lossy_video_args(codec, crf, kind) + _container_args(kind, plan.encodes_audio)
        proc = subprocess.run(cmd + [temp], capture_output=True)
        problem = _ffmpeg_error(proc.stderr.decode("utf-8", "replace"))
        if proc.returncode != 0 or problem:
            raise _error(dst, f"ffmpeg failed ({problem or 'exit status ' + str(proc.returncode)})")
        written = _probe_container(temp).num_frames
        if written != video.num_frames:
            raise _error(dst, f"wrote {written} frames instead of {video.num_frames}")
        safe_write.move_into_place(temp, dst)
    except BaseException:
        safe_write.remove(temp)
        raise
    return dst


# --------------------------------------------------------------------------------------------
# Inspecting written files.

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
    _check_input_path(path)
    streams = []
    with _open_av(path) as container:
        for stream in container.streams:
            info = {"index": stream.index, "type": stream.type, "codec": _codec_name(stream)}
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
    _check_input_path(path)
    if os.path.isdir(path):
        raise _error(path, "is a directory, not an MP4/MOV file")
    total = os.path.getsize(path)
    with open(path, "rb") as f:
        offset = 0
        while offset + 8 <= total:
            f.seek(offset)
            size, kind = struct.unpack(">I4s", f.read(8))
            header = 8
            if size == 1:
                if offset + 16 > total:
                    raise _error(path, f"not an MP4/MOV file (cut box header at byte {offset})")
                (size,) = struct.unpack(">Q", f.read(8))
                header = 16
            elif size == 0:
                size = total - offset
            if not all(32 <= c < 127 for c in kind):
                raise _error(path, f"not an MP4/MOV file (no box type at byte {offset})")
            if kind == b"moov":
                return True
            if kind == b"mdat":
                return False
            if size < header:
                raise _error(path, f"not an MP4/MOV file (bad box size {size} at byte {offset})")
            offset += size
    if offset == 0:
        raise _error(path, "not an MP4/MOV file")
    return False
