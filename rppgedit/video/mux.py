"""Writing a container file in-process through PyAV (the ffmpeg libraries PyAV ships).

`Output` opens a container (or an ``image2`` pattern of PNG files), adds the video stream with
its encoder settings (`VideoCodec`) and, from a source file, the side streams an edit keeps
(`SideAction`: audio and subtitle packets copied as they are, audio re-encoded, text subtitles
converted), with the source's global metadata and chapters. Side packets are muxed as the video
advances, so the muxer's interleaving queue holds a moment of the file, not all of it.

`Output.write` encodes on a thread of its own: the caller computes its next frames while the
last ones are encoded (the encoders release the GIL and run their own threads), as a pipe to an
ffmpeg process did before. Encoding errors come back from the next `write` or from `close`.

Timestamps follow ffmpeg's command line: every stream starts from the source's start (its
earliest stream at 0), the video ``video_delay`` seconds later, as ``-itsoffset`` set it.
"""

import dataclasses
import fractions
import queue
import threading

import av
import numpy as np

_BITEXACT = {"flags": "+bitexact"}

# ffmpeg's default channel layout for each channel count (av_channel_layout_default).
_DEFAULT_LAYOUTS = {
    1: "mono",
    2: "stereo",
    3: "2.1",
    4: "4.0",
    5: "5.0(side)",
    6: "5.1(side)",
    7: "6.1",
    8: "7.1",
}


@dataclasses.dataclass(frozen=True)
class VideoCodec:
    """How the video stream is encoded.

    Attributes:
      encoder: ffmpeg encoder name ("ffv1", "libx264rgb", "libx264", "png", ...).
      pix_fmt: the stored pixel format.
      options: encoder options, as (name, value) pairs.
      bt709: convert RGB to ``pix_fmt`` with the BT.709 matrix to limited range, and tag the
        stream so (the sharing codecs); else the pixels are only re-packed (lossless).
      codec_tag: the container's codec tag ("hvc1"), or None for the muxer's default.
    """

    encoder: str
    pix_fmt: str
    options: tuple[tuple[str, str], ...] = ()
    bt709: bool = False
    codec_tag: str | None = None


@dataclasses.dataclass(frozen=True)
class SideAction:
    """What happens to one audio or subtitle stream of the source.

    Attributes:
      index: the stream's index in the source.
      type: "audio" or "subtitle".
      encoder: None to copy its packets, else the encoder that re-encodes (audio) or converts
        (text subtitles) it.
      bit_rate: the audio encoder's bit rate (0: its default).
      stereo: downmix to two channels.
    """

    index: int
    type: str
    encoder: str | None = None
    bit_rate: int = 0
    stereo: bool = False


class EncodeError(Exception):
    """The ffmpeg libraries refused to encode or mux (message: their error)."""


def _audio_frame_size(encoder: str, rate: int) -> int | None:
    """Samples per encoded frame of the encoders that need a fixed size (libopus: 20 ms)."""
    return {"aac": 1024, "libmp3lame": 1152, "libopus": rate // 50}.get(encoder)


def _named_layout(decoder) -> str:
    """The decoder's channel layout, or the default one for its channel count when the source
    leaves the order unspecified ("1 channels"), which encoders refuse."""
    name = decoder.layout.name
    if name.endswith("channels"):
        name = _DEFAULT_LAYOUTS.get(decoder.channels, name)
    return name


class _SideStream:
    """One side stream of the output: its input stream, output stream and, when it is
    re-encoded, its decoder-to-encoder chain."""

    def __init__(self, out, source, action: SideAction, offset: float):
        self.action = action
        self.input = source.streams[action.index]
        self.offset = offset
        if action.encoder is None:
            self.output = out.add_stream_from_template(self.input)
        elif action.type == "audio":
            self._add_audio_encoder(out, action)
        else:
            self.output = out.add_stream(action.encoder)
            decoder = self.input.codec_context
            if not decoder.is_open:
                decoder.open()  # a text decoder makes its ASS header, which encoders need
            header = decoder.subtitle_header
            if header:
                self.output.codec_context.subtitle_header = header
        self.output.metadata.update(self.input.metadata)
        self.next_sample = None

    def _add_audio_encoder(self, out, action: SideAction) -> None:
        decoder = self.input.codec_context
        codec = av.Codec(action.encoder, "w")
        rate = decoder.sample_rate
        if codec.audio_rates and rate not in codec.audio_rates:  # the nearest it takes
            rate = min(codec.audio_rates, key=lambda r: (abs(r - rate), -r))
        layout = "stereo" if action.stereo else _named_layout(decoder)
        self.output = out.add_stream(action.encoder, rate=rate, options=dict(_BITEXACT))
        context = self.output.codec_context
        context.layout = layout
        context.format = codec.audio_formats[0].name if codec.audio_formats else "s16"
        if action.bit_rate:
            context.bit_rate = action.bit_rate
        self.rate = rate
        self.resampler = av.AudioResampler(
            format=context.format.name,
            layout=layout,
            rate=rate,
            frame_size=_audio_frame_size(action.encoder, rate),
        )

    def seconds(self, packet) -> float:
        """When ``packet`` comes, in the output's time (seconds)."""
        ts = packet.dts if packet.dts is not None else packet.pts
        if ts is None:
            return -1.0
        return float(ts * packet.time_base) - self.offset

    def packets(self, packet) -> list:
        """The output packets for one input packet (None flushes a re-encoding chain)."""
        if self.action.encoder is None:
            if packet is None or packet.size == 0:
                return []
            shift = round(self.offset / packet.time_base)
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self.output
            return [packet]
        if self.action.type == "audio":
            return self._audio(packet)
        return self._subtitle(packet)

    def _audio(self, packet) -> list:
        if packet is not None and packet.size == 0:
            return []  # the demuxer's end-of-stream packet: the chain is flushed at the end
        frames = self.input.codec_context.decode(packet)  # None flushes the decoder
        if frames and self.next_sample is None and frames[0].pts is not None:
            start = float(frames[0].pts * frames[0].time_base) - self.offset
            self.next_sample = max(0, round(start * self.rate))
        resampled = [out for frame in frames for out in self.resampler.resample(frame)]
        if packet is None:
            resampled += self.resampler.resample(None)
        out = []
        for frame in resampled:
            frame.pts = self.next_sample = self.next_sample or 0
            frame.time_base = fractions.Fraction(1, self.rate)
            self.next_sample += frame.samples
            out += self.output.encode(frame)
        if packet is None:
            out += self.output.encode(None)
        return out

    def _subtitle(self, packet) -> list:
        if packet is None or packet.size == 0 or packet.pts is None:
            return []
        subtitles = self.input.codec_context.decode2(packet)
        if subtitles is None:
            return []
        out = []
        tb = self.output.time_base
        start = float(packet.pts * packet.time_base) - self.offset
        duration = float((packet.duration or 0) * packet.time_base)
        for rect in subtitles.rects:
            text = getattr(rect, "ass", None)
            if not text:
                continue
            cue = av.subtitles.subtitle.SubtitleSet.create(
                text=text if isinstance(text, bytes) else text.encode(),
                start=0,
                end=round(duration * 1000),
                pts=0,
            )
            encoded = self.output.codec_context.encode_subtitle(cue)
            if encoded is None:
                continue
            encoded.pts = encoded.dts = round(start / tb)
            encoded.duration = round(duration / tb)
            encoded.time_base = tb
            encoded.stream = self.output
            out.append(encoded)
        return out


class Output:
    """A container being written: the video stream, side streams from ``source``, metadata.

    Args:
      path: the file to write (a ``%06d.png`` pattern for ``format`` "image2").
      format: ffmpeg muxer name ("matroska", "mp4", "image2", ...).
      video: the video encoder settings.
      width, height: frame size.
      bit_depth: 8 (rgb24 frames) or 16 (rgb48le).
      rate: the frame rate (a fraction), for a constant-rate stream.
      pts: the frames' timestamps in ``time_base`` units (a variable-rate source), or None for
        frame i at i / rate.
      time_base: the timestamps' unit (None: 1 / rate).
      source: an open PyAV input whose ``actions`` streams, metadata and chapters are copied.
      actions: what to do with each side stream of ``source``.
      video_delay: seconds the video starts after the source's start.
    """

    def __init__(
        self,
        path: str,
        format: str,
        video: VideoCodec,
        width: int,
        height: int,
        *,
        bit_depth: int = 8,
        rate: fractions.Fraction,
        pts: np.ndarray | None = None,
        time_base: fractions.Fraction | None = None,
        source=None,
        actions: tuple[SideAction, ...] = (),
        video_delay: float = 0.0,
    ):
        self.video = video
        self.in_format = "rgb48le" if bit_depth == 16 else "rgb24"
        self.pts = pts
        self.time_base = time_base or 1 / rate
        options = {"fflags": "+bitexact"}
        if format in ("mp4", "mov"):
            options["movflags"] = "+faststart"
        if format in ("matroska", "webm"):
            # Matroska stores an edit list's negative priming timestamps as they are (as
            # ffmpeg's command line writes them); shifting every stream would delay the video.
            options["avoid_negative_ts"] = "disabled"
        if format == "image2":
            options["start_number"] = "0"
        self.container = av.open(path, mode="w", format=format, container_options=options)
        self._error = None
        self._queue = None
        self._thread = None
        try:
            self._add_video(width, height, rate)
            self._sides = {}  # input stream index -> its side stream
            self._pending = None
            self._packets = iter(())
            if source is not None:
                self._add_sides(source, actions, video_delay)
            self._delay = round(video_delay / self.time_base)
            self.container.start_encoding()
        except BaseException:
            self.container.close()
            raise

    def _add_video(self, width: int, height: int, rate) -> None:
        video = self.video
        stream = self.container.add_stream(
            video.encoder, rate=rate if self.pts is None else round(rate)
        )
        stream.width, stream.height, stream.pix_fmt = width, height, video.pix_fmt
        stream.time_base = self.time_base
        context = stream.codec_context
        context.time_base = self.time_base
        context.options = {**dict(video.options), **_BITEXACT}
        context.thread_type = "AUTO"
        if video.bt709:
            context.colorspace = context.color_primaries = context.color_trc = 1  # BT.709
            context.color_range = 1  # limited ("tv")
        if video.codec_tag:
            context.codec_tag = video.codec_tag
        self.stream = stream

    def _add_sides(self, source, actions, video_delay: float) -> None:
        offset = (source.start_time or 0) / 1_000_000
        for action in actions:
            self._sides[action.index] = _SideStream(self.container, source, action, offset)
        metadata = dict(source.metadata)
        metadata.pop("encoder", None)
        self.container.metadata.update(metadata)
        chapters = []
        for chapter in source.chapters():
            shift = round(offset / chapter["time_base"])
            chapters.append(
                {**chapter, "start": chapter["start"] - shift, "end": chapter["end"] - shift}
            )
        if chapters:
            self.container.set_chapters(chapters)
        if self._sides:
            self._packets = source.demux(*(side.input for side in self._sides.values()))

    # -- the side streams, muxed as the video advances -----------------------------------------

    def _mux_sides_until(self, seconds: float | None) -> None:
        """Mux side packets that come before ``seconds`` (None: all that are left)."""
        while True:
            packet = self._pending
            if packet is None:
                packet = next(self._packets, None)
                if packet is None:
                    self._packets = iter(())
                    return
            side = self._sides[packet.stream.index]
            if seconds is not None and side.seconds(packet) > seconds:
                self._pending = packet
                return
            self._pending = None
            for out in side.packets(packet):
                self.container.mux(out)

    def _mux_video(self, packets) -> None:
        for packet in packets:
            if self._sides and packet.dts is not None:
                self._mux_sides_until(float(packet.dts * packet.time_base))
            self.container.mux(packet)

    # -- encoding ------------------------------------------------------------------------------

    def _encode(self, frames: np.ndarray, first: int) -> None:
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format=self.in_format)
            if self.video.bt709:
                frame = frame.reformat(
                    format=self.video.pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG"
                )
            n = first + i
            frame.pts = (int(self.pts[n]) if self.pts is not None else n) + self._delay
            frame.time_base = self.time_base
            self._mux_video(self.stream.encode(frame))

    def _finish(self) -> None:
        self._mux_video(self.stream.encode(None))
        if self._sides:
            self._mux_sides_until(None)
            for side in self._sides.values():
                if side.action.encoder is not None:
                    for packet in side.packets(None):
                        self.container.mux(packet)
        self.container.close()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # drain: the error is reported by the caller's next call
            try:
                if item == "finish":
                    self._finish()
                else:
                    self._encode(*item)
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                self._error = e

    def _raise_error(self) -> None:
        if self._error is not None:
            error = self._error
            if isinstance(error, av.error.FFmpegError | ValueError | OSError):
                raise EncodeError(str(error)) from None
            raise error

    def write(self, frames: np.ndarray, first: int, *, copy: bool = True) -> None:
        """Queue (T, H, W, 3) frames whose first is frame number ``first``: a private copy, or
        (``copy=False``) the array itself, which the caller must then leave unchanged."""
        self._raise_error()
        if self._thread is None:
            self._queue = queue.Queue(maxsize=2)
            self._thread = threading.Thread(target=self._work, name="rppgedit-encode", daemon=True)
            self._thread.start()
        self._queue.put((np.array(frames, copy=True) if copy else frames, first))

    def close(self) -> None:
        """Flush the encoders, mux what is left of the side streams and close the file."""
        if self._thread is None:
            self._finish()
            return
        self._queue.put("finish")
        self._queue.put(None)
        self._thread.join()
        self._thread = None
        self._raise_error()

    def abort(self) -> None:
        """Stop encoding and close the file without finishing it."""
        if self._thread is not None:
            self._error = self._error or EncodeError("aborted")
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        try:
            self.container.close()
        except (av.error.FFmpegError, ValueError, OSError):
            pass
