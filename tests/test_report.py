"""The HTML evaluation report: outcomes of events, a standalone page, rendered offline."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from zvpanel.calibration import parse_calibration
from zvpanel.counting import CrossingEvent
from zvpanel.evaluation import evaluate, read_mot_gt, true_crossings
from zvpanel.geometry import segment_param
from zvpanel.report import event_outcomes, write_html_report

WINDOW = 15.0
CALIBRATION = parse_calibration(
    {
        "lines": [
            {"id": "vertical", "x1": 345.6, "y1": 0, "x2": 345.6, "y2": 576},
            {"id": "diagonal", "x1": 450, "y1": 150, "x2": 650, "y2": 450},
        ]
    }
)


@pytest.fixture(scope="module")
def evaluation(gt_path):
    """The real ground truth against hand-made counts: every second true crossing counted
    3 frames late, the others missed, and one entry counted where nobody crossed."""
    gt = read_mot_gt(gt_path)
    true = [e for line in CALIBRATION.lines for e in true_crossings(gt, line)]
    counted = [dataclasses.replace(e, frame_index=e.frame_index + 3) for e in true[::2]]
    busy = {e.frame_index for e in true if (e.line_id, e.direction) == ("vertical", "entry")}
    quiet = next(f for f in range(gt.num_frames) if all(abs(f - b) > WINDOW for b in busy))
    spurious = CrossingEvent("vertical", 999, "entry", quiet, 0.5, (345.6, 144.0))
    report = evaluate(CALIBRATION, gt, [*counted, spurious], window_frames=WINDOW)
    return report, len(true), len(counted)


def test_event_outcomes(evaluation):
    report, n_true, n_counted = evaluation
    outcomes = event_outcomes(report, CALIBRATION)
    by_outcome = outcomes["outcome"].value_counts().to_dict()
    assert by_outcome == {
        "matched": n_counted,
        "missed": n_true - n_counted,
        "spurious": 1,
    }
    spurious = outcomes[outcomes["outcome"] == "spurious"].iloc[0]
    assert (spurious.line_id, spurious.track_id) == ("vertical", 999)
    assert spurious.position == pytest.approx(0.25)
    line = CALIBRATION.lines[1]
    for row in outcomes[outcomes["line_id"] == "diagonal"].itertuples():
        assert row.position == pytest.approx(
            min(1.0, max(0.0, segment_param(line.start, line.end, (row.x, row.y))))
        )


def test_event_outcomes_without_calibration_has_no_position(evaluation):
    outcomes = event_outcomes(evaluation[0])
    assert "position" not in outcomes.columns and len(outcomes)


def _document(page: str) -> dict:
    """The Bokeh document embedded in a standalone page."""
    match = re.search(
        r'<script type="application/json" id="[^"]+">\s*(.*?)\s*</script>', page, re.S
    )
    assert match, "no embedded Bokeh document"
    return next(iter(json.loads(match.group(1)).values()))


def _titles(doc: dict) -> list[str]:
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and node.get("name") == "Title":
                text = node.get("attributes", {}).get("text")
                if text:
                    found.append(text)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return found


def test_write_html_report_is_standalone(evaluation, tmp_path):
    report = evaluation[0]
    path = write_html_report(
        report,
        tmp_path / "sub" / "report.html",
        calibration=CALIBRATION,
        fps=10.0,
        frame_size=(768, 576),
        title="vtest accuracy",
    )
    page = path.read_text()
    assert "<title>vtest accuracy</title>" in page
    assert report.format_table().splitlines()[0] in page  # the text table
    # Offline: Bokeh's JavaScript is inlined, nothing is fetched from a server.
    assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', page)
    assert "Bokeh" in page and len(page) > 500_000
    titles = _titles(_document(page))
    for line_id in ("vertical", "diagonal"):
        assert f"{line_id}: crossings over time, true vs counted" in titles
        assert any(t.startswith(f"{line_id}: where along the line") for t in titles)
    assert "Per line and direction: true, counted and matched crossings" in titles
    assert "Where in the frame crossings were matched, missed and spurious" in titles


def test_write_html_report_without_calibration(evaluation, tmp_path):
    path = write_html_report(evaluation[0], tmp_path / "plain.html")
    titles = _titles(_document(path.read_text()))
    assert not any("where along the line" in t for t in titles)
    assert "vertical: crossings over time, true vs counted" in titles


@pytest.mark.ui
def test_report_renders_in_a_browser_without_network(evaluation, tmp_path, render_offline):
    path = write_html_report(evaluation[0], tmp_path / "report.html", calibration=CALIBRATION)
    shown = render_offline(path)
    # 2 lines: 2 over-time plots + bars + 2 position histograms + the frame plot.
    assert shown.figures == 6
    assert shown.canvases >= shown.figures
    assert shown.errors == [] and shown.remote == []
