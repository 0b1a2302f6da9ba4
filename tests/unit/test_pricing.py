from __future__ import annotations

import datetime

import pytest
from msgspec.structs import asdict

from chalicelib.planner import pricing
from chalicelib.planner.pricing import PRICES, fargate_pairs, fargate_size
from chalicelib.workflow import limits


def test_lambda_worked_example_from_the_pricing_page() -> None:
    # 512 MB, 3 million invocations of 1 s each, no free tier: 1.5 M GB-s and 3 M requests.
    per_call = PRICES.functions.invocation_cost(512, 1.0)
    assert per_call * 3_000_000 == pytest.approx(1_500_000 * 0.0000166667 + 3 * 0.20, rel=1e-6)


def test_lambda_bills_whole_milliseconds_and_tmp_above_512_mb() -> None:
    fn = PRICES.functions
    assert fn.invocation_cost(1024, 0.0101) == pytest.approx(fn.per_request + 0.011 * 1.0 * fn.per_gb_s_x86_64)
    extra = fn.invocation_cost(1024, 10.0, tmp_mb=2560) - fn.invocation_cost(1024, 10.0)
    assert extra == pytest.approx(10.0 * 2.0 * fn.ephemeral_per_gb_s)


def test_arm_is_cheaper_and_unknown_architectures_are_refused() -> None:
    assert PRICES.functions.invocation_cost(1024, 60, "arm64") < PRICES.functions.invocation_cost(1024, 60)
    assert PRICES.containers.rate_per_s(1, 2048, "arm64") < PRICES.containers.rate_per_s(1, 2048)
    with pytest.raises(ValueError, match="unknown architecture"):
        PRICES.functions.invocation_cost(1024, 1, "sparc")


def test_function_cpu_share_follows_memory_up_to_six_vcpus() -> None:
    fn = PRICES.functions
    assert fn.vcpus(1769) == pytest.approx(1.0)
    assert fn.vcpus(256) == pytest.approx(256 / 1769)
    assert fn.vcpus(10_240) == pytest.approx(10_240 / 1769)
    assert fn.vcpus(12_000) == 6.0


def test_fargate_bills_a_minute_at_least_then_per_second() -> None:
    fg = PRICES.containers
    hourly = 0.25 * 0.04048 + 0.5 * 0.004445
    assert fg.rate_per_s(0.25, 512) * 3600 == pytest.approx(hourly)
    assert fg.task_cost(0.25, 512, 5) == pytest.approx(60 * hourly / 3600)
    assert fg.task_cost(0.25, 512, 90.2) == pytest.approx(91 * hourly / 3600)
    assert fg.task_cost(1, 2048, 60, disk_gb=30) - fg.task_cost(1, 2048, 60) == pytest.approx(
        60 * 10 * fg.ephemeral_per_gb_hour / 3600)


@pytest.mark.parametrize(("cpus", "memory", "expected"), [
    (0.1, 100, (0.25, 512)),
    (0.25, 600, (0.25, 1024)),
    (0.25, 2049, (0.5, 3072)),
    (1, 2049, (1.0, 3072)),
    (3, 100, (4.0, 8192)),
    (8, 16385, (8.0, 20480)),
    (16, 122_880, (16.0, 122_880)),
])
def test_fargate_size_is_the_smallest_valid_pair(cpus: float, memory: int, expected: tuple[float, int]) -> None:
    assert fargate_size(cpus, memory) == expected
    assert expected in fargate_pairs()


def test_fargate_size_refuses_what_no_task_size_holds() -> None:
    with pytest.raises(ValueError, match="no Fargate size"):
        fargate_size(16, 122_881)
    with pytest.raises(ValueError, match="no Fargate size"):
        fargate_size(32, 1024)


def test_fargate_pairs_are_the_documented_table() -> None:
    pairs = fargate_pairs()
    by_cpu = {c: [m for cc, m in pairs if cc == c] for c in pricing.FARGATE_SIZES}
    assert by_cpu[0.25] == [512, 1024, 2048]
    assert by_cpu[1.0] == list(range(2048, 8193, 1024))
    assert by_cpu[8.0][0] == 16384 and by_cpu[8.0][-1] == 61440 and len(by_cpu[8.0]) == 12
    assert by_cpu[16.0][0] == 32768 and by_cpu[16.0][-1] == 122880


def test_hard_limits_agree_with_the_validation_limits() -> None:
    fn, fg = PRICES.functions, PRICES.containers
    assert limits.FUNCTION.max_timeout_s == fn.max_timeout_s
    assert limits.FUNCTION.max_memory_mb == fn.max_memory_mb
    assert limits.FUNCTION.max_disk_mb == fn.max_tmp_mb
    assert limits.FUNCTION.max_cpus == fn.max_vcpus
    assert limits.CONTAINER.max_memory_mb == max(m for _, m in fargate_pairs())
    assert limits.CONTAINER.max_cpus == max(pricing.FARGATE_SIZES)
    assert limits.CONTAINER.max_disk_mb == fg.max_ephemeral_gb * 1024


def test_every_figure_is_dated_and_placed() -> None:
    assert PRICES.region == "us-east-1"
    datetime.date.fromisoformat(PRICES.read_on)
    for part in (PRICES.functions, PRICES.containers, PRICES.dynamodb, PRICES.sqs, PRICES.s3):
        assert part.read_on == PRICES.read_on
        assert all(v >= 0 for v in asdict(part).values() if isinstance(v, float))
