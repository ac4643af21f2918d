"""Frameworks (SPEC §7): oracle, 1-skip, random-n, last-n, camel; pipeline frameworks join the registry."""

from executor.ocl.frameworks.base import (
    FRAMEWORKS,
    Framework,
    FrameworkOptions,
    PolicyContext,
    SchedulingPolicy,
    Selection,
    SequentialFramework,
    build_framework,
    framework_names,
    register_framework,
)

__all__ = [
    "FRAMEWORKS",
    "Framework",
    "FrameworkOptions",
    "PolicyContext",
    "SchedulingPolicy",
    "Selection",
    "SequentialFramework",
    "build_framework",
    "framework_names",
    "register_framework",
]
