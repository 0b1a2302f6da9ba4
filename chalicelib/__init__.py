"""Updraft: scientific workflows on serverless infrastructure, or on one machine.

Chalice ships this package to every function: keep module-level imports light.
"""

__version__ = "0.1.0"
