"""`rppgedit sweep`: a grid of edits over clips, resumable, sharded over devices and hosts
(rppgedit/sweep.py has the multi-device and multi-host commands)."""

from __future__ import annotations

import os

from rppgedit.errors import RppgEditError
from rppgedit.modes import common


def run(s) -> None:
    from rppgedit import runner, sweep

    out_dir = s.out_dir or "results/sweep"
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise RppgEditError(f"--out_dir={out_dir} exists and is not a folder")
    if s.merge_only:
        result = sweep.merge(out_dir)
        print(result["table"])
        print(f"wrote {result['csv_path']} and {result['md_path']}")
        return
    # jax.distributed must start before any other JAX call.
    runner.initialize_distributed(
        s.coordinator_address, s.num_processes, s.process_id, auto=s.distributed
    )

    from rppgedit import validate

    common.check_settings(s)
    validate.integer("--batch_windows", s.batch_windows, 1, 256)
    validate.integer("--clips_per_chunk", s.clips_per_chunk, 1, 100_000)
    validate.integer("--synthetic_frames", s.synthetic_frames, 32, 100_000)
    validate.integer("--synthetic_size", s.synthetic_size, 16, 2048)
    validate.finite("--synthetic_hr", s.synthetic_hr, low=30, high=240)
    validate.finite("--clip_seconds", s.clip_seconds, low=1, high=3600)
    for name in ("target_hrs", "fidelity_weights"):
        for value in getattr(s, name):
            validate.finite(f"--{name}", value, low=0)
    for value in s.steps_grid:
        validate.integer("--steps_grid", value, 1, validate.MAX_STEPS)

    fixed = tuple(
        (k, v) for k, v in common.method_options(s) if k not in ("steps", "fidelity_weight")
    )
    spec = sweep.SweepSpec(
        source=s.dataset,
        data_dir=s.data_dir,
        seeds=tuple(s.synthetic_seeds),
        num_frames=s.synthetic_frames,
        frame_size=s.synthetic_size,
        true_hr_bpm=s.synthetic_hr,
        motion=s.synthetic_motion,
        clip_seconds=s.clip_seconds,
        clips_per_sample=s.clips_per_sample or None,
        allow_no_face=s.allow_no_face,
        target_hrs=tuple(s.target_hrs),
        fidelity_weights=tuple(s.fidelity_weights) or (s.fidelity_weight,),
        methods=tuple(s.methods) or (s.method,),
        steps=tuple(s.steps_grid) or (s.steps,),
        method_options=fixed,
        target_kind=s.target,
        work_size=s.work_size,
        window=s.window,
        overlap=s.overlap,
        mask_method=s.mask_method,
        quantize=s.quantize,
        seed=s.seed,
        estimators=tuple(s.estimators),
        save=s.sweep_save,
    )
    summary = sweep.run_sweep(
        spec,
        out_dir,
        batch_per_device=s.batch_windows,
        clips_per_chunk=s.clips_per_chunk,
        progress=s.progress,
        config=s.tree(),
    )
    rate = summary["items_per_minute"]
    print(
        f"process {summary['process_index']}/{summary['process_count']} on "
        f"{len(summary['devices'])} device(s): edited {summary['edited']}, skipped "
        f"{summary['skipped']} of {summary['process_items']} items"
        + (f" ({rate:.1f} items/min)" if rate else "")
    )
    if "merge" in summary:
        print(summary["merge"]["table"])
        print(f"wrote {summary['merge']['csv_path']} and {summary['merge']['md_path']}")
