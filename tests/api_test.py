"""The Python API (`rppgedit.edit`, `edit_frames`, `read_heart_rate`, `audit`): on generated clips,
with few fast steps (`FAST`), the edits reach the target, the reports say what their rows say, and
the audit tells a readable pulse from a removed one. The docstrings' examples run as tests too."""

import doctest
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import rppgedit
from rppgedit import api, report
from rppgedit.errors import RppgEditError

# A small, fast edit: 3 classical estimators read, 2 classical surrogates (no PhysNet to compile),
# 30 steps at a high learning rate, 32 px crops.
FAST = dict(
    estimators=["green", "pos", "chrom"],
    surrogates="pos,chrom",
    steps=30,
    learning_rate=0.2,
    work_size=32,
    window=64,
    overlap=16,
    progress=False,
)
TARGET = 120.0


@pytest.fixture(scope="module")
def clip():
    return rppgedit.demo_frames(seconds=5, size=96)  # a moving face, true rate 72 bpm


def _verdict_numbers(verdict: str, target: float) -> tuple[int, int]:
    match = re.match(rf"(\d+)/(\d+) estimators? read {target:g} \+/- 3 bpm", verdict)
    assert match, verdict
    return int(match.group(1)), int(match.group(2))


def test_import_is_lazy():
    """`import rppgedit` loads neither JAX nor the API; touching `rppgedit.edit` loads them."""
    code = (
        "import sys, rppgedit; assert 'jax' not in sys.modules and 'rppgedit.api' not in "
        "sys.modules; rppgedit.edit; assert 'rppgedit.api' in sys.modules; "
        "print(sorted(n for n in rppgedit.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "read_heart_rate" in out.stdout and "audit" in out.stdout


def test_edit_a_file_to_a_target(tmp_path, clip):
    frames, fps = clip
    source = api.demo_video(tmp_path / "face.mkv", seconds=5, size=96)
    out = tmp_path / "edited.mkv"
    result = rppgedit.edit(source, out, target_hr=TARGET, **FAST)
    # The verdict states what the rows say.
    reading = sum(abs(r["hr_after"] - TARGET) <= 3.0 for r in result.rows)
    assert _verdict_numbers(result.verdict, TARGET) == (reading, len(result.rows)) == (3, 3)
    original = float(np.median([r["hr_before"] for r in result.rows]))
    assert abs(original - 72.0) < 3.0
    assert f"none reads the original {original:.1f} bpm" in result.verdict
    assert f"PSNR {result.psnr:.1f} dB" in result.verdict
    assert re.search(r"; \d+\.\d s of compute per 10 s of video$", result.verdict)
    # The JSON holds the old keys and the new ones: verdict, versions, settings, devices, SNR.
    saved = json.loads((tmp_path / "edited.report.json").read_text())
    for key in ("rows", "faces", "surrogates", "warnings", "psnr_db", "ssim", "seconds", "notes"):
        assert key in saved
    assert saved["verdict"] == result.verdict
    assert saved["versions"]["rppgedit"] == rppgedit.__version__
    assert saved["versions"]["jax"]
    assert saved["settings"]["job"]["seed"] == 0
    assert saved["settings"]["job"]["estimators"] == FAST["estimators"]
    editor = saved["settings"]["editor"]
    assert editor["steps"] == 30 and editor["learning_rate"] == 0.2
    assert "fidelity_weight" in editor and editor["surrogates"] == [["pos", 1.0], ["chrom", 1.0]]
    assert saved["devices"] and "negative" in saved["snr_explanation"]
    png = tmp_path / "edited.report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.paths == {
        "output": str(out),
        "report_json": str(tmp_path / "edited.report.json"),
        "report_png": str(png),
    }
    assert result.to_dict()["verdict"] == result.verdict
    assert result.verdict in repr(result) and "<img" in result._repr_html_()


def test_without_matplotlib_plots_are_skipped_by_default_and_refused_when_asked(
    tmp_path, monkeypatch
):
    """The core install has no matplotlib (the plots extra): `edit` then writes the report
    without its picture, and an explicit plots=True is a one-line error before any work."""
    source = api.demo_video(tmp_path / "face.mkv", seconds=5, size=96)
    monkeypatch.setattr(report, "can_plot", lambda: False)
    fast = {k: v for k, v in FAST.items() if k not in ("steps", "learning_rate", "surrogates")}
    kw = dict(fast, remove=True, method="smooth_remove", progress=False)
    with pytest.raises(RppgEditError, match=r"pip install 'rppgedit\[plots\]'"):
        rppgedit.edit(source, tmp_path / "asked.mkv", plots=True, **kw)
    assert not (tmp_path / "asked.mkv").exists()
    result = rppgedit.edit(source, tmp_path / "e.mkv", **kw)
    assert "report_png" not in result.paths and not (tmp_path / "e.report.png").exists()
    assert (tmp_path / "e.report.json").exists()
    with pytest.raises(RppgEditError, match="matplotlib"):
        rppgedit.audit(source, estimators=["pos", "chrom"], attackers=None, plots=True)


def test_the_command_line_notes_skipped_plots_and_refuses_asked_ones(monkeypatch, capsys):
    from rppgedit.modes import common

    class Settings:
        def __init__(self, plots, given):
            self.plots, self.given = plots, given

        def present(self, name):
            return name in self.given

    monkeypatch.setattr(report, "can_plot", lambda: False)
    assert common.plots(Settings(True, ())) is False
    assert "plots skipped: matplotlib is not installed" in capsys.readouterr().err
    with pytest.raises(RppgEditError, match="plots need matplotlib"):
        common.plots(Settings(True, ("plots",)))
    assert common.plots(Settings(False, ("plots",))) is False
    monkeypatch.setattr(report, "can_plot", lambda: True)
    assert common.plots(Settings(True, ())) is True


def test_a_removal_without_plots_writes_no_png(tmp_path, monkeypatch, capfd):
    """... and each pass of the edit shows its bar with its total when asked (here into a log:
    RPPGEDIT_PROGRESS=always): the decode, the edit, the report's readings (3 estimators before
    and after)."""
    from rppgedit import progress

    source = api.demo_video(tmp_path / "face.mkv", seconds=5, size=96)
    fast = {k: v for k, v in FAST.items() if k not in ("steps", "learning_rate", "surrogates")}
    monkeypatch.setenv(progress.PROGRESS_ENV, "always")
    capfd.readouterr()
    result = rppgedit.edit(
        source,
        tmp_path / "e.mkv",
        remove=True,
        method="smooth_remove",
        plots=False,
        **dict(fast, progress=True),
    )
    err = capfd.readouterr().err
    assert re.search(r"decode \+ track faces: .*150/150 \[", err), err
    assert re.search(r"report: readings: .*6/6 \[", err), err
    assert not (tmp_path / "e.report.png").exists() and "report_png" not in result.paths
    assert json.loads((tmp_path / "e.report.json").read_text())["verdict"] == result.verdict
    gone = sum(
        abs(r["hr_after"] - np.median([q["hr_before"] for q in result.rows])) > 3.0
        for r in result.rows
    )
    assert result.verdict.startswith(f"{gone}/3 estimators no longer read the original")


def test_edit_frames_report_and_its_figure(clip, monkeypatch, capfd):
    from rppgedit import progress

    frames, fps = clip
    monkeypatch.setenv(progress.PROGRESS_ENV, "always")  # progress=False (FAST) still silences
    capfd.readouterr()
    edited, result = rppgedit.edit_frames(frames, fps, target_hr=TARGET, plots=True, **FAST)
    err = capfd.readouterr().err
    assert "report:" not in err and "edit windows" not in err, err
    assert edited.shape == frames.shape and edited.dtype == np.uint8
    assert (edited != frames).any()
    counts = result.summary["verdict_counts"][0]
    assert counts["read_target"] == sum(abs(r["hr_after"] - TARGET) <= 3 for r in result.rows)
    assert _verdict_numbers(result.verdict, TARGET) == (counts["read_target"], 3)
    titles = sorted(ax.get_title() for ax in result.figure.axes if ax.get_title())
    assert titles == [
        "classical estimators: spectra (3)",
        f"difference |edited - original|, frame {len(frames) // 2}",
        "target: 120 bpm waveform",
    ]
    assert result.figure._suptitle.get_text().replace("\n", " ") == result.verdict


def test_edit_frames_report_passes_show_their_bars(clip, monkeypatch, capfd):
    """The in-memory report's two passes each show a bar with its total: the readers take the
    frames before and after (150 frames), then read 3 estimators before and after (6)."""
    from rppgedit import progress

    frames, fps = clip
    monkeypatch.setenv(progress.PROGRESS_ENV, "always")
    capfd.readouterr()
    _, result = rppgedit.edit_frames(frames, fps, target_hr=TARGET, **dict(FAST, progress=True))
    err = capfd.readouterr().err
    assert re.search(r"edit windows: .*\d+/\d+ \[", err), err
    assert re.search(r"report: read before \+ after: .*150/150 \[", err), err
    assert re.search(r"report: readings: .*6/6 \[", err), err
    assert _verdict_numbers(result.verdict, TARGET)[1] == 3


def test_edit_and_edit_frames_share_their_options():
    """One list of shared keyword arguments (`api.EditOptions`): both signatures show them with
    the same defaults, and the calls route them (not to the editor's options)."""
    import inspect

    shared = {
        "remove": False,
        "method": "privacy_phys",
        "target": "sinusoid",
        "estimators": None,
        "seed": 0,
        "face_box": None,
        "allow_no_face": False,
    }
    for fn, own in (
        (rppgedit.edit, {"share": False, "overwrite": False, "plots": None, "progress": True}),
        (rppgedit.edit_frames, {"boxes": None, "report": True, "plots": False, "progress": False}),
    ):
        params = inspect.signature(fn).parameters
        assert list(params)[:3] in (
            ["input", "output", "target_hr"],
            ["frames", "fps", "target_hr"],
        )
        assert params["target_hr"].default is None
        kinds = {n: p.kind for n, p in params.items()}
        assert list(params)[-1] == "options" and kinds["options"] == inspect.Parameter.VAR_KEYWORD
        for name, default in {**shared, **own}.items():
            assert kinds[name] == inspect.Parameter.KEYWORD_ONLY, name
            assert params[name].default == default, name
        assert "EditOptions" in fn.__doc__ or "`edit`'s" in fn.__doc__
    options, rest = api.EditOptions.split({"remove": True, "seed": 3, "steps": 5})
    assert options == api.EditOptions(remove=True, seed=3) and rest == {"steps": 5}


def test_bad_arguments_are_one_line_errors(clip):
    frames, fps = clip
    with pytest.raises(rppgedit.api.RppgEditError, match="target_hr"):
        rppgedit.edit_frames(frames, fps)
    with pytest.raises(rppgedit.api.RppgEditError, match="not both"):
        rppgedit.edit_frames(frames, fps, target_hr=90, remove=True)
    with pytest.raises(rppgedit.api.RppgEditError, match="unknown estimator"):
        rppgedit.edit_frames(frames, fps, target_hr=90, estimators=["nope"])
    with pytest.raises(rppgedit.api.RppgEditError, match="bad options"):
        rppgedit.edit_frames(frames, fps, target_hr=90, stepz=3)
    with pytest.raises(rppgedit.api.RppgEditError, match="uint8"):
        rppgedit.edit_frames(frames / 255.0, fps, target_hr=90)
    with pytest.raises(rppgedit.api.RppgEditError, match="variability 0.5 is outside"):
        rppgedit.edit_frames(frames, fps, target_hr=90, target="pulse", target_hrv=0.5)


def test_a_physiological_target_reaches_the_job():
    """`target_hrv=` and `target_hr_end=` become the job's target spec (not editor options)."""
    job, _ = rppgedit.api._job(
        90.0,
        rppgedit.api.EditOptions(target="pulse"),
        {"target_hrv": 0.03, "target_hr_end": 70.0, "steps": 5},
    )
    assert (job.target.kind, job.target.hr_bpm) == ("pulse", 90.0)
    assert (job.target.hrv, job.target.hr_end_bpm) == (0.03, 70.0)
    assert dict(job.method_options) == {"steps": 5}


def test_the_edit_margin_reaches_the_job():
    """`margin=` is the job's ring around the face boxes (`rppgedit.video.margin`), not an editor
    option; none by default."""
    job, _ = rppgedit.api._job(90.0, rppgedit.api.EditOptions(), {"margin": 0.15, "steps": 5})
    assert job.margin == 0.15 and dict(job.method_options) == {"steps": 5}
    assert rppgedit.api._job(90.0, rppgedit.api.EditOptions(), {})[0].margin == 0.0
    with pytest.raises(rppgedit.api.RppgEditError, match="margin must be in"):
        rppgedit.api._job(90.0, rppgedit.api.EditOptions(), {"margin": -1.0})


def test_read_heart_rate_of_a_file_and_of_frames(tmp_path, clip):
    frames, fps = clip
    path = api.demo_video(tmp_path / "face.mkv", seconds=5, size=96)
    from_file = rppgedit.read_heart_rate(path, estimators=["pos", "chrom"], ground_truth=72.0)
    from_frames = rppgedit.read_heart_rate(frames, fps, estimators=["pos", "chrom"])
    assert [r["hr_bpm"] for r in from_file] == pytest.approx([r["hr_bpm"] for r in from_frames])
    assert all(r["abs_err"] < 3.0 for r in from_file)
    assert from_frames["pos"]["abs_err"] is None and from_file.hr("chrom") == from_file[1]["hr_bpm"]
    assert "ground truth 72.0 bpm" in repr(from_file)


def test_audit_tells_a_readable_pulse_from_a_removed_one(clip):
    """Every estimator (10) on the generated clip agrees on its 72 bpm; after a removal with
    smooth_remove they scatter (measured: at most 3 of 10 agree on one rate)."""
    frames, fps = clip
    before = rppgedit.audit(frames, fps, attackers=None)
    assert before.readable and len(before.rows) == 10
    assert abs(before.consensus_hr_bpm - 72.0) < 3.0 and before.agreeing >= 8
    assert before.verdict.startswith("The pulse is readable")
    assert before.agreeing == sum(r["agrees"] for r in before.rows)
    removed, _ = rppgedit.edit_frames(
        frames,
        fps,
        remove=True,
        method="smooth_remove",
        report=False,
        work_size=32,
        window=64,
        overlap=16,
    )
    after = rppgedit.audit(removed, fps, attackers=None)
    assert not after.readable and after.verdict.startswith("No consistent pulse")
    assert after.agreeing < 5
    assert not any(r["agrees"] and abs(r["hr_bpm"] - 72.0) < 3.0 for r in after.rows)


def test_audit_names_missing_attackers(clip, monkeypatch):
    from rppgedit import open_rppg

    frames, fps = clip
    monkeypatch.setattr(open_rppg, "available", lambda: False)
    result = rppgedit.audit(frames, fps, estimators=["pos", "chrom"], attackers="auto")
    assert "open-rppg attackers not installed" in result.verdict
    assert [r["reader"] for r in result.rows] == ["pos", "chrom"]


def test_docstring_examples():
    results = doctest.testmod(api, optionflags=doctest.ELLIPSIS, verbose=False)
    assert results.attempted >= 15 and results.failed == 0, results
    assert report  # the module whose classes the examples return


def test_audit_with_an_open_rppg_attacker(clip):
    """An open-rppg model (one, in its worker process: about 30 s on a CPU) reads the generated
    clip's 72 bpm with the estimators; its row, the verdict and the spectra say so."""
    frames, fps = clip
    result = rppgedit.audit(
        frames, fps, estimators=["pos", "chrom"], attackers=["physnet_keras"], plots=True
    )
    attacker = result.rows[-1]
    assert attacker["reader"] == "open-rppg physnet_keras" and attacker["family"] == "attacker"
    assert abs(attacker["hr_bpm"] - 72.0) < 3.0 and attacker["agrees"]
    assert result.readable and "(2/2 estimators, 1/1 open-rppg attackers)" in result.verdict
    titles = [ax.get_title() for ax in result.figure.axes if ax.get_title()]
    assert titles == ["classical estimators: spectra (2)", "attacker readers: spectra (1)"]
