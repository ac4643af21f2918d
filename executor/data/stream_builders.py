"""Imports every stream-builder module beyond iid so that each registers itself."""

from executor.data import stream_domain, stream_tasks  # noqa: F401
