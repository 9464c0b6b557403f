"""`python -m intake`: the alert intake under uvicorn (INTAKE_HOST, INTAKE_PORT)."""

from __future__ import annotations

import logging
import os
import sys

import uvicorn

import settings
from client import TemporalConfigError, connect, load_config
from contracts import PolicyError, load_policy_file
from intake.app import IntakeConfig, create_app
from intake.handoff import Handoff
from intake.ui import UiConfig


def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    config = settings.load()
    try:
        policy = load_policy_file(config.policy_path)
    except PolicyError as err:
        sys.exit(f"intake: {err}")
    try:
        temporal = load_config()  # a broken Temporal configuration stops the start, not every request
    except TemporalConfigError as err:
        sys.exit(f"intake: {err}")
    host, port = os.environ.get("INTAKE_HOST", "127.0.0.1"), int(os.environ.get("INTAKE_PORT", "8080"))
    ui = UiConfig.from_env()
    app = create_app(IntakeConfig.from_env(policy), Handoff(lambda: connect(temporal), config.task_queue), ui=ui)
    if ui is not None:
        logging.getLogger("intake").info("approval page at http://%s:%d/ui", host, port)
    logging.getLogger("intake").info(
        "alert intake listening on http://%s:%d (Temporal %s)", host, port, temporal.describe()
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
