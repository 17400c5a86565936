"""PeriodicJob: a step that keeps failing (the database is down) is logged once, with its
traceback, until a step works again."""

from __future__ import annotations

import logging
import threading

from zvpanel.periodic import PeriodicJob


class Flaky(PeriodicJob):
    thread_name = "zvpanel-flaky"
    failure = "flaky: the step failed"

    def __init__(self, fails: int) -> None:
        super().__init__(0.01)
        self.fails, self.steps = fails, 0
        self.worked = threading.Event()

    def run_once(self) -> None:
        self.steps += 1
        if self.steps <= self.fails:
            raise ConnectionRefusedError("connection refused\nand a driver's hint")
        if self.steps == self.fails + 3:
            self.worked.set()


def test_a_failing_step_is_logged_once_per_outage(caplog):
    caplog.set_level(logging.INFO, logger=__name__)
    job = Flaky(fails=20).start()
    try:
        assert job.worked.wait(10)
    finally:
        job.stop()
    said = [r for r in caplog.records if r.name == __name__]
    assert [r.levelno for r in said] == [logging.WARNING, logging.INFO], said
    assert said[0].getMessage() == (
        "flaky: the step failed (connection refused); trying again every 0.01 s"
    )
    assert said[0].exc_info is not None  # the first failure keeps its traceback
    assert said[1].getMessage() == "zvpanel-flaky: works again" and said[1].exc_info is None
    assert {r.filename for r in said} == {"periodic.py"}  # the job's line, not the helper's
