"""Counting accuracy with motion gating off and on, on the scenes of benchmarks/scenes.toml.

    .venv/bin/python benchmarks/gating_accuracy.py [--scenes vtest] [--cache-dir DIR]

``benchmarks/accuracy.py`` replays cached detections on frames without pictures, so motion
gating (which looks at the pictures) cannot act there. This script replays the same cached
detections at the default settings, but hands the gate each scene's real decoded frames:
where the gate skips the detector, the pipeline gets the last detections again, as it
does live. It prints accuracy.py's summary line for both, and how often the detector ran.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from accuracy import (
    DEFAULT_CACHE_DIR,
    SCENES,
    SceneData,
    _measured,
    _Replay,
    selected_scenes,
    summary,
)

from zvpanel.config import load_settings
from zvpanel.detection.motion import GatedDetector
from zvpanel.pipeline import CountingPipeline, FrameSampler, run_offline
from zvpanel.sources import iter_frames


def measure(data: SceneData, gating: bool) -> tuple[str, int, int]:
    """The summary line, frames taken and detector runs, at the calibration's default rate."""
    calibration = data.calibration()
    replay = _Replay(data.detections, ("person",))
    detector = GatedDetector(replay, calibration) if gating else replay
    pipeline = CountingPipeline(calibration, detector)
    sampler = FrameSampler(calibration.detection_fps, data.fps)
    taken: list[int] = []

    def frames():
        for frame in iter_frames(data.scene.video, max_frames=data.frames):
            replay.index = frame.index  # the cached detections of this very frame
            yield frame

    run = run_offline(frames(), pipeline, sampler, on_output=lambda f, _: taken.append(f.index))
    ran = len(taken) - (detector.gated if gating else 0)
    return summary(data.scene.name, _measured(data, run.events, taken)), len(taken), ran


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", help="comma-separated scene names (default: all)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    args = parser.parse_args(argv)
    settings = load_settings()
    for data in selected_scenes(SCENES, args.scenes, settings, args.cache_dir):
        for gating in (False, True):
            line, taken, ran = measure(data, gating)
            state = "on " if gating else "off"
            print(f"gating {state}: {line}; detector ran on {ran} of {taken} frames taken")
    return 0


if __name__ == "__main__":
    sys.exit(main())
