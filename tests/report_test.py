"""The report a person reads (`rppgedit.report`): the verdict follows the rows, the audit's verdict
follows the readings, and the figure has one panel per estimator family, the difference map and
the target (checked on the figure's axes, not its pixels)."""

import numpy as np
import pytest

from rppgedit import report


def _row(estimator, before, after, face=0):
    return {"face": face, "estimator": estimator, "hr_before": before, "hr_after": after}


def _summary(rows, target=120.0, kind="sinusoid", **kw):
    return {
        "rows": rows,
        "target": {"kind": kind},
        "target_hr_bpm": target,
        "psnr_db": 59.23,
        "seconds": {"edit": 3.0, "report": 1.1},
        "frames": 300,
        "fps": 30.0,
        **kw,
    }


def test_verdict_counts_what_the_rows_say():
    rows = [_row("green", 70.0, 119.0), _row("pos", 71.0, 122.9), _row("chrom", 70.5, 70.9)]
    text = report.verdict(_summary(rows))
    assert text == (
        "2/3 estimators read 120 +/- 3 bpm; 1 still reads the original 70.5 bpm; PSNR 59.2 dB; "
        "4.1 s of compute per 10 s of video"
    )
    rows[2]["hr_after"] = 150.0
    assert "; none reads the original 70.5 bpm;" in report.verdict(_summary(rows))
    # a rate read from the target's waveform (a file, a gliding rate) is shown to 0.1 bpm
    text = report.verdict(_summary(rows, target_hr_bpm=120.3149))
    assert text.startswith("2/3 estimators read 120.3 +/- 3 bpm;"), text


def test_verdict_of_a_removal_and_of_two_faces():
    rows = [_row("green", 72.0, 44.0), _row("pos", 72.2, 71.0), _row("chrom", 71.9, 160.0)]
    text = report.verdict(_summary(rows, target=None, kind="none", seconds={}))
    assert text == (
        "2/3 estimators no longer read the original 72.0 bpm (+/- 3); after the edit they read "
        "44-160 bpm, at most 1 of 3 on one rate; PSNR 59.2 dB"
    )
    # a removal that plants a new common rate says so: an observer would read it as the pulse
    planted = [_row(n, 72.0, h) for n, h in (("green", 121.0), ("pos", 122.5), ("ica", 60.0))]
    text = report.verdict(_summary(planted, target=None, kind="none", seconds={}))
    assert (
        "read 60-122 bpm, but 2 agree on 121.8 bpm, a rate an observer would take for the " in text
    )
    harmonic = [_row(n, 72.0, h) for n, h in (("green", 143.0), ("pos", 144.5), ("ica", 60.0))]
    text = report.verdict(_summary(harmonic, target=None, kind="none", seconds={}))
    assert "but 2 agree on 143.8 bpm, twice the original rate, which gives it away;" in text
    counts = report.verdict_counts(_summary(planted, target=None, kind="none"))[0]
    assert counts["agree_after"] == 2 and counts["consensus_after_bpm"] == pytest.approx(121.75)
    two = [_row("pos", 66.0, 110.5, 0), _row("pos", 84.0, 84.1, 1)]
    text = report.verdict(_summary(two, target=110.0))
    assert text.startswith(
        "face 0: 1/1 estimator read 110 +/- 3 bpm; none reads the original 66.0 bpm; "
        "face 1: 0/1 estimator read 110 +/- 3 bpm; 1 still reads the original 84.0 bpm; PSNR"
    )


def test_a_waveform_target_is_read_from_the_surrogates():
    rows = [_row("pos", 70.0, 95.5)]
    surrogates = [{"face": 0, "surrogate": "pos", "target_hr_bpm": 96.0}]
    summary = _summary(rows, target=None, kind="file", surrogates=surrogates)
    assert report.verdict(summary).startswith("1/1 estimator read 96 +/- 3 bpm")
    summary["surrogates"] = []  # an editor without surrogates: the rate is not known
    assert report.verdict(summary).startswith(
        "after the edit 1 estimator read 96-96 bpm; 0 still read the original 70.0 bpm"
    )


@pytest.mark.parametrize(
    ("hrs", "readable", "agreeing"),
    [
        ([72.0, 72.5, 71.8, 73.0, 110.0], True, 4),
        ([72.0, 95.0, 130.0, 44.0, 150.0], False, 1),
        ([72.0, 73.0, 120.0, 121.0], True, 2),  # half of them, on a tie the tighter group
        ([None, 72.0], False, 1),
    ],
)
def test_audit_verdict(hrs, readable, agreeing):
    rows = [
        {"reader": f"r{i}", "family": "classical", "hr_bpm": h, "snr_db": 1.0}
        for i, h in enumerate(hrs)
    ]
    out = report.audit_verdict(rows)
    assert out["readable"] is readable and out["agreeing"] == agreeing == sum(out["agrees"])
    assert out["verdict"].startswith("The pulse is readable" if readable else "No ")


def _plot_data(remove=False, attackers=False):
    fps, t = 30.0, np.arange(300) / 30.0
    wave = {hr: np.cos(2 * np.pi * hr / 60 * t) for hr in (72.0, 120.0)}
    names = {"green": "classical", "pos": "classical", "physnet_pure": "deep"}
    if attackers:
        names["open-rppg tscan"] = "attacker"
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)
    return report.PlotData(
        fps=fps,
        bvps={"before": {n: wave[72.0] for n in names}, "after": {n: wave[120.0] for n in names}},
        families=names,
        original_frame=frame,
        edited_frame=np.clip(frame.astype(int) + 1, 0, 255).astype(np.uint8),
        frame_index=150,
        target=None if remove else wave[120.0],
        target_hr_bpm=None if remove else 120.0,
        original_hr_bpm=72.0,
        remove=remove,
        title="2/2 estimators read 120 +/- 3 bpm",
    )


def _titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_figure_panels():
    fig = report.figure(_plot_data())
    assert _titles(fig) == [
        "classical estimators: spectra (2)",
        "deep estimators: spectra (1)",
        "difference |edited - original|, frame 150",
        "target: 120 bpm waveform",
    ]
    spectra = fig.axes[0]
    labels = [line.get_label() for line in spectra.get_lines()]
    assert {"before", "after", "original", "target"} <= set(labels)
    # The family's mean spectrum peaks at the rates read before and after.
    for label, hr in (("before", 72.0), ("after", 120.0)):
        (line,) = [ln for ln in spectra.get_lines() if ln.get_label() == label]
        x, y = line.get_data()
        assert abs(x[np.argmax(y)] - hr) < 1.0
    (image,) = fig.axes[2].get_images()
    assert image.get_array().max() == pytest.approx(1.0)  # every pixel changed by one level
    assert fig._suptitle.get_text() == "2/2 estimators read 120 +/- 3 bpm"


def test_figure_of_a_removal_with_attackers_and_of_a_reading():
    fig = report.figure(_plot_data(remove=True, attackers=True))
    assert _titles(fig) == [
        "classical estimators: spectra (2)",
        "deep estimators: spectra (1)",
        "attacker readers: spectra (1)",
        "difference |edited - original|, frame 150",
        "target: remove the pulse",
    ]
    data = _plot_data()
    data.bvps.pop("after")  # a reading (the audit): spectra only
    assert _titles(report.figure(data)) == [
        "classical estimators: spectra (2)",
        "deep estimators: spectra (1)",
    ]


def test_png_is_written_atomically(tmp_path):
    path = report.write_png(tmp_path / "a.report.png", report.figure(_plot_data()))
    assert open(path, "rb").read(4) == b"\x89PNG"
    with pytest.raises(report_errors()):
        report.write_png(tmp_path / "a.report.png", report.figure(_plot_data()), overwrite=False)
    assert [p.name for p in tmp_path.iterdir()] == ["a.report.png"]
    assert report.png_path_for(tmp_path / "x.report.json") == str(tmp_path / "x.report.png")


def report_errors():
    from rppgedit.errors import RppgEditError

    return RppgEditError
