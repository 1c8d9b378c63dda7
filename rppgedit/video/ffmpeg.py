"""The ffmpeg libraries: what they can encode, how inputs are opened, and the ffmpeg program.

Probing, decoding and encoding run in-process through PyAV, whose wheels ship the ffmpeg
libraries (`rppgedit.video.probe`, `decode`, `mux`). PyAV's libraries have no capture-device
or virtual-camera I/O, so the live mode runs an ffmpeg program for those (`exe`: imageio-ffmpeg's,
the ``live`` extra, else ``ffmpeg`` on the PATH) through pipes (`rppgedit.live`). This module holds
what those share:

* what the libraries can encode: `has_encoder` (`check_encoder` refuses a codec they lack);
* the program's log, run with ``-loglevel level+...``: `first_error`;
* how an input is opened (`av_options`): as a plain file (the ``file`` protocol only) with a
  video demuxer (`INPUT_FORMATS`: no concat/ffconcat playlists, image patterns or HLS), so an
  input never pulls in other files; the decoders refuse frames over the memory budget
  (`decoder_options`, `rppgedit.validate`);
* `widen_pipe`: a 1 MiB pipe buffer for raw frames.
"""

import functools
import re
import shutil

import av

from rppgedit import validate
from rppgedit.errors import RppgEditError, path_error


@functools.cache
def exe() -> str:
    """Path of an ffmpeg program, for capture devices and virtual cameras: imageio-ffmpeg's
    (``pip install 'rppgedit[live]'``), else ``ffmpeg`` on the PATH; a one-line error without."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        found = shutil.which("ffmpeg")
        if found:
            return found
    raise RppgEditError(
        "capture devices and virtual cameras need an ffmpeg program: "
        "pip install 'rppgedit[live]', or put ffmpeg on the PATH"
    )


@functools.cache
def has_encoder(name: str) -> bool:
    """Whether the ffmpeg libraries PyAV ships have the encoder ``name``."""
    try:
        av.Codec(name, "w")
    except (av.error.FFmpegError, ValueError):
        return False
    return True


def check_encoder(path: str, encoder: str, what: str) -> None:
    """Refuses a codec whose encoder the ffmpeg libraries lack."""
    if not has_encoder(encoder):
        raise path_error(path, f"ffmpeg has no {encoder} encoder (needed for {what})")


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


def av_options() -> dict[str, str]:
    """`av.open` options that open a path as a plain file with a video demuxer, never as stdin, a
    device, a network URL or a playlist, whatever its name looks like."""
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
