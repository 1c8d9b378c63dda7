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
    inner: Callable[[Any], jax.Array] | None = None,
    refresh: int = 1,
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
        is true the parameters and the optimiser state are kept for the remaining steps. The loop
        then ends early (`lax.while_loop`; under `vmap` when every clip of the batch is done): the
        remaining steps are not computed, and the history repeats the stopping step's metrics,
        which are those of the kept parameters. With `unroll` > 1 the loop runs every step
        (`lax.scan`, the same result) so that XLA's cost analysis sees them all.
      inner: optional `params -> values "d"`, the costly part of the loss (e.g. a deep network's
        terms); `loss_fn` is then `(params, values) -> (loss, metrics)`.
      refresh: with `inner`, how often it is evaluated: every `refresh`-th step evaluates it and
        its Jacobian (`_linearise`: d vector-Jacobian products) at the parameters, and that step
        and the next `refresh - 1` use its first-order expansion there (`_expand`) in place of
        `inner`, so the loss is exact at the refreshing step (its gradient too) and approximate
        after it; 1 evaluates `inner` at every step (the exact gradient).

    Returns:
      The final parameters and a history dict: `loss` (num_steps,) and each metric (num_steps,), each
      measured at the parameters *before* that step's update; with `done`, also `updated`
      (num_steps,) bool, whether that step changed the parameters.
    """
    if refresh < 1:
        raise ValueError(f"refresh must be >= 1, got {refresh}")
    if inner is not None and refresh == 1:
        loss_fn, inner = (lambda f, g: lambda p: f(p, g(p)))(loss_fn, inner), None
    if inner is not None:
        return _refreshed(params, loss_fn, tx, num_steps, project, unroll, done, inner, refresh)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(carry, _):
        p, opt_state, stopped = carry
        return _update(grad_fn(p), p, opt_state, stopped, tx, project, done)

    init = (params, tx.init(params), jnp.zeros((), bool))
    if done is None or unroll > 1:
        (params, _, _), history = jax.lax.scan(step, init, None, length=num_steps, unroll=unroll)
        return params, history
    return _until_done(step, init, num_steps)


def _update(value_and_grads, p, opt_state, stopped, tx, project, done, hold=None):
    """One projected step from `((loss, metrics), grads)` at `p`: the new carry and the step's
    record. With `done` (or `hold`, true for a step past the last) the parameters are kept once it
    holds."""
    (loss, metrics), grads = value_and_grads
    updates, new_state = tx.update(grads, opt_state, p)
    new_p = optax.apply_updates(p, updates)
    if project is not None:
        new_p = project(new_p)
    record = {"loss": loss, **metrics}
    if done is None and hold is None:
        return (new_p, new_state, stopped), record
    if done is not None:
        stopped = jnp.logical_or(stopped, done(metrics))
    kept = stopped if hold is None else jnp.logical_or(stopped, hold)
    keep = functools.partial(jnp.where, kept)
    p = jax.tree.map(keep, p, new_p)
    opt_state = jax.tree.map(keep, opt_state, new_state)
    if done is None:
        return (p, opt_state, stopped), record
    return (p, opt_state, stopped), {**record, "updated": jnp.logical_not(kept)}


def _linearise(inner, p0):
    """(p0, inner(p0) "d", its Jacobian: a pytree like `p0` with a leading axis d), constants."""
    values, vjp = jax.vjp(inner, p0)
    if values.shape[0] == 1:  # one row: a plain vector-Jacobian product
        jacobian = jax.tree.map(lambda g: g[None], vjp(jnp.ones_like(values))[0])
    else:
        (jacobian,) = jax.vmap(vjp)(jnp.eye(values.shape[0], dtype=values.dtype))
    return jax.lax.stop_gradient((p0, values, jacobian))


def _expand(expansion, p):
    """`inner(p)` to first order around the expansion's point: values + J (p - p0)."""
    p0, values, jacobian = expansion
    moved = jax.tree.map(lambda j, a, b: jnp.tensordot(j, a - b, axes=a.ndim), jacobian, p, p0)
    return values + sum(jax.tree.leaves(moved))


def _refreshed(params, loss_fn, tx, num_steps, project, unroll, done, inner, refresh):
    """`optimize` with `inner` evaluated every `refresh`-th step: blocks of `refresh` steps, each
    block's first step linearising `inner` (`_linearise`) for the block."""
    blocks = -(-num_steps // refresh)

    def block(carry, first):
        expansion = _linearise(inner, carry[0])
        grad_fn = jax.value_and_grad(lambda q: loss_fn(q, _expand(expansion, q)), has_aux=True)

        def step(carry, index):
            p, opt_state, stopped = carry
            hold = index >= num_steps
            return _update(grad_fn(p), p, opt_state, stopped, tx, project, done, hold)

        # a loop, not straight-line steps, so that they share buffers (unrolled for the cost analysis)
        return jax.lax.scan(step, carry, first + jnp.arange(refresh), unroll=unroll > 1)

    def flat(history):  # (blocks, refresh, ...) -> (num_steps, ...); after a stop, its record
        history = jax.tree.map(lambda h: h.reshape((-1, *h.shape[2:]))[:num_steps], history)
        if done is None:
            return history
        stop = jnp.argmin(history["updated"])  # the first step that kept the parameters
        stopped = jnp.logical_not(jnp.all(history["updated"]))
        after = jnp.logical_and(jnp.arange(num_steps) > stop, stopped)

        def fill(h):
            expand = (slice(None),) + (None,) * (h.ndim - 1)
            return jnp.where(after[expand], h[stop][None], h)

        return jax.tree.map(fill, history)

    init = (params, tx.init(params), jnp.zeros((), bool))
    starts = jnp.arange(blocks) * refresh
    if done is None or unroll > 1:
        (params, _, _), history = jax.lax.scan(
            block, init, starts, unroll=max(1, min(unroll // refresh, blocks))
        )
        return params, flat(history)
    params, history = _until_done(lambda carry, b: block(carry, b * refresh), init, blocks)
    return params, flat(history)


def _until_done(step, init, num_steps: int):
    """`lax.scan(step, init, jnp.arange(num_steps))` for a `step` that stops changing its carry once
    `carry[2]` (stopped) is true: runs steps only until then, and fills the rest of the history with
    the stopping step's record (what the scan would have recorded at the kept parameters)."""
    record_shape = jax.eval_shape(lambda c: step(c, 0)[1], init)
    empty = jax.tree.map(lambda a: jnp.zeros((num_steps, *a.shape), a.dtype), record_shape)

    def cond(loop):
        i, (_, _, stopped), _ = loop
        return jnp.logical_and(i < num_steps, jnp.logical_not(stopped))

    def body(loop):
        i, carry, history = loop
        carry, record = step(carry, i)
        history = jax.tree.map(lambda h, r: h.at[i].set(r), history, record)
        return i + 1, carry, history

    ran, (params, _, _), history = jax.lax.while_loop(cond, body, (0, init, empty))
    last = jnp.maximum(ran - 1, 0)
    after = jnp.arange(num_steps) >= ran

    def fill(h):
        expand = (slice(None),) + (None,) * (h.ndim - 1)
        return jnp.where(after[expand], h[last], h)

    return params, jax.tree.map(fill, history)
