"""Names shared by the stack template, the deploy scripts and the Chalice app.

stack.yaml builds the same names from its AppName and Stage parameters; tests check that
the two agree, and that the settings written for Chalice are the ones the adapters read.
"""

from __future__ import annotations

import re
from pathlib import Path

from infra.errors import DeployError

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = Path(__file__).with_name("stack.yaml")
CHALICE_CONFIG = REPO / ".chalice" / "config.json"

APP_NAME = "updraft"  # Chalice app_name (app.py); function names are <app>-<stage>-<function>
TASK_FUNCTION = "task"  # @app.lambda_function(name=...) of the task function in app.py
COORDINATOR_FUNCTION = "coordinator"  # @app.on_sqs_message(name=...) on the events queue
MOUNT_PATH = "/mnt/updraft"  # where the task function and the workers see the EFS access point

# CloudFormation limits (AWS documentation, read 2026-11-01)
TEMPLATE_BODY_MAX = 51_200  # bytes of TemplateBody in CreateStack/UpdateStack

STAGE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,15}$")  # also the template's Stage and AppName


def check_stage(stage: str) -> str:
    if not STAGE_PATTERN.match(stage):
        raise DeployError(f"stage {stage!r} must be lower-case letters, digits and hyphens, start with a "
                          "letter and be at most 16 characters (it becomes part of resource names)")
    return stage


def stack_name(stage: str, app: str = APP_NAME) -> str:
    return f"{app}-{check_stage(stage)}-infra"


def function_name(stage: str, function: str, app: str = APP_NAME) -> str:
    """The name Chalice gives a function of the app in a stage."""
    return f"{app}-{stage}-{function}"
