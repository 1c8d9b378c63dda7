"""Traced programs kept on disk between runs (`jax.export`), beside the compilation cache.

JAX's persistent compilation cache (`main.enable_compilation_cache`) skips XLA's compile, but every
process still traces and lowers the program first: for the default Privacy-Phys edit, 1.5-2.6 s of
the main thread before the first window can run (a tenth of the shared 320x320 clip's command).
`cached_program` stores the lowered program (StableHLO, `jax.export`) in `exported/` under the
compilation cache's folder and later runs load it instead of tracing: a few milliseconds, and the
same bits (the program is the one the trace would give; XLA compiles it, or loads that from the
compilation cache).

A stored program is named by a hash of everything it is built from: the caller's name for the
function and its static settings, the arguments' tree, shapes, dtypes and shardings, the devices,
JAX's and jaxlib's versions and configuration, and the source of this package. A change to any of
them names another file. A file that cannot be read is traced again and replaced; files are
written atomically; a function that cannot be exported (a host callback) runs as it is. No folder
(the compilation cache off): every process traces, as before.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import pathlib
import tempfile
from collections.abc import Callable

import jax

_FOLDER = "exported"
_KEEP = 64  # stored programs; the least recently used go first (a program is ~0.2 MB)


@functools.cache
def _package_source_hash() -> str:
    """sha256 of this package's Python source (every .py file, by relative path)."""
    root = pathlib.Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.cache
def _jaxlib_version() -> str:
    try:
        return importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:  # not installed as a distribution
        return "unknown"


def _spec(leaf) -> str:
    """Shape, dtype and weak type (a Python scalar traces unlike a NumPy one), and sharding."""
    spec = getattr(getattr(leaf, "sharding", None), "spec", None)
    return f"{jax.typeof(leaf)}:{spec}"


def program_key(name: str, static, args: tuple) -> str:
    """The hash that names the stored program of `name` (with `static`) called on `args`."""
    leaves, tree = jax.tree.flatten(args)
    devices = jax.devices()
    parts = [
        name,
        repr(static),
        str(tree),
        ";".join(_spec(leaf) for leaf in leaves),
        f"{devices[0].platform}:{devices[0].device_kind}:{len(devices)}",
        jax.__version__,
        _jaxlib_version(),
        repr(sorted((k, repr(v)) for k, v in jax.config.values.items())),
        _package_source_hash(),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _signature(leaves: list, tree) -> tuple:
    """What a call's program depends on besides the function, cheap enough to take at each call
    (a few microseconds a leaf; `program_key` hashes much more): the folder, the tree, each
    leaf's type, shape, dtype, weak type and sharding, and JAX's configuration."""
    specs = tuple(
        (
            type(leaf),
            getattr(leaf, "shape", None),
            getattr(leaf, "dtype", None),
            getattr(leaf, "weak_type", None),
            getattr(leaf, "sharding", None),
        )
        for leaf in leaves
    )
    return _folder(), tree, specs, _config_fingerprint()


def _config_fingerprint():
    values = tuple(jax.config.values.items())
    try:
        hash(values)
    except TypeError:  # an unhashable setting: compare by its text
        return repr(values)
    return values


def _folder() -> pathlib.Path | None:
    cache = jax.config.jax_compilation_cache_dir
    return pathlib.Path(cache) / _FOLDER if cache else None


def _load(path: pathlib.Path):
    try:
        return jax.export.deserialize(bytearray(path.read_bytes()))
    except Exception:  # noqa: BLE001 - unreadable, truncated or from another format: trace again
        return None


def _store(path: pathlib.Path, exported) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".jaxexport")
        with os.fdopen(fd, "wb") as f:
            f.write(exported.serialize())
        os.replace(tmp, path)
        stored = sorted(path.parent.glob("*.jaxexport"), key=lambda p: p.stat().st_mtime)
        for old in stored[:-_KEEP]:
            old.unlink(missing_ok=True)
    except OSError:  # a read-only or full cache folder costs a trace next time, nothing else
        pass


def cached_program(fn: Callable, name: str, static=None) -> Callable:
    """`fn` (a `jax.jit` function of array pytrees) called through its stored program.

    A call looks for the program of its arguments' shapes (`program_key(name, static, args)`);
    when there is none it traces `fn` once more to export it and stores it. Calls with other
    shapes get theirs the same way. `static`: what `fn` closes over that decides its program
    (its static settings), so that two such functions never share a name. `fn` must have no
    static arguments (`static_argnames`): the key sees only its arguments' shapes and dtypes.
    The folder is looked up at each call (the command line enables the cache after modules are
    imported); calls inside another trace (tracers for arguments) and calls with no folder go to
    `fn` itself.
    """
    programs: dict[tuple, Callable] = {}  # by `_signature`: a key is hashed once per signature

    @functools.wraps(fn)  # `call.__wrapped__` is `fn`, e.g. for `.lower`
    def call(*args, **kwargs):
        folder = _folder()
        leaves, tree = jax.tree.flatten((args, kwargs))
        if folder is None or any(isinstance(x, jax.core.Tracer) for x in leaves):
            return fn(*args, **kwargs)
        signature = _signature(leaves, tree)
        program = programs.get(signature)
        if program is None:
            key = program_key(name, static, (args, kwargs))
            path = folder / f"{key}.jaxexport"
            exported = _load(path) if path.is_file() else None
            if exported is not None:
                path.touch()  # recently used
            else:
                try:
                    exported = jax.export.export(fn)(*args, **kwargs)
                except Exception:  # noqa: BLE001 - not exportable (e.g. a host callback): as jit
                    programs[signature] = fn
                    return fn(*args, **kwargs)
                _store(path, exported)
            program = programs[signature] = jax.jit(exported.call)
        return program(*args, **kwargs)

    return call
