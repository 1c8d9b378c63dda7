"""The edit report reads every surrogate of the ensemble and warns about those that were not fooled."""

import json
import math
import pathlib
import threading

import numpy as np

from rppgedit import edit_report, pipeline, targets
from rppgedit.data import synthetic
from rppgedit.modes import common
from rppgedit.video import crop, encode, face

FPS, FRAMES, TARGET = 30.0, 128, 120.0
# GREEN drives the edit; PBV's weight is negligible, and PBV suppresses colour changes off the pulse
# signature, so it keeps reading the clip's own rate. Measured on seeds 0-4 (128 frames, 32 px):
# GREEN 120.0-120.2 bpm after every edit, PBV 70.4-75.9 bpm on all five.
LEFT_BEHIND = (("green", 1.0), ("pbv", 1e-3))


# The paper's optimiser (weighted mean): a surrogate given a tiny weight is then left behind, the case
# these tests build (the default soft maximum would pull it along: tests/ensemble_balance_test.py).
PAPER = (
    ("balance", "mean"),
    ("colour", "free"),
    ("learning_rate", 0.1),
    ("stop_pearson", None),
    ("init_scale", 0.0),  # the paper starts from zero
)


def _job(surrogates, estimators=("pos", "green"), kind="sinusoid"):
    return pipeline.EditJob(
        target=targets.TargetSpec(kind=kind, hr_bpm=TARGET),
        work_size=32,
        window=FRAMES,
        overlap=0,
        batch_windows=1,
        estimators=estimators,
        method_options=(("surrogates", surrogates), *PAPER),
    )


def _edit(tmp_path, seed, job):
    clip = synthetic.make_clip(seed, num_frames=FRAMES, height=64, width=64)
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    encode.write_video(src, clip.frames, FPS)
    box = crop.enclosing_square(clip.crop_boxes)
    return pipeline.run_edit(str(src), str(out), job, face_box=box, progress=False)


def test_every_surrogate_is_read_after_the_edit_and_written_to_the_json(tmp_path):
    summary = _edit(tmp_path, 0, _job((("pos", 1.0), ("chrom", 0.5))))
    saved = json.loads(pathlib.Path(summary["report_path"]).read_text())
    assert saved["surrogates"] == saved["faces"][0]["surrogates"]
    entries = {e["surrogate"]: e for e in saved["surrogates"]}
    assert list(entries) == ["pos", "chrom"]
    for e in entries.values():
        assert math.isfinite(e["hr_after"]) and math.isfinite(e["pearson_to_target"]), e
        assert e["target_hr_bpm"] == TARGET
        assert e["fooled"] == (abs(e["hr_after"] - TARGET) <= edit_report.FOOLED_BPM), e
    # A surrogate that is also a report estimator gives the same reading as its row.
    (pos_row,) = [r for r in saved["rows"] if r["estimator"] == "pos"]
    assert entries["pos"]["hr_after"] == pos_row["hr_after"]
    assert entries["pos"]["fooled"] and entries["pos"]["pearson_to_target"] > 0.5
    missed = [e["surrogate"] for e in entries.values() if not e["fooled"]]
    assert [w.split(" ", 1)[0] for w in saved["warnings"]] == missed


def test_a_surrogate_left_behind_gets_one_warning_line(tmp_path, capsys):
    summary = _edit(tmp_path, 1, _job(LEFT_BEHIND))
    entries = {e["surrogate"]: e for e in summary["surrogates"]}
    assert entries["green"]["fooled"], entries
    pbv = entries["pbv"]
    assert not pbv["fooled"] and abs(pbv["hr_after"] - TARGET) > edit_report.FOOLED_BPM, pbv
    assert summary["warnings"] == [
        f"pbv still reads {pbv['hr_after']:.1f} bpm after the edit (target {TARGET:.1f} bpm, "
        f"Pearson {pbv['pearson_to_target']:.2f})"
    ]
    common.print_report(summary)
    printed = capsys.readouterr().out.splitlines()
    assert [line for line in printed if line.startswith("warning:")] == [
        f"warning: {summary['warnings'][0]}"
    ]


def test_two_faces_name_the_face_and_removal_compares_with_the_before_rate():
    two = synthetic.make_multi_face_clip(
        (1, 2), (66.0, 84.0), num_frames=FRAMES, height=64, face_width=64
    )
    everywhere = np.ones(FRAMES, bool)
    tracks = [
        face.FaceTrack(np.tile(crop.enclosing_square(f.crop_boxes), (FRAMES, 1)), everywhere)
        for f in two.faces
    ]
    job = _job(LEFT_BEHIND, estimators=("green",))
    result = pipeline.edit_frames(two.frames, FPS, tracks, job)
    report = edit_report.report_rows(job, result, two.frames, FPS)
    assert [e["face"] for e in report["surrogates"]] == [0, 0, 1, 1]
    # each warning names the face of a surrogate left behind (face 1's PBV stays at its rate on
    # every rounding seed; face 0's reaches the target on some and not on others)
    behind = [e for e in report["surrogates"] if not e["fooled"]]
    assert [(e["face"], e["surrogate"]) for e in behind][-1:] == [(1, "pbv")]
    assert report["warnings"] == [
        f"face {e['face']}: {e['surrogate']} still reads {e['hr_after']:.1f} bpm after the edit"
        f" (target {TARGET:.1f} bpm, Pearson {e['pearson_to_target']:.2f})"
        for e in behind
    ]

    removal = _job(LEFT_BEHIND, estimators=("green",), kind="none")
    result = pipeline.edit_frames(two.frames, FPS, tracks[:1], removal)
    report = edit_report.report_rows(removal, result, two.frames, FPS)
    assert len(report["surrogates"]) == 2
    for e in report["surrogates"]:
        assert e["pearson_to_target"] is None and e["target_hr_bpm"] is None
        assert e["fooled"] == (abs(e["hr_after"] - e["hr_before"]) > edit_report.FOOLED_BPM)
    expected = [
        f"{e['surrogate']} still reads {e['hr_after']:.1f} bpm after the removal "
        f"(before {e['hr_before']:.1f} bpm)"
        for e in report["surrogates"]
        if not e["fooled"]
    ]
    assert report["warnings"] == expected


def test_the_inputs_readings_are_taken_on_a_thread_once_its_crops_are_in(monkeypatch):
    """`Readers` reads "before" as soon as every face's input crops are in (while an edit would
    still run), on its own thread, and gives the readings a reader fed the same crops gives."""
    from rppgedit import readings

    threads = []
    real = readings.StreamReader.readings

    def recorded(self, **kw):
        threads.append(threading.current_thread().name)
        return real(self, **kw)

    monkeypatch.setattr(readings.StreamReader, "readings", recorded)
    clip = synthetic.make_clip(1, num_frames=150, height=64, width=64)
    job = _job(LEFT_BEHIND)
    boxes = np.tile(crop.enclosing_square(clip.crop_boxes), (150, 1))
    empty = np.zeros((0, 32, 32, 3), np.float32)
    faces = [pipeline.FaceEdit(boxes, 0, 150, empty, empty[..., 0] > 0)]
    readers = edit_report.Readers(job, faces, FPS)
    reference = readings.StreamReader(readers.readers["before"][0].names, 150, FPS)
    for start in range(0, 150, 50):
        assert not threads  # nothing is read before the last crop
        crops, mask = pipeline.crop_and_mask(
            clip.frames[start : start + 50], boxes[start : start + 50], job
        )
        readers.add_crop("before", 0, crops, mask)
        reference.add(crops, mask)
        readers.add_frames("after", start, clip.frames[start : start + 50])
    got = readers.readings(0)
    assert threads[0].startswith("rppgedit-readings") and threads[1:] == ["MainThread"]
    assert got["before"] == real(reference)
    assert got["before"].keys() == got["after"].keys() == {"pos", "green", "pbv"}
    assert all("bvp" in r for r in got["after"].values())
