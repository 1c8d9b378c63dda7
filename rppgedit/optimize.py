"""Pure optimisation loops: a whole run of an optax optimiser as one `lax.scan`.

Written once and shared by every editor (Privacy-Phys on pixels, PulseEdit on a per-channel trace), so
that a loop is jit-compiled as one program and `jax.vmap` over clips is free.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax


def optimize(
    params: Any,
    loss_fn: Callable[[Any], tuple[jax.Array, dict[str, jax.Array]]],
    tx: optax.GradientTransformation,
    num_steps: int,
    project: Callable[[Any], Any] | None = None,
    unroll: int = 1,
    done: Callable[[dict[str, jax.Array]], jax.Array] | None = None,
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
      done: optional `metrics -> bool scalar`, evaluated at the parameters before each step: once it
        is true the parameters and the optimiser state are kept for the remaining steps (an early
        stop that stays inside one compiled loop of static length).

    Returns:
      The final parameters and a history dict: `loss` (num_steps,) and each metric (num_steps,), each
      measured at the parameters *before* that step's update; with `done`, also `updated`
      (num_steps,) bool, whether that step changed the parameters.
    """
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(carry, _):
        p, opt_state, stopped = carry
        (loss, metrics), grads = grad_fn(p)
        updates, new_state = tx.update(grads, opt_state, p)
        new_p = optax.apply_updates(p, updates)
        if project is not None:
            new_p = project(new_p)
        record = {"loss": loss, **metrics}
        if done is None:
            return (new_p, new_state, stopped), record
        stopped = jnp.logical_or(stopped, done(metrics))
        keep = functools.partial(jnp.where, stopped)
        p = jax.tree.map(keep, p, new_p)
        opt_state = jax.tree.map(keep, opt_state, new_state)
        return (p, opt_state, stopped), {**record, "updated": jnp.logical_not(stopped)}

    init = (params, tx.init(params), jnp.zeros((), bool))
    (params, _, _), history = jax.lax.scan(step, init, None, length=num_steps, unroll=unroll)
    return params, history
