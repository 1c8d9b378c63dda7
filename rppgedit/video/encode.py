"""Encoding uint8 or uint16 RGB frames to video files, PNG folders and ``.npy`` arrays.

`VideoWriter` writes frames as they come, `write_video` a whole array, and `reencode` decodes a
file and encodes it again as a sharing platform would (same lossy settings, audio copied where
possible), to measure what survives a second compression. Containers and PNG folders are written
in-process through PyAV (`rppgedit.video.mux`, encoding on a thread of its own); this module
chooses the codec, its settings and what happens to each side stream, and keeps the writes safe.

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
  A variable-frame-rate input's frame timestamps are kept. An AAC track whose priming samples
  an MP4 edit list hides keeps them at their negative timestamps in Matroska (PyAV cannot set the
  track's CodecDelay), so decoding that track gives the priming samples too; MP4 and MOV
  outputs keep the edit list.
* Lossless encodes are reproducible: ``+bitexact`` muxing and coding, so the same frames (and
  side streams) give the same file bytes with FFV1, libx264rgb and PNG; frames are written without
  rotation metadata. The sharing codecs' multi-threaded encoders are not held to this: libx264 at
  the medium preset (threaded look-ahead, MB-tree rate control) made different bitstreams of the
  same frames (measured: 602 frames of the shared clip at CRF 23, encoded five times in one
  process, gave two different files, the first packets equal; the PSNR of the edit after it
  varied in the fourth decimal).
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
import tempfile
import warnings
from collections.abc import Iterable

import av
import numpy as np

from rppgedit import safe_write
from rppgedit.errors import path_error
from rppgedit.video import decode, ffmpeg, mux, probe

_FRAME_NAME = re.compile(r"^\d{6,}\.png$")

_NPY_HEADER_BYTES = 128

# Frames decoded at a time by `reencode`.
_REENCODE_CHUNK = 32

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


def _lossy_video(codec: str, crf: int, kind: str) -> mux.VideoCodec:
    """The encoder settings of a sharing codec: yuv420p converted with the BT.709 matrix to
    limited range and tagged so, at ``crf``."""
    if codec == "h264":
        options = {"profile": "high", "preset": "medium", "crf": str(crf)}
        return mux.VideoCodec("libx264", "yuv420p", tuple(options.items()), bt709=True)
    if codec == "h265":
        options = {"preset": "medium", "crf": str(crf), "x265-params": "log-level=error"}
        tag = "hvc1" if kind in (".mp4", ".mov") else None  # Apple players refuse hev1
        return mux.VideoCodec("libx265", "yuv420p", tuple(options.items()), True, tag)
    # vp9: constant quality needs a bit rate of 0
    options = {"crf": str(crf), "b": "0", "row-mt": "1"}
    return mux.VideoCodec("libvpx-vp9", "yuv420p", tuple(options.items()), bt709=True)


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
    """How the side streams go into the output: one action per stream kept, and the notes."""

    actions: tuple[mux.SideAction, ...]
    notes: tuple[str, ...]


_AUDIO_ENCODER_NAMES = {
    "aac": "aac",
    "libopus": "opus",
    "libmp3lame": "mp3",
    "pcm_s16le": "pcm_s16le",
}


def _audio_encoder(codec: str, kind: str) -> tuple[str, int] | None:
    """None when ``kind`` holds the audio ``codec`` as it is, else (encoder, bit rate or 0)."""
    if kind == ".mkv" or codec in _AUDIO_HELD[kind]:
        return None
    if kind in _PCM_HELD and codec.startswith("pcm_"):
        return None
    if kind in (".mp4", ".mov"):
        return "aac", 192_000
    if kind == ".webm":
        return "libopus", 128_000
    return ("libmp3lame", 192_000) if ffmpeg.has_encoder("libmp3lame") else ("pcm_s16le", 0)


def _audio_plan(stream: probe.SideStream, kind: str, path: str) -> tuple[mux.SideAction, str]:
    """(action, note) for audio stream ``stream``."""
    label = f"audio #{stream.number} {stream.codec}"
    target = _audio_encoder(stream.codec, kind)
    if target is None:
        return mux.SideAction(stream.index, "audio"), f"{label}: copied"
    encoder, bit_rate = target
    ffmpeg.check_encoder(path, encoder, f"{label} in {kind[1:]}")
    name = _AUDIO_ENCODER_NAMES[encoder]
    note = f"{label}: re-encoded to {name} ({kind[1:]} cannot hold {stream.codec})"
    stereo = encoder == "libmp3lame" and stream.channels > 2
    if stereo:
        note += ", downmixed to stereo (mp3 holds at most 2 channels)"
    return mux.SideAction(stream.index, "audio", encoder, bit_rate, stereo), note


def _subtitle_plan(stream: probe.SideStream, kind: str) -> tuple[mux.SideAction | None, str]:
    """(action, or None to drop it; note) for a subtitle stream."""
    label, container = f"subtitle #{stream.number} {stream.codec}", kind[1:]
    copy = mux.SideAction(stream.index, "subtitle")
    if kind == ".mkv":
        if stream.codec == "mov_text":  # the one text format Matroska lacks
            note = f"{label}: converted to subrip (mkv cannot hold mov_text)"
            return mux.SideAction(stream.index, "subtitle", "srt"), note
        return copy, f"{label}: copied"
    target = _SUBTITLE_TEXT_FORMAT[kind]
    if target is None:
        return None, f"{label}: dropped ({container} cannot hold subtitles)"
    if stream.bitmap:
        return None, f"{label}: dropped ({container} cannot hold bitmap subtitles)"
    if not stream.text:
        return None, f"{label}: dropped ({container} holds only text subtitles)"
    if stream.codec == target:
        return copy, f"{label}: copied"
    return mux.SideAction(stream.index, "subtitle", target), f"{label}: converted to {target}"


def _plan_side_streams(streams: Iterable[probe.SideStream], kind: str, path: str) -> _StreamPlan:
    """Maps each audio and subtitle stream into a ``kind`` container.

    Audio is copied when the container holds its codec, else re-encoded; subtitles are copied,
    converted to the container's text format, or dropped. ``path`` names the output in errors.
    """
    actions, notes = [], []
    for stream in streams:
        if stream.type == "audio":
            action, note = _audio_plan(stream, kind, path)
        else:
            action, note = _subtitle_plan(stream, kind)
        notes.append(note)
        if action is not None:
            actions.append(action)
    return _StreamPlan(tuple(actions), tuple(notes))


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
      RppgEditError: unsupported type or codec, CRF out of range, codec missing from PyAV's
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
        self._timing = None
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
        self._output = None
        self._side_source = None  # the open `streams_from` input the output's side streams read
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
        self._plan = _plan_side_streams(self._source.streams, self.kind, self.path)
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
                self._open_output()
        except BaseException:
            self.abort()
            raise

    def _video_codec(self) -> mux.VideoCodec:
        """The video encoder settings of this output."""
        if self.kind == "png":
            return mux.VideoCodec("png", "rgb48be" if self.bit_depth == 16 else "rgb24")
        if self.codec == "ffv1":
            pix_fmt = "gbrp16le" if self.bit_depth == 16 else "bgr0"
            return mux.VideoCodec("ffv1", pix_fmt, (("level", "3"), ("slicecrc", "1")))
        if self.codec == "libx264rgb":
            options = (("qp", "0"), ("preset", "ultrafast"))
            return mux.VideoCodec("libx264rgb", "rgb24", options)
        return _lossy_video(self.codec, self.crf, self.kind)

    def _open_output(self) -> None:
        """Opens the temporary container (or PNG pattern) with its side streams."""
        rate = fractions.Fraction(self.fps).limit_denominator(1_000_000)
        pts, time_base = self._timing if self._timing is not None else (None, None)
        if self.kind == "png":
            target, format = os.path.join(self._temp, "%06d.png"), "image2"
        else:
            target, format = self._temp, _CONTAINER_FORMATS[self.kind]
        source, actions, delay = None, (), 0.0
        if self._plan is not None:
            source, actions = probe.open_av(self._source.path), self._plan.actions
            delay = self._source.video_delay if self._source.video_delay > 5e-4 else 0.0
        try:
            self._output = mux.Output(
                target,
                format,
                self._video_codec(),
                self.width,
                self.height,
                bit_depth=self.bit_depth,
                rate=rate,
                pts=pts,
                time_base=time_base,
                source=source,
                actions=actions,
                video_delay=delay,
            )
        except (av.error.FFmpegError, ValueError, OSError) as e:
            if source is not None:
                source.close()
            raise path_error(self.path, f"ffmpeg cannot start the encode ({e})") from None
        self._side_source = source

    # -- writing -----------------------------------------------------------------------------

    def write(self, frames: np.ndarray, *, unchanging: bool = False) -> None:
        """Append frames: (T, H, W, 3) or (H, W, 3), uint8 (bit_depth 8) or uint16 (16).

        Container outputs are encoded on a thread of their own, from a private copy of `frames`;
        `unchanging=True` says that the caller will not change the array afterwards, and the
        encoder then reads it without the copy (at 1080p, 6 MB a frame less to write)."""
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
        if self._timing is not None and self.num_frames + len(frames) > len(self._timing[0]):
            self.abort()
            raise path_error(
                self.path,
                f"more frames than the {len(self._timing[0])} timestamps of the variable-rate "
                "input",
            )
        try:
            if self._file is not None:
                data = np.ascontiguousarray(frames, dtype=self.dtype)
                self._file.write(memoryview(data).cast("B"))
            else:
                self._output.write(frames, self.num_frames, copy=not unchanging)
        except mux.EncodeError as e:
            self.abort()
            raise path_error(self.path, f"ffmpeg stopped while writing ({e})") from None
        except OSError as e:
            self.abort()
            raise path_error(self.path, f"cannot write ({e.strerror})") from None
        self.num_frames += len(frames)

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
                output, self._output = self._output, None
                try:
                    output.close()
                except mux.EncodeError as e:
                    output.abort()
                    raise path_error(self.path, f"ffmpeg failed ({e})") from None
                finally:
                    self._close_side_source()
                self._verify_count()
            self._move_into_place()
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def _close_side_source(self) -> None:
        source, self._side_source = self._side_source, None
        if source is not None:
            source.close()

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
        output, self._output = self._output, None
        if output is not None:
            output.abort()
        self._close_side_source()
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
    check_output_path(dst, inputs=(src,), overwrite=overwrite)
    video = probe.probe_container(src)
    width, height = video.header.width, video.header.height
    if width % 2 or height % 2:
        raise path_error(src, f"{codec} with yuv420p needs even frame sizes, got {width}x{height}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LossyOutputWarning)  # asked for by name
        writer = VideoWriter(
            dst,
            video.fps,
            width,
            height,
            codec=codec,
            crf=crf,
            overwrite=overwrite,
            inputs=(src,),
            streams_from=src,
        )
    from rppgedit.video import quantise  # imports JAX: only when re-encoding

    with writer:
        for _, frames in decode.iter_chunks(src, _REENCODE_CHUNK, allow_16bit=True):
            writer.write(quantise.to_uint8(frames))  # the sharing codecs are 8-bit
        if writer.num_frames != video.num_frames:  # checked before the output is moved in place
            raise path_error(dst, f"wrote {writer.num_frames} frames instead of {video.num_frames}")
    return writer.path
