"""Helpers for exercising autoopt against real servers under faults (tests and benchmarks).

Why here and not in ``tests/``: the fault benchmark in ``benches/`` and the test suite both
start, kill -9 and restart real nats-servers, and one copy of that code serves both.
"""
