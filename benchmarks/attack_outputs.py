"""Read edited videos with the open-rppg deep models (black boxes, never used for editing).

For each video: track the face, cut the face box as uint8 crops (128x128), and run every attacker in
one worker (each model is loaded once). Prints HR per attacker and video; writes JSON.

    python benchmarks/attack_outputs.py OUT1.mkv OUT2.mkv ... [--out results/open_rppg.json]
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

from rppgedit import open_rppg, pipeline
from rppgedit.readings import format_table
from rppgedit.video import crop, decode


def attacker_crop(frames: np.ndarray, boxes: np.ndarray, size: int = 128) -> np.ndarray:
    """The face boxes of `frames` resized to `size` x `size`, as the uint8 frames open-rppg reads."""
    return np.round(crop.crop_resize(frames, boxes, size) * 255).astype(np.uint8)


def face_crops(path: str, size: int = 128) -> tuple[np.ndarray, float]:
    video = decode.read_video(path)
    return attacker_crop(video.frames, pipeline.find_boxes(video.frames), size), video.fps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("videos", nargs="+")
    parser.add_argument("--models", default=",".join(open_rppg.OPEN_RPPG_MODELS))
    parser.add_argument("--out", default="results/open_rppg.json")
    args = parser.parse_args()
    clips = [face_crops(v) for v in args.videos]
    models = args.models.split(",")
    results = open_rppg.read_open_rppg_many(clips, models)
    rows = [
        {"video": pathlib.Path(v).name, **{m: r[m]["hr_bpm"] for m in models}}
        for v, r in zip(args.videos, results, strict=True)
    ]
    print(format_table(rows, [("video", "video", "s")] + [(m, m, ".1f") for m in models]))
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"videos": args.videos, "results": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
