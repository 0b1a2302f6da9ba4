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

# ---- concurrency isolation: a burst of tasks cannot starve the control plane ----------------
# (docs/aws.md, "Concurrency"; the reserved numbers per stage are in .chalice/config.json.)
# The coordinator's trigger invokes at most this many coordinators at once (SQS event source
# ScalingConfig.MaximumConcurrency, 2..1000); each stage reserves at least as much concurrency
# for the coordinator (tests check it), so the event source itself never throttles it. The
# stage may change it with UPDRAFT_EVENTS_CONCURRENCY (AwsConfig.events_concurrency).
EVENTS_MAX_CONCURRENCY = 5
SUBMIT_MAX_CONCURRENCY = 2  # the submit trigger (one upload notice per batch); 2 is the minimum

# The events queue's redrive: a message goes to the dead-letter queue on its
# EVENTS_MAX_RECEIVES-th receive. Every receive counts, the coordinator's own failures and
# the receives Lambda's poller makes while the coordinator is throttled (the batch comes back
# after the visibility timeout, unprocessed). So the count is the sum of two budgets:
# - THROTTLED_RECEIVES: a throttling episode of up to THROTTLED_RECEIVES x EVENTS_VISIBILITY_S
#   (5 x 6 min = 30 min) burns receives without dead-lettering anything. With
#   MaximumConcurrency <= reserved concurrency the event source does not throttle the
#   coordinator at all; this covers what can still throttle it (a lowered reservation, a
#   manual invoke taking the last slot);
# - COORDINATOR_ATTEMPTS: the coordinator's own tries of an event (each one with botocore's 6
#   attempts per call inside) before it is poison and fails its run (coordinator_function.py).
# The visibility timeout is six times the coordinator's timeout plus the batching window, as
# the Lambda guide advises for SQS triggers: a throttled batch is retried by the poller within
# one visibility timeout instead of coming back early as a duplicate.
COORDINATOR_TIMEOUT_S = 60  # .chalice/config.json lambda_timeout of the coordinator (tests check it)
EVENTS_VISIBILITY_S = 6 * COORDINATOR_TIMEOUT_S + EVENTS_BATCH_WINDOW_S
THROTTLED_RECEIVES = 5
COORDINATOR_ATTEMPTS = 5
EVENTS_MAX_RECEIVES = THROTTLED_RECEIVES + COORDINATOR_ATTEMPTS
