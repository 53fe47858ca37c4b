"""Shared fixtures: the throwaway PostgreSQL cluster (tests/pgcluster.py)."""

pytest_plugins = ["tests.pgcluster"]
