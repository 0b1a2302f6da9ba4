"""How the deployed app is wired, as numbers: app.py deploys these settings and the planner's
model of the cloud (chalicelib/planner/platform.py) reads the same ones, so `updraft plan` and
`updraft simulate` predict what the deployment does (docs/aws.md, "Latency per DAG hop").

A pure module: no AWS clients, safe to import from the planner.
"""

from __future__ import annotations

# The coordinator's SQS event source mapping (app.py). Every event goes through it: a task's
# TaskStarted and its completion, Start, scheduled retries. Lambda invokes the coordinator when
# EVENTS_BATCH_SIZE messages are gathered or EVENTS_BATCH_WINDOW_S has passed since the first,
# whichever comes first (Lambda developer guide, "Lambda parameters for Amazon SQS event source
# mappings": MaximumBatchingWindowInSeconds, default 0 for SQS). A window of 1 s made every hop
# of a chain and every narrow level wait a full second for a batch that never fills; with no
# window a batch holds what the poller received at once (up to 10), so wide levels still batch.
EVENTS_BATCH_SIZE = 10
EVENTS_BATCH_WINDOW_S = 0

# The task functions' asynchronous invoke config (infra/stack.yaml TaskFunctionInvokeConfig,
# infra/postdeploy.py for task-<mb>): Lambda keeps a throttled invoke in its own queue and
# retries it for up to this long (MaximumEventAgeInSeconds; 21600 s = 6 h is Lambda's maximum),
# then drops it with an EventAgeExceeded record to the OnFailure destination. A DISPATCHED
# function attempt is therefore not lost before this age: its lease until it is claimed is
# this plus the grace (engine CoordinatorConfig.function_queue_s), the normal lease after.
TASK_EVENT_AGE_S = 21_600
