"""Updraft's Python SDK: submit and follow runs, locally or on a deployed stack.

    from updraft import Client

    client = Client()                                   # the local runtime (./.updraft)
    client = Client("https://abc.execute-api.eu-west-1.amazonaws.com/api/")  # SigV4-signed
    run = client.submit("workflow.json", data="inputs/")
    final = client.wait(run["run_id"], timeout=3600)
    for task in client.tasks(final["run_id"], state="FAILED"):
        print(task["id"], task["reason"])
"""

from __future__ import annotations

from updraft.client import Client, RunStalledError, RunTimeoutError

__all__ = ["Client", "RunStalledError", "RunTimeoutError"]
