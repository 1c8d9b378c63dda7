"""The bundled ffmpeg binary: finding it, opening inputs with it, and reading its log.

Encoding and the live mode's inputs and outputs run the ffmpeg binary shipped with imageio-ffmpeg
(`exe`) through subprocess pipes (`rppgedit.video.encode`, `rppgedit.live`); probing and decoding
run in-process through PyAV (`rppgedit.video.probe`, `rppgedit.video.decode`). This module holds
what those share:

* the binary and what it can do: `exe`, `encoders` (`check_encoder` refuses a codec it lacks);
* its log, run with ``-loglevel level+...``: `first_error` (an encode that logs an error is
  refused);
* how an input is opened, by ffmpeg (`input_args`, `source_input`) or PyAV (`av_options`): as a
  plain file (the ``file`` protocol only) with a video demuxer (`INPUT_FORMATS`: no
  concat/ffconcat playlists, image patterns or HLS), so an input never pulls in other files; the
  decoders refuse frames over the memory budget (``-max_pixels``, `decoder_options` for PyAV,
  `rppgedit.validate`);
* `widen_pipe`: a 1 MiB pipe buffer for raw frames.
"""

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


def decoder_options() -> dict[str, str]:
    """PyAV decoder options that refuse frames over the memory budget (``-max_pixels``)."""
    return {"max_pixels": str(validate.max_pixels())}


def widen_pipe(stream) -> None:
    """Ask Linux for a 1 MiB pipe buffer (3x faster transfers than the 64 KiB default)."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError):
        pass
