"""Name -> estimator registry. Estimators are chosen by name (`--estimators=pos,chrom,physnet_pure`).

Two kinds share one calling convention through `Estimator.bvp`:
- trace methods (GREEN, POS, CHROM, ...): `fn(rgb_trace (T,3), fps) -> bvp (T,)`, fed by the shared
  ROI mean over the skin mask;
- video methods (PhysNet, ...): `fn(params, clip (T,H,W,3) float32 in [0,1], fps) -> bvp (T,)`, with
  heavy weights loaded once by `load_params()` and passed explicitly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

from rppgedit.errors import RppgEditError


@dataclasses.dataclass(frozen=True)
class Estimator:
    """One rPPG estimator.

    Attributes:
      name: registry name (lower case).
      fn: the method, see module docstring for the two signatures.
      input: "trace" or "video".
      differentiable: True when `jax.grad` through `fn` gives finite gradients (editors may use it as
        a surrogate).
      citation: the paper the method comes from.
      load_params: for video methods, a zero-argument function returning the weights pytree.
    """

    name: str
    fn: Callable[..., Any]
    input: Literal["trace", "video"]
    differentiable: bool
    citation: str
    load_params: Callable[[], Any] | None = None

    def bvp(self, clip, fps: float, mask=None, params=None):
        """BVP (T,) of a clip (T,H,W,3) float in [0,1]; trace methods average over `mask` first."""
        if self.input == "trace":
            from rppgedit.estimators.roi import spatial_mean

            return self.fn(spatial_mean(clip, mask), fps)
        if params is None:
            if self.load_params is None:
                raise RppgEditError(f"estimator {self.name!r} needs weights but has no loader")
            params = self.load_params()
        return self.fn(params, clip, fps)


# The readers an audit, a report or an experiment uses unless told otherwise: eight classical
# methods and PhysNet with both weight sets, all shipped with rppgedit. The estimators registered
# beside them (`pbv_raw`; EfficientPhys, PhysFormer and FacePhys, whose weights are converted from
# the optional open-rppg on first use) are read when named: never surrogates by default, they are
# the held-back judges of an edit.
DEFAULT_READERS = (
    "green", "pos", "chrom", "lgi", "pbv", "omit", "ica", "pca", "physnet_pure", "physnet_rlap",
)  # fmt: skip

_REGISTRY: dict[str, Estimator] = {}


def register(estimator: Estimator) -> Estimator:
    """Adds `estimator` under its name; a second registration of the same name is an error."""
    if estimator.name in _REGISTRY:
        raise ValueError(f"estimator {estimator.name!r} registered twice")
    _REGISTRY[estimator.name] = estimator
    return estimator


def get(name: str) -> Estimator:
    """The estimator called `name`; an unknown name is a one-line error listing the known ones."""
    try:
        return _REGISTRY[name.strip().lower()]
    except KeyError:
        raise RppgEditError(
            f"unknown estimator {name!r}; known: {', '.join(sorted(_REGISTRY))}"
        ) from None


def names(*, differentiable: bool | None = None, input: str | None = None) -> list[str]:
    """Registered names, optionally filtered by differentiability or input kind."""
    return sorted(
        n
        for n, e in _REGISTRY.items()
        if (differentiable is None or e.differentiable == differentiable)
        and (input is None or e.input == input)
    )
