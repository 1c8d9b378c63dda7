"""Resumable results: work items keyed by their content, each item's records appended to a JSON
lines file in one write, and read back whole (a torn last line or a partial item is dropped).
The sweep and the papers' experiments keep their results this way, so a run that is stopped picks
up where it left off, and processes that share a folder skip each other's finished items.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
from collections.abc import Iterable

import numpy as np

from rppgedit import safe_write

_log = logging.getLogger(__name__)


def content_key(schema: int, clip_desc: dict, settings: dict) -> str:
    """The stable key of a work item: SHA-256 of the canonical JSON of its clip's description and
    its settings (and the `schema` of its records), first 24 hex digits."""
    text = json.dumps(
        {"schema": schema, "clip": clip_desc, "settings": settings},
        sort_keys=True,
        separators=(",", ":"),
        default=_json_default,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-able: {value!r}")


def read_results(path) -> tuple[dict[str, list[dict]], bool]:
    """The finished items of one results file.

    A line that does not parse (a torn last line) is ignored; an item counts only when all its
    `parts` lines are present; a key that appears twice keeps its first complete copy.

    Returns:
      ({key: records sorted by part}, clean): clean is False when anything was ignored.
    """
    try:
        data = pathlib.Path(path).read_bytes()
    except FileNotFoundError:
        return {}, True
    parts: dict[str, dict[int, dict]] = {}
    clean = data.endswith(b"\n") or not data
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            key, part, total = record["key"], int(record["part"]), int(record["parts"])
        except (ValueError, KeyError, TypeError):
            clean = False
            continue
        got = parts.setdefault(key, {})
        if part in got or not 0 <= part < total:
            clean = False
            continue
        got[part] = record
    done = {}
    for key, got in parts.items():
        total = next(iter(got.values()))["parts"]
        if len(got) == total:
            done[key] = [got[i] for i in range(total)]
        else:
            clean = False
    return done, clean


def finished_keys(own: pathlib.Path, others: Iterable[pathlib.Path] = ()) -> set[str]:
    """Keys finished in the results file `own` (first made clean: a torn line or a partial item
    is dropped, atomically) or in any of the files `others` (other processes', read only)."""
    own = pathlib.Path(own)
    done, clean = read_results(own)
    if not clean:  # torn line or partial item: keep only complete items (atomic rewrite)
        lines = [dumps(r) for key in done for r in done[key]]
        safe_write.write_text_atomic(own, "".join(line + "\n" for line in lines))
        _log.info("%s: dropped a torn line or partial item", own)
    finished = set(done)
    for path in others:
        if pathlib.Path(path) != own:
            finished |= set(read_results(path)[0])
    return finished


def dumps(record: dict) -> str:
    return json.dumps(safe_write.json_safe(record), sort_keys=True, allow_nan=False)


def append_item(path: pathlib.Path, records: list[dict]) -> None:
    """Appends one item's lines with a single write, then flush + fsync."""
    text = "".join(dumps(r) + "\n" for r in records).encode()
    with open(path, "ab") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
