"""Every shipped flagfile in experiments/ runs end to end, shrunk to a tiny clip and one step by
overrides appended after it (the flagfile's own settings are what is tested: a setting its mode
does not use, a bad value or a broken wiring fails here)."""

import json
import pathlib

import numpy as np
import pytest

from rppgedit import main
from rppgedit.data import synthetic
from rppgedit.video import encode

ROOT = pathlib.Path(__file__).resolve().parents[1]
# demo.flags runs in full in demo_test.py (the README's first command).
FLAGFILES = sorted(p.name for p in (ROOT / "experiments").glob("*.flags") if p.name != "demo.flags")
TINY_READ = ["--estimators=green,pos", "--steps=1", "--window=64", "--overlap=16", "--noprogress"]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A 3 s generated face clip, and a folder dataset of it (video + <stem>.csv ground truth)."""
    folder = tmp_path_factory.mktemp("tiny")
    clip = synthetic.make_clip(3, hr_bpm=75.0, num_frames=96, height=64, width=64)
    path = folder / "clip.mkv"
    encode.write_video(path, clip.frames, clip.fps)
    t = np.arange(clip.frames.shape[0]) / clip.fps
    data = folder / "data"
    data.mkdir()
    encode.write_video(data / "s1.mkv", clip.frames, clip.fps)
    bvp = np.sin(2 * np.pi * 75.0 / 60.0 * t)
    (data / "s1.csv").write_text("".join(f"{a:.6f},{b:.6f}\n" for a, b in zip(t, bvp, strict=True)))
    return path, data


def _overrides(mode: str, tmp, clip, data) -> list[str]:
    if mode == "edit":
        return [f"--input={clip}", f"--output={tmp}/out.mkv", *TINY_READ]
    if mode == "experiment":
        return [
            f"--out_dir={tmp}",
            f"--data_dir={data}",
            "--max_clips=1",
            "--clip_seconds=3",
            "--synthetic_size=48",
            "--allow_no_face",
            "--noplots",
            *TINY_READ,
        ]
    if mode == "sweep":
        return [
            f"--out_dir={tmp}",
            "--synthetic_seeds=0",
            "--synthetic_frames=64",
            "--synthetic_size=48",
            "--target_hrs=90",
            "--fidelity_weights=1",
            "--steps_grid=1",
            *TINY_READ,
        ]
    if mode == "train":
        return [
            f"--train_dir={tmp}/state",
            f"--train_export_dir={tmp}/export",
            "--train_vae_steps=1",
            "--train_editor_steps=1",
            "--train_batch=1",
            "--train_bank_clips=2",
            "--train_vae_frames=32",
            "--train_editor_frames=64",
            "--noprogress",
        ]
    raise AssertionError(f"no tiny overrides for mode {mode}")


def _mode_of(path: pathlib.Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("--mode="):
            return line.split("=", 1)[1].strip()
    raise AssertionError(f"{path} names no mode")


@pytest.mark.parametrize("name", FLAGFILES)
def test_shipped_flagfile_runs_tiny(name, tmp_path, tiny_clip, capsys, monkeypatch):
    path = ROOT / "experiments" / name
    mode = _mode_of(path)
    trained = {}
    if mode == "train":  # train_test.py trains a tiny model; here: the flagfile's wiring only
        from rppgedit import train

        def fake_run_train(stage, vae_cfg, editor_cfg, workdir, export_dir, progress):
            trained.update(stage=stage, vae=vae_cfg, editor=editor_cfg, workdir=workdir)
            return {"stage": stage}

        monkeypatch.setattr(train, "run_train", fake_run_train)
    args = ["rppgedit", f"--flagfile={path}", *_overrides(mode, tmp_path, *tiny_clip)]
    if mode == "experiment" and name != "folder.flags":
        args = [a for a in args if not a.startswith(("--data_dir", "--allow_no_face"))]
    try:
        rest = main.FLAGS(args)
        main.main(rest)
    finally:
        main.FLAGS.unparse_flags()
    out = capsys.readouterr().out
    if mode == "edit":
        report = json.loads((tmp_path / "out.report.json").read_text())
        assert report["config"]["editor"]["method"] in ("privacy_phys", "pulseedit")
        assert report["config"]["editor"]["steps"] == 1
    elif mode == "experiment":
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["config"]["experiment"]["name"] == summary["kind"]
        assert summary["records"] > 0
    elif mode == "sweep":
        assert (tmp_path / "results.csv").exists()
    elif mode == "train":
        assert trained["stage"] == "all" and trained["workdir"] == f"{tmp_path}/state"
        assert (trained["vae"].steps, trained["editor"].steps) == (1, 1)
        assert trained["editor"].physnet_weight == 0.5  # from the flagfile
        assert trained["editor"].compositing == "residual" and trained["vae"].num_frames == 32
    assert "error" not in out.lower()
