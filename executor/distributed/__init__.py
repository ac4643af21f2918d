"""The distributed executor: a plan run for real, in wall-clock time, one process per device.

Pieces (each its own module): `context` (who this rank is, from torchrun's environment; the
process group), `launch` (torch's elastic agent starting the ranks of a one-machine run),
`wire` (a message: fixed header, then tensors), `transport` (one ordered channel per pair of
ranks, threads on the wire, one inbox), `clock` (every rank's offset to rank 0's clock),
`faults` (a dead peer or an error → one line, a non-zero exit, never a hang).
See docs/distributed.md.
"""
