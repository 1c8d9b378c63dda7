"""Tests for rppgedit.train: batches, curriculum, loss decrease, resume equality, NaN stop."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rppgedit import signals, train
from rppgedit.editors import physiolatent
from rppgedit.errors import RppgEditError
from rppgedit.models import video_vae

TINY_MODEL = physiolatent.ModelConfig(
    vae=video_vae.VAEConfig(latent_channels=4, enc_channels=(4, 8), dec_channels=(8, 4)),
    width=8,
    depth=1,
    heads=1,
    num_freqs=2,
)


def _cfg(stage, **kw):
    base = dict(
        stage=stage,
        model=TINY_MODEL,
        steps=8,
        batch=2,
        num_frames=48,
        bank_clips=3,
        bank_frames=56,
        ssim_weight=0.0,
        freq_weight=0.0,
        chrom_weight=0.0,
        learning_rate=1e-2,
        checkpoint_every=2,
        log_every=1,
        remove_prob=0.0,
    )
    base.update(kw)
    return train.TrainConfig(**base)


@pytest.fixture(scope="module")
def bank():
    return train.make_bank(_cfg("vae"))


def test_bank_and_batch(bank):
    cfg = _cfg("editor", hr_range_bpm=(60.0, 120.0), remove_prob=0.5, batch=4)
    assert bank["clips"].shape == (3, 56, 32, 32, 3) and bank["clips"].dtype == np.float16
    assert bank["masks"].shape == (3, 56, 32, 32) and bank["masks"].dtype == bool
    assert 0.05 < bank["masks"].mean() < 0.9  # the skin mask finds the face, not everything
    key = jax.random.PRNGKey(3)
    a = train.sample_batch(jax.tree.map(jnp.asarray, bank), key, cfg)
    b = train.sample_batch(jax.tree.map(jnp.asarray, bank), key, cfg)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])  # same key, same batch
    assert a["clip"].shape == (4, 48, 32, 32, 3) and a["wave"].shape == (4, 48)
    assert float(a["clip"].min()) >= 0.0 and float(a["clip"].max()) <= 1.0
    hr = np.asarray(a["hr"], np.float64)
    assert np.all((hr >= 60.0) & (hr <= 120.0))
    # The target is a unit sinusoid at hr: its amplitude is 1 and its fitted frequency is hr.
    t = np.arange(48) / cfg.fps
    for wave, h in zip(np.asarray(a["wave"], np.float64), hr, strict=True):
        basis = np.stack([np.sin(2 * np.pi * h / 60 * t), np.cos(2 * np.pi * h / 60 * t)], 1)
        coef, res, *_ = np.linalg.lstsq(basis, wave, rcond=None)
        assert abs(np.hypot(*coef) - 1.0) < 1e-4 and res[0] < 1e-8


def test_frequency_curriculum():
    cfg = _cfg("editor", steps=100, freq_weight=2.0, freq_start=0.3, freq_ramp=0.2)
    got = [float(train.freq_weight_at(s, cfg)) for s in (0, 30, 35, 40, 50, 99)]
    np.testing.assert_allclose(got, [0.0, 0.0, 0.5, 1.0, 2.0, 2.0], atol=1e-6)


def _fixed_batch_losses(cfg, bank, vae_params=None, steps=8):
    state = train.init_state(cfg, vae_params)
    step = train.make_train_step(cfg, vae_params)
    batch = train.sample_batch(jax.tree.map(jnp.asarray, bank), jax.random.PRNGKey(0), cfg)
    losses = []
    for _ in range(steps):
        _, step_key = train.step_keys(state)
        state, out = step(state, batch, step_key)
        losses.append(float(out["loss"]))
    return losses, state


VAE_CFG = _cfg("vae")  # one config (one compilation) shared by the tests below
EDITOR_CFG = _cfg("editor")


def test_vae_step_decreases_loss(bank):
    losses, _ = _fixed_batch_losses(VAE_CFG, bank)
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < 0.8 * losses[0], losses


def test_editor_step_decreases_loss_and_trains_only_its_params(bank):
    vae_params = video_vae.init_params(jax.random.PRNGKey(1), TINY_MODEL.vae)
    losses, state = _fixed_batch_losses(EDITOR_CFG, bank, vae_params)
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < losses[0] - 0.1, losses  # the waveform loss starts near 2
    assert set(state["params"]) == {"net", "dec_out"}  # the frozen VAE is not optimised


def test_resume_gives_identical_params(bank, tmp_path):
    cfg = VAE_CFG
    full, hist_full = train.train(cfg, tmp_path / "a", bank=bank)
    part, _ = train.train(cfg, tmp_path / "b", bank=bank, stop_after=3)
    assert int(part["step"]) == 3
    resumed, hist_resumed = train.train(cfg, tmp_path / "b", bank=bank)  # from checkpoint 2
    assert int(resumed["step"]) == cfg.steps
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert hist_resumed[-1] == hist_full[-1]
    # ... and the interrupted run really did differ from a fresh start: step 3 != step 8.
    assert not np.array_equal(
        np.asarray(part["params"]["encoder"]["conv_in"]["kernel"]),
        np.asarray(full["params"]["encoder"]["conv_in"]["kernel"]),
    )


def test_nan_loss_stops_naming_the_step(bank, tmp_path):
    bad = dict(bank, clips=np.full_like(bank["clips"], np.nan))
    with pytest.raises(RppgEditError, match="at step 0"):
        train.train(VAE_CFG, tmp_path / "nan", bank=bad)


def test_config_checks():
    with pytest.raises(ValueError, match="stage"):
        train.TrainConfig(stage="gan")
    with pytest.raises(ValueError, match="below"):
        train.TrainConfig(bank_seed=train.HELD_OUT_SEED - 1, bank_clips=2)
    assert dataclasses.replace(_cfg("vae"), steps=3).steps == 3


def test_editor_loss_at_init_is_the_waveform_loss(bank):
    """An untrained editor changes nothing, so its loss is 1 - Pearson(POS(clip), target)."""
    cfg = EDITOR_CFG
    vae_params = video_vae.init_params(jax.random.PRNGKey(1), TINY_MODEL.vae)
    state = train.init_state(cfg, vae_params)
    batch = train.sample_batch(jax.tree.map(jnp.asarray, bank), jax.random.PRNGKey(0), cfg)
    _, out = train.make_train_step(cfg, vae_params)(state, batch, jax.random.PRNGKey(1))
    assert float(out["mse"]) == 0.0
    from rppgedit.estimators import registry
    from rppgedit.estimators.roi import spatial_mean

    pos = registry.get("pos").fn(spatial_mean(batch["clip"], batch["mask"]), cfg.fps)
    want = np.mean(1.0 - np.asarray(signals.pearson(pos, batch["wave"]), np.float64))
    np.testing.assert_allclose(float(out["loss"]), want, rtol=1e-5, atol=1e-6)
