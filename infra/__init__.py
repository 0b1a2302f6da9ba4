"""Deployment of Updraft to an AWS account: the stage's CloudFormation stack (stack.yaml) and
the steps around `chalice deploy`. Entry points: scripts/bootstrap, scripts/deploy,
scripts/destroy; docs/deploy.md explains them. Nothing here runs inside a Lambda function.
"""
