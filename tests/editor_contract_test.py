"""The editor contract (`rppgedit.editors.contract`), checked on every editor of `editors.METHODS`.

On small seeded synthetic clips (32x32 faces, 128 frames): shape and dtype, pixels outside the mask
bit-exact, `edit_batch` equal to `edit` clip by clip, one compiled program for two calls, and the
edit's effect as a classical estimator (POS) reads it: the target's rate for editors that embed a
target, a rate away from the true one (and a lower SNR there) for removal-only editors. Then the
traced hyperparameters: one compile for two learning rates x two lambdas, and a vmapped lambda grid
equal to separate runs.

Measured with these settings on seeds 0-4 (true 72 -> target 120 bpm and true 100 -> target 60):
POS read every target within 1.4 bpm (Privacy-Phys, PulseEdit, PhysioLatent) and every original
within 1.4 bpm of its true rate; smooth_remove left POS at 40-48 bpm (the band edge) with the SNR at
the true rate 8-22 dB below the original's.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rppgedit import editors, estimators, signals, targets
from rppgedit.data import synthetic
from rppgedit.editors import contract
from rppgedit.errors import RppgEditError

FPS, FRAMES, SIZE = 30.0, 128, 32
# (true rate, target rate) of the two clips of a batch.
RATES = ((72.0, 120.0), (100.0, 60.0))
SEEDS = (0, 3)  # reliability measured on seeds 0-4 (module docstring)
READ_TOL_BPM = 3.0
# Fast settings: classical surrogates instead of PhysNet, fewer PulseEdit steps.
OPTIONS = {
    "privacy_phys": (("surrogates", (("pos", 1.0), ("chrom", 1.0))),),
    "pulseedit": (("steps", 100),),
}


def _config(name):
    """(cfg, removal only): the target config, or the removal one for a removal-only editor."""
    options = OPTIONS.get(name, ())
    try:
        return editors.make_config(name, FPS, False, options), False
    except RppgEditError:
        return editors.make_config(name, FPS, True, options), True


def _clips(seed, frames=FRAMES, size=SIZE):
    sources = [
        synthetic.make_clip(seed + i, hr_bpm=true, num_frames=frames, height=size, width=size)
        for i, (true, _) in enumerate(RATES)
    ]
    clips = np.stack([s.frames.astype(np.float32) / 255.0 for s in sources])
    masks = np.stack([s.mask for s in sources])
    waves = np.stack([targets.sinusoid(tgt, frames, FPS) for _, tgt in RATES]).astype(np.float32)
    return clips, masks, waves


def _read(clip, mask, true_hr):
    """POS's (heart rate, SNR at `true_hr`) on a float clip."""
    bvp = estimators.get("pos").bvp(np.asarray(clip), FPS, mask=mask)
    return float(signals.heart_rate(bvp, FPS)), float(signals.pulse_snr(bvp, FPS, hr_bpm=true_hr))


@pytest.fixture(scope="module", params=sorted(editors.METHODS))
def run(request):
    """One editor's batch and per-clip edits of a seeded pair of clips."""
    name = request.param
    module = editors.get(name)
    cfg, removal_only = _config(name)
    state = module.load_state(cfg)
    out = {}
    for seed in SEEDS:
        clips, masks, waves = _clips(seed)
        if removal_only:
            waves = np.zeros_like(waves)
        batched, _ = module.edit_batch(state, clips, masks, waves, cfg)
        single = [
            module.edit(state, c, m, w, cfg)[0] for c, m, w in zip(clips, masks, waves, strict=True)
        ]
        out[seed] = (clips, masks, waves, np.asarray(batched), [np.asarray(s) for s in single])
    return name, module, cfg, state, removal_only, out


def test_module_satisfies_the_contract(run):
    name, module, cfg, *_ = run
    assert isinstance(module, contract.Editor), name
    assert isinstance(module.edit, contract.EditFunction)
    assert isinstance(module.edit_batch, contract.EditFunction)
    assert dataclasses.is_dataclass(cfg) and hash(cfg) == hash(dataclasses.replace(cfg))
    fields = {f.name for f in dataclasses.fields(cfg)}
    assert {"fps", "remove"} <= fields and set(module.HYPERPARAMETERS) <= fields
    assert module.edit.hyperparameter_names == module.edit_batch.hyperparameter_names
    assert module.edit.hyperparameter_names == tuple(module.HYPERPARAMETERS)


def test_shape_dtype_and_bit_exact_outside_the_mask(run):
    *_, out = run
    for clips, masks, _, batched, single in out.values():
        assert batched.shape == clips.shape and batched.dtype == np.float32
        for clip, mask, edited in zip(clips, masks, single, strict=True):
            assert edited.shape == clip.shape and edited.dtype == np.float32
            assert 0.0 <= edited.min() and edited.max() <= 1.0
            np.testing.assert_array_equal(edited[~mask], clip[~mask])
            assert (edited[mask] != clip[mask]).any()  # the edit did something


def test_edit_batch_equals_edit_clip_by_clip(run):
    *_, out = run
    for _, _, _, batched, single in out.values():
        for i, edited in enumerate(single):
            np.testing.assert_allclose(batched[i], edited, rtol=0, atol=1e-5)  # [0, 1] units


def test_one_compiled_program_for_two_calls(run):
    _, module, cfg, state, _, out = run
    clips, masks, waves, *_ = out[SEEDS[0]]
    module.edit_batch(state, clips, masks, waves, cfg)
    before = (module.edit._cache_size(), module.edit_batch._cache_size())
    other = cfg
    for field in module.HYPERPARAMETERS:  # traced: another value needs no new program
        other = dataclasses.replace(other, **{field: 2.0 * getattr(cfg, field)})
    module.edit_batch(state, clips[::-1] * 0.99, masks[::-1], waves, other)
    module.edit(state, clips[1] * 0.99, masks[1], waves[0], other)
    assert (module.edit._cache_size(), module.edit_batch._cache_size()) == before


def test_lowered_program_is_called_without_the_settings(run):
    """`edit_batch.lower(..., cfg).compile()` (`--mode=bench`) runs as `compiled(state, clips,
    masks, targets)`, with the settings' hyperparameters bound."""
    _, module, cfg, state, _, out = run
    clips, masks, waves, batched, _ = out[SEEDS[0]]
    compiled = module.edit_batch.lower(state, clips, masks, waves, cfg).compile()
    edited, _ = compiled(state, clips, masks, waves)
    np.testing.assert_array_equal(np.asarray(edited), batched)


def test_the_edit_is_read_by_a_classical_estimator(run):
    """Target editors: POS reads the target's rate (and read the truth before); removal-only
    editors: POS's rate moves off the true rate and its SNR there drops."""
    name, _, _, _, removal_only, out = run
    for seed, (clips, masks, _, _, single) in out.items():
        for (true, target), clip, mask, edited in zip(RATES, clips, masks, single, strict=True):
            hr0, snr0 = _read(clip, mask, true)
            hr1, snr1 = _read(edited, mask, true)
            where = (name, seed, true, target, hr0, snr0, hr1, snr1)
            assert abs(hr0 - true) <= READ_TOL_BPM, where  # the original is readable
            if removal_only:
                assert abs(hr1 - true) > 2 * READ_TOL_BPM and snr1 < snr0 - 5.0, where
            else:
                assert abs(hr1 - target) <= READ_TOL_BPM, where


# --------------------------------------------------------------------------------------------------
# Traced hyperparameters (learning rate, lambda): one program for every value, and vmap-able.

TUNED = sorted(n for n in editors.METHODS if editors.get(n).HYPERPARAMETERS)


def test_the_sweep_editors_trace_learning_rate_and_lambda():
    assert {"privacy_phys", "pulseedit"} <= set(TUNED)
    for name in ("privacy_phys", "pulseedit"):
        assert {"learning_rate", "fidelity_weight"} <= set(editors.get(name).HYPERPARAMETERS)


@pytest.mark.parametrize("name", TUNED)
def test_one_compile_for_two_learning_rates_and_two_lambdas(name):
    module = editors.get(name)
    cfg, _ = _config(name)
    state = module.load_state(cfg)
    clips, masks, waves = _clips(0, frames=96, size=24)  # a shape no other test compiles
    before = module.edit._cache_size()
    edits = []
    for lr in (0.05, 0.2):
        for lam in (1.0, 10.0):
            setting = dataclasses.replace(cfg, learning_rate=lr, fidelity_weight=lam)
            edited, _ = module.edit(state, clips[0], masks[0], waves[0], setting)
            edits.append(np.asarray(edited))
    assert module.edit._cache_size() - before == 1
    for i in range(len(edits)):  # every setting took effect
        for j in range(i):
            assert not np.array_equal(edits[i], edits[j]), (i, j)


@pytest.mark.parametrize("name", TUNED)
def test_vmapped_lambda_grid_matches_separate_runs(name):
    module = editors.get(name)
    cfg, _ = _config(name)
    state = module.load_state(cfg)
    clips, masks, waves = _clips(1)
    clip, mask, wave = clips[0], masks[0], waves[0]
    lambdas = (0.3, 3.0)
    grid, aux = jax.vmap(
        lambda lam: module.edit.apply(state, clip, mask, wave, {"fidelity_weight": lam}, cfg)
    )(jnp.asarray(lambdas, jnp.float32))
    assert grid.shape == (len(lambdas), *clip.shape)
    for i, lam in enumerate(lambdas):
        setting = dataclasses.replace(cfg, fidelity_weight=lam)
        edited, single_aux = module.edit(state, clip, mask, wave, setting)
        np.testing.assert_allclose(grid[i], edited, rtol=0, atol=1e-5)
        np.testing.assert_allclose(
            aux["history"]["loss"][i], single_aux["history"]["loss"], rtol=1e-4, atol=1e-5
        )
    assert not np.allclose(grid[0], grid[1], rtol=0, atol=1e-6)  # lambda took effect


def test_apply_refuses_a_field_that_is_not_traced():
    module = editors.get("pulseedit")
    cfg = module.Config(fps=FPS)
    clips, masks, waves = _clips(0)
    with pytest.raises(ValueError, match="not hyperparameters"):
        module.edit.apply(None, clips[0], masks[0], waves[0], {"steps": 3}, cfg)
