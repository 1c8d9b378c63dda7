"""Encoding uint8 or uint16 RGB frames to video files, PNG folders and ``.npy`` arrays.

`VideoWriter` writes frames as they come, `write_video` a whole array, and `reencode` decodes a
file and encodes it again as a sharing platform would (same lossy settings, audio copied where
possible), to measure what survives a second compression. Frames go to the bundled ffmpeg
(`rppgedit.video.ffmpeg`) as raw ``rgb24`` (8-bit) or ``rgb48le`` (16-bit) on a pipe.

* Encoding is lossless by default: FFV1 (Niedermayer, RFC 9043) in ``.mkv``/``.avi``, H.264 in
  RGB with ``-qp 0`` (libx264rgb) in ``.mp4``/``.mov``, a ``%06d.png`` folder, or a ``.npy``
  array (`check_output_path` says which from the path, and refuses a bad one before any work).
  libx264rgb uses x264's ultrafast preset: lossless either way, and the fastest lossless choice
  for large frames (602 frames of 1080p: 8.5 CPU-s against 38 with the medium preset and 34 for
  FFV1, for 130 MB against 102 and 249 MB; at 320x320, 1.2 CPU-s and 62 MB against 2.6 and 41
  for FFV1).
* The sharing codecs are written when asked by name (``.webm`` holds only vp9): "h264"
  (libx264, High profile), "h265" (libx265, tagged ``hvc1`` in MP4/MOV) and "vp9"
  (libvpx-vp9, constant quality), all yuv420p with BT.709 matrix, primaries, transfer and
  limited range tagged, at a CRF (defaults 23, 28, 32); MP4/MOV get ``+faststart`` (the ``moov``
  index first, see `rppgedit.video.probe.is_faststart`). They warn (`LossyOutputWarning`) with
  what was measured: estimators still read an edit after x264 CRF 23, fewer after higher CRF.
* ``streams_from=`` (the edit's input) brings the input's audio, subtitles, global metadata and
  chapters into a container output. Audio is stream-copied (bit-exact, never cut or padded:
  the video starts where the input's video starts, no ``-shortest``) when the container can hold
  its codec, else re-encoded (AAC 192k in MP4/MOV, Opus 128k in WebM, MP3 or PCM in AVI);
  text subtitles are converted to the container's text format and bitmap ones dropped where
  the container cannot hold them. `VideoWriter.stream_notes` says what happened to each stream.
  A variable-frame-rate input's frame timestamps are kept.
* Encodes are reproducible: ``+bitexact`` muxing and coding, so the same frames (and side
  streams) give the same file bytes; frames are written without rotation metadata.
* Writes follow `rppgedit.safe_write`: a temporary file (or folder) in the destination directory,
  created with O_EXCL, is filled, checked (frame count) and renamed over the destination with
  `os.replace`; on any failure or signal it is removed and nothing is left behind. An input of the
  run (after links) is never overwritten.
"""

import dataclasses
import fractions
import os
import re
import shutil
import struct
import subprocess
import tempfile
import warnings
from collections.abc import Iterable

import av
import numpy as np

from rppgedit import safe_write
from rppgedit.errors import RppgEditError, path_error
from rppgedit.video import ffmpeg, probe

_FRAME_NAME = re.compile(r"^\d{6,}\.png$")

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


# --------------------------------------------------------------------------------------------
# Output paths.


def _output_kind(path: str) -> tuple[str, str]:
    """(kind, normalised path): kind is 'png', 'npy' or a container extension ('.mkv', ...)."""
    is_dir_like = path.endswith(("/", os.sep)) or os.path.isdir(path)
    stripped = path.rstrip("/" + os.sep) or path
    ext = os.path.splitext(os.path.basename(stripped))[1].lower()
    if os.path.isdir(path) and (ext in _CONTAINER_FORMATS or ext == ".npy"):
        raise path_error(path, f"exists and is a directory (a {ext} output must be a file)")
    if is_dir_like or ext == "":
        return "png", stripped
    if ext == ".npy":
        return "npy", path
    if ext in _CONTAINER_FORMATS:
        return ext, path
    raise path_error(
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
            raise path_error(path, "exists and is a directory")
        safe_write.check_destination(path, inputs=inputs, overwrite=overwrite)
        return
    safe_write.check_destination(normal, inputs=inputs, overwrite=True)
    if os.path.lexists(normal) and not os.path.isdir(normal):
        raise path_error(path, "exists and is not a directory")
    if os.path.isdir(normal):
        entries = os.listdir(normal)
        if entries and not overwrite:
            raise path_error(path, "output folder exists and is not empty (pass --overwrite)")
        if any(not _FRAME_NAME.match(e) for e in entries):
            raise path_error(
                path, "folder holds files other than frame PNGs; refusing to replace it"
            )
        for entry in entries:
            for source in inputs:
                if source is not None and safe_write.same_file(os.path.join(normal, entry), source):
                    raise path_error(
                        path, f"holds the input {os.fspath(source)}; refusing to replace it"
                    )


# --------------------------------------------------------------------------------------------
# Encoder settings.


def _check_container(path: str, codec: str, kind: str) -> None:
    """A one-line error unless a `kind` container (extension) can hold `codec`."""
    if kind not in _CODEC_CONTAINERS[codec]:
        holds = "/".join(_CODEC_CONTAINERS[codec])
        raise path_error(path, f"codec {codec} cannot be written to {kind} (use {holds})")


def _check_crf(path: str, codec: str, crf) -> int | None:
    """The CRF to use: the codec's default for None; refuses a CRF out of range or for a
    lossless codec."""
    lossy = _LOSSY_CODECS.get(codec)
    if lossy is None:
        if crf is not None:
            raise path_error(
                path, f"crf applies to the lossy codecs {sorted(_LOSSY_CODECS)}, not {codec}"
            )
        return None
    if crf is None:
        return lossy.default_crf
    if isinstance(crf, bool) or not isinstance(crf, int | np.integer):
        raise path_error(path, f"crf must be an integer, got {crf!r}")
    if not 0 <= int(crf) <= lossy.max_crf:
        raise path_error(path, f"crf {crf} out of range for {codec} (0-{lossy.max_crf})")
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
# The side streams (audio, subtitles) brought from the input.


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
    return ("libmp3lame", "192k") if "libmp3lame" in ffmpeg.encoders() else ("pcm_s16le", "")


def _audio_plan(stream: probe.SideStream, kind: str, out: int, path: str) -> tuple[list, str, bool]:
    """(ffmpeg codec options, note, encoded) for audio stream ``stream`` as output audio ``out``."""
    label = f"audio #{stream.number} {stream.codec}"
    target = _audio_encoder(stream.codec, kind)
    if target is None:
        return [f"-c:a:{out}", "copy"], f"{label}: copied", False
    encoder, bitrate = target
    ffmpeg.check_encoder(path, encoder, f"{label} in {kind[1:]}")
    name = _AUDIO_ENCODER_NAMES[encoder]
    args = [f"-c:a:{out}", encoder] + ([f"-b:a:{out}", bitrate] if bitrate else [])
    note = f"{label}: re-encoded to {name} ({kind[1:]} cannot hold {stream.codec})"
    if encoder == "libmp3lame" and stream.channels > 2:
        args += [f"-ac:a:{out}", "2"]
        note += ", downmixed to stereo (mp3 holds at most 2 channels)"
    return args, note, True


def _subtitle_plan(stream: probe.SideStream, kind: str, out: int) -> tuple[list | None, str]:
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
    streams: Iterable[probe.SideStream], kind: str, input_index: int, path: str
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


# --------------------------------------------------------------------------------------------
# Writing.


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
            raise path_error(self.path, f"crf does not apply to a {kind} output")
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
                raise path_error(path, f"codec {codec!r} does not apply to a {kind} output")
            return None
        codec = codec or _DEFAULT_CODEC[kind]
        if codec not in _CODEC_CONTAINERS:
            raise path_error(
                path, f"unknown codec {codec!r}; use one of {sorted(_CODEC_CONTAINERS)}"
            )
        _check_container(path, codec, kind)
        if codec in _LOSSY_CODECS and (self.width % 2 or self.height % 2):
            raise path_error(
                path,
                f"{codec} with yuv420p needs even frame sizes, got {self.width}x{self.height}",
            )
        if self.bit_depth == 16 and codec != "ffv1":
            raise path_error(
                path,
                f"codec {codec} is 8-bit only; write 16-bit frames to .mkv, .avi, .npy or a folder",
            )
        encoder = _LOSSY_CODECS[codec].encoder if codec in _LOSSY_CODECS else codec
        ffmpeg.check_encoder(path, encoder, f"codec {codec}")
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
        self._source = probe.side_streams(source)
        self._plan = _plan_side_streams(self._source.streams, self.kind, 1, self.path)
        self.stream_notes.extend(self._plan.notes)

    def _source_timing(self, source: str):
        """(pts from 0, time base) of a variable-frame-rate source, so that the output keeps its
        frames' timestamps; None for a constant rate (frame i at i / fps)."""
        if self.kind not in _CONTAINER_FORMATS or os.path.isdir(source):
            return None
        if source.lower().endswith(".npy"):
            return None
        container = probe.probe_container(source)
        if not container.variable or container.pts is None:
            return None
        return container.pts - container.pts[0], container.time_base

    def _open_temp(self) -> None:
        if self.kind == "png":
            self._temp = safe_write.make_temp_dir(self.path)
        else:
            self._temp = safe_write.make_temp_file(self.path)
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
            return ["-c:v", "libx264rgb", "-qp", "0", "-preset", "ultrafast", "-pix_fmt", "rgb24"]
        return _lossy_video_args(self.codec, self.crf, self.kind)

    def _encode_command(self) -> list[str]:
        """The whole ffmpeg command that encodes stdin's frames (and side streams) to the temp."""
        cmd = [ffmpeg.exe(), "-hide_banner", "-nostats", "-loglevel", "level+error", "-y"]
        cmd += self._pipe_input()
        side = self._plan is not None
        if side:
            cmd += ffmpeg.source_input(self._source.path)
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
        ffmpeg.widen_pipe(self._proc.stdin)
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
            raise path_error(
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
            raise path_error(self.path, "writer is closed")
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        expected = (self.height, self.width, 3)
        if frames.ndim != 4 or frames.shape[1:] != expected or frames.dtype != self.dtype:
            self.abort()
            raise path_error(
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
            raise path_error(self.path, f"ffmpeg stopped while writing ({problem})") from None
        except OSError as e:
            self.abort()
            raise path_error(self.path, f"cannot write ({e.strerror})") from None
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
        problem = ffmpeg.first_error(stderr)
        if rc != 0 or problem:
            return problem or f"exit status {rc}"
        return ""

    def close(self) -> None:
        """Finish the file, check it, and move it into place."""
        if self._closed:
            return
        try:
            if self.num_frames == 0:
                raise path_error(self.path, "no frames were written")
            if self._file is not None:
                self._file.seek(0)
                self._file.write(
                    _npy_header(self.dtype, (self.num_frames, self.height, self.width, 3))
                )
                self._file.close()
                if np.load(self._temp, mmap_mode="r").shape[0] != self.num_frames:
                    raise path_error(self.path, "the written array has the wrong length")
            else:
                try:
                    self._close_nut(flush=True)
                except (OSError, av.error.FFmpegError):
                    pass  # ffmpeg stopped: its own error follows
                problem = self._stop_ffmpeg()
                if problem:
                    raise path_error(self.path, f"ffmpeg failed ({problem})")
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
            written = probe.probe_container(self._temp).num_frames
        if written != self.num_frames:
            raise path_error(self.path, f"wrote {written} frames instead of {self.num_frames}")

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
            raise path_error(
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
        raise path_error(
            raw, f"frames must be (T,H,W,3) uint8 or uint16, got {frames.shape} {frames.dtype}"
        )
    if frames.shape[0] == 0:
        raise path_error(raw, "no frames to write")
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
        raise path_error(
            dst, f"reencode writes a sharing codec {sorted(_LOSSY_CODECS)}, not {codec!r}"
        )
    _check_container(dst, codec, kind)
    crf = _check_crf(dst, codec, crf)
    ffmpeg.check_encoder(dst, _LOSSY_CODECS[codec].encoder, f"codec {codec}")
    check_output_path(dst, inputs=(src,), overwrite=overwrite)
    source = probe.side_streams(src)
    video = probe.probe_container(src)
    if video.header.width % 2 or video.header.height % 2:
        size = f"{video.header.width}x{video.header.height}"
        raise path_error(src, f"{codec} with yuv420p needs even frame sizes, got {size}")
    plan = _plan_side_streams(source.streams, kind, 0, dst)
    temp = safe_write.make_temp_file(dst)
    try:
        cmd = [ffmpeg.exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+error"]
        cmd += ["-y", *ffmpeg.input_args(src), "-map", "0:V:0", "-fps_mode", "passthrough"]
        cmd += ["-map_metadata", "0", "-map_chapters", "0", *plan.args]
        cmd += _lossy_video_args(codec, crf, kind) + _container_args(kind, plan.encodes_audio)
        proc = subprocess.run(cmd + [temp], capture_output=True)
        problem = ffmpeg.first_error(proc.stderr.decode("utf-8", "replace"))
        if proc.returncode != 0 or problem:
            raise path_error(
                dst, f"ffmpeg failed ({problem or 'exit status ' + str(proc.returncode)})"
            )
        written = probe.probe_container(temp).num_frames
        if written != video.num_frames:
            raise path_error(dst, f"wrote {written} frames instead of {video.num_frames}")
        safe_write.move_into_place(temp, dst)
    except BaseException:
        safe_write.remove(temp)
        raise
    return dst
