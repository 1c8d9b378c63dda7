"""`rppgedit experiment`: one of the papers' experiments (rppgedit/papers/run.py), run by the
grid runner (rppgedit/runner.py) that runs the sweeps."""

from __future__ import annotations

from rppgedit.modes import common


def run(s) -> None:
    from rppgedit import runner
    from rppgedit.papers import run as experiments

    common.require(s, "experiment")
    # jax.distributed (hosts sharing --out_dir) must start before any other JAX call.
    runner.initialize_distributed(
        s.coordinator_address, s.num_processes, s.process_id, auto=s.distributed
    )
    common.check_settings(s)
    summary = experiments.run_experiment(
        s.experiment,
        dataset=s.dataset,
        data_dir=s.data_dir,
        clip_seconds=s.clip_seconds,
        out_dir=s.out_dir or f"results/experiments/{s.experiment}",
        methods=tuple(s.methods) or None,
        lambdas=tuple(s.fidelity_weights),
        learning_rates=tuple(s.learning_rates),
        pulseedit_lambdas=tuple(s.pulseedit_fidelity_weights),
        target_hrs=tuple(s.target_hrs),
        target_hr_bpm=s.target_hr,
        # The editor's settings are Privacy-Phys's; a swept field (lambda, learning rate)
        # overrides them.
        method_options={"privacy_phys": common.method_options(s)},
        work_size=s.work_size,
        window=s.window,
        overlap=s.overlap,
        batch_windows=s.batch_windows,
        clips_per_chunk=s.clips_per_chunk,
        mask_method=s.mask_method,
        estimators=tuple(s.estimators),
        attackers=tuple(s.attackers),
        attacker_models=tuple(s.attacker_models) or None,
        max_clips=s.max_clips or None,
        seed=s.seed,
        synthetic_size=s.synthetic_size,
        allow_no_face=s.allow_no_face,
        make_plots=common.plots(s),
        progress=s.progress,
        config=s.tree(),
    )
    if not summary["complete"]:
        print(
            f"edited {summary['edited']}, "
            f"skipped {summary['skipped']} items; {summary['missing']} items of other processes "
            "are not finished yet (the last process to finish writes the tables)"
        )
        return
    print(summary["markdown"])
    print(
        f"wrote {summary['records_path']}, {summary['tables_path']} and {len(summary['plots'])} "
        f"plots ({summary['clips']} clips, {summary['seconds']['total']:.0f} s)"
    )
