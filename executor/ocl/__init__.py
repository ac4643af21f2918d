"""Online continual learning: the virtual-time test-then-train loop, frameworks, algorithms.

Entry points: `build_framework(name, FrameworkOptions(...)).run(RunSetup(...)) -> RunResult`;
`executor.metrics.summarize(result)` turns a result into the numbers of SPEC §9.
See docs/ocl.md.
"""
