"""Content-addressed dependency cache and task-result memoization."""
