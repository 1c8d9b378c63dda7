"""The README's first command: every estimator of the demo reads the truth before and the target after."""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_demo_reads_72_before_and_120_after_with_every_estimator(tmp_path):
    cmd = [sys.executable, "-m", "rppgedit.main", "--flagfile=experiments/demo.flags"]
    cmd += [f"--demo_dir={tmp_path}", "--noprogress"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "demo_edited.report.json").read_text())
    rows = report["rows"]
    assert len(rows) == 10
    for row in rows:
        assert abs(row["hr_before"] - 72.0) <= 3.0, row
        assert abs(row["hr_after"] - 120.0) <= 3.0, row
    assert all(s["fooled"] for s in report["surrogates"]) and not report["warnings"]
    assert report["psnr_db"] > 55.0
    config = report["config"]  # the resolved settings, from the flagfile and the defaults
    assert config["target"]["hr_bpm"] == 120.0 and config["demo"]["dir"] == str(tmp_path)
    assert config["editor"]["method"] == "privacy_phys" and config["windows"]["window"] == 128
    assert "warning:" not in proc.stdout
