"""rppgedit: edit the remote-photoplethysmography (rPPG) pulse in facial videos, for privacy.

    import rppgedit
    report = rppgedit.edit("in.mp4", "out.mkv", target_hr=100)   # or remove=True
    frames, report = rppgedit.edit_frames(frames, fps, target_hr=100)
    rppgedit.read_heart_rate("out.mkv")
    rppgedit.audit("in.mp4")

The API (`rppgedit.api`) is imported on first use, so `import rppgedit` (and `rppgedit --help`)
stays fast: JAX loads only when one of these names is touched.
"""

__version__ = "0.1.0"

# name -> module that defines it; loaded lazily by `__getattr__`.
_LAZY = {
    "edit": "rppgedit.api",
    "edit_frames": "rppgedit.api",
    "read_heart_rate": "rppgedit.api",
    "audit": "rppgedit.api",
    "demo_video": "rppgedit.api",
    "demo_frames": "rppgedit.api",
    "preview": "rppgedit.api",
    "Report": "rppgedit.report",
    "Readings": "rppgedit.report",
    "Audit": "rppgedit.report",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rppgedit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
