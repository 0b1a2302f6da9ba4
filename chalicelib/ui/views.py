"""Moved to chalicelib/service/views.py (the run service owns the API's bodies); kept so
existing imports work."""

from __future__ import annotations

from chalicelib.service.views import (
    LOG_TAIL_BYTES,
    graph_body,
    graph_reply,
    log_text,
    task_body,
    task_detail_body,
    task_reply,
)

__all__ = ["LOG_TAIL_BYTES", "graph_body", "graph_reply", "log_text", "task_body", "task_detail_body",
           "task_reply"]
