"""The command line's modes: one module per mode, each with `run(settings)`.

`rppgedit.main` parses the flags into `rppgedit.settings.Settings` and calls the chosen mode's
`run`; a mode turns settings into one library call and prints what it returned.
"""

from __future__ import annotations

import importlib

# mode -> module; imported on first use so that `--help` stays fast.
RUNNERS = {
    "demo": "rppgedit.modes.demo",
    "edit": "rppgedit.modes.edit",
    "live": "rppgedit.modes.live",
    "evaluate": "rppgedit.modes.evaluate",
    "bench": "rppgedit.modes.bench",
    "sweep": "rppgedit.modes.sweep",
    "experiment": "rppgedit.modes.experiment",
    "train": "rppgedit.modes.train",
    "convert": "rppgedit.modes.convert",
}


def run(settings) -> None:
    """Runs `settings.mode` on `settings`."""
    importlib.import_module(RUNNERS[settings.mode]).run(settings)
