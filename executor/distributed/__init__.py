"""The distributed executor: a plan run for real, in wall-clock time, one process per device.

Each module has one job: `context` (who this rank is, from torchrun's environment; the process
group), `launch` (torch's elastic agent starts the ranks of a one-machine run), `wire` and
`transport` (messages on ordered per-pair channels), `protocol` (what ranks say), `clock` (one
clock), `faults` (a dead peer or an error → one line, a non-zero exit, never a hang),
`placement` (stage owners, supported algorithms), `host` (a rank's stages and the data passing
through them), `ready` and `source` (the twin's dispatch and admission policy on a rank),
`realtime` and `lockstep` (the drivers), `checkpoint`, `streams`, `trace`, `report` and
`merge` (rank 0's result), `rank` (one rank's run), `mode` (`--mode distributed`), `options`.
See docs/distributed.md.
"""
