"""The one write policy of rppgedit: every file the command line writes goes through here.

- Never onto an input: the output is compared with every input after resolving links (real path,
  same inode), so a symlink or hard link to an input is refused too. Inputs cannot pull in other
  files: `rppgedit.video.ffmpeg` opens them with ffmpeg restricted to the `file` protocol and to
  video container demuxers (no concat/ffconcat playlists, no image2 patterns, no HLS).
- Never over an existing file without `overwrite` (reports and `--json_out` included).
- Atomically: a temporary file (or folder) in the destination's folder, created with `O_EXCL`
  (never following a planted symlink), is filled and then renamed over the destination.
- Temporaries carry a recognisable name, ``.<name>.rppgedit-tmp.<host>.<pid>.<random><ext>`` (and
  ``rppgedit-<pid>-<random>`` scratch folders in the system temp folder), are registered while they
  live, and are removed on error, on SIGINT/SIGTERM (`install_signal_handlers`), and, when a run
  was killed with SIGKILL, by the next run that writes into the same folder (`clean_stale`: a
  temporary of this host whose process no longer exists).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator

import numpy as np

from rppgedit.errors import RppgEditError, path_error

TEMP_TAG = "rppgedit-tmp"
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_TEMP_NAME = re.compile(r"^\..*\.rppgedit-tmp\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]+")
_SCRATCH_NAME = re.compile(r"^rppgedit-(?P<pid>\d+)-[0-9a-f]+$")

_lock = threading.RLock()
_live: set[str] = set()  # temporaries (files or folders) that exist now
_children: set = set()  # subprocess.Popen objects to kill on a signal
_interrupted = threading.Event()


# --------------------------------------------------------------------------------------------
# Checking a destination.


def same_file(a, b) -> bool:
    """Whether paths `a` and `b` name the same file after links (real path or same inode)."""
    a, b = os.fspath(a), os.fspath(b)
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: str, folder) -> bool:
    """Whether `path` (after links of its folder) lies inside `folder` (after links)."""
    parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    root = os.path.realpath(os.fspath(folder))
    return parent == root or parent.startswith(root.rstrip(os.sep) + os.sep)


def check_destination(path, *, inputs: Iterable = (), overwrite: bool = False) -> None:
    """Refuses a destination file before any work: it may not be (a link to) one of `inputs`, its
    folder must exist and be writable, and an existing file is kept unless `overwrite`."""
    path = os.fspath(path)
    for source in inputs:
        if source is None:
            continue
        if same_file(path, source):
            raise path_error(
                path, f"output is the input {os.fspath(source)}; refusing to overwrite an input"
            )
        if os.path.isdir(source) and _inside(path, source):
            raise path_error(path, f"output is inside the input folder {os.fspath(source)}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise path_error(path, f"cannot write: {parent} is not an existing directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise path_error(path, f"cannot write: directory {parent} is not writable")
    if os.path.lexists(path) and not overwrite:
        raise path_error(path, "output exists (pass --overwrite to replace it)")


# --------------------------------------------------------------------------------------------
# Temporaries.


def _temp_path(path: str, suffix: str) -> str:
    parent = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path.rstrip("/" + os.sep)) or "out"
    name = f".{base[:80]}.{TEMP_TAG}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}{suffix}"
    return os.path.join(parent, name)


def _stopping() -> None:
    """Called (under `_lock`) by a thread that creates something after a signal arrived: the
    watcher is exiting the process, so wait for it instead of leaving new work behind."""
    _lock.release()
    try:
        threading.Event().wait(60)
    finally:
        _lock.acquire()


def register(temp: str) -> None:
    with _lock:
        if _interrupted.is_set():
            remove(temp)
            _stopping()
        _live.add(temp)


def release(temp: str) -> None:
    with _lock:
        _live.discard(temp)


def remove(temp: str | None) -> None:
    """Removes a temporary file or folder (if it exists) and forgets it."""
    if temp is None:
        return
    try:
        if os.path.isdir(temp) and not os.path.islink(temp):
            shutil.rmtree(temp, ignore_errors=True)
        elif os.path.lexists(temp):
            os.remove(temp)
    except OSError:
        pass
    release(temp)


def make_temp_file(path, *, suffix: str | None = None) -> str:
    """An empty, registered temporary file beside `path` (same extension unless `suffix`), created
    with O_EXCL | O_NOFOLLOW and the umask's permissions."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    clean_stale(parent)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(10):
        temp = _temp_path(path, suffix)
        try:
            fd = os.open(temp, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as e:
            raise path_error(path, f"cannot write in {parent} ({e.strerror})") from None
        os.close(fd)
        register(temp)
        return temp
    raise path_error(path, f"cannot create a temporary file in {parent}")


def make_temp_dir(path) -> str:
    """An empty, registered temporary folder beside `path` (mkdir is exclusive)."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path.rstrip("/" + os.sep)))
    clean_stale(parent)
    for _ in range(10):
        temp = _temp_path(path, "")
        try:
            os.mkdir(temp, 0o777)
        except FileExistsError:
            continue
        except OSError as e:
            raise path_error(path, f"cannot write in {parent} ({e.strerror})") from None
        register(temp)
        return temp
    raise path_error(path, f"cannot create a temporary folder in {parent}")


@contextlib.contextmanager
def scratch_dir() -> Iterator[str]:
    """A registered private folder ``rppgedit-<pid>-<hex>`` in the system temp folder, removed on
    exit, on a signal, or by a later run once this process is gone."""
    root = tempfile.gettempdir()
    clean_stale(root)
    for _ in range(10):
        final = os.path.join(root, f"rppgedit-{os.getpid()}-{secrets.token_hex(6)}")
        try:
            os.mkdir(final, 0o700)
            break
        except FileExistsError:
            continue
    else:
        raise RppgEditError(f"{root}: cannot create a scratch folder")
    register(final)
    try:
        yield final
    finally:
        remove(final)


def move_into_place(temp: str, path) -> None:
    """Renames a finished temporary over `path` (atomic on one file system) and forgets it."""
    try:
        os.replace(temp, os.fspath(path))
    except OSError as e:
        remove(temp)
        raise path_error(
            path, f"cannot move the finished output into place ({e.strerror})"
        ) from None
    release(temp)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


_cleaned: set[str] = set()


def clean_stale(folder, *, again: bool = False) -> list[str]:
    """Removes temporaries that a killed run of this host left in `folder` (once per folder and
    process unless `again`); returns their paths."""
    removed = []
    key = os.path.realpath(os.fspath(folder))
    if key in _cleaned and not again:
        return removed
    _cleaned.add(key)
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _TEMP_NAME.match(name) or _SCRATCH_NAME.match(name)
        if match is None:
            continue
        host = match.groupdict().get("host", _HOST)
        if host != _HOST or _alive(int(match.group("pid"))):
            continue
        full = os.path.join(folder, name)
        with _lock:
            if full in _live:
                continue
        remove(full)
        removed.append(full)
    return removed


def write_bytes(path, data: bytes, *, inputs: Iterable = (), overwrite: bool = False) -> str:
    """Writes a file under the policy: checked destination, O_EXCL temporary, rename."""
    path = os.fspath(path)
    check_destination(path, inputs=inputs, overwrite=overwrite)
    temp = make_temp_file(path, suffix=".tmp")
    try:
        with open(temp, "wb") as f:
            f.write(data)
        move_into_place(temp, path)
    except BaseException:
        remove(temp)
        raise
    return path


def write_text(path, text: str, *, inputs: Iterable = (), overwrite: bool = False) -> str:
    """`write_bytes` of `text` in UTF-8."""
    return write_bytes(path, text.encode("utf-8"), inputs=inputs, overwrite=overwrite)


def write_text_atomic(path, text: str, *, overwrite: bool = True, inputs: Iterable = ()) -> str:
    """`write_text` into a folder that is created if missing, replacing an existing file unless
    `overwrite` is False (never onto one of `inputs`)."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise path_error(path, f"cannot create {parent} ({e.strerror})") from None
    return write_text(path, text, inputs=inputs, overwrite=overwrite)


def json_safe(value):
    """A JSON-writable copy of nested dicts/lists: NaN and inf become None, NumPy scalars Python
    ones, keys strings (reports, records and manifests are written with ``allow_nan=False``)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------------------------
# Child processes and signals.


def register_process(proc) -> None:
    with _lock:
        if _interrupted.is_set():
            proc.kill()
            _stopping()
        _children.add(proc)


def release_process(proc) -> None:
    with _lock:
        _children.discard(proc)


def interrupted() -> bool:
    """True once SIGINT or SIGTERM arrived (the process is about to exit)."""
    return _interrupted.is_set()


def cleanup_all() -> int:
    """Kills registered child processes and removes every live temporary; returns how many."""
    with _lock:  # after this, `register` calls wait for the exit instead of adding
        _interrupted.set()
        children, temps = list(_children), sorted(_live, key=len, reverse=True)
    for proc in children:
        try:
            proc.kill()
        except OSError:
            pass
    for proc in children:
        try:
            proc.wait(timeout=5)
        except Exception:  # noqa: BLE001 - best effort while exiting
            pass
    for temp in temps:
        remove(temp)
    return len(temps)


_SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _on_signal(signum: int) -> None:
    _interrupted.set()
    count = cleanup_all()
    name = signal.Signals(signum).name
    note = f"; removed {count} unfinished temporary file(s)" if count else ""
    try:
        sys.stderr.write(f"\nrppgedit: interrupted by {name}; stopped{note}\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001
        pass
    os._exit(_SIGNAL_EXIT.get(signum, 128 + signum))


def install_signal_handlers() -> None:
    """SIGINT/SIGTERM stop the run at once: children killed, temporaries removed, one line, exit
    130 (SIGINT) or 143 (SIGTERM).

    The work is done on a watcher thread woken through `signal.set_wakeup_fd`, so it happens even
    while the main thread is inside a long compiled JAX call (where a Python handler would wait),
    and the process ends with `os._exit`, skipping an interpreter teardown that can crash while
    XLA threads are still running.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)

    def watch():
        while True:
            data = os.read(read_fd, 1)
            if data and data[0] in _SIGNAL_EXIT:
                _on_signal(data[0])

    threading.Thread(target=watch, name="rppgedit-signals", daemon=True).start()
    for signum in _SIGNAL_EXIT:
        signal.signal(signum, lambda *_: None)  # the watcher thread does the work
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
