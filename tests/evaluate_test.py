"""`--mode=evaluate`: heart rates of a video file, with and without a ground-truth file."""

import json
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
