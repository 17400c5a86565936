"""Writes tuning.ipynb and explore_camera.ipynb (outputs stripped) from the cells below.

Edit the cells here and run ``.venv/bin/python notebooks/build_notebooks.py``; the
committed notebooks are this script's output, so they never carry outputs or
execution counts. All logic lives in ``zvpanel``; cells only set parameters, call it and
show the results.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

COMMON_PARAMETERS = """\
import os

# Paths are relative to this notebook's folder; environment variables override them
# (CI runs the notebooks on a short clip with ZVPANEL_NB_MAX_FRAMES and ZVPANEL_NB_QUICK).
VIDEO = os.environ.get("ZVPANEL_NB_VIDEO", "../data/vtest.avi")
GROUND_TRUTH = os.environ.get("ZVPANEL_NB_GT", "../../shared/ground_truth/vtest-first400/gt.txt")
MODEL = os.environ.get("ZVPANEL_MODEL", "../../shared/models/yolov8n_int8_openvino_model")
MAX_FRAMES = int(os.environ.get("ZVPANEL_NB_MAX_FRAMES", "400"))
"""

TUNING = [
    new_markdown_cell(
        "# Tuning the counter for one scene\n\n"
        "Runs the model once over a clip with MOTChallenge ground truth, then sweeps the "
        "confidence threshold, inference size, detection rate, tracker (ByteTrack / "
        "BoT-SORT, `track_buffer`) and the line counter's hysteresis (`min_distance`, "
        "`min_frames`). Every combination is scored against the true crossings of the "
        "lines below: error per line and direction, and precision / recall of events "
        "(matched one-to-one within 1.5 s), against the processing time it costs. "
        "It ends with the settings to use for this scene."
    ),
    new_code_cell(
        COMMON_PARAMETERS
        + """\
QUICK = os.environ.get("ZVPANEL_NB_QUICK", "0") == "1"  # a few combinations only
TARGET_ERROR = 0.10  # each line and direction within 10% of the truth
# Lines across the walkways of vtest.avi (pixels), in several directions
# (the same as benchmarks/accuracy.py).
LINES = [
    {"id": "vertical", "x1": 345.6, "y1": 0, "x2": 345.6, "y2": 576},
    {"id": "horizontal", "x1": 450, "y1": 290, "x2": 750, "y2": 290},
    {"id": "diagonal", "x1": 450, "y1": 150, "x2": 650, "y2": 450},
]
ROI = None  # or (x1, y1, x2, y2)
""",
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        """\
import holoviews as hv
import pandas as pd
import panel as pn

from zvpanel import plots
from zvpanel.calibration import parse_calibration
from zvpanel.evaluation import read_mot_gt
from zvpanel.sources import iter_frames
from zvpanel.tracks import tracks_from_ground_truth
from zvpanel.tuning import DetectionCache, SweepGrid, recommend, run_sweep
from zvpanel.ui.tuning_view import TuningView

hv.extension("bokeh")
pn.extension("tabulator")
pd.set_option("display.width", 200)
"""
    ),
    new_markdown_cell("## The scene, the lines and the ground-truth tracks"),
    new_code_cell(
        """\
calibration = parse_calibration({"lines": LINES, "roi": ROI})
gt = read_mot_gt(GROUND_TRUTH)
first = next(iter_frames(VIDEO, max_frames=1))
frame_size = (first.width, first.height)
gt_tracks = tracks_from_ground_truth(GROUND_TRUTH, max_frame=MAX_FRAMES)
plots.in_image_space(
    plots.frame_image(first.image)
    * plots.trajectories(gt_tracks)
    * plots.lines_overlay(calibration.lines),
    frame_size,
    title=f"Ground-truth tracks of the first {MAX_FRAMES} frames",
)
"""
    ),
    new_markdown_cell(
        "## The sweep\n\n"
        "A model exported with a fixed input size runs at that size whatever `imgsz` "
        "says, so the grid keeps only that size for such a model."
    ),
    new_code_cell(
        """\
grid = (SweepGrid.quick() if QUICK else SweepGrid()).for_model(MODEL)
print(f"up to {grid.size} combinations: {grid}")
cache = DetectionCache(
    VIDEO, MODEL, max_frames=MAX_FRAMES, base_confidence=min(grid.confidence), roi=ROI
)
results = run_sweep(cache, calibration, gt, grid)
results.sort_values(["max_error", "cost_ms_per_s"]).head(15)
"""
    ),
    new_markdown_cell("## Accuracy against speed"),
    new_code_cell("plots.accuracy_vs_speed(results)"),
    new_code_cell(
        """\
hv.Layout(
    [
        plots.setting_effect(results, setting)
        for setting in ("confidence", "imgsz", "detection_fps", "tracker", "track_buffer", "min_distance", "min_frames")
    ]
).cols(2)
"""
    ),
    new_code_cell(
        """\
hv.Layout(
    [plots.setting_effect(results, setting, "f1") for setting in ("detection_fps", "tracker", "min_distance")]
).cols(3)
"""
    ),
    new_markdown_cell(
        "## Tuning one line by hand\n\n"
        "Drag the line on the frame (or draw a new one) and move the sliders: the counts "
        "against the ground truth are recounted from the detections cached above, without "
        "running the model again."
    ),
    new_code_cell(
        """\
first_line = calibration.lines[0]
tuner = TuningView(
    cache,
    gt,
    first.image,
    imgsz=grid.imgsz[-1],
    line=(first_line.x1, first_line.y1, first_line.x2, first_line.y2),
    confidence=max(0.25, cache.base_confidence),
    detection_fps=min(5.0, cache.fps),
)
print(tuner.summary())
tuner
"""
    ),
    new_markdown_cell("## Recommended settings for this scene"),
    new_code_cell(
        """\
recommendation = recommend(results, target=TARGET_ERROR)
display(recommendation.alternatives)
plots.errors_by_direction(recommendation.row, title="Recommended settings: counted - true per line and direction")
"""
    ),
    new_code_cell("print(recommendation)", metadata={"tags": ["recommendation"]}),
]

EXPLORE = [
    new_markdown_cell(
        "# Exploring one camera's footage\n\n"
        "Where do people walk, how fast, and where would a counting line be crossed most "
        "cleanly? The tracks come from running the detector and tracker over the video "
        "(as the engine does); when ground truth is available, its tracks are scored too."
    ),
    new_code_cell(
        COMMON_PARAMETERS
        + """\
DETECTION_FPS = float(os.environ.get("ZVPANEL_NB_DETECTION_FPS", "10"))
TRACKER = "bytetrack"
BINS = (32, 24)  # heat map cells (columns, rows)
""",
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        """\
from pathlib import Path

import holoviews as hv

from zvpanel import plots
from zvpanel.calibration import parse_calibration
from zvpanel.calibration_check import check_calibration, line_reliability, main_walking_direction
from zvpanel.detection import YoloDetector
from zvpanel.sources import iter_frames, probe_source
from zvpanel.tracks import (
    candidate_lines,
    heatmap,
    line_crossing_counts,
    speeds,
    tracks_from_ground_truth,
    tracks_from_video,
)

hv.extension("bokeh")
"""
    ),
    new_markdown_cell("## Tracks"),
    new_code_cell(
        """\
info = probe_source(VIDEO)
frame_size = (info.width, info.height)
first = next(iter_frames(VIDEO, max_frames=1))
tracks = tracks_from_video(
    VIDEO, YoloDetector(MODEL), TRACKER, max_frames=MAX_FRAMES, detection_fps=DETECTION_FPS
)
print(f"{info.width}x{info.height} at {info.fps:g} fps: {tracks.track_id.nunique()} tracks, "
      f"{len(tracks)} anchor points in {MAX_FRAMES} frames")
tracks.head()
"""
    ),
    new_markdown_cell("## Where people walk"),
    new_code_cell(
        """\
plots.in_image_space(
    plots.frame_image(first.image)
    * plots.heatmap_image(heatmap(tracks, frame_size, BINS))
    * plots.trajectories(tracks),
    frame_size,
    title="Anchor points (feet) of every track",
)
"""
    ),
    new_markdown_cell("## Typical speeds"),
    new_code_cell(
        """\
per_track = speeds(tracks, info.fps)
direction = main_walking_direction(tracks)
print(per_track["speed_px_s"].describe().round(1).to_string())
print("main walking direction:", "none" if direction is None else f"{direction:.0f} degrees from the x axis")
plots.speed_histogram(per_track)
"""
    ),
    new_markdown_cell(
        "## Where a line would be crossed most cleanly\n\n"
        "Each candidate line is scored by its crossings, minus twice the quick "
        "re-crossings (a track crossing back within a second: hesitation or jitter)."
    ),
    new_code_cell(
        """\
candidates = {line.id: line for line in candidate_lines(frame_size)}
scores = line_crossing_counts(tracks, list(candidates.values())).sort_values("score", ascending=False)
if Path(GROUND_TRUTH).is_file():
    truth = line_crossing_counts(tracks_from_ground_truth(GROUND_TRUTH, MAX_FRAMES), list(candidates.values()))
    scores = scores.merge(truth[["line_id", "score"]], on="line_id", suffixes=("", "_ground_truth"))
display(scores)
plots.candidate_scores(scores)
"""
    ),
    new_code_cell(
        """\
best = [candidates[line_id] for line_id in scores["line_id"].head(3)]
plots.in_image_space(
    plots.frame_image(first.image) * plots.heatmap_image(heatmap(tracks, frame_size, BINS)) * plots.lines_overlay(best),
    frame_size,
    title="The three best candidate lines",
)
"""
    ),
    new_markdown_cell(
        "## Where tracking is reliable\n\n"
        "Near each of the best lines: the tracks passing it, how many tracks begin or end "
        "there (people lost or hidden: crossings missed or counted twice) and the share of "
        "boxes at least half covered by another (crowding). The calibration check warns "
        "above 30% broken or 10% hidden."
    ),
    new_code_cell(
        """\
line_reliability(tracks, best, frame_size).round(2)
"""
    ),
    new_markdown_cell(
        "## Move it yourself\n\n"
        "The calibration page's editor on this frame: drag the magenta line (or its ends "
        "with the vertex tool), draw orange zones with the zone tool (double-click to start "
        "and to finish), shift-drag a region of interest. The check below the table "
        "follows every drag; `model.calibration` is the result."
    ),
    new_code_cell(
        """\
import panel as pn

from zvpanel.ui.calibration_model import CalibrationDrawing, CalibrationModel

pn.extension("tabulator")
model = CalibrationModel()
model.load(first.image, parse_calibration({"lines": [best[0].model_dump()]}))


def check(calibration):
    if calibration is None:
        return model.problem
    return "\\n".join(w.message for w in model.warnings) or "Valid, no placement warning."


pn.Column(
    CalibrationDrawing(model=model),
    pn.widgets.Tabulator.from_param(model.param.lines, show_index=False),
    pn.bind(check, model.param.calibration),
)
"""
    ),
    new_markdown_cell("## Suggested line, checked"),
    new_code_cell(
        """\
suggested = parse_calibration({"lines": [best[0].model_dump()]})
warnings = check_calibration(suggested, frame_size, tracks)
top = scores.iloc[0]
print(f"Suggested line {best[0].id}: ({best[0].x1:g}, {best[0].y1:g}) -> ({best[0].x2:g}, {best[0].y2:g}), "
      f"{top.crossings} crossings by {top.tracks} tracks, {top.recrossings} quick re-crossings.")
print("\\n".join(w.message for w in warnings) or "The calibration check has no warning for it.")
""",
        metadata={"tags": ["recommendation"]},
    ),
]


NOTEBOOKS = {"tuning.ipynb": TUNING, "explore_camera.ipynb": EXPLORE}


def build(cells: list, name: str, folder: Path = HERE) -> Path:
    notebook = new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
    )
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.id = f"cell-{number}"  # stable ids: rebuilding does not change the files
    nbformat.validate(notebook)
    path = folder / name
    nbformat.write(notebook, path)
    return path


if __name__ == "__main__":
    for name, cells in NOTEBOOKS.items():
        print("wrote", build(cells, name))
