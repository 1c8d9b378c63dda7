"""`rppgedit convert`: convert open-rppg or torch weights into the project's checkpoint format."""

from __future__ import annotations


def run(s) -> None:
    from rppgedit import checkpoints

    path = checkpoints.run_convert(s.source, s.checkpoint_dir)
    print(f"wrote {path}")
