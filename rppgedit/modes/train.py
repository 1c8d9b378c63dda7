"""`rppgedit train`: train PhysioLatent's VAE and editor (rppgedit/train.py)."""

from __future__ import annotations

import json


def run(s) -> None:
    from rppgedit import train

    common = dict(batch=s.train_batch, bank_clips=s.train_bank_clips, seed=s.train_seed)
    vae_cfg = train.TrainConfig(
        stage="vae",
        steps=s.train_vae_steps,
        num_frames=s.train_vae_frames,
        learning_rate=s.train_vae_lr,
        **common,
    )
    editor_cfg = train.TrainConfig(
        stage="editor",
        steps=s.train_editor_steps,
        num_frames=s.train_editor_frames,
        learning_rate=s.train_editor_lr,
        physnet_weight=s.train_physnet_weight,
        fidelity_weight=s.train_fidelity_weight,
        compositing=s.train_compositing,
        **common,
    )
    summary = train.run_train(
        s.train_stage, vae_cfg, editor_cfg, s.train_dir, s.train_export_dir, progress=s.progress
    )
    print(json.dumps(summary, indent=1, default=str))
