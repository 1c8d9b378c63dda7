"""The editor contract in code: what an editor module exposes, and how its `edit` is compiled.

An editor module (`rppgedit.editors.METHODS`) satisfies `Editor`:

- `Config`: a frozen (hashable) dataclass of settings with at least `fps` and `remove` fields;
- `HYPERPARAMETERS`: names of the `Config` fields a sweep varies (e.g. the learning rate and the
  fidelity weight lambda); they reach the compiled program as traced float32 scalars, not as part of
  the static `cfg`, so settings that differ only in them share one compiled program and a grid of
  them can be `jax.vmap`-ed (`EditFunction.apply`);
- `load_state(cfg)`: the heavy state (surrogate weights) loaded once;
- `edit(state, clip, mask, target, cfg) -> (edited, aux)`: pure, jit- and vmap-able; pixels outside
  `mask` are bit-identical to the input;
- `edit_batch(state, clips, masks, targets, cfg)`: the same over a leading batch axis (shared
  `state` and `cfg`);
- optionally `REMOVAL_UNSUPPORTED`: a sentence saying why `remove=True` is refused.
- optionally `REMOVAL_DEFAULTS`: `Config` fields whose default differs for a removal.

`edit` and `edit_batch` are `EditFunction`s: an editor writes its edit as a pure function of
(state, clip, mask, target, cfg) and decorates it with `editor_function(HYPERPARAMETERS)`; `vmapped`
makes `edit_batch` from `edit` (an editor that is natively batched decorates its `edit_batch` and
writes `edit` as the batch of one).
Inside the pure function `cfg` reads as usual; its `HYPERPARAMETERS` fields are then traced scalars,
so they may only enter arithmetic, never Python control flow or shapes.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np

EditImpl = Callable[..., tuple[Any, Any]]  # (state, clip, mask, target, cfg) -> (edited, aux)


def hyperparameters(cfg, names) -> dict[str, np.float32]:
    """{name: float32 scalar} of the fields `names` of `cfg`."""
    return {name: np.float32(getattr(cfg, name)) for name in names}


def strip(cfg, names):
    """`cfg` with the fields `names` set to None: the static part of a setting, equal for settings
    that differ only in those fields (the jit cache key). Built without `__init__`, which would
    reject the None values."""
    if not names:
        return cfg
    static = copy.copy(cfg)
    for name in names:
        object.__setattr__(static, name, None)
    return static


def bind(static, hyper: Mapping[str, Any]):
    """`static` (from `strip`) with the fields of `hyper` set to its (traced) values."""
    if not hyper:
        return static
    bound = copy.copy(static)
    for name, value in hyper.items():
        object.__setattr__(bound, name, value)
    return bound


class EditFunction:
    """An editor's `edit` or `edit_batch`: `impl(state, clip, mask, target, cfg)` jit-compiled
    with `cfg` static except its `hyperparameter_names` fields, which are traced arguments.

    Call it as `fn(state, clip, mask, target, cfg)`; `apply` takes explicit (possibly batched)
    hyperparameters; `lower` and `_cache_size` behave as `jax.jit`'s (the compiled program of
    `lower(...).compile()` is called without `cfg`, as for a static argument).
    """

    def __init__(self, impl: EditImpl, hyperparameter_names: tuple[str, ...] = ()):
        functools.update_wrapper(self, impl)
        self.impl = impl
        self.hyperparameter_names = tuple(hyperparameter_names)

        def traced(state, clip, mask, target, hyper, cfg):
            return impl(state, clip, mask, target, bind(cfg, hyper))

        traced.__name__ = traced.__qualname__ = impl.__name__  # programs named jit_edit, ...
        self._jit = jax.jit(traced, static_argnames="cfg")

    def hyperparameters(self, cfg) -> dict[str, np.float32]:
        """The traced fields of `cfg`: {name: float32 scalar}."""
        return hyperparameters(cfg, self.hyperparameter_names)

    def _args(self, hyper, cfg):
        unknown = set(hyper) - set(self.hyperparameter_names)
        if unknown:
            raise ValueError(
                f"not hyperparameters of {self.__name__}: {sorted(unknown)}; "
                f"traced fields are {self.hyperparameter_names}"
            )
        return {**self.hyperparameters(cfg), **hyper}, strip(cfg, self.hyperparameter_names)

    def __call__(self, state, clip, mask, target, cfg):
        return self.apply(state, clip, mask, target, {}, cfg)

    def apply(self, state, clip, mask, target, hyper: Mapping[str, Any], cfg):
        """The edit with `cfg`'s hyperparameters replaced by `hyper` ({name: float32 scalar or
        traced value}; missing names come from `cfg`). One compiled program serves every value,
        and `jax.vmap` over `hyper` edits a grid of settings at once."""
        hyper, static = self._args(dict(hyper), cfg)
        return self._jit(state, clip, mask, target, hyper, cfg=static)

    def lower(self, state, clip, mask, target, cfg) -> _Lowered:
        """`jax.jit(...).lower` for these arguments; `compile()` gives a program called as
        `compiled(state, clip, mask, target)` (the hyperparameters of `cfg` bound)."""
        hyper, static = self._args({}, cfg)
        return _Lowered(self._jit.lower(state, clip, mask, target, hyper, cfg=static), hyper)

    def _cache_size(self) -> int:
        """Programs compiled so far (`jax.jit`'s cache size)."""
        return self._jit._cache_size()

    def clear_cache(self) -> None:
        self._jit.clear_cache()


class _Lowered:
    """A lowered `EditFunction` whose hyperparameters are bound (see `EditFunction.lower`)."""

    def __init__(self, lowered, hyper):
        self._lowered, self._hyper = lowered, hyper

    def compile(self, *args, **kwargs) -> _Compiled:
        return _Compiled(self._lowered.compile(*args, **kwargs), self._hyper)

    def __getattr__(self, name):
        return getattr(self._lowered, name)


class _Compiled:
    """A compiled `EditFunction` called as `compiled(state, clip, mask, target)`."""

    def __init__(self, compiled, hyper):
        self._compiled, self._hyper = compiled, hyper

    def __call__(self, state, clip, mask, target):
        return self._compiled(state, clip, mask, target, self._hyper)

    def __getattr__(self, name):
        return getattr(self._compiled, name)


def editor_function(hyperparameter_names: tuple[str, ...] = ()):
    """Decorator: a pure `impl(state, clip, mask, target, cfg)` as an `EditFunction`."""
    return lambda impl: EditFunction(impl, hyperparameter_names)


def vmapped(edit: EditFunction) -> EditFunction:
    """`edit_batch` from `edit`: `edit` vmapped over a leading batch axis of clips, masks and
    targets, with the state and settings shared."""

    def edit_batch(state, clips, masks, targets, cfg):
        return jax.vmap(lambda c, m, t: edit.impl(state, c, m, t, cfg))(clips, masks, targets)

    edit_batch.__doc__ = (
        f"`{edit.__name__}` vmapped over a leading batch axis of clips, masks and targets "
        "(shared state and settings)."
    )
    return EditFunction(edit_batch, edit.hyperparameter_names)


@runtime_checkable
class Editor(Protocol):
    """What an editor module exposes (see the module docstring); `isinstance(module, Editor)`
    checks that the names exist."""

    Config: type
    HYPERPARAMETERS: tuple[str, ...]
    edit: EditFunction
    edit_batch: EditFunction

    def load_state(self, cfg) -> Any:
        """The heavy state (weights) for `cfg`, loaded once."""
        ...
