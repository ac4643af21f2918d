"""Executor: models, profiler, data streams, OCL loops, stage math and the executors.

The only package that imports torch (planner ← sim ← executor ← analysis).
"""
