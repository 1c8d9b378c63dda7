"""The bundled ffmpeg binary: finding it, opening inputs with it, and reading its log.

Probing, encoding and the live mode's inputs and outputs run the ffmpeg binary shipped with
imageio-ffmpeg (`exe`) through subprocess pipes (`rppgedit.video.probe`, `rppgedit.video.encode`,
`rppgedit.live`); decoding runs in-process through PyAV (`rppgedit.video.decode`). This module
holds what those share:

* the binary and what it can do: `exe`, `encoders` (`check_encoder` refuses a codec it lacks),
  `format_traits` (alpha and bit depth of one of its pixel formats);
* its log, run with ``-loglevel level+...``: `first_error` (a decode or encode that logs an error
  is refused) and `parse_header` (the first video stream of its stream dump: size after display
  rotation, pixel format, rounded rate);
* how an input is opened, by ffmpeg (`input_args`, `source_input`) or PyAV (`av_options`): as a
  plain file (the ``file`` protocol only) with a video demuxer (`INPUT_FORMATS`: no
  concat/ffconcat playlists, image patterns or HLS), so an input never pulls in other files; the
  decoders refuse frames over the memory budget (``-max_pixels``, `rppgedit.validate`);
* `widen_pipe`: a 1 MiB pipe buffer for raw frames.
"""

import dataclasses
import functools
import os
import re
import subprocess

import imageio_ffmpeg

from rppgedit import validate
from rppgedit.errors import path_error


@functools.cache
def exe() -> str:
    """Path of the ffmpeg binary shipped with imageio-ffmpeg."""
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def _pixel_formats() -> dict[str, tuple[int, int, bool]]:
    """ffmpeg pixel formats: name -> (number of components, max bits per component, paletted)."""
    out = subprocess.run(
        [exe(), "-hide_banner", "-pix_fmts"], capture_output=True, text=True, check=True
    ).stdout
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 5 or len(parts[0]) != 5 or not parts[2].isdigit():
            continue
        depths = [int(d) for d in parts[4].split("-") if d.isdigit()]
        table[parts[1]] = (int(parts[2]), max(depths, default=8), parts[0][3] == "P")
    return table


def format_traits(pix_fmt: str) -> tuple[bool, int]:
    """(may carry alpha, bits per channel) of an ffmpeg pixel format."""
    components, depth, paletted = _pixel_formats().get(pix_fmt, (3, 8, False))
    return components in (2, 4) or paletted, depth


@functools.cache
def encoders() -> frozenset[str]:
    """Names of the encoders the bundled ffmpeg has (``ffmpeg -encoders``)."""
    out = subprocess.run(
        [exe(), "-hide_banner", "-encoders"], capture_output=True, text=True, check=True
    ).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


def check_encoder(path: str, encoder: str, what: str) -> None:
    """Refuses a codec whose encoder the bundled ffmpeg lacks."""
    if encoder not in encoders():
        raise path_error(path, f"the bundled ffmpeg has no {encoder} encoder (needed for {what})")


# --------------------------------------------------------------------------------------------
# Reading ffmpeg's log.


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


def first_error(stderr: str) -> str | None:
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
class StreamHeader:
    width: int
    height: int
    pix_fmt: str
    fps: float | None


def parse_header(stderr: str) -> StreamHeader | None:
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
        return StreamHeader(width, height, pix_fmt, fps if fps and fps > 0 else None)
    return None


# --------------------------------------------------------------------------------------------
# Opening inputs, and the pipes frames go through.


# Demuxers an input may be read with: video containers and elementary video streams. Playlists
# (concat/ffconcat, HLS, DASH), image patterns (image2) and network or device formats are refused,
# so an input never pulls in other files, and only the file protocol is allowed.
INPUT_FORMATS = (
    "matroska,webm,mov,mp4,m4a,3gp,3g2,mj2,avi,mpegts,mpeg,mpegvideo,flv,live_flv,ogg,asf,nut,"
    "ivf,yuv4mpegpipe,h264,hevc,m4v,mjpeg,gif,apng,dv,mxf,obu,av1,rm,wtv,nuv,smjpeg,webp_anim"
)


def input_args(path: str) -> list[str]:
    """ffmpeg options that open ``path`` as a plain file with a video demuxer, never as stdin, a
    device, a network URL or a playlist, and whose decoders refuse frames over the memory budget."""
    args = ["-protocol_whitelist", "file", "-format_whitelist", INPUT_FORMATS]
    args += ["-max_pixels", str(validate.max_pixels())]
    return args + ["-i", "file:" + os.path.abspath(path)]


def source_input(path: str) -> list[str]:
    """ffmpeg input options for a side-stream source: read as a plain file, never as stdin, a
    device, a network protocol or a playlist, whatever its name looks like."""
    args = ["-protocol_whitelist", "file", "-format_whitelist", INPUT_FORMATS]
    return args + ["-i", "file:" + os.path.abspath(path)]


def av_options() -> dict[str, str]:
    """The same restrictions for PyAV's `av.open`."""
    return {"protocol_whitelist": "file", "format_whitelist": INPUT_FORMATS}


def widen_pipe(stream) -> None:
    """Ask Linux for a 1 MiB pipe buffer (3x faster transfers than the 64 KiB default)."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError):
        pass
