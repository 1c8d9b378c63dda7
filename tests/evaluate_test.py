"""`--mode=evaluate`: heart rates of a video file, with and without a ground-truth file."""

import json
import re
import subprocess
import sys

import numpy as np

from rppgedit.data import synthetic
from rppgedit.modes import evaluate
from rppgedit.video import crop, encode


def _write_clip(tmp_path, hr):
    clip = synthetic.make_clip(4, hr_bpm=hr, num_frames=300, height=48, width=48)
    path = tmp_path / "clip.mkv"
    encode.write_video(path, clip.frames, clip.fps)
    gt = tmp_path / "bvp.csv"
    times = np.arange(300) / clip.fps + 1.7e9
    np.savetxt(gt, np.c_[times, clip.bvp], delimiter=",", header="timestamp,bvp", comments="")
    return clip, path, gt


def test_evaluate_reads_the_known_rate_and_the_ground_truth(tmp_path):
    clip, path, gt = _write_clip(tmp_path, 84.0)
    box = crop.enclosing_square(clip.crop_boxes)
    result = evaluate.run_evaluate(
        str(path), ("pos", "chrom"), face_box=box, work_size=32, ground_truth=str(gt)
    )
    data = result["json"]
    assert abs(data["ground_truth_hr_bpm"] - 84.0) < 1.0
    for row in data["rows"]:
        assert abs(row["hr_bpm"] - 84.0) < 1.5, row
        assert row["abs_err"] < 1.5
    assert "ground truth" in result["table"] and "pos" in result["table"]


def test_evaluate_cli_writes_json(tmp_path):
    clip, path, _ = _write_clip(tmp_path, 66.0)
    box = ",".join(str(float(v)) for v in crop.enclosing_square(clip.crop_boxes))
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rppgedit.main",
            "--mode=evaluate",
            f"--input={path}",
            "--estimators=pos,green",
            f"--face_box={box}",
            "--work_size=32",
            f"--json_out={out}",
            "--plots",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {r["estimator"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"pos", "green"}
    assert abs(rows["pos"]["hr_bpm"] - 66.0) < 1.5
    figure = tmp_path / "r.png"  # --plots: the input's spectra beside the JSON
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(out.read_text())["figure"] == str(figure)


def test_evaluate_plots_need_a_json_destination(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rppgedit.main", "evaluate", "--input=x.mkv", "--plots"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "--plots needs --json_out" in proc.stderr


def _evaluate_in_process(args):
    """`rppgedit evaluate ARGS` in this process (the mode's `run`, as `rppgedit.main` calls it)."""
    from rppgedit import main, settings
    from rppgedit.modes import evaluate as mode

    main.FLAGS(["rppgedit", "--mode=evaluate", *args])
    try:
        mode.run(settings.resolve(main.FLAGS))
    finally:
        main.FLAGS.unparse_flags()


def test_evaluate_plots_decode_the_video_once_and_show_each_pass(tmp_path, monkeypatch, capfd):
    """`--plots` draws the spectra from the readings' own decode: the video is decoded once (not
    again for the figure), the PNG is written, and with RPPGEDIT_PROGRESS=always each pass (decode
    and track, readings) shows a bar with its total on stderr; `--noprogress` silences them."""
    from rppgedit import progress
    from rppgedit.video import decode

    clip, path, _ = _write_clip(tmp_path, 72.0)
    box = ",".join(str(float(v)) for v in crop.enclosing_square(clip.crop_boxes))
    decodes = []
    real_chunks, real_read = decode.iter_chunks, decode.read_video

    def counted_chunks(*args, **kwargs):
        decodes.append("iter_chunks")
        return real_chunks(*args, **kwargs)

    def counted_read(*args, **kwargs):
        decodes.append("read_video")
        return real_read(*args, **kwargs)

    monkeypatch.setattr(decode, "iter_chunks", counted_chunks)
    monkeypatch.setattr(decode, "read_video", counted_read)
    monkeypatch.setenv(progress.PROGRESS_ENV, "always")
    common = [f"--input={path}", "--estimators=pos,green", f"--face_box={box}", "--work_size=32"]
    out = tmp_path / "r.json"
    capfd.readouterr()
    _evaluate_in_process([*common, f"--json_out={out}", "--plots"])
    captured = capfd.readouterr()
    assert decodes == ["iter_chunks"]
    figure = tmp_path / "r.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(out.read_text())
    assert saved["figure"] == str(figure) and saved["frames"] == 300
    assert "figure: " in captured.out and "pos" in captured.out
    assert re.search(r"decode: .*300/300 \[", captured.err), captured.err
    assert re.search(r"readings: .*2/2 \[", captured.err), captured.err

    decodes.clear()
    _evaluate_in_process([*common, f"--json_out={tmp_path / 'q.json'}", "--plots", "--noprogress"])
    captured = capfd.readouterr()
    assert decodes == ["iter_chunks"] and (tmp_path / "q.png").exists()
    assert "decode" not in captured.err and "readings" not in captured.err, captured.err
