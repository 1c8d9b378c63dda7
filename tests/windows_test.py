"""Windowing and cross-fade blending."""

import dataclasses

import numpy as np
import pytest

from rppgedit.windows import blend_weights, overlap_add, window_starts


@pytest.mark.parametrize(
    "num, length, overlap",
    [(128, 128, 32), (300, 128, 32), (602, 128, 0), (129, 128, 64), (1000, 96, 48)],
)
def test_windows_cover_and_weights_sum_to_one(num, length, overlap):
    starts = window_starts(num, length, overlap)
    assert starts[0] == 0 and starts[-1] == num - length
    assert all(b - a <= length - overlap for a, b in zip(starts, starts[1:], strict=False))
    weights = blend_weights(starts, length, num)
    total = np.zeros(num)
    for s, w in zip(starts, weights, strict=True):
        total[s : s + length] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert (weights >= 0).all()


def test_overlap_add_reassembles_a_consistent_signal_exactly():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((300, 4, 4, 3)).astype(np.float32)
    starts = window_starts(300, 128, 32)
    windows = np.stack([signal[s : s + 128] for s in starts])
    np.testing.assert_allclose(overlap_add(windows, starts, 300), signal, atol=1e-5)


def test_crossfade_has_no_step():
    starts = window_starts(192, 128, 64)
    assert starts == [0, 64]
    windows = np.stack([np.zeros(128), np.ones(128)])[..., None].astype(np.float32)
    out = overlap_add(windows, starts, 192)[:, 0]
    assert np.max(np.abs(np.diff(out))) < 1.0 / 32  # a ramp, not a jump of 1


def test_bad_arguments():
    with pytest.raises(ValueError):
        window_starts(100, 128, 0)
    with pytest.raises(ValueError):
        window_starts(300, 128, 128)


def test_a_job_without_a_window_gets_the_default_of_its_target():
    """Window 0 (the flag's and `EditJob`'s default) is resolved when the job is made: 128 frames
    for a target, 256 for a removal; an asked-for window is kept, and the sweep resolves its own
    the same way (its removals' bits equal `--mode=edit`'s)."""
    from rppgedit import pipeline, sweep, targets, validate
    from rppgedit.errors import RppgEditError
    from rppgedit.windows import REMOVAL_WINDOW, TARGET_WINDOW, default_window

    none = targets.TargetSpec(kind="none")
    assert (TARGET_WINDOW, REMOVAL_WINDOW) == (128, 256)
    assert pipeline.EditJob().window == default_window(False) == 128
    assert pipeline.EditJob(target=none).window == default_window(True) == 256
    assert pipeline.EditJob(target=none, window=64).window == 64
    spec = sweep.SweepSpec(target_kind="none", seeds=(0,))
    assert sweep._edit_job(spec).window == 256
    assert sweep._edit_job(dataclasses.replace(spec, target_kind="sinusoid")).window == 128
    validate.windows(TARGET_WINDOW, 32, 2, 64)
    for bad in (0, 5, 31):  # 0 reaches validation only unresolved (`settings.resolve` resolves it)
        with pytest.raises(RppgEditError, match=r"^--window: must be 0 \(the default\) or in 32"):
            validate.windows(bad, 0, 2, 64)
    with pytest.raises(RppgEditError, match="^--overlap"):
        validate.windows(TARGET_WINDOW, 128, 2, 64)  # the window bounds the overlap
