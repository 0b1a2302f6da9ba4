"""The run service both backends serve (docs/architecture.md).

    runtime     the `Runtime` shape a backend implements (store, blobs, specs, clock, start,
                cancel, resolve inputs, read a request)
    submission  submitting a run: one path for the API, the S3 trigger, the CLI and the SDK
    runs        the run API's bodies, paging and the cancel/resume guards
    errors      one mapping from chalicelib.errors exceptions to HTTP statuses and bodies
    views       the dashboard's bodies (a task with its metrics and log, the graph)

app.py (the Chalice app) and chalicelib/backends/local/api.py (the local HTTP server and the SDK's
local transport) route onto `runs`; the CLI's run, status, runs, cancel and resume use it too.
Nothing here imports boto3 or sqlite3: a backend hands in its Runtime.
"""
