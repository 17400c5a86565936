"""``panel serve --setup zvpanel/serve_setup.py``: start zvpanel once per server process.

Panel runs this file once per process before the server accepts connections (after it
started, with ``--num-procs``). :func:`zvpanel.app.get_app` opens the database, creates the
first admin and the demo camera on a fresh database, loads the model and starts the
engine; every browser session and every WebSocket route then shares that one App.
An invalid setting stops the server here with a message naming it (a missing
``ZVPANEL_JWT_SECRET`` outside development mode too). Login tokens never reach the log:
:func:`~zvpanel.web.log_redaction.install_log_redaction` rewrites URLs before they are
written.
"""

from __future__ import annotations

import logging

from zvpanel.app import get_app
from zvpanel.memory import tune_malloc
from zvpanel.web.log_redaction import install_log_redaction

#: zvpanel's messages in the server log: start-up, logins, camera errors.
LOG_LEVEL = logging.INFO

logging.getLogger("zvpanel").setLevel(LOG_LEVEL)
if not logging.getLogger().handlers:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
install_log_redaction()

tune_malloc()  # before the model's and the cameras' threads: see zvpanel.memory
app = get_app()
logging.getLogger("zvpanel.serve").info(
    "zvpanel ready: database %s, cameras running %s",
    app.db.location,
    app.engine.camera_ids if app.engine is not None else "none here (ZVPANEL_ENGINE=0)",
)
