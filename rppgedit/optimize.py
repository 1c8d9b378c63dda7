"""Pure optimisation loops: a whole run of an optax optimiser as one `lax.scan`.

Written once and shared by every editor (Privacy-Phys on pixels, PulseEdit on a per-channel trace), so
that a loop is jit-compiled as one program and `jax.vmap` over clips is free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax


def optimize(
    params: Any,
    loss_fn: Callable[[Any], tuple[jax.Array, dict[str, jax.Array]]],
    tx: optax.GradientTransformation,
    num_steps: int,
    project: Callable[[Any], Any] | None = None,
    unroll: int = 1,
) -> tuple[Any, dict[str, jax.Array]]:
    """Runs `num_steps` of projected gradient descent with `tx`.

    Args:
      params: initial parameters (any pytree).
      loss_fn: `params -> (loss, metrics)`, differentiable in `params`; `metrics` a dict of scalars.
      tx: an optax gradient transformation (e.g. `optax.adam(0.1)`).
      num_steps: static number of steps.
      project: optional projection applied to the parameters after every update (the "P" of PGD).
      unroll: steps per iteration of the compiled loop (`lax.scan`'s unroll; the same result).
        XLA's cost analysis counts a loop body once, so `--mode=bench` counts FLOPs with
        `unroll=num_steps`.

    Returns:
      The final parameters and a history dict: `loss` (num_steps,) and each metric (num_steps,), each
      measured at the parameters *before* that step's update.
    """
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(carry, _):
        p, opt_state = carry
        (loss, metrics), grads = grad_fn(p)
        updates, opt_state = tx.update(grads, opt_state, p)
        p = optax.apply_updates(p, updates)
        if project is not None:
            p = project(p)
        return (p, opt_state), {"loss": loss, **metrics}

    (params, _), history = jax.lax.scan(
        step, (params, tx.init(params)), None, length=num_steps, unroll=unroll
    )
    return params, history
