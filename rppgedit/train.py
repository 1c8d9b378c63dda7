"""Training PhysioLatent on synthetic faces: first the video VAE, then (VAE frozen) the editor.

PhysioLatent (CVPR 2026, arXiv:2509.25348) trains its fusion layers, decoder FiLM and decoder output
layer with a fidelity loss (MSE + LPIPS), a waveform loss 1 - Pearson(rPPG(v_hat), sin(2 pi f t)) and
a frequency loss |f - f_pred| switched on after a warm-up (curriculum). Here:
- data: a bank of seeded synthetic clips (`rppgedit.data.synthetic`, training seeds < 10000; skin
  tones 0.05-0.95, motion and illumination changes on or off, random true heart rate and pulse
  strength), face-cropped to 32x32 as the pipeline does, skin masks from `video.skin.skin_mask`;
  batches are random windows with horizontal flips and a brightness gain, sampled on the device;
- VAE stage: MSE + kl_weight * KL + ssim_weight * (1 - SSIM), all parameters trained;
- editor stage: only the fusion network, FiLM and the decoder output layer are trained (the VAE
  params are not in the optimiser at all). Fidelity: MSE of the composited clip to the input on the
  0-255 scale (+ 1 - SSIM; LPIPS needs weights that cannot be fetched). Waveform: 1 - Pearson of POS
  and CHROM (Wang et al. 2017; de Haan & Jeanne 2013) on the skin-masked mean colour, and optionally
  of PhysNet (`physnet_pure`), to a sinusoid at a target heart rate drawn uniformly from
  `hr_range_bpm`. Frequency: |soft spectral peak of POS - target| in Hz
  (`signals.spectral_peak_soft`), its weight ramped linearly from 0 after `freq_start` of the run.
  Removal (probability `remove_prob`): 1 - spectral flatness of POS and CHROM in the pulse band.
- optimiser: AdamW with a one-cycle cosine learning rate (`optax.cosine_onecycle_schedule`);
- state: {"params", "opt_state", "step", "rng"} saved by an orbax `CheckpointManager`; every step's
  randomness is `fold_in(rng, step)`, so a run killed and resumed from its last checkpoint gives the
  same parameters as an uninterrupted one; a non-finite loss stops the run naming the step.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rppgedit import metrics, signals
from rppgedit import progress as progress_bars
from rppgedit.editors import physiolatent
from rppgedit.errors import RppgEditError
from rppgedit.estimators import registry
from rppgedit.estimators.roi import spatial_mean
from rppgedit.models import video_vae

_log = logging.getLogger(__name__)

STAGES = ("vae", "editor")
HELD_OUT_SEED = 10000  # validation and test clips use seeds from here on; training seeds are below


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training stage.

    Attributes:
      stage: "vae" or "editor".
      model: architecture (`physiolatent.ModelConfig`).
      steps: optimiser steps.
      batch: clips per step.
      num_frames: frames per training clip (even).
      fps: frame rate of the synthetic clips.
      learning_rate: peak of the one-cycle schedule.
      weight_decay: AdamW decoupled weight decay.
      seed: seed of initialisation and sampling.
      bank_clips, bank_frames, bank_seed: synthetic clips in the data bank, their length, first seed.
      kl_weight, ssim_weight: VAE stage loss weights.
      fidelity_weight: editor stage weight of the MSE on the 0-255 scale.
      edit_ssim_weight: editor stage weight of 1 - SSIM.
      pos_weight, chrom_weight, physnet_weight: waveform loss weights per surrogate.
      freq_weight, freq_start, freq_ramp: frequency loss weight, the fraction of the run before it
        starts and the fraction over which it ramps linearly to `freq_weight`.
      hr_range_bpm: targets are drawn uniformly in this range.
      remove_prob: probability of a removal sample.
      compositing: "residual" or "paste" (what the loss sees).
      checkpoint_every: steps between CheckpointManager saves.
      log_every: steps between logged metric lines.
    """

    stage: str = "editor"
    model: physiolatent.ModelConfig = physiolatent.ModelConfig()
    steps: int = 1000
    batch: int = 4
    num_frames: int = 128
    fps: float = 30.0
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    bank_clips: int = 160
    bank_frames: int = 160
    bank_seed: int = 0
    kl_weight: float = 1e-4
    ssim_weight: float = 0.2
    fidelity_weight: float = 0.3
    edit_ssim_weight: float = 1.0
    pos_weight: float = 1.0
    chrom_weight: float = 1.0
    physnet_weight: float = 0.0
    freq_weight: float = 1.0
    freq_start: float = 0.3
    freq_ramp: float = 0.3
    hr_range_bpm: tuple[float, float] = (45.0, 150.0)
    remove_prob: float = 0.1
    compositing: str = "residual"
    checkpoint_every: int = 50
    log_every: int = 10

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.num_frames % 2 or self.num_frames > self.bank_frames:
            raise ValueError("num_frames must be even and <= bank_frames")
        if self.bank_seed + self.bank_clips > HELD_OUT_SEED:
            raise ValueError(f"training seeds must stay below {HELD_OUT_SEED}")
        if self.steps < 1 or self.batch < 1:
            raise ValueError("steps and batch must be >= 1")


# ------------------------------------------------------------------------------------------------
# Data


def face_crop(clip, size: int = physiolatent.SIZE):
    """(crop "t s s 3" float32 in [0,1], skin mask "t s s") of a synthetic `clips.Clip` (or a
    `synthetic.SyntheticClip`).

    The generator's face box is made square around its centre and area-resized to `size`, as the
    pipeline crops faces; the mask is `video.skin.skin_mask` of the crop, as at inference.
    """
    from rppgedit.video import crop, skin

    b = clip.face_boxes.astype(np.float64)
    cx, cy, side = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 3] - b[:, 1]
    boxes = np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=-1)
    frames = crop.crop_resize(clip.frames, boxes, size)
    return frames, skin.skin_mask(frames)


def synthetic_face(seed: int, num_frames: int, fps: float = 30.0, **overrides):
    """(crop, mask, true hr) of one randomised synthetic clip; the seed decides everything.

    The clip is `clips.random_synthetic_clip` (64x64 frames; `overrides` replace its drawn
    `make_clip` arguments), face-cropped by `face_crop`.
    """
    from rppgedit.data import clips

    clip = clips.random_synthetic_clip(seed, num_frames, fps, **overrides)
    frames, mask = face_crop(clip)
    return frames, mask, float(clip.true_hr_bpm)


def make_bank(cfg: TrainConfig, progress: bool = False) -> dict[str, np.ndarray]:
    """The training data bank: {"clips": float16 "n t 32 32 3", "masks": bool "n t 32 32"}."""
    clips, masks = [], []
    seeds = range(cfg.bank_seed, cfg.bank_seed + cfg.bank_clips)
    for seed in progress_bars.wrap(seeds, "synthetic clips", progress, unit="clip"):
        frames, mask, _ = synthetic_face(seed, cfg.bank_frames, cfg.fps)
        clips.append(frames.astype(np.float16))
        masks.append(mask)
    return {"clips": np.stack(clips), "masks": np.stack(masks)}


@functools.partial(jax.jit, static_argnames="cfg")
def sample_batch(bank, key, cfg: TrainConfig) -> dict[str, jax.Array]:
    """A random batch from the bank: clips, masks, targets (sinusoids), hr, remove flags.

    Returns:
      {"clip" "b t 32 32 3", "mask" "b t 32 32", "wave" "b t", "hr" "b", "remove" "b"}.
    """
    k_idx, k_start, k_flip, k_gain, k_hr, k_phase, k_rm = jax.random.split(key, 7)
    n, frames = bank["clips"].shape[:2]
    b, t = cfg.batch, cfg.num_frames
    idx = jax.random.randint(k_idx, (b,), 0, n)
    start = jax.random.randint(k_start, (b,), 0, frames - t + 1)

    def take(i, s):
        c = jax.lax.dynamic_slice_in_dim(bank["clips"][i], s, t, axis=0)
        m = jax.lax.dynamic_slice_in_dim(bank["masks"][i], s, t, axis=0)
        return c.astype(jnp.float32), m

    clip, mask = jax.vmap(take)(idx, start)
    flip = jax.random.bernoulli(k_flip, 0.5, (b,))
    clip = jnp.where(flip[:, None, None, None, None], clip[:, :, :, ::-1], clip)
    mask = jnp.where(flip[:, None, None, None], mask[:, :, :, ::-1], mask)
    gain = jax.random.uniform(k_gain, (b, 1, 1, 1, 1), minval=0.85, maxval=1.1)
    clip = jnp.clip(clip * gain, 0.0, 1.0)
    lo, hi = cfg.hr_range_bpm
    hr = jax.random.uniform(k_hr, (b,), minval=lo, maxval=hi)
    phase = jax.random.uniform(k_phase, (b,), minval=0.0, maxval=2 * math.pi)
    time_s = jnp.arange(t, dtype=jnp.float32) / cfg.fps
    wave = jnp.sin(2 * math.pi * (hr[:, None] / 60.0) * time_s[None, :] + phase[:, None])
    remove = jax.random.bernoulli(k_rm, cfg.remove_prob, (b,))
    return {"clip": clip, "mask": mask, "wave": wave, "hr": hr, "remove": remove}


# ------------------------------------------------------------------------------------------------
# Losses


def ssim_loss(a, b):
    """1 - mean SSIM (Wang et al. 2004, `metrics`' Gaussian-window formulation) of "b t h w 3"."""
    flat_a = a.reshape((-1,) + a.shape[-3:])
    flat_b = b.reshape((-1,) + b.shape[-3:])
    total = metrics._ssim_frame_sums(flat_a, flat_b, 1.0, 1.5, 3.5, 0.01, 0.03)
    return 1.0 - total / flat_a.shape[0]


def vae_loss(params, batch, rng, cfg: TrainConfig):
    """VAE stage: MSE + kl_weight * KL + ssim_weight * (1 - SSIM) on a batch of clips."""
    clip = batch["clip"]
    recon, aux = video_vae.VideoVAE(cfg.model.vae).apply(
        {"params": params}, clip, rng=rng, sample=True
    )
    mse = jnp.mean(jnp.square(recon - clip))
    kl = video_vae.kl_divergence(aux["mean"], aux["logvar"])
    ssim = ssim_loss(recon, clip) if cfg.ssim_weight else jnp.float32(0.0)
    loss = mse + cfg.kl_weight * kl + cfg.ssim_weight * ssim
    psnr = -10.0 * jnp.log10(jnp.maximum(mse, 1e-12))
    return loss, {"loss": loss, "mse": mse, "kl": kl, "ssim_loss": ssim, "psnr": psnr}


def freq_weight_at(step, cfg: TrainConfig):
    """Frequency-loss weight at `step`: 0 before `freq_start`, then a linear ramp (curriculum)."""
    start = cfg.freq_start * cfg.steps
    ramp = max(cfg.freq_ramp * cfg.steps, 1.0)
    return cfg.freq_weight * jnp.clip((step - start) / ramp, 0.0, 1.0)


def editor_loss(params, batch, step, vae_params, physnet_params, cfg: TrainConfig):
    """Editor stage loss (see the module docstring) and its parts."""
    clip, mask, wave = batch["clip"], batch["mask"], batch["wave"]
    hr, remove = batch["hr"], batch["remove"]
    edited_dec, plain_dec = physiolatent.decode_pair(
        vae_params, params, clip, wave, hr, remove, cfg.model
    )
    edited = physiolatent.composite(clip, mask, edited_dec, plain_dec, cfg.compositing)
    mse = jnp.mean(jnp.square((edited - clip) * 255.0))
    ssim = ssim_loss(edited, clip) if cfg.edit_ssim_weight else jnp.float32(0.0)
    trace = spatial_mean(edited, mask)
    bvps = {
        "pos": registry.get("pos").fn(trace, cfg.fps),
        "chrom": registry.get("chrom").fn(trace, cfg.fps),
    }
    weights = {"pos": cfg.pos_weight, "chrom": cfg.chrom_weight}
    if cfg.physnet_weight > 0:
        bvps["physnet"] = registry.get("physnet_pure").fn(physnet_params, edited, cfg.fps)
        weights["physnet"] = cfg.physnet_weight
    keep = 1.0 - remove.astype(jnp.float32)
    n_keep = jnp.maximum(keep.sum(), 1.0)
    n_rm = jnp.maximum((1.0 - keep).sum(), 1.0)
    wave_loss, remove_loss, out = 0.0, 0.0, {}
    for name, bvp in bvps.items():
        r = signals.pearson(bvp, wave)
        flat = signals.spectral_flatness(bvp, cfg.fps)
        wave_loss += weights[name] * jnp.sum(keep * (1.0 - r)) / n_keep
        remove_loss += weights[name] * jnp.sum((1.0 - keep) * (1.0 - flat)) / n_rm
        out[f"r_{name}"] = jnp.sum(keep * r) / n_keep
    peak = signals.spectral_peak_soft(bvps["pos"], cfg.fps)
    freq = jnp.sum(keep * jnp.abs(peak - hr)) / n_keep / 60.0
    has_rm = (keep.sum() < keep.shape[0]).astype(jnp.float32)
    loss = (
        cfg.fidelity_weight * mse
        + cfg.edit_ssim_weight * ssim
        + wave_loss
        + has_rm * remove_loss
        + freq_weight_at(step, cfg) * freq
    )
    psnr = 10.0 * jnp.log10(255.0**2 / jnp.maximum(mse, 1e-12))
    out.update(loss=loss, mse=mse, psnr=psnr, ssim_loss=ssim, wave=wave_loss, freq_hz=freq)
    return loss, out


# ------------------------------------------------------------------------------------------------
# Train state and step


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """AdamW with a one-cycle cosine schedule peaking at `learning_rate`, gradient clipping at 1."""
    schedule = optax.cosine_onecycle_schedule(
        transition_steps=cfg.steps, peak_value=cfg.learning_rate, pct_start=0.1
    )
    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(schedule, weight_decay=cfg.weight_decay),
    )


def init_state(cfg: TrainConfig, vae_params=None) -> dict[str, Any]:
    """Fresh {"params", "opt_state", "step", "rng"} for the stage (editor: needs `vae_params`)."""
    key = jax.random.PRNGKey(cfg.seed)
    k_init, k_run = jax.random.split(key)
    if cfg.stage == "vae":
        params = video_vae.init_params(k_init, cfg.model.vae)
    else:
        if vae_params is None:
            raise ValueError("the editor stage needs the trained VAE params")
        params = physiolatent.init_editor_params(k_init, cfg.model, vae_params)
    opt_state = make_optimizer(cfg).init(params)
    return {"params": params, "opt_state": opt_state, "step": jnp.int32(0), "rng": k_run}


def _loss(params, batch, rng, step, frozen, cfg: TrainConfig):
    if cfg.stage == "vae":
        return vae_loss(params, batch, rng, cfg)
    return editor_loss(params, batch, step, frozen["vae"], frozen["physnet"], cfg)


@functools.partial(jax.jit, static_argnames="cfg")
def train_step_with(state, batch, rng, frozen, cfg: TrainConfig):
    """One AdamW step of the stage's loss; `frozen` = {"vae", "physnet"} weights (not optimised)."""
    grads, out = jax.grad(_loss, has_aux=True)(
        state["params"], batch, rng, state["step"], frozen, cfg
    )
    updates, opt_state = make_optimizer(cfg).update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    out["grad_norm"] = optax.tree.norm(grads)
    new = {"params": params, "opt_state": opt_state, "step": state["step"] + 1, "rng": state["rng"]}
    return new, out


def make_train_step(cfg: TrainConfig, vae_params=None, physnet_params=None):
    """The pure `train_step(state, batch, rng) -> (state, metrics)` of the stage (jitted).

    Frozen weights (the VAE in the editor stage, PhysNet) are bound as arguments, never optimised;
    one compilation serves every call with the same `cfg`.
    """
    frozen = {"vae": vae_params, "physnet": physnet_params}
    return functools.partial(train_step_with, frozen=frozen, cfg=cfg)


def step_keys(state):
    """(data key, step key) of the state's current step: `fold_in(rng, step)` split in two."""
    return jax.random.split(jax.random.fold_in(state["rng"], state["step"]))


def _manager(directory: pathlib.Path, cfg: TrainConfig):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(
        max_to_keep=2, save_interval_steps=cfg.checkpoint_every, create=True
    )
    return ocp.CheckpointManager(directory.resolve(), options=options)


def train(
    cfg: TrainConfig,
    train_dir: str | pathlib.Path,
    *,
    bank: dict[str, np.ndarray] | None = None,
    vae_params=None,
    stop_after: int | None = None,
    progress: bool = False,
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Trains one stage, resuming from the latest checkpoint under `train_dir` if there is one.

    Args:
      cfg: the stage's settings.
      train_dir: CheckpointManager folder of this stage (whole train state).
      bank: data bank (`make_bank(cfg)` when None).
      vae_params: frozen VAE params (editor stage).
      stop_after: stop after this many steps of this call (simulates an interrupted run).
      progress: show a bar of the steps (total, ETA) with the latest metrics.

    Returns:
      (final train state, logged metrics: one dict per `log_every` steps).

    Raises:
      RppgEditError: a non-finite loss (naming the step), or an unwritable `train_dir`.
    """
    import orbax.checkpoint as ocp

    train_dir = pathlib.Path(train_dir).expanduser()
    bank = make_bank(cfg, progress) if bank is None else bank
    bank = jax.tree.map(jnp.asarray, bank)
    physnet_params = None
    if cfg.stage == "editor" and cfg.physnet_weight > 0:
        physnet_params = registry.get("physnet_pure").load_params()
    state = init_state(cfg, vae_params)
    try:
        manager = _manager(train_dir, cfg)
    except OSError as e:
        raise RppgEditError(f"{train_dir}: cannot create the checkpoint folder ({e})") from None
    latest = manager.latest_step()
    if latest is not None:
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
        state = manager.restore(latest, args=ocp.args.StandardRestore(abstract))
        _log.info("resumed %s from step %d", train_dir, latest)
    train_step = make_train_step(cfg, vae_params, physnet_params)
    start = int(state["step"])
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    history: list[dict[str, float]] = []
    bar = progress_bars.bar(cfg.steps, f"train {cfg.stage}", progress, unit="step", initial=start)
    for step in range(start, end):
        data_key, step_key = step_keys(state)
        batch = sample_batch(bank, data_key, cfg)
        state, out = train_step(state, batch, step_key)
        loss = float(out["loss"])
        if not math.isfinite(loss):
            bar.close()
            manager.close()
            raise RppgEditError(f"{train_dir}: non-finite loss ({loss}) at step {step}")
        if (step + 1) % cfg.log_every == 0 or step + 1 == end:
            row = {"step": step + 1, **{k: float(v) for k, v in out.items()}}
            history.append(row)
            _log.info("%s", json.dumps(row))
            bar.set_postfix({k: f"{row[k]:.4g}" for k in ("loss", "psnr") if k in row})
        manager.save(step + 1, args=ocp.args.StandardSave(state))
        bar.update(1)
    bar.close()
    if end == cfg.steps and manager.latest_step() != cfg.steps:
        manager.save(cfg.steps, args=ocp.args.StandardSave(state), force=True)
    manager.wait_until_finished()
    manager.close()
    return state, history


# ------------------------------------------------------------------------------------------------
# Validation on held-out synthetic clips


def validate_vae(vae_params, model: physiolatent.ModelConfig, num_clips=8, num_frames=128):
    """Mean reconstruction PSNR (dB, [0,1] range) on held-out synthetic face crops."""
    rec = jax.jit(functools.partial(video_vae.reconstruct, cfg=model.vae))
    values = []
    for seed in range(HELD_OUT_SEED, HELD_OUT_SEED + num_clips):
        frames, _, _ = synthetic_face(seed, num_frames)
        out = np.asarray(rec(vae_params, frames[None]))[0]
        values.append(metrics.psnr(np.clip(out, 0, 1), frames, data_range=1.0))
    return {"recon_psnr_db": float(np.mean(values)), "recon_psnr_min_db": float(np.min(values))}


def validate_editor(
    state,
    cfg: physiolatent.PhysioLatentConfig,
    hrs=(60.0, 80.0, 100.0, 120.0),
    seeds=(10000, 10001, 10002),
    num_frames: int = 256,
    estimators: tuple[str, ...] = ("pos", "chrom", "physnet_pure"),
    phase_per_seed: float = 0.0,
) -> dict[str, Any]:
    """Edits held-out synthetic clips to each target; estimator heart rates and PSNR on the face.

    Args:
      state, cfg: the PhysioLatent state and config.
      hrs: target heart rates in bpm (sinusoids of phase `phase_per_seed` x seed radians).
      seeds: synthetic clips (`synthetic_face`), read before and after every edit.
      num_frames: frames per clip.
      estimators: registry names that read the clips.
      phase_per_seed: target phase per unit of seed, in radians.

    Returns:
      {"true_hr": [bpm per seed], "before": {estimator: [bpm per seed]}, "hr": {estimator:
      {target: [bpm per seed]}}, "psnr_face_db": mean PSNR over the masked pixels, "psnr_db":
      whole-crop PSNR, "ssim"}.
    """
    from rppgedit import targets

    params = {
        n: registry.get(n).load_params() if n.startswith("physnet") else None for n in estimators
    }

    def read(name, frames, mask):
        bvp = registry.get(name).bvp(frames, cfg.fps, mask=mask, params=params[name])
        return float(signals.heart_rate(bvp, cfg.fps))

    true_hrs, before = [], {n: [] for n in estimators}
    hr_out = {n: {str(h): [] for h in hrs} for n in estimators}
    face_psnr, crop_psnr, ssims = [], [], []
    for seed in seeds:
        frames, mask, true_hr = synthetic_face(seed, num_frames)
        true_hrs.append(float(true_hr))
        for n in estimators:
            before[n].append(read(n, frames, mask))
        for h in hrs:
            wave = targets.sinusoid(h, num_frames, cfg.fps, phase=phase_per_seed * seed)
            edited, _ = physiolatent.edit(state, frames, mask, wave, cfg)
            edited = np.asarray(edited)
            for n in estimators:
                hr_out[n][str(h)].append(read(n, edited, mask))
            err = (edited - frames)[mask]
            face_psnr.append(10 * np.log10(1.0 / max(float(np.mean(err**2)), 1e-20)))
            crop_psnr.append(metrics.psnr(edited, frames, data_range=1.0))
            ssims.append(metrics.ssim(edited, frames, data_range=1.0))
    return {
        "true_hr": true_hrs,
        "before": before,
        "hr": hr_out,
        "psnr_face_db": float(np.mean(face_psnr)),
        "psnr_db": float(np.mean(crop_psnr)),
        "ssim": float(np.mean(ssims)),
    }


def run_train(
    stage: str,
    vae_cfg: TrainConfig,
    editor_cfg: TrainConfig,
    train_dir: str | pathlib.Path,
    export_dir: str | pathlib.Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The `--mode=train` entry: trains "vae", "editor" or "all" (both, in order) and exports.

    Each stage resumes from `train_dir/<stage>`; its final params are written (small, params only)
    to `export_dir/<stage>` (default `rppgedit/checkpoints/physiolatent`) with the config, wall time and
    validation metrics as metadata. The editor stage reads the VAE from `export_dir/vae`.

    Returns:
      {stage: {"seconds", "validation", "last": last logged metrics}}.
    """
    from rppgedit import checkpoints

    if stage not in (*STAGES, "all"):
        raise RppgEditError(f"unknown training stage {stage!r}; use vae, editor or all")
    train_dir = pathlib.Path(train_dir).expanduser()
    export = (
        pathlib.Path(export_dir)
        if export_dir
        else physiolatent.checkpoint_dir(physiolatent.Config())
    )
    summary = {}
    for name, cfg in (("vae", vae_cfg), ("editor", editor_cfg)):
        if stage not in (name, "all"):
            continue
        tic = time.perf_counter()
        vae_params = None
        if name == "editor":
            vae_params = checkpoints.restore_pytree(export / "vae")
        state, history = train(cfg, train_dir / name, vae_params=vae_params, progress=progress)
        seconds = time.perf_counter() - tic
        if name == "vae":
            params = state["params"]
            validation = validate_vae(params, cfg.model)
        else:
            params = state["params"]
            edit_cfg = physiolatent.Config(fps=cfg.fps, model=cfg.model)
            validation = validate_editor({"vae": vae_params, "editor": params}, edit_cfg)
        meta = {
            "model": cfg.model.as_dict(),
            "train_config": _jsonable(dataclasses.asdict(cfg)),
            "steps": cfg.steps,
            "seconds": seconds,
            "validation": validation,
        }
        checkpoints.save_pytree(export / name, params, metadata=meta, force=True)
        summary[name] = {"seconds": seconds, "validation": validation, "last": history[-1:]}
    return summary


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))
