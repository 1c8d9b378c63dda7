"""Deep rPPG estimators (PhysNet, EfficientPhys, PhysFormer, FacePhys) registered by name.

| name         | model and weights | differentiable |
|--------------|-------------------|----------------|
| physnet_pure | PhysNet (Yu, Li & Zhao, "Remote Photoplethysmograph Signal Measurement from Facial Videos Using Spatio-Temporal Networks", BMVC 2019) trained on PURE, weights from open-rppg 0.1.1 (Kegang Wang, MIT) | yes |
| physnet_rlap | the same network trained on RLAP, weights from open-rppg 0.1.1 | yes |
| efficientphys_pure | EfficientPhys (Liu, Hill, Jiang, Patel & McDuff, "EfficientPhys: Enabling Simple, Fast and Accurate Camera-Based Cardiac Measurement", WACV 2023) trained on PURE, weights from open-rppg 0.1.1 | yes |
| efficientphys_rlap | the same network trained on RLAP, weights from open-rppg 0.1.1 | yes |
| physformer_pure | PhysFormer (Yu, Shen, Shi, Zhao, Torr & Zhao, "PhysFormer: Facial Video-based Physiological Measurement with Temporal Difference Transformer", CVPR 2022) trained on PURE, weights from open-rppg 0.1.1 | yes |
| physformer_rlap | the same network trained on RLAP, weights from open-rppg 0.1.1 | yes |
| facephys_rlap | FacePhys, open-rppg's own causal state-space network (Kegang Wang; no paper named), trained on RLAP, weights from open-rppg 0.1.1 (it ships no other) | yes |

Every one is a video estimator: `fn(variables, clip "t h w 3" float in [0, 1], fps) -> bvp "t"`
(leading batch axes allowed). The clip is the face crop; for PhysNet it is area-resized to 32x32 (OpenCV INTER_AREA, as
open-rppg does) and fed to PhysNet; the output is standardised along T as open-rppg does. T must be
a multiple of 4 (open-rppg uses 128-frame windows at 30 fps). `fps` is not used: the weights were
trained at 30 fps. Weights come from `rppgedit.checkpoints.load_physnet` (converted on first use);
`fold_batchnorm(variables)` gives an equivalent, faster inference-only set that `fn` also accepts.

Sign: on `rppgedit.data.synthetic` clips the output is positively correlated with the ground-truth
`bvp` (checked for physnet_rlap), matching the project's convention.

The EfficientPhys estimators take the same clips: area-resized to 72x72 (INTER_AREA), any T (the
network takes 8-frame temporal-shift segments: a partial last segment is padded with the last frame;
open-rppg uses 160-frame windows at 30 fps). The network predicts
the pulse's derivative; `fn` integrates and detrends it as open-rppg does and standardises it along
T (`efficientphys.estimate_bvp`). Weights come from `rppgedit.checkpoints.load_efficientphys`
(converted from open-rppg's on first use, not shipped). Their output is positively correlated
with the synthetic clips' `bvp` too (r 0.76-0.92 on grid seeds 0-2, both variants).

The PhysFormer estimators take the same clips: area-resized to 128x128 (INTER_AREA), any T. A clip
longer than 160 frames runs in 160-frame chunks as open-rppg runs a video (the attention spans a
whole chunk; the last chunk is padded with the last frame); a shorter one (e.g. the 128-frame
windows of `rppgedit.readings`) is one call, padded to a multiple of 4. The output is standardised
along T (`physformer.estimate_bvp`). Weights come from `rppgedit.checkpoints.load_physformer`
(converted from open-rppg's on first use, not shipped). Their output is positively correlated
with the synthetic clips' `bvp` (r 0.57-0.87 on grid seeds 0 and 2-5, 160 frames, both variants).

The FacePhys estimator takes the same clips: area-resized to 36x36 (INTER_AREA), any T, one causal
pass over the whole clip from the learned initial states (open-rppg runs it one frame at a time,
with polynomial exp, sin and cos: the outputs agree to 5e-3), the output standardised along T
(`facephys.estimate_bvp`). `fps` sets the model's time step (1/fps; the weights were trained at 30
fps, open-rppg always uses 1/30). It reads the synthetic clips' pulse too (within 1.3 bpm, r
0.26-0.77 on grid seeds 0-5, 256 frames). Weights come from `rppgedit.checkpoints.load_facephys`
(RLAP only; converted on first use, not shipped).
"""

from __future__ import annotations

import functools

import jax

from rppgedit import checkpoints, program_cache
from rppgedit.estimators.registry import Estimator, register
from rppgedit.models import efficientphys, facephys, physformer, physnet

_PHYSNET_CITATION = (
    "Yu, Li & Zhao, Remote Photoplethysmograph Signal Measurement from Facial Videos Using "
    "Spatio-Temporal Networks, BMVC 2019; weights trained on {dataset} from open-rppg 0.1.1 "
    "(Kegang Wang, MIT)"
)


@functools.partial(program_cache.cached_program, name="physnet_bvp")
@jax.jit
def physnet_bvp(variables, clip, fps=None):
    """PhysNet BVP "... t" of face clips "... t h w 3" in [0, 1]; see `physnet.estimate_bvp`."""
    return physnet.estimate_bvp(variables, clip, fps, input_size=physnet.TRAINED_INPUT_SIZE)


_EFFICIENTPHYS_CITATION = (
    "Liu, Hill, Jiang, Patel & McDuff, EfficientPhys: Enabling Simple, Fast and Accurate "
    "Camera-Based Cardiac Measurement, WACV 2023; weights trained on {dataset} from open-rppg "
    "0.1.1 (Kegang Wang, MIT)"
)


@functools.partial(program_cache.cached_program, name="efficientphys_bvp")
@jax.jit
def efficientphys_bvp(variables, clip, fps=None):
    """EfficientPhys BVP "... t" of face clips "... t h w 3" in [0, 1]; see
    `efficientphys.estimate_bvp`."""
    return efficientphys.estimate_bvp(variables, clip, fps)


_PHYSFORMER_CITATION = (
    "Yu, Shen, Shi, Zhao, Torr & Zhao, PhysFormer: Facial Video-based Physiological Measurement "
    "with Temporal Difference Transformer, CVPR 2022; weights trained on {dataset} from open-rppg "
    "0.1.1 (Kegang Wang, MIT)"
)


@functools.partial(program_cache.cached_program, name="physformer_bvp")
@jax.jit
def physformer_bvp(variables, clip, fps=None):
    """PhysFormer BVP "... t" of face clips "... t h w 3" in [0, 1]; see
    `physformer.estimate_bvp`."""
    return physformer.estimate_bvp(variables, clip, fps)


for _model, _fn, _citation, _load in (
    ("physnet", physnet_bvp, _PHYSNET_CITATION, checkpoints.load_physnet),
    ("efficientphys", efficientphys_bvp, _EFFICIENTPHYS_CITATION, checkpoints.load_efficientphys),
    ("physformer", physformer_bvp, _PHYSFORMER_CITATION, checkpoints.load_physformer),
):
    for _variant, _dataset in (("pure", "PURE"), ("rlap", "RLAP")):
        register(
            Estimator(
                name=f"{_model}_{_variant}",
                fn=_fn,
                input="video",
                differentiable=True,
                citation=_citation.format(dataset=_dataset),
                load_params=functools.partial(_load, _variant),
            )
        )

_FACEPHYS_CITATION = (
    "FacePhys, the causal state-space rPPG network of open-rppg 0.1.1 (Kegang Wang, MIT; no paper "
    "named), weights trained on RLAP from open-rppg 0.1.1"
)


@functools.partial(program_cache.cached_program, name="facephys_bvp")
@jax.jit
def facephys_bvp(variables, clip, fps=None):
    """FacePhys BVP "... t" of face clips "... t h w 3" in [0, 1]; see `facephys.estimate_bvp`."""
    return facephys.estimate_bvp(variables, clip, fps)


register(
    Estimator(
        name="facephys_rlap",
        fn=facephys_bvp,
        input="video",
        differentiable=True,
        citation=_FACEPHYS_CITATION,
        load_params=functools.partial(checkpoints.load_facephys, "rlap"),
    )
)
