"""The key design keeps every partition under DynamoDB's 1,000 write units per second when a
run's tasks complete at 1,000 per second (issue 23 item 7): the real coordinator and store run
a layered workflow to the end on moto and every write is charged to its partition key
(tests/support/ddb_writes.py; the 10,000-task figures: scripts/bench-ddb-writes). Not timed:
units per key per window of completions, scaled to the rate."""

from __future__ import annotations

from tests.support.ddb_writes import PARTITION_WCU_S, measure


def test_no_partition_passes_1000_wcu_s_at_1000_completions_s() -> None:
    report = measure(tasks=500, width=50, fan_in=2, window=100)
    assert report.completions == 500
    assert report.peak_key_wcu_s < 0.7 * PARTITION_WCU_S, report.lines()  # room for the run's variance
    assert report.per_kind_peak["task"] < 0.5 * PARTITION_WCU_S, report.lines()
    assert report.largest_item_bytes["task"] <= 1024, report.lines()  # a usual result: one write unit
    assert 4 <= report.wcu_per_completion <= 7, report.lines()  # dispatch, claim + its count, finish, edges


def test_one_task_partition_would_be_hot_which_the_test_above_would_catch() -> None:
    report = measure(tasks=200, width=50, fan_in=2, window=100, task_shards=1)
    assert report.peak_key_wcu_s > PARTITION_WCU_S, report.lines()


def test_large_results_go_to_s3_so_a_finish_stays_a_few_write_units() -> None:
    """300 output files make a ~28 KB result: inline, its finish cost 28 units and the busiest
    task partition passed 2,000 WCU/s at 1,000 completions/s (scripts/bench-ddb-writes
    --outputs 300, before dynamodb_results.py)."""
    report = measure(tasks=300, width=30, fan_in=2, window=100, outputs=300)
    assert report.largest_item_bytes["task"] <= 5 * 1024, report.lines()
    assert report.per_kind_peak["task"] < 0.5 * PARTITION_WCU_S, report.lines()
