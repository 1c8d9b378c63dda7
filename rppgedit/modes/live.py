"""`rppgedit live`: edit a stream while it plays (`rppgedit.live`).

Input: ``-`` (raw rgb24 frames of --live_size at --live_fps on stdin), a video file (read at its
frame rate with --live_pace) or a capture device (/dev/video*, or any ffmpeg input with
--live_format=v4l2|avfoundation|dshow). Output: ``-`` (raw rgb24 frames on stdout), a v4l2loopback
device (/dev/video*: a virtual camera for video-call apps) or a video file. Output frame i is input
frame i; the summary line goes to stderr.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from rppgedit.errors import RppgEditError
from rppgedit.modes import common

DEFAULT_CAMERA_SIZE = "640x480"


def _is_device(path: str, live_format: str | None) -> bool:
    return bool(live_format) or path.startswith("/dev/video")


def open_source(s):
    """(source, width, height, fps, realtime) for --input."""
    from rppgedit import live

    if s.input == "-":
        if not s.live_size:
            raise RppgEditError("--input=- needs --live_size=WIDTHxHEIGHT of the raw rgb24 frames")
        width, height = live.parse_size(s.live_size)
        return live.RawFrames(sys.stdin.buffer, width, height), width, height, s.live_fps, False
    if _is_device(s.input, s.live_format):
        width, height = live.parse_size(s.live_size or DEFAULT_CAMERA_SIZE)
        fmt = s.live_format or "v4l2"
        if fmt == "v4l2" and not os.path.exists(s.input):
            raise RppgEditError(f"{s.input}: no such capture device")
        source = live.FfmpegFrames(s.input, width, height, fps=s.live_fps, input_format=fmt)
        source.check_started()  # before the editor compiles: a device it cannot open fails now
        return source, width, height, s.live_fps, True
    if s.present("live_size") or s.present("live_fps"):
        raise RppgEditError(
            "--live_size and --live_fps apply to --input=- and capture devices; a file has its own"
        )
    from rppgedit.video import probe

    common.check_input(s.input)
    info = probe.probe(s.input)
    source = live.FileFrames(s.input, info.fps, pace=s.live_pace)
    return source, info.width, info.height, info.fps, s.live_pace


def open_sink(s, width, height, fps):
    from rppgedit import live
    from rppgedit.video import encode

    if s.output == "-":
        return live.RawSink(sys.stdout.buffer)
    if s.output.startswith("/dev/video"):
        return live.FfmpegSink(s.output, "v4l2", width, height, fps)
    encode.check_output_path(s.output, inputs=(s.input,), overwrite=s.overwrite)
    return live.FileSink(s.output, width, height, fps, overwrite=s.overwrite, inputs=(s.input,))


def run(s) -> None:
    from rppgedit import live

    common.require(s, "input", "output")
    common.check_settings(s)
    if s.target in ("pulse", "file"):
        raise RppgEditError(f"--target={s.target} cannot be streamed live (use sinusoid or none)")
    if not 1 <= s.detect_every <= 1000:
        raise RppgEditError(f"--detect_every must be in 1..1000, got {s.detect_every}")
    if not (s.live_fps > 0 and s.live_fps <= 1000):
        raise RppgEditError(f"--live_fps must be in (0, 1000], got {s.live_fps}")
    if s.live_max_lag < 0:
        raise RppgEditError(f"--live_max_lag must be >= 0, got {s.live_max_lag}")
    face_box = common.face_box(s)
    job = dataclasses.replace(common.job(s), batch_windows=1)
    source, sink = None, None
    try:
        # the stream's own flags first: a bad size or device fails without loading weights (1 s)
        source, width, height, fps, realtime = open_source(s)
        common.check_weights(s)
        if face_box is not None:
            from rppgedit import validate

            validate.check_face_box(face_box, width, height)
        sink = open_sink(s, width, height, fps)
        tracker = live.OnlineTracker(face_box, detect_every=s.detect_every)
        edit = live.LiveEdit(job, fps, tracker=tracker)
        edit.warm_up()  # compile before the first frame is read
    except BaseException:
        if source is not None:
            source.close()
        if sink is not None:
            sink.abort()
        raise
    stats = live.run_live(source, sink, edit, realtime=realtime, max_lag=s.live_max_lag or None)
    print(
        stats.line(fps, edit.latency_frames, edit.latency_bound_frames), file=sys.stderr, flush=True
    )
    print(readings_text(edit.readings(s.estimators)), file=sys.stderr, flush=True)


def readings_text(summary: dict) -> str:
    """The live run's readings: what the estimators read in the frames written, before and after."""
    from rppgedit import engine, readings, report

    skipped = summary["not_read"]
    note = f" ({', '.join(skipped)}: deep readers, not read live)" if skipped else ""
    if not summary["rows"]:
        return (
            f"live readings: none ({summary['frames_with_face']} frames with a face; at least "
            f"{engine.MIN_FRAMES} are needed{', and a trace estimator' if skipped else ''}){note}"
        )
    columns = [("estimator", "estimator", ">12"), ("hr_before", "HR before", "8.1f")]
    columns += [("hr_after", "HR after", "8.1f")]
    head = (
        f"live readings: the face's skin trace in the {summary['frames_with_face']} frames "
        f"written with a face{note}"
    )
    return "\n".join(
        [
            head,
            readings.format_table(summary["rows"], columns),
            f"verdict: {report.verdict(summary)}",
        ]
    )
