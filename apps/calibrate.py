"""Calibration of a camera: ROI, counting lines, zones, detection rate (``/calibrate``)."""

from zvpanel.ui.calibration_editor import calibration_page

calibration_page().servable(title="zvpanel · Calibration")
