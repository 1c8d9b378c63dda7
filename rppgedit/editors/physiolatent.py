"""PhysioLatent: heart-rate editing in the latent space of a video VAE, in one forward pass.

PhysioLatent (CVPR 2026, arXiv:2509.25348): a frozen 3-D causal VAE encodes the face clip; a
condition (the paper: a CLIP embedding of "Heart rate N bpm") is fused with the latent by
spatio-temporal fusion layers (spatial convolution + temporal self-attention with AdaLN); the decoder,
FiLM-conditioned and with a fine-tuned output layer, decodes the edited latent; the face region of the
decoded clip replaces the original's.

rppgedit's version (models in `rppgedit.models.video_vae` and `rppgedit.models.fusion`, their
architecture `rppgedit.models.physiolatent.ModelConfig`, training in `rppgedit.train`, weights in
`rppgedit/checkpoints/physiolatent/`):
- the VAE works on 32x32 crops (4x spatial, 2x temporal downsampling; see `video_vae` for why not
  8x); a clip at another size is area-resized to 32x32 for the model, and the edit is resized back;
- the condition is a Fourier-feature embedding of the target heart rate (read from the target
  waveform with `signals.heart_rate`) and of the remove flag (`fusion.FourierConditioner`), and the
  target waveform itself, averaged to the latent frame rate, is one more latent channel;
- compositing (`Config.compositing`):
  "residual" (default, beyond the paper): edited = clip + mask * (Dec'(z + dz) - Dec(z)), with Dec
  the frozen VAE decoder and Dec' the FiLM-conditioned decoder with the fine-tuned output layer. The
  VAE's reconstruction error cancels, so the unedited detail of the clip is kept exactly;
  "paste" (the paper): edited = Dec'(z + dz) inside the mask, capped by the VAE's reconstruction
  PSNR.
Pixels outside `mask` are bit-identical to the input in both (`jnp.where`).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Any

import jax
import jax.numpy as jnp

from rppgedit import signals
from rppgedit.editors import contract
from rppgedit.errors import RppgEditError
from rppgedit.models import video_vae
from rppgedit.models.physiolatent import ModelConfig

SIZE = 32  # side of the model's input crop
COMPOSITING = ("residual", "paste")
CHECKPOINT_NAME = "physiolatent"  # folder under `checkpoints.default_checkpoint_dir()`
# The shipped editor was trained with removal samples, but after a removal edit POS and CHROM still
# read the true heart rate (rppgedit/checkpoints/physiolatent/README.md), so the CLI refuses it.
REMOVAL_UNSUPPORTED = (
    "the shipped checkpoint leaves the true heart rate readable (rppgedit/checkpoints/physiolatent/README.md);"
    " use --method=privacy_phys or --method=smooth_remove with --target=none"
)


@dataclasses.dataclass(frozen=True)
class PhysioLatentConfig:
    """Settings of a PhysioLatent edit (hashable: a jit static argument; no traced fields).

    Attributes:
      fps: frame rate in Hz (the heart rate of the target is read at this rate; trained at 30).
      remove: True to remove the pulse instead of embedding the target.
      compositing: "residual" (default) or "paste" (the paper's), see the module docstring.
      model: architecture; must match the checkpoint.
      checkpoint_dir: folder holding `vae/` and `editor/`; None: `rppgedit/checkpoints/physiolatent`.
    """

    fps: float = 30.0
    remove: bool = False
    compositing: str = "residual"
    model: ModelConfig = ModelConfig()
    checkpoint_dir: str | None = None

    def __post_init__(self):
        if self.compositing not in COMPOSITING:
            raise ValueError(f"compositing must be one of {COMPOSITING}, got {self.compositing!r}")
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")


Config = PhysioLatentConfig
HYPERPARAMETERS = ()  # one forward pass: nothing a sweep varies is traced


def checkpoint_dir(cfg: PhysioLatentConfig) -> pathlib.Path:
    """Folder of the `vae` and `editor` checkpoints for `cfg`."""
    if cfg.checkpoint_dir is not None:
        return pathlib.Path(cfg.checkpoint_dir).expanduser()
    from rppgedit import checkpoints

    return checkpoints.default_checkpoint_dir() / CHECKPOINT_NAME


@functools.partial(jax.jit, static_argnames=("model", "num_frames"))
def init_editor_params(key, model: ModelConfig, vae_params, num_frames: int = 8):
    """Fresh trainable editor params: {"net": EditorNet params, "dec_out": VAE output layer copy}."""
    latent = jnp.zeros(
        (1, num_frames // 2, SIZE // 4, SIZE // 4, model.vae.latent_channels), jnp.float32
    )
    wave = jnp.zeros((1, num_frames // 2), jnp.float32)
    cond = jnp.zeros((1, model.conditioner().dim), jnp.float32)
    net = model.net().init(key, latent, wave, cond)["params"]
    dec_out = jax.tree.map(jnp.array, vae_params["decoder"]["conv_out"])
    return {"net": net, "dec_out": dec_out}


def load_state(cfg: PhysioLatentConfig) -> dict[str, Any]:
    """{"vae": VAE params, "editor": editor params} restored from `checkpoint_dir(cfg)`."""
    from rppgedit import checkpoints

    root = checkpoint_dir(cfg)
    state = {}
    for part in ("vae", "editor"):
        path = root / part
        if not (path / "_CHECKPOINT_METADATA").is_file():
            raise RppgEditError(
                f"{path}: PhysioLatent checkpoint missing; train it with "
                "`python -m rppgedit.main --flagfile=experiments/physiolatent_train.flags`"
            )
        stored = checkpoints.pytree_metadata(path).get("model")
        if stored is not None and stored != cfg.model.as_dict():
            raise RppgEditError(f"{path}: checkpoint architecture differs from the config's model")
        state[part] = checkpoints.restore_pytree(path)
    return state


def latent_wave(wave, remove=None):
    """Target "b t" -> standardised "b t/2" at the latent frame rate (zeros where `remove`)."""
    wave = wave - wave.mean(axis=-1, keepdims=True)
    std = jnp.sqrt(jnp.mean(jnp.square(wave), axis=-1, keepdims=True))
    wave = wave / jnp.maximum(std, 1e-6)
    wave = wave.reshape(wave.shape[:-1] + (wave.shape[-1] // 2, 2)).mean(axis=-1)
    if remove is not None:
        wave = jnp.where(jnp.asarray(remove)[..., None], 0.0, wave)
    return wave


def decode_pair(vae_params, editor_params, clip32, wave, hr_bpm, remove, model: ModelConfig):
    """The edited and the plain decodes of 32x32 clips.

    Args:
      vae_params: frozen VAE params.
      editor_params: {"net", "dec_out"} (trainable).
      clip32: float32 "b t 32 32 3" in [0, 1], t even.
      wave: float32 "b t" target waveforms.
      hr_bpm: float32 "b" target heart rates.
      remove: bool "b".
      model: architecture.

    Returns:
      (Dec'(z + dz) "b t 32 32 3", Dec(z) "b t 32 32 3"), z the posterior mean (no gradient).
    """
    z, _ = video_vae.encode(vae_params, clip32, model.vae)
    z = jax.lax.stop_gradient(z)
    plain = jax.lax.stop_gradient(video_vae.decode(vae_params, z, model.vae))
    cond = model.conditioner()(hr_bpm, remove)
    dz, film = model.net().apply(
        {"params": editor_params["net"]}, z, latent_wave(wave, remove), cond
    )
    tuned = {
        "encoder": vae_params["encoder"],
        "decoder": {**vae_params["decoder"], "conv_out": editor_params["dec_out"]},
    }
    edited = video_vae.decode(tuned, z + dz, model.vae, film=film)
    return edited, plain


def _resize(x, size_hw):
    """Linear (antialiased when shrinking) resize of "b t h w c" to "b t size_hw c"."""
    shape = x.shape[:2] + tuple(size_hw) + x.shape[-1:]
    if shape == x.shape:
        return x
    return jax.image.resize(x, shape, method="linear", antialias=True)


def composite(clip, mask, edited_dec, plain_dec, compositing: str):
    """The output clip "b t h w 3" from the decodes "b t 32 32 3" (see the module docstring)."""
    hw = clip.shape[2:4]
    if compositing == "residual":
        out = jnp.clip(clip + _resize(edited_dec - plain_dec, hw), 0.0, 1.0)
    else:
        out = jnp.clip(_resize(edited_dec, hw), 0.0, 1.0)
    return jnp.where(mask[..., None], out, clip)


@contract.editor_function(HYPERPARAMETERS)
def edit_batch(state, clips, masks, targets, cfg: PhysioLatentConfig):
    """`edit` over a leading batch axis: clips "b t h w 3", masks "b t h w", targets "b t"."""
    clips = clips.astype(jnp.float32)
    targets = targets.astype(jnp.float32)
    b, t = clips.shape[:2]
    if t % video_vae.TEMPORAL_DOWN:
        raise ValueError(f"PhysioLatent needs an even number of frames, got {t}")
    clip32 = _resize(clips, (SIZE, SIZE))
    hr = signals.heart_rate(targets, cfg.fps)
    remove = jnp.full((b,), cfg.remove)
    edited_dec, plain_dec = decode_pair(
        state["vae"], state["editor"], clip32, targets, hr, remove, cfg.model
    )
    edited = composite(clips, masks, edited_dec, plain_dec, cfg.compositing)
    aux = {"hr_condition": hr, "decoded": edited_dec, "reconstruction": plain_dec}
    return edited, aux


@contract.editor_function(HYPERPARAMETERS)
def edit(state, clip, mask, target, cfg: PhysioLatentConfig):
    """Edits one clip in one forward pass so rPPG estimators read `target`.

    Args:
      state: `load_state(cfg)`.
      clip: float32 "t h w 3" in [0, 1], the face crop (t even; resized to 32x32 for the model).
      mask: bool "t h w": the pixels that may change.
      target: float32 "t" target waveform (its heart rate conditions the edit; ignored if remove).
      cfg: static settings.

    Returns:
      (edited "t h w 3" in [0, 1], aux) with aux = {"hr_condition": bpm, "decoded": Dec'(z + dz)
      "t 32 32 3", "reconstruction": Dec(z) "t 32 32 3"}. Pixels outside `mask` equal `clip` bit
      for bit.
    """
    edited, aux = edit_batch.impl(state, clip[None], mask[None], target[None], cfg)
    return edited[0], jax.tree.map(lambda a: a[0], aux)
