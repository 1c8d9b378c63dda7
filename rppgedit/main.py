"""rppgedit command line: `rppgedit MODE [--setting=value ...]`, `python -m rppgedit.main
--mode=MODE ...`, `--flagfile=FILE` or `--config=FILE.py`.

The settings are declared once, in `rppgedit.settings`; this module only defines their flags, prints
a mode's help, resolves the settings (refusing, in one line, one the mode does not use) and calls the
mode (`rppgedit.modes`). Values in a flagfile can be overridden by flags given after it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pathlib
import sys
import threading
import time
from typing import NoReturn

from absl import app, flags, logging

from rppgedit import settings
from rppgedit.errors import RppgEditError

FLAGS = flags.FLAGS
settings.define_flags(FLAGS)

# The command's start, as near as this module can see it (after Python's own start-up and these
# imports, 0.2 s together here): `rppgedit edit` counts everything since in its end-to-end rate.
STARTED = time.perf_counter()


def main(argv):
    if len(argv) > 1:
        print(f"rppgedit: error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
        sys.exit(1)
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # library INFO logs (orbax, jax) only on request
    if FLAGS.checkpoint_dir:
        os.environ["RPPGEDIT_CHECKPOINTS"] = FLAGS.checkpoint_dir
    from rppgedit import cpu_threads

    cpu_threads.spread_over_cores()  # after the flags (--help does not import jax)
    try:
        enable_compilation_cache(jax_cache_dir())
    except OSError as err:  # an unwritable cache folder costs speed, never the run
        logging.warning("no compilation cache: %s", err)
    try:
        from rppgedit import modes

        modes.run(settings.resolve(FLAGS, started=STARTED))
    except (RppgEditError, MemoryError) as err:
        from rppgedit import safe_write
        from rppgedit.errors import one_line

        if safe_write.interrupted():  # the signal watcher is removing temporaries and exiting
            threading.Event().wait(30)
        if isinstance(err, MemoryError):
            err = RppgEditError(
                f"out of memory reading {FLAGS.input or 'the input'} "
                "(lower RPPGEDIT_MEMORY_BUDGET_GB or use a shorter/smaller clip)"
            )
        print(f"rppgedit: error: {one_line(err)}", file=sys.stderr)
        sys.exit(1)


# Compiled programs kept on disk between runs: RPPGEDIT_JAX_CACHE names the folder, or "off".
JAX_CACHE_ENV = "RPPGEDIT_JAX_CACHE"
JAX_CACHE_MAX_BYTES = 2**30  # least recently used entries are dropped past this


def jax_cache_dir(environ=os.environ) -> str | None:
    """The persistent compilation cache's folder: $RPPGEDIT_JAX_CACHE, None when it is "off",
    else $XDG_CACHE_HOME/rppgedit/jax (~/.cache/rppgedit/jax)."""
    setting = environ.get(JAX_CACHE_ENV, "").strip()
    if setting.lower() in ("off", "0", "false", "no", "none"):
        return None
    if setting:
        return os.path.expanduser(setting)
    home = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(home, "rppgedit", "jax")


def enable_compilation_cache(path: str | None) -> None:
    """Turns on JAX's persistent compilation cache in `path` (before anything compiles), so a
    second run of the same shapes loads its programs instead of compiling them again."""
    if path is None:
        return
    import jax

    os.makedirs(path, mode=0o700, exist_ok=True)  # the cache runs what it holds: keep it private
    _give_entries_access_times(path)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", JAX_CACHE_MAX_BYTES)  # needs filelock


def _give_entries_access_times(path: str) -> None:
    """Writes the access-time file of every cache entry that has none. JAX's size-limited cache
    reads them all before each write, and one missing (a process killed between writing an
    entry and its time) made every later write fail with a warning: nothing new was cached, and
    every run compiled again (measured: 4 s more per run of the shared clip)."""
    for entry in pathlib.Path(path).glob("*-cache"):
        stamp = entry.with_name(entry.name.removesuffix("-cache") + "-atime")
        if not stamp.exists():
            with contextlib.suppress(OSError):
                stamp.write_bytes(time.time_ns().to_bytes(8, "little"))


def _mode_in(argv: list[str]) -> str | None:
    """The mode named by `argv` (`--mode=X`, `--mode X`), if any."""
    for i, arg in enumerate(argv):
        if arg.startswith("--mode="):
            return arg.split("=", 1)[1]
        if arg == "--mode" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def command_line(argv: list[str]) -> list[str]:
    """`argv` with a leading mode word (`rppgedit edit ...`) turned into `--mode=edit`."""
    if len(argv) > 1 and argv[1] in settings.MODES:
        return [argv[0], f"--mode={argv[1]}", *argv[2:]]
    return list(argv)


# glibc gives each thread that allocates its own malloc arena (up to 8 per core), and the decode,
# encode and XLA threads each keep freed frame buffers in theirs: measured on a 2408-frame 320x320
# edit, peak RSS 1537 MB with the default arenas and 1075 MB with two.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number in glibc's malloc.h


def cap_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Caps glibc's malloc arenas (before any thread starts), unless $MALLOC_ARENA_MAX already
    says how many; False where the C library is not glibc."""
    import ctypes
    import ctypes.util

    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False


def entry_point(argv: list[str] | None = None):
    from rppgedit import safe_write

    argv = command_line(sys.argv if argv is None else argv)
    if any(a in ("--help", "-h", "-?", "--helpshort") for a in argv[1:]):
        mode = _mode_in(argv)
        if mode is not None and mode not in settings.MODES:
            print(f"rppgedit: error: unknown mode {mode!r}", file=sys.stderr)
            sys.exit(1)
        print(settings.help_text(mode))
        sys.exit(0)
    cap_malloc_arenas()
    safe_write.install_signal_handlers()
    try:
        app.run(main, argv=argv)
    except SystemExit as done:
        if done.code not in (None, 0):
            raise
    exit_now()


def exit_now() -> NoReturn:
    """Ends a command that succeeded without the interpreter's teardown, which frees JAX's runtime
    and every module one object at a time (0.6-0.8 s after an edit here, against 0.1). Its files
    are written and closed by now; the exit handlers still run and the output is flushed first."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    entry_point()
