"""Calibration of a camera: ROI, counting lines, detection rate (``/calibrate``)."""

from zvpanel.ui.calibration import calibration_page

calibration_page().servable(title="zvpanel · Calibration")
