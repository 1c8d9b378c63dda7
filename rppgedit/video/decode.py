"""Decoding video sources to uint8 or uint16 RGB frames, bit-exactly.

`read_video` reads a whole container file, PNG folder or ``.npy`` array into a `Video`;
`iter_chunks` streams one as chunks of frames (one decoder for the whole file, memory of about two
chunks however long it is). What a source holds is read first, without decoding
(`rppgedit.video.probe`).

Container files and the PNG files of a folder are decoded in-process by PyAV (the FFmpeg
libraries' maintained binding): every decoded frame, none resampled, re-timed, dropped or
duplicated, converted by swscale to ``rgb24`` (8-bit) or ``rgb48le`` (16-bit), the same pixels the
ffmpeg command line gives, with each frame's own pts. That is 3.5x faster than piping raw frames
out of an ffmpeg process at 1080p (602 frames: 4.1 s against 14.3 s, most of it the kernel copying
3.7 GB through the pipe). ``.npy`` arrays are memory-mapped.

Policies (all refusals raise `RppgEditError` with a one-line message naming the file):

* grayscale sources are returned as RGB (R = G = B);
* sources with an alpha channel (RGBA PNGs, ``yuva``/``rgba`` videos) are accepted only when
  every pixel is fully opaque (alpha dropped); any transparency is refused, since there is no
  right background to composite onto;
* sources with more than 8 bits per channel are refused unless ``allow_16bit=True``, in which case
  frames are returned as uint16 spanning 0..65535 (ffmpeg's ``rgb48le``); reading them as 8-bit
  would silently discard the precision an edit may need;
* decoding that logs an FFmpeg error (truncated or corrupt file) is refused, because frames would
  be missing or damaged;
* display-rotation metadata is applied (as ffmpeg's autorotate does), so frames come out upright;
* a stream whose frame size changes part-way is refused (the command line would rescale it);
* PNG folders and ``.npy`` files carry no frame rate: pass ``fps=``; without it 30 fps is assumed
  and a `probe.FrameRateAssumedWarning` is emitted.
"""

import dataclasses
import os
import queue
import threading
from collections.abc import Iterator

import av
import numpy as np

from rppgedit import validate
from rppgedit.errors import RppgEditError, path_error
from rppgedit.video import avlog, ffmpeg, probe


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


# --------------------------------------------------------------------------------------------
# Container files and PNG folders, decoded in-process by PyAV.


def _upright(pixels: np.ndarray, orientation: tuple[int, bool]) -> np.ndarray:
    turns, mirrored = orientation
    if mirrored:
        pixels = pixels[:, ::-1]
    return np.rot90(pixels, turns) if turns else pixels


class _AvFrames:
    """Raw frames decoded in-process by PyAV into caller-owned buffers: a container's video stream,
    or (``files``) a folder's PNG files one after another.

    Attributes:
      path: the file or folder, for error messages.
      shape: (H, W, channels) of a decoded frame (channels 4 when decoded with alpha).
      dtype: uint8, or little-endian uint16 for 16-bit sources.
      count: frames handed out so far.
      pts, time_base: each frame's presentation timestamp (kept only with ``keep_pts``: a stream
        read chunk by chunk needs none) and its unit (containers).
    """

    def __init__(
        self, path, height, width, *, alpha, bit_depth, max_frames=None, files=None, keep_pts=False
    ):
        self.path = path
        self.channels = 4 if alpha else 3
        self.dtype = np.dtype("<u2") if bit_depth == 16 else np.dtype(np.uint8)
        self.shape = (height, width, self.channels)
        if alpha:
            self._format = "rgba64le" if bit_depth == 16 else "rgba"
        else:
            self._format = "rgb48le" if bit_depth == 16 else "rgb24"
        self.count = 0
        self.pts: list[int | None] = []
        self._keep_pts = keep_pts
        self.time_base = None
        self.max_frames = max_frames
        self.finished = False
        self._orientation = None  # from the first frame's display matrix
        self._container = None
        self._stream = None  # the container's video stream being decoded
        self._name = path  # the file a refusal names: the container, or the PNG being decoded
        self._log_start = avlog.ERRORS.open()
        if files is not None:
            self._frames = self._png_frames(files)
            return
        try:
            self._container = probe.open_av(path)
            stream = probe.video_stream(self._container, path)
            # Frame and slice threads, except for FFV1, whose frames are coded as independent
            # slices: slice threads alone decode the shared 320x320 FFV1 clip in 1.65 s against
            # 1.9-2.4 s with frame threads as well (H.264 1080p: 1.6 s with both, 2.5-2.9 s
            # without frame threads).
            stream.thread_type = "SLICE" if stream.codec_context.name == "ffv1" else "AUTO"
            # Decoders refuse frames over the memory budget (a size change part-way included).
            stream.codec_context.options = ffmpeg.decoder_options()
            self.time_base = stream.time_base
            self._stream = stream
            self._frames = self._container.decode(stream)
        except BaseException:
            avlog.ERRORS.close(self._log_start)
            self.finished = True
            raise

    def _png_frames(self, files):
        """Each PNG file, whole, as one packet to a fresh FFmpeg PNG decoder (what the ``png_pipe``
        demuxer would hand it, without opening a container per file; a decoder kept across files
        would treat each as the next frame of an animation); an error names the file."""
        for file in files:
            self._name = file
            decoder = av.CodecContext.create("png", "r")
            decoder.options = ffmpeg.decoder_options()
            try:
                with open(file, "rb") as f:
                    packet = av.Packet(f.read())
                frames = decoder.decode(packet)
            except OSError as e:
                raise path_error(file, f"cannot read ({e.strerror})") from None
            except av.error.FFmpegError as e:
                raise path_error(file, f"not a readable PNG (ffmpeg: {e})") from None
            problem = avlog.ERRORS.first_since(self._log_start)
            if len(frames) != 1 or problem:
                raise path_error(file, f"not a readable PNG (ffmpeg: {problem or 'no image'})")
            yield frames[0]

    def _next(self):
        if self.max_frames is not None and self.count >= self.max_frames:
            return None
        try:
            return next(self._frames)
        except StopIteration:
            return None
        except RppgEditError:
            self.finish(check=False)
            raise
        except av.error.FFmpegError as e:
            self.finish(check=False)
            raise path_error(self.path, f"not a readable video (ffmpeg: {e})") from None

    def readinto(self, out: np.ndarray) -> int:
        """Fill ``out`` ((K, H, W, 3) of the output dtype) with up to K frames; returns how many."""
        filled = 0
        while filled < len(out):
            frame = self._next()
            if frame is None:
                break
            out[filled] = self._pixels(frame)
            if self._keep_pts:
                self.pts.append(frame.pts)
            filled += 1
            self.count += 1
        return filled

    def sparse(self, every: int) -> Iterator[np.ndarray | None]:
        """Each frame in order: its pixels (as `readinto` gives them) when its index is a multiple
        of ``every`` or it is the last frame, else None (decoded, never converted to RGB)."""
        if self.max_frames is not None:
            raise ValueError("sparse reads the whole stream (max_frames is not supported)")
        frame = self._next()
        while frame is not None:
            following = self._next()  # one frame ahead, to know the last one
            wanted = self.count % every == 0 or following is None
            yield self._pixels(frame) if wanted else None
            self.count += 1
            frame = following

    def _pixels(self, frame) -> np.ndarray:
        """One decoded frame's (H, W, 3) pixels, upright; refuses a changed size or transparency."""
        if self._orientation is None:
            try:
                self._orientation = probe.orientation(self.path, frame)
            except RppgEditError:
                self.finish(check=False)
                raise
        pixels = _upright(frame.to_ndarray(format=self._format), self._orientation)
        if pixels.shape != self.shape:
            self.finish(check=False)
            raise path_error(
                self._name,
                f"frame {self.count} is {pixels.shape[1]}x{pixels.shape[0]}, the stream "
                f"{self.shape[1]}x{self.shape[0]} (a size that changes part-way is refused)",
            )
        if self.channels == 4:
            opaque = pixels[..., 3] == np.iinfo(self.dtype).max
            if not opaque.all():
                name = (
                    self._name if self._container is None else f"{self.path} (frame {self.count})"
                )
                self.finish(check=False)
                raise path_error(
                    name,
                    "has transparent pixels (alpha < max); flatten it onto a background first",
                )
            pixels = pixels[..., :3]
        return pixels

    def _idle_decoder(self) -> None:
        """Let the decoder's frame threads finish the packets they hold, the GIL released.

        PyAV frees a decoder with the GIL held, and freeing waits for its frame threads; a
        thread that logs an error meanwhile waits for the GIL to hand the line to `avlog` (whose
        level calls into Python while any reader is open): a deadlock, met when a read stopped
        part-way (``max_frames``) left frames in flight. Flushed here, the threads are idle
        and the decoder is freed without them.
        """
        self._frames = iter(())  # the demux-and-decode generator, which holds the decoder
        if self._stream is not None:
            self._stream.codec_context.flush_buffers()

    def finish(self, check: bool = True) -> None:
        """Close the decoder; with ``check``, raise on any error FFmpeg logged. Idempotent."""
        if self.finished:
            return
        self.finished = True
        try:
            if self._container is not None:
                self._idle_decoder()
                self._container.close()
            else:
                self._frames.close()
        finally:
            problem = avlog.ERRORS.close(self._log_start)
        if check and problem:
            raise path_error(self.path, f"not a readable video (ffmpeg: {problem})")


def _check_depth(path: str, depth: int, allow_16bit: bool, what: str) -> None:
    if depth > 8 and not allow_16bit:
        raise path_error(
            path,
            f"{what} has {depth} bits per channel; pass allow_16bit=True to read it as uint16 "
            "(reading it as 8-bit would discard precision)",
        )


def _open_frames(path, allow_16bit, max_frames, keep_pts=False):
    """Start decoding ``path`` (container or PNG folder): returns (frames, source info)."""
    if os.path.isdir(path):
        folder = probe.scan_png_folder(path)
        _check_depth(path, folder.bit_depth, allow_16bit, "the PNG folder")
        files = folder.files if max_frames is None else folder.files[:max_frames]
        stream = _AvFrames(
            path, folder.height, folder.width, alpha=True, bit_depth=folder.bit_depth, files=files
        )
        return stream, folder
    container = probe.probe_container(path)
    h = container.header
    has_alpha, depth = probe.format_traits(h.pix_fmt)
    _check_depth(path, depth, allow_16bit, f"pixel format {h.pix_fmt}")
    stream = _AvFrames(
        path,
        h.height,
        h.width,
        alpha=has_alpha,
        bit_depth=16 if depth > 8 else 8,
        max_frames=max_frames,
        keep_pts=keep_pts,
    )
    return stream, container


# --------------------------------------------------------------------------------------------
# Readers.


def read_video(
    path, *, max_frames: int | None = None, fps: float | None = None, allow_16bit: bool = False
) -> Video:
    """Read every frame of a video file, PNG folder or .npy array, bit-exactly.

    Args:
      path: a file ffmpeg reads (mp4, avi, mkv, mov, webm, ...), a folder of PNG frames (files
        ``*.png`` in natural order, so ``f2.png`` precedes ``f10.png``), or a .npy array of shape
        (T,H,W,3) or (T,H,W), dtype uint8 or uint16.
      max_frames: read at most this many frames from the start.
      fps: frame rate of a PNG folder or .npy file (default 30, with a probe.FrameRateAssumedWarning);
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
    probe.check_input_path(path)
    if path.lower().endswith(".npy") and not os.path.isdir(path):
        array = probe.open_npy(path)
        _check_depth(path, 16 if array.dtype == np.uint16 else 8, allow_16bit, "the array")
        rate = probe.assumed_fps(path, fps)
        num = array.shape[0] if max_frames is None else min(max_frames, array.shape[0])
        validate.check_decode_total(path, num, array.shape[2], array.shape[1], array.itemsize)
        frames = np.array(array[:max_frames])
        if frames.ndim == 3:
            frames = np.repeat(frames[..., None], 3, axis=-1)
        return Video(frames, rate, None, path)
    if os.path.isdir(path):
        rate = probe.assumed_fps(path, fps)
        stream, folder = _open_frames(path, allow_16bit, max_frames)
        expected = len(folder.files) if max_frames is None else min(max_frames, len(folder.files))
        frames = _read_all(stream, expected)
        if len(frames) != expected:
            raise path_error(path, f"decoded {len(frames)} frames from {expected} PNG files")
        return Video(frames, rate, None, path)
    probe.refuse_fps(path, fps)
    stream, container = _open_frames(path, allow_16bit, max_frames, keep_pts=True)
    try:
        probe.check_rate(path, container.fps)
    except RppgEditError:
        stream.finish(check=False)
        raise
    expected = container.num_frames if max_frames is None else min(max_frames, container.num_frames)
    frames = _read_all(stream, expected)
    if len(frames) == 0:
        raise path_error(path, "contains zero decodable video frames")
    timestamps = None
    if container.variable:
        if any(p is None for p in stream.pts):
            raise path_error(path, "a variable-frame-rate stream with frames that carry no time")
        pts = np.array(stream.pts, dtype=np.int64)
        timestamps = (pts - pts[0]).astype(np.float64) * float(stream.time_base)
    return Video(frames, container.fps, timestamps, path)


def _read_all(stream: _AvFrames, expected: int) -> np.ndarray:
    """All frames of ``stream``, which is then finished (checked; on an error, stopped without a
    check and the error raised)."""
    try:
        frames = _read_frames(stream, expected)
    except BaseException:
        stream.finish(check=False)
        raise
    stream.finish()
    return frames


def _read_frames(stream: _AvFrames, expected: int) -> np.ndarray:
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


def iter_chunks(
    path, size: int, *, overlap: int = 0, fps: float | None = None, allow_16bit: bool = False
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream a video as chunks of ``size`` frames, consecutive chunks sharing ``overlap`` frames.

    One decoder runs for the whole file; each step reads ``size - overlap`` new frames into a
    fresh buffer that starts with the last ``overlap`` frames of the previous chunk, so memory
    stays at about two chunks however long the file is. Errors of a truncated or corrupt file
    surface before the last chunk is yielded (earlier chunks have already been yielded).

    Args:
      path: as for `read_video`.
      size: frames per chunk, >= 1.
      overlap: frames shared by consecutive chunks, 0 <= overlap < size.
      fps: as for `read_video` (only checked/used for PNG folders and .npy files).
      allow_16bit: as for `read_video`.

    Yields:
      (start, frames): index of the chunk's first frame and (C, H, W, 3) uint8 (or uint16)
      frames, with C == size except possibly for the last chunk. Chunks start at
      0, s, 2s, ... (s = size - overlap) and one is yielded only while it has new frames.
    """
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"need size >= 1 and 0 <= overlap < size, got {size}, {overlap}")
    path = os.fspath(path)
    probe.check_input_path(path)
    step = size - overlap
    if path.lower().endswith(".npy") and not os.path.isdir(path):
        array = probe.open_npy(path)
        _check_depth(path, 16 if array.dtype == np.uint16 else 8, allow_16bit, "the array")
        probe.assumed_fps(path, fps)
        total = array.shape[0]
        for start in range(0, max(total - overlap, 1), step):
            frames = np.array(array[start : start + size])
            if frames.ndim == 3:
                frames = np.repeat(frames[..., None], 3, axis=-1)
            yield start, frames
        return
    if os.path.isdir(path):
        probe.assumed_fps(path, fps)
    else:
        probe.refuse_fps(path, fps)
    stream, _ = _open_frames(path, allow_16bit, None)
    yield from _read_ahead(_chunks(stream, path, size, overlap))


def iter_sparse(path, every: int, size: int) -> Iterator[list]:
    """The 8-bit frames of `iter_chunks(path, size)`, in lists of up to ``size``, converted to RGB
    only where a pass looks (face tracking's key frames): frames whose index is a multiple of
    ``every``, and the last frame; the others are None. Converting a decoded 1080p H.264 frame
    to RGB costs more than decoding it (1.8 of 3.3 CPU s per pass over a 602-frame clip).
    PNG folders and .npy arrays have every frame converted."""
    if every < 1 or size < 1:
        raise ValueError(f"need every >= 1 and size >= 1, got {every}, {size}")
    path = os.fspath(path)
    probe.check_input_path(path)
    if os.path.isdir(path) or path.lower().endswith(".npy"):
        for _, frames in iter_chunks(path, size):
            yield list(frames)
        return
    stream, _ = _open_frames(path, False, None)
    yield from _read_ahead(_sparse_chunks(stream, path, size, every))


def _sparse_chunks(stream, path: str, size: int, every: int) -> Iterator[list]:
    try:
        chunk: list = []
        for frame in stream.sparse(every):
            chunk.append(frame)
            if len(chunk) == size:
                yield chunk
                chunk = []
        stream.finish()  # errors surface before the last (partial) chunk
        if stream.count == 0:
            raise path_error(path, "contains zero video frames")
        if chunk:
            yield chunk
    finally:
        stream.finish(check=False)


def _chunks(stream, path: str, size: int, overlap: int) -> Iterator[tuple[int, np.ndarray]]:
    """`iter_chunks` of an open stream: fresh arrays, consecutive ones sharing ``overlap`` frames."""
    try:
        previous, start = None, 0
        while True:
            frames = np.empty((size, *stream.shape[:2], 3), stream.dtype)
            kept = 0 if previous is None else overlap
            if kept:
                frames[:kept] = previous[len(previous) - kept :]
            got = stream.readinto(frames[kept:])
            if got < size - kept:
                stream.finish()
                if got > 0 or previous is None:
                    if got == 0:
                        raise path_error(path, "contains zero video frames")
                    yield start, frames[: kept + got]
                return
            yield start, frames
            previous, start = frames, start + size - overlap
    finally:
        stream.finish(check=False)


_END = object()


def _read_ahead(chunks: Iterator, depth: int = 1) -> Iterator:
    """Run ``chunks`` on a thread, ``depth`` items ahead of the consumer.

    The decoder (in-process, the GIL released while it decodes and converts) then works while the
    caller edits, pastes or encodes the chunk before: the overlap a decoding process on a pipe
    gave. Errors reach the consumer at the item where they happened; a consumer that stops early
    stops the thread, which closes ``chunks`` (and so its decoder) before this returns: the
    consumer empties the queue once after setting ``stop``, which frees a producer waiting to
    hand an item over, and a producer hands over at most one item after ``stop`` is set.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        """Hand ``item`` over; False when the consumer has stopped."""
        handoff.put(item)
        return not stop.is_set()

    def produce():
        try:
            for item in chunks:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            put((_END, e))
        finally:
            chunks.close()

    thread = threading.Thread(target=produce, name="rppgedit-decode", daemon=True)
    thread.start()
    try:
        while True:
            item, error = handoff.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        while True:
            try:
                handoff.get_nowait()
            except queue.Empty:
                break
        thread.join()
