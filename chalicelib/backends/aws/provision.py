"""Create the app's resources where there is no CloudFormation: an emulator (moto,
LocalStack) or a scratch account. The CloudFormation template in .chalice/ describes the
same resources for real deployments.

    python -m chalicelib.backends.aws.provision        # names from UPDRAFT_* variables

Idempotent for the queues and the bucket; the table and the ECS service are created once.
"""

from __future__ import annotations

import json
from typing import Any

from msgspec import Struct

from chalicelib.backends.aws import wiring
from chalicelib.backends.aws.clients import AwsClients, error_code
from chalicelib.backends.aws.config import AwsConfig
from chalicelib.backends.aws.dynamodb_state import create_table

MAX_RECEIVES = 5  # deliveries before a message of the container queue goes to its dead-letter queue
# the events queue's: visibility and receives derived in wiring.py (throttled redeliveries)
EVENTS_VISIBILITY_S = wiring.EVENTS_VISIBILITY_S
EVENTS_MAX_RECEIVES = wiring.EVENTS_MAX_RECEIVES
CONTAINER_VISIBILITY_S = 120  # workers extend it while they run a task
DLQ_RETENTION_S = 14 * 24 * 3600


class Provisioned(Struct, frozen=True):
    events_queue_url: str
    container_queue_url: str
    events_dlq_url: str
    container_dlq_url: str


def provision(config: AwsConfig, clients: AwsClients | None = None) -> Provisioned:
    clients = clients or AwsClients(config)
    _table(config, clients)
    _bucket(config, clients)
    events, events_dlq = _queue_pair(clients, config.events_queue_name, EVENTS_VISIBILITY_S, EVENTS_MAX_RECEIVES)
    container_name = config.container_queue.rstrip("/").rsplit("/", 1)[-1]
    container, container_dlq = _queue_pair(clients, container_name, CONTAINER_VISIBILITY_S, MAX_RECEIVES)
    _ecs(config, clients)
    return Provisioned(events, container, events_dlq, container_dlq)


def _table(config: AwsConfig, clients: AwsClients) -> None:
    try:
        create_table(clients, config.table)
    except Exception as exc:
        if error_code(exc) != "ResourceInUseException":
            raise


def _bucket(config: AwsConfig, clients: AwsClients) -> None:
    kwargs: dict[str, Any] = {"Bucket": config.bucket}
    region = config.region or clients.session.region_name
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        clients.s3.create_bucket(**kwargs)
    except Exception as exc:
        if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def _queue_pair(clients: AwsClients, name: str, visibility_s: int, max_receives: int) -> tuple[str, str]:
    sqs = clients.sqs
    dlq = sqs.create_queue(QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION_S)})
    dlq_url = dlq["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)})
    queue = sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": str(visibility_s), "RedrivePolicy": redrive})
    return str(queue["QueueUrl"]), str(dlq_url)


def _ecs(config: AwsConfig, clients: AwsClients) -> None:
    ecs = clients.ecs
    ecs.create_cluster(clusterName=config.ecs_cluster)
    found = ecs.describe_services(cluster=config.ecs_cluster, services=[config.ecs_service]).get("services", [])
    if any(s.get("status") == "ACTIVE" for s in found):
        return
    family = f"{config.ecs_service}-task"
    ecs.register_task_definition(
        family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="1024", memory="4096",
        containerDefinitions=[{"name": "worker", "image": "updraft-worker:latest", "essential": True,
                               "stopTimeout": 120}],
    )
    # awsvpc needs a network (a RunTask of a bigger worker reuses the service's): the emulator's
    # default subnet here; the stack gives the real ones
    ec2 = clients.client("ec2")
    subnets = ec2.describe_subnets().get("Subnets", [])[:1]
    groups = ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [s["VpcId"] for s in subnets]}, {"Name": "group-name", "Values": ["default"]},
    ]).get("SecurityGroups", []) if subnets else []
    network = {"awsvpcConfiguration": {"subnets": [s["SubnetId"] for s in subnets], "assignPublicIp": "ENABLED",
                                       "securityGroups": [g["GroupId"] for g in groups]}}
    ecs.create_service(cluster=config.ecs_cluster, serviceName=config.ecs_service, taskDefinition=family,
                       desiredCount=0, launchType="FARGATE", **({"networkConfiguration": network} if subnets else {}))


def main() -> None:
    print(provision(AwsConfig.from_env()))


if __name__ == "__main__":
    main()
