"""Adapters of the ports: local (SQLite, filesystem, process pools) and aws (boto3)."""
