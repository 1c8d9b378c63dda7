"""The edit command's peak resident memory does not grow with the video's length.

`streaming_edit_test` bounds the host allocations NumPy makes (tracemalloc); this measures what the
operating system sees: the whole `rppgedit edit` command, face tracking and report included, run in
a subprocess on a generated clip and on one 4x longer, its peak RSS (`ru_maxrss`) read at exit."""

import subprocess
import sys

from rppgedit.data import synthetic
from rppgedit.video import encode

FPS = 30.0
# Runs the command line and prints the process's peak RSS (KiB on Linux) as it exits.
_MEASURE = """
import atexit, resource, sys
import rppgedit.pipeline
rppgedit.pipeline.HOLD_BYTES = 0  # longer videos than the replay of a small input holds
atexit.register(lambda: print("MAXRSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                              file=sys.stderr))
from rppgedit.main import entry_point
entry_point(sys.argv)
"""


def _peak_rss_kib(tmp_path, num_frames: int) -> int:
    clip = synthetic.make_clip(5, hr_bpm=72.0, num_frames=num_frames, height=160, width=160)
    src = tmp_path / f"in{num_frames}.mkv"
    encode.write_video(src, clip.frames, FPS)
    del clip
    command = [sys.executable, "-c", _MEASURE, "edit", f"--input={src}"]
    command += [f"--output={tmp_path / f'out{num_frames}.mkv'}", "--target_hr=110", "--noprogress"]
    command += ["--surrogates=pos:1,chrom:1", "--steps=5", "--work_size=32", "--window=64"]
    command += ["--overlap=16", "--estimators=pos,chrom", "--noplots"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("MAXRSS ")]
    return int(line.split()[1])


def test_a_video_4x_longer_edits_in_about_the_same_resident_memory(tmp_path):
    short = _peak_rss_kib(tmp_path, 256)
    long = _peak_rss_kib(tmp_path, 1024)
    print(f"peak RSS: 256 frames {short / 1024:.0f} MiB, 1024 frames {long / 1024:.0f} MiB")
    # Holding the video whole would add 768 frames x 160x160x3 bytes x (uint8 frames + float32
    # paste buffer + output) = 295 MB; the stated margin is a tenth of the short run's peak.
    assert long < 1.10 * short, (short, long)
