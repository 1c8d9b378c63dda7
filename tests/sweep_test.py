"""Tests of rppgedit.sweep: device counts, kill -9 and resume, two jax.distributed processes, merge.

Sweeps run in subprocesses (this file is also their driver: `python tests/sweep_test.py ...`),
because `XLA_FLAGS=--xla_force_host_platform_device_count` and `jax.distributed` need a fresh
process. They share a persistent compilation cache, so only the first run of each program compiles.
The tiny grid: 3 synthetic clips (64 frames, 64x64, cropped to 32x32) x 2 target HRs = 6 items,
privacy_phys with the classical POS+CHROM surrogates and 5 steps, window 64, estimators green+pos.

Tolerance across restarts and process counts: zero. Every device runs the same per-device program
on `batch_per_device` windows, so the edited crops and every record must be bit-identical; the tests
compare the CSV text and the .npy bytes. Across device counts, one device runs XLA's unpartitioned
program: float rounding, see `test_one_vs_four_devices_agree`.
"""

from __future__ import annotations

import io as pyio
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from rppgedit import results_file, runner, sweep
from rppgedit.errors import RppgEditError

ROOT = pathlib.Path(__file__).resolve().parents[1]
SURROGATES = (("pos", 1.0), ("chrom", 1.0))
# The paper's optimiser settings: with 5 steps their larger steps reach the target on 32x32 crops.
PAPER_STEPS = (
    ("learning_rate", 0.1),
    ("colour", "free"),
    ("balance", "mean"),
    ("stop_pearson", None),
)
ESTIMATORS = ("green", "pos")
NUM_ITEMS = 6


def tiny_spec(**changes) -> sweep.SweepSpec:
    base = dict(
        seeds=(0, 1, 2),
        num_frames=64,
        frame_size=64,
        target_hrs=(60.0, 120.0),
        method_options=(("surrogates", SURROGATES), *PAPER_STEPS),
        steps=(5,),
        work_size=32,
        window=64,
        overlap=16,
        estimators=ESTIMATORS,
    )
    base.update(changes)
    return sweep.SweepSpec(**base)


# --------------------------------------------------------------------------------------------
# The subprocess driver.


def _driver(argv: list[str]) -> None:
    """argv: out_dir, batch_per_device, mode ("plain", "slow", "dataset:DIR"), [coordinator,
    num_processes, process_id]."""
    import jax

    jax.config.update("jax_numpy_rank_promotion", "raise")
    out, batch, mode = argv[0], int(argv[1]), argv[2]
    if len(argv) > 3:
        runner.initialize_distributed(argv[3], int(argv[4]), int(argv[5]))
    spec = tiny_spec()
    if mode.startswith("dataset:"):
        spec = tiny_spec(
            source="folder", data_dir=mode[8:], clip_seconds=64 / 30, target_hrs=(120,)
        )

    def slow(key, records):  # gives the killer time to strike between or inside items
        del key, records
        time.sleep(0.4)

    runs = 2 if mode.startswith("dataset:") else 1  # the second dataset run must skip everything
    for _ in range(runs):
        summary = sweep.run_sweep(
            spec,
            out,
            batch_per_device=batch,
            progress=False,
            on_item=slow if mode == "slow" else None,
        )
        summary.pop("merge", None)
        print("SUMMARY " + json.dumps(summary), flush=True)


def _env(cache: pathlib.Path, devices: int = 1) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_PLATFORMS"] = "cpu"
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    env.pop("XLA_FLAGS", None)
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def _start(out, cache, *, batch=1, mode="plain", devices=1, dist=()):
    args = [sys.executable, __file__, str(out), str(batch), mode, *map(str, dist)]
    return subprocess.Popen(
        args,
        env=_env(cache, devices),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _summaries(proc, timeout=240) -> list[dict]:
    text, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, text[-3000:]
    return [json.loads(line[8:]) for line in text.splitlines() if line.startswith("SUMMARY ")]


def _run(out, cache, **kwargs) -> list[dict]:
    return _summaries(_start(out, cache, **kwargs))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _items(out: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "items").glob("*.npy"))}


def _lines(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jax_cache")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache):
    """One uninterrupted single-process, single-device run."""
    out = tmp_path_factory.mktemp("reference")
    (summary,) = _run(out, cache)
    return out, summary


# --------------------------------------------------------------------------------------------
# Subprocess tests.


def test_reference_run_is_complete_and_sane(reference):
    out, summary = reference
    assert summary["edited"] == NUM_ITEMS and summary["skipped"] == 0
    records = _lines(out / "results.0.jsonl")
    assert len(records) == NUM_ITEMS * len(ESTIMATORS)
    keys = json.loads((out / sweep.MANIFEST).read_text())["keys"]
    assert sorted({r["key"] for r in records}) == sorted(keys) and len(keys) == NUM_ITEMS
    spec = tiny_spec()
    for r in records:
        edited = np.load(out / r["output"])
        assert edited.shape == (64, 32, 32, 3) and edited.dtype == np.uint8
        # PSNR recomputed independently (float64 NumPy) from the saved crop and the clip.
        ref = next(c for c in sweep._synthetic_refs(spec) if c.id == r["clip"])
        crop8 = sweep._load_synthetic(ref, spec).crop8.astype(np.float64)
        mse = np.mean((edited - crop8) ** 2)
        np.testing.assert_allclose(r["psnr_db"], 10 * np.log10(255.0**2 / mse), rtol=1e-9)
        assert 0 < mse and r["psnr_db"] > 50.0  # an edit happened, and it is small
    # The editor moves the POS reading towards the target: mean error well below the distance of
    # the true rate (72 bpm) to the targets (12 and 48 bpm).
    pos = [r for r in records if r["estimator"] == "pos"]
    assert np.mean([r["abs_err_to_target"] for r in pos]) < 6.0
    assert np.mean([abs(r["hr_before"] - r["target_hr_bpm"]) for r in pos]) > 25.0
    csv_rows = (out / "results.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + NUM_ITEMS * len(ESTIMATORS)


def test_one_vs_four_devices_agree(reference, cache, tmp_path):
    """XLA compiles a one-device shard_map without partitioning, so 1 and 4 devices differ by float
    rounding (measured: ~1e-3 of the edited values by one float32 ulp, 6e-8); after the 8-bit
    rounding at most one level on a few pixels, and readings within float noise."""
    ref_out, _ = reference
    (summary,) = _run(tmp_path, cache, devices=4)  # 6 items on 4 devices: last batch padded by 2
    assert len(summary["devices"]) == 4 and summary["edited"] == NUM_ITEMS
    got, want = _items(tmp_path), _items(ref_out)
    assert got.keys() == want.keys() and len(got) == NUM_ITEMS
    for name in want:
        a, b = (np.load(pyio.BytesIO(x[name])).astype(int) for x in (got, want))
        assert np.abs(a - b).max() <= 1 and np.mean(a != b) < 1e-4, name
    rows = {(r["key"], r["estimator"]): r for r in _lines(tmp_path / "results.0.jsonl")}
    for r in _lines(ref_out / "results.0.jsonl"):
        other = rows.pop((r["key"], r["estimator"]))
        assert abs(other["hr_after"] - r["hr_after"]) < 0.05
        assert abs(other["psnr_db"] - r["psnr_db"]) < 0.01
    assert not rows


def test_kill_and_resume_equals_uninterrupted(reference, cache, tmp_path):
    ref_out, _ = reference
    results = tmp_path / "results.0.jsonl"
    seed = time.time_ns() % 2**32  # a random kill point, reported on failure
    kill_after = int(np.random.default_rng(seed).integers(1, NUM_ITEMS * len(ESTIMATORS) - 3))
    proc = _start(tmp_path, cache, mode="slow")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") >= kill_after:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.communicate(timeout=60)
    where = f"(killed after {kill_after} lines, seed {seed})"
    assert proc.returncode == -signal.SIGKILL, f"the sweep ended before it was killed {where}"
    done, _ = results_file.read_results(results)
    assert 0 < len(done) < NUM_ITEMS, where
    # Also leave what a kill inside a write would: a partial item and a torn last line.
    keys = json.loads((tmp_path / sweep.MANIFEST).read_text())["keys"]
    unfinished = next(k for k in keys if k not in done)
    fake = dict(next(iter(done.values()))[0], key=unfinished)
    with open(results, "a") as f:
        f.write(json.dumps(fake) + "\n" + json.dumps(fake)[:40])
    (summary,) = _run(tmp_path, cache)
    assert summary["skipped"] == len(done) and summary["edited"] == NUM_ITEMS - len(done)
    records = _lines(results)
    pairs = [(r["key"], r["part"]) for r in records]
    assert len(pairs) == len(set(pairs)) == NUM_ITEMS * len(ESTIMATORS)
    assert (tmp_path / "results.csv").read_text() == (ref_out / "results.csv").read_text()
    assert _items(tmp_path) == _items(ref_out)


def test_two_processes_merge_to_the_same_table(reference, cache, tmp_path):
    ref_out, _ = reference
    address = f"127.0.0.1:{_free_port()}"
    procs = [_start(tmp_path, cache, dist=(address, 2, pid)) for pid in range(2)]
    summaries = [_summaries(p)[0] for p in procs]
    assert [s["process_items"] for s in summaries] == [3, 3]
    assert all(s["process_count"] == 2 for s in summaries)
    keys0 = {r["key"] for r in _lines(tmp_path / "results.0.jsonl")}
    keys1 = {r["key"] for r in _lines(tmp_path / "results.1.jsonl")}
    assert len(keys0) == len(keys1) == 3 and not keys0 & keys1
    assert (tmp_path / "results.csv").read_text() == (ref_out / "results.csv").read_text()
    assert (tmp_path / "results.md").read_text() == (ref_out / "results.md").read_text()


def test_dataset_source_is_cached_and_resumed(cache, tmp_path):
    from rppgedit.data import synthetic
    from rppgedit.video import encode

    data = tmp_path / "data"
    data.mkdir()
    for seed in (5, 6):
        clip = synthetic.make_clip(
            seed, hr_bpm=66.0 + 12 * (seed - 5), num_frames=64, height=64, width=64, hrv=0.0
        )
        encode.write_video(data / f"s{seed}.mkv", clip.frames, clip.fps)
        times = np.arange(64) / clip.fps
        np.savetxt(data / f"s{seed}_bvp.csv", np.stack([times, clip.bvp], 1), delimiter=",")
    first, second = _run(tmp_path / "out", cache, mode=f"dataset:{data}")
    assert first["edited"] == 2 and second["skipped"] == 2 and second["edited"] == 0
    records = _lines(tmp_path / "out" / "results.0.jsonl")
    assert sorted({r["clip"] for r in records}) == ["folder/s5.mkv@0", "folder/s6.mkv@0"]
    assert len(list((tmp_path / "out" / "clips").glob("*.json"))) == 2
    for r in records:  # the ground truth's rate, read from the CSV, within a spectral bin
        assert abs(r["true_hr_bpm"] - (66.0 if "s5" in r["clip"] else 78.0)) < 2.0


# --------------------------------------------------------------------------------------------
# In-process tests (no editing).


def _record(key, part, parts, **extra):
    base = {"key": key, "part": part, "parts": parts, "estimator": ESTIMATORS[part]}
    return {**base, **extra}


def test_read_results_ignores_torn_lines_and_partial_items(tmp_path):
    path = tmp_path / "results.0.jsonl"
    lines = [_record("a", 0, 2), _record("a", 1, 2), _record("b", 0, 2), _record("a", 0, 2)]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"key": "c", "pa')
    done, clean = results_file.read_results(path)
    assert set(done) == {"a"} and [r["part"] for r in done["a"]] == [0, 1] and not clean
    assert results_file.read_results(tmp_path / "missing.jsonl") == ({}, True)


def test_finished_keys_rewrites_only_own_file(tmp_path):
    own, other = tmp_path / "results.0.jsonl", tmp_path / "results.1.jsonl"
    own.write_text(json.dumps(_record("a", 0, 1)) + "\n" + json.dumps(_record("b", 0, 2)) + "\n")
    torn = json.dumps(_record("c", 0, 1)) + "\n" + '{"ke'
    other.write_text(torn)
    assert results_file.finished_keys(
        tmp_path / "results.0.jsonl", tmp_path.glob("results.*.jsonl")
    ) == {"a", "c"}
    assert _lines(own) == [_record("a", 0, 1)]
    assert other.read_text() == torn  # another process's file is never touched


def _keys(spec, refs) -> list[str]:
    return [it.key for it in runner.make_items(sweep.SweepPlan(spec, "unused"), refs)]


def test_keys_follow_content_not_position():
    refs = sweep._synthetic_refs(tiny_spec())
    keys = _keys(tiny_spec(), refs)
    shuffled = _keys(tiny_spec(target_hrs=(120.0, 60.0)), refs[::-1])
    assert sorted(keys) == sorted(shuffled) and len(set(keys)) == NUM_ITEMS
    assert keys != shuffled  # the grid's order (clip, then setting) follows the spec
    assert not set(_keys(tiny_spec(fidelity_weights=(0.5,)), refs)) & set(keys)
    items = runner.make_items(sweep.SweepPlan(tiny_spec(), "unused"), refs)
    assert sorted(it.setting.target_hr_bpm for it in items) == [60, 60, 60, 120, 120, 120]
    # A swept setting the method does not have collapses to one item per clip and target.
    smooth = runner.make_items(
        sweep.SweepPlan(
            tiny_spec(
                methods=("smooth_remove",), steps=(5, 10), method_options=(), target_kind="none"
            ),
            "unused",
        ),
        refs,
    )
    assert len(smooth) == 3 and not any(hasattr(it.cfg, "steps") for it in smooth)


def test_shards_partition_the_grid():
    plan = sweep.SweepPlan(tiny_spec(fidelity_weights=(0.1, 1.0)), "unused")
    items = runner.make_items(plan, sweep._synthetic_refs(tiny_spec()))
    shards = [runner.shard_items(items, p, 5) for p in range(5)]
    keys = [it.key for shard in shards for it in shard]
    assert sorted(keys) == sorted(it.key for it in items) and len(keys) == len(set(keys)) == 12
    assert all(len(shard) in (2, 3) for shard in shards)


def test_merge_deduplicates_and_restricts_to_the_grid(tmp_path):
    def item(key, clip, hr_after):
        common = dict(
            clip=clip,
            true_hr_bpm=72.0,
            method="privacy_phys",
            fidelity_weight=0.1,
            steps=5,
            target_kind="sinusoid",
            target_hr_bpm=120.0,
            hr_before=72.0,
            hr_after=hr_after,
            abs_err_to_target=abs(hr_after - 120.0),
            snr_before=0.0,
            snr_after=1.0,
            psnr_db=55.0,
            ssim=0.999,
            skin_coverage=0.3,
            output=None,
            settings={"estimators": list(ESTIMATORS)},
        )
        return [_record(key, p, 2, **common) for p in range(2)]

    a, b, stale = item("k1", "c1", 118.0), item("k2", "c2", 124.0), item("k0", "c0", 0.0)
    (tmp_path / "results.0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in a + stale))
    (tmp_path / "results.1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in b + a))
    (tmp_path / sweep.MANIFEST).write_text(json.dumps({"keys": ["k1", "k2", "k3"]}))
    result = sweep.merge(tmp_path)
    assert result["items"] == 2 and result["missing"] == ["k3"]
    assert [(r["key"], r["estimator"]) for r in result["rows"]] == [
        ("k1", "green"),
        ("k1", "pos"),
        ("k2", "green"),
        ("k2", "pos"),
    ]
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 5
    # MAE to target over the two clips: (2 + 4) / 2.
    assert "| 2 | 72.0 | 121.0 | 3.00 | 55.00 | 0.99900 |" in result["table"]


def test_bad_spec_and_folder_are_user_errors(tmp_path):
    with pytest.raises(RppgEditError, match="target kind"):
        tiny_spec(target_kind="file")
    with pytest.raises(RppgEditError, match="data_dir"):
        tiny_spec(source="ubfc_rppg")
    with pytest.raises(RppgEditError, match="not found"):
        sweep.merge(tmp_path / "nowhere")


if __name__ == "__main__":
    _driver(sys.argv[1:])
