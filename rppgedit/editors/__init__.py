"""Editors by name: every editor module satisfies the contract `rppgedit.editors.contract.Editor`.

- `Config`: a frozen dataclass of settings with at least `fps` and `remove` fields;
- `HYPERPARAMETERS`: the `Config` fields a sweep varies (learning rate, lambda), traced in the
  compiled edit instead of static, so one program serves every value and a grid of them vmaps;
- `load_state(cfg)`: the heavy state (surrogate weights) loaded once;
- `edit(state, clip, mask, target, cfg) -> (edited, aux)`: pure, jit- and vmap-able; pixels outside
  `mask` are bit-identical to the input;
- `edit_batch(state, clips, masks, targets, cfg)`: the same over a leading batch axis
  (`contract.vmapped(edit)`);
- optionally `REMOVAL_UNSUPPORTED`: a sentence saying why `remove=True` is refused (an editor whose
  removal was measured not to work); `check_removal` turns it into the user's error.
- optionally `REMOVAL_DEFAULTS`: `Config` fields whose default differs for a removal
  (`make_config` applies them under the user's own options).

`edit` and `edit_batch` are `contract.EditFunction`s (jit-compiled, `cfg` static but for its
`HYPERPARAMETERS`). What the editors share about skin regions and the pulse colour lives in
`rppgedit.editors.regions`. `tests/editor_contract_test.py` checks every editor of `METHODS`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from rppgedit.errors import RppgEditError

# name -> module path; modules are imported on first use.
METHODS = {
    "physiolatent": "rppgedit.editors.physiolatent",
    "privacy_phys": "rppgedit.editors.privacy_phys",
    "pulseedit": "rppgedit.editors.pulseedit",
    "smooth_remove": "rppgedit.editors.smooth_remove",
}


def get(name: str) -> ModuleType:
    """The editor module called `name`."""
    if name not in METHODS:
        raise RppgEditError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    return importlib.import_module(METHODS[name])


def check_removal(name: str) -> None:
    """Raises a one-line error if editor `name` cannot remove the pulse (target none)."""
    why = getattr(get(name), "REMOVAL_UNSUPPORTED", None)
    if why:
        raise RppgEditError(f"method {name!r} cannot remove the pulse: {why}")


def make_config(name: str, fps: float, remove: bool, options) -> object:
    """Editor `name`'s `Config` at frame rate `fps` with the (field, value) `options` (a removal
    starts from the editor's `REMOVAL_DEFAULTS`, under the options); a one-line error for a
    method that cannot remove the pulse or options the editor does not take."""
    module = get(name)
    fields = {}
    if remove:
        check_removal(name)
        fields.update(getattr(module, "REMOVAL_DEFAULTS", {}))
    fields.update(dict(options))
    try:
        return module.Config(fps=float(fps), remove=remove, **fields)
    except (TypeError, ValueError) as err:
        raise RppgEditError(f"bad options for method {name!r}: {err}") from None
