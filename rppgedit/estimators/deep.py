"""Deep rPPG estimators (PhysNet, EfficientPhys) registered by name.

| name         | model and weights | differentiable |
|--------------|-------------------|----------------|
| physnet_pure | PhysNet (Yu, Li & Zhao, "Remote Photoplethysmograph Signal Measurement from Facial Videos Using Spatio-Temporal Networks", BMVC 2019) trained on PURE, weights from open-rppg 0.1.1 (Kegang Wang, MIT) | yes |
| physnet_rlap | the same network trained on RLAP, weights from open-rppg 0.1.1 | yes |
| efficientphys_pure | EfficientPhys (Liu, Hill, Jiang, Patel & McDuff, "EfficientPhys: Enabling Simple, Fast and Accurate Camera-Based Cardiac Measurement", WACV 2023) trained on PURE, weights from open-rppg 0.1.1 | yes |
| efficientphys_rlap | the same network trained on RLAP, weights from open-rppg 0.1.1 | yes |

Both are video estimators: `fn(variables, clip "t h w 3" float in [0, 1], fps) -> bvp "t"` (leading
batch axes allowed). The clip is the face crop; it is area-resized to 32x32 (OpenCV INTER_AREA, as
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
"""

from __future__ import annotations

import functools

import jax

from rppgedit import checkpoints, program_cache
from rppgedit.estimators.registry import Estimator, register
from rppgedit.models import efficientphys, physnet

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


for _model, _fn, _citation, _load in (
    ("physnet", physnet_bvp, _PHYSNET_CITATION, checkpoints.load_physnet),
    ("efficientphys", efficientphys_bvp, _EFFICIENTPHYS_CITATION, checkpoints.load_efficientphys),
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
