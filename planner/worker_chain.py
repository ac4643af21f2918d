"""One worker's greedy trajectory under Alg. 2 (SPEC §4.1), built once per (partition, c^r).

Why a single worker is enough: (F3) and (F4) are sums of per-worker terms, so the gain and
cost of a step on worker `n` depend on worker `n`'s configuration alone. All workers start in
the same configuration, so each one, whenever the global greedy picks it, takes the same best
step from the same state: every worker walks the *same* chain of states s_0 → s_1 → … → s_K
(s_K = removed by S4). The global greedy only decides how the N walkers interleave, which
`planner.walk` derives in closed form from the chain's ratios. The chain depends on neither
`td`, `N` nor the budget, so a budget sweep reuses it.

Candidate steps are evaluated as exact differences of the worker's (F3)/(F4) terms (the
recomputed difference of SPEC §3.3, not the printed deltas); `planner.chain_state` holds them.

**Runs of S2 steps at once.** Between two S3 steps no LCM changes, so each stage's S2 steps
have fixed ratios, taken in ladder order. Taking the best head of such sequences, ties to the
lowest stage, visits the steps in the order of (running minimum of the stage's ratios so
far, descending; stage; rung): a step waits exactly until every step with a larger running
minimum has gone. `ChainBuilder` orders all S2 steps left that way and takes them up to the
first point where an S3 step is the greedy's choice: a whole stretch at once when no S3 step
can come within it (S3 ratios only rise along a run, so the end of the stretch decides), else
step by step in short windows. A chain thus costs a few numpy calls per S3 step instead of a
Python step per S2 step — most chains are one long S2 run, then their S3 steps.

`ChainBuilder` builds a chain one S3 step at a time, so that the search can stop as soon as
the part built shows the chain cannot win (`later_bound`) and resume it for another budget.
Once no S2 step is left, the rest — the chain's *tail*, S3 steps only — is built by
`build_tails`, for many chains at once (`planner.s3_batch`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from planner import s3_batch
from planner.chain_state import ChainState, ratios
from planner.plan import REMOVED, WorkerConfig
from planner.s3_batch import S3Batch, Tail, ratio
from planner.stage_model import StageModel, stage_model, stage_models

__all__ = ["S2", "S3", "S4", "StageModel", "WorkerChain", "build_chain", "stage_model", "stage_models"]

S2, S3, S4 = 2, 3, 4
STEP_NAMES = {S2: "S2", S3: "S3", S4: "S4"}
_WINDOW = 16  # S2 steps examined one by one at a time, when an S3 step may come among them


@dataclass(frozen=True)
class WorkerChain:
    """States s_0..s_K of one worker; step k leads from s_k to s_{k+1} with ratio `ratios[k]`."""

    model: StageModel
    rates: np.ndarray  # (K+1,) the worker's (F3) term in each state
    memory: np.ndarray  # (K+1,) int64, its (F4) term
    ratios: np.ndarray  # (K,) memory saved per rate lost (+inf: saved at no loss)
    kinds: np.ndarray  # (K,) S2, S3 or S4
    stages: np.ndarray  # (K,) stage of the step (-1 for S4)
    accumulations: np.ndarray  # (K,) c^a of the stage after the step

    @property
    def length(self) -> int:
        return len(self.ratios)

    def config(self, state: int, offset: int) -> WorkerConfig:
        """The worker configuration of state `state` (replaying the first `state` steps)."""
        P = self.model.num_stages
        if state >= self.length:
            return WorkerConfig(REMOVED, self.model.recompute, (1,) * P, tuple(P - 1 - j for j in range(P)))
        acc = [1] * P
        omit = [0] * P
        for k in range(state):
            j = int(self.stages[k])
            if self.kinds[k] == S2:
                acc[j] = int(self.accumulations[k])
            else:
                acc[j], omit[j] = 1, P - 1 - j
        return WorkerConfig(offset, self.model.recompute, tuple(acc), tuple(omit))

    def step_counts(self, state: int) -> dict[str, int]:
        kinds = self.kinds[:state]
        return {name: int(np.count_nonzero(kinds == kind)) for kind, name in STEP_NAMES.items()}


def _greedy_order(state: ChainState) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every S2 step left, in the order the greedy takes them while no S3 intervenes:
    `(stage, ratio, key, rung reached)` per step, `key` being the running minimum that orders
    them (non-increasing along the order, at most each step's ratio)."""
    stage, t, ratio = state.s2_moves()
    if not len(stage):
        return stage, ratio, ratio, t
    # Running minimum of each stage's ratios, via one padded (stage × rung) table.
    pos = t - state.rung[stage]
    table = np.full((state.P, int(pos.max()) + 1), math.inf)
    table[stage, pos] = ratio
    key = np.minimum.accumulate(table, axis=1)[stage, pos]
    # By key, descending, then stage and rung: the moves come in (stage, rung) order, so a
    # stable sort by key alone gives that order (about 3× faster than a three-key lexsort).
    order = np.argsort(-key, kind="stable")
    return stage[order], ratio[order], key[order], t[order] + 1


def _first_s3(
    state: ChainState,
    stage: np.ndarray,
    ratio: np.ndarray,
    reached: np.ndarray,
    terms: np.ndarray,
    following: tuple[float, int],
) -> tuple[int, int, float]:
    """The first prefix length q of a run of S2 steps after which the greedy takes an S3 step,
    with that step's stage and ratio; `(len(stage), -1, -inf)` when it does not within the run.

    `following` is the ratio and stage of the S2 step after the run (`(-inf, P)`: none).
    """
    Q = len(stage)
    ready_at = np.where(state.ready(), 0, Q + 1)  # how many steps of the run make a stage ready
    done = np.flatnonzero(reached == state.rungs[stage] - 1)  # steps that finish a ladder
    ready_at[stage[done]] = done + 1
    candidate = np.arange(Q + 1)[:, None] >= ready_at[None, :]
    if not candidate.any():
        return Q, -1, -math.inf
    r3 = np.where(candidate, ratios(state.nbytes_float, state.s3_losses(terms)), -math.inf)
    best, at = r3.max(axis=1), r3.argmax(axis=1)
    next_ratio = np.append(ratio, following[0])
    next_stage = np.append(stage, following[1])
    wins = (best > -math.inf) & ((best > next_ratio) | ((best == next_ratio) & (at < next_stage)))
    if not wins.any():
        return Q, -1, -math.inf
    q = int(np.argmax(wins))
    return q, int(at[q]), float(best[q])


class ChainBuilder:
    """A worker chain built one S3 step (with the S2 run before it) at a time, so that a
    search can stop building as soon as `later_bound` shows the chain cannot win."""

    def __init__(self, model: StageModel) -> None:
        self.model = model
        self.state = ChainState(model)
        # No technique yet: stage i keeps P-i versions, the model's own sum (exact integers).
        self.rate, self.mem = self.state.rate(), model.no_technique_bytes
        # The chain so far: arrays per S2 run, and the S3 steps since the last run as scalars.
        self._rates: list[np.ndarray] = []
        self._memory: list[np.ndarray] = []
        self._ratios: list[np.ndarray] = []
        self._kinds: list[np.ndarray] = []
        self._stages: list[np.ndarray] = []
        self._accs: list[np.ndarray] = []
        self._s3_rates, self._s3_memory = [self.rate], [self.mem]  # the state before them, then each
        self._s3_ratios: list[float] = []
        self._s3_stages: list[int] = []
        self.done = False
        self._tail = False  # no S2 step is left: every step from here is S3 (then S4)
        self._last_run = 1 << 30  # S2 steps taken between the last two S3 steps

    @property
    def in_tail(self) -> bool:
        """No S2 step is left: every step from here is S3 (then S4), built by `build_tails`."""
        return self._tail

    def advance(self) -> None:
        """Take the greedy's steps up to and including its next S3 step, or — as the S2 steps
        run out — up to the start of the tail; in the tail, one S3 step; at the end, S4."""
        state = self.state
        if not self._tail:
            if s3_batch.kernel is not None:
                s3_stage, s3_ratio = self._compiled_s2_run(s3_batch.kernel)
            else:
                s3_stage, s3_ratio = self._s2_run(*_greedy_order(state))
            if s3_stage >= 0:
                self.mem -= state.apply_s3(s3_stage)
                self.rate = state.rate()
                self._s3_rates.append(self.rate)
                self._s3_memory.append(self.mem)
                self._s3_ratios.append(s3_ratio)
                self._s3_stages.append(s3_stage)
        else:
            build_tails([self], max_steps=1)

    def tail_steps_left(self) -> int:
        """S3 steps left (stages still open): how long its tail will be."""
        return int(np.count_nonzero(~self.state.closed))

    def take_tail(self, tail: Tail) -> None:
        """Record S3 steps built by a batch (`build_tails`), and S4 once none is left."""
        if len(tail.stages):
            self._flush()
            self._append(tail.rates, tail.memory, tail.ratios, S3, tail.stages)
            self.rate, self.mem = float(tail.rates[-1]), int(tail.memory[-1])
            self._s3_rates, self._s3_memory = [self.rate], [self.mem]
        if tail.finished:  # S4: removal saves everything that is left and loses the whole rate
            ratio4 = ratio(float(self.mem), self.rate)
            self._flush()
            self._append(np.array([0.0]), np.array([0]), np.array([ratio4]), S4, np.array([-1]))
            self.done = True

    def _s2_run(self, stage: np.ndarray, ratio: np.ndarray, key: np.ndarray, reach: np.ndarray) -> tuple[int, float]:
        """Take the S2 steps of the greedy's order up to its next S3 step: `(stage, ratio)` of
        that S3 step, or `(-1, -inf)` when none is left.

        A stretch of the order is taken whole when no S3 step can come within it
        (`ChainState.s3_stays_below`); otherwise it is examined step by step, in short
        windows, so that finding an early S3 step costs little more than the steps before it.
        """
        state = self.state
        # Runs between S3 steps tend to be alike in length (long without decay, short with
        # fast decay): the first stretch tried is twice the last run.
        start, width = 0, max(_WINDOW, min(len(stage), 2 * self._last_run))
        while start < len(stage):
            end = min(start + width, len(stage))
            moved, moved_ratio, reached = stage[start:end], ratio[start:end], reach[start:end]
            if width > _WINDOW:
                if state.s3_stays_below(moved, reached, float(key[end - 1])):
                    self._take_s2(moved, moved_ratio, reached)
                    start = end
                else:
                    width = _WINDOW
                continue
            following = (float(ratio[end]), int(stage[end])) if end < len(stage) else (-math.inf, state.P)
            rows = state.s2_rows(moved, reached)
            q, s3_stage, s3_ratio = _first_s3(state, moved, moved_ratio, reached, rows, following)
            if q:
                self._take_s2(moved[:q], moved_ratio[:q], reached[:q])
            if s3_stage >= 0:
                self._last_run = start + q
                return s3_stage, s3_ratio
            start, width = end, 4 * width
        self._tail = True  # no S2 step is left
        return -1, -math.inf

    def _compiled_s2_run(self, kernel: ModuleType) -> tuple[int, float]:
        """`_s2_run(*_greedy_order(state))` in one call of the compiled kernel, bit for bit."""
        ints = np.empty((3, self.state.moves), dtype=np.int64)  # stage, memory, c^a per S2 step
        floats = np.empty((2, self.state.moves))  # ratio, rate
        steps, s3_stage, s3_ratio, self._last_run = kernel.s2_run(
            self.state, self.state.s3, self.rate, self.mem, self._last_run, ints, floats
        )
        if steps:
            self.rate, self.mem = float(floats[1, steps - 1]), int(ints[1, steps - 1])
            self._flush()
            self._append(floats[1, :steps], ints[1, :steps], floats[0, :steps], S2, ints[0, :steps], ints[2, :steps])
        if s3_stage < 0:
            self._tail = True  # no S2 step is left
        return s3_stage, s3_ratio

    def _take_s2(self, moved: np.ndarray, ratio: np.ndarray, reached: np.ndarray) -> None:
        state = self.state
        change = state.term(moved, reached) - state.term(moved, reached - 1)
        saved = (state.left[moved, reached - 1] - state.left[moved, reached]) * state.nbytes[moved]
        state.apply_s2_run(moved, reached)
        memory = self.mem - np.cumsum(saved)
        self.mem = int(memory[-1])
        rates = self.rate + np.cumsum(change)
        self.rate = rates[-1] = state.rate()  # re-anchored on the exact sum
        self._flush()
        self._append(rates, memory, ratio, S2, moved, state.acc[moved, reached])

    def _flush(self) -> None:
        """Move the S3 steps kept as scalars into the arrays (before an S2 run or S4)."""
        rates, memory = self._s3_rates, self._s3_memory
        if not self._rates:  # the first state, s_0
            self._rates.append(np.array(rates[:1]))
            self._memory.append(np.array(memory[:1]))
        if self._s3_ratios:
            self._append(
                np.array(rates[1:]), np.array(memory[1:]), np.array(self._s3_ratios), S3, np.array(self._s3_stages)
            )
        self._s3_rates, self._s3_memory, self._s3_ratios, self._s3_stages = [self.rate], [self.mem], [], []

    def _append(
        self,
        rates: np.ndarray,
        memory: np.ndarray,
        ratio: np.ndarray,
        kind: int,
        stage: np.ndarray,
        acc: np.ndarray | None = None,  # None: 1 (S3, S4)
    ) -> None:
        self._rates.append(rates)
        self._memory.append(memory)
        self._ratios.append(ratio)
        self._kinds.append(np.full(len(ratio), kind, dtype=np.int8))
        self._stages.append(stage)
        self._accs.append(np.ones(len(ratio), dtype=np.int64) if acc is None else acc)

    def _states(self) -> tuple[np.ndarray, np.ndarray]:
        """`(memory, rates)` of every state built so far."""
        rates, memory = self._s3_rates, self._s3_memory
        return (
            np.concatenate([*self._memory, np.array(memory[1:] if self._rates else memory, dtype=np.int64)]),
            np.concatenate([*self._rates, np.array(rates[1:] if self._rates else rates)]),
        )

    def later_bound(self, budget: int, num_workers: int, enough: float = math.inf) -> tuple[float, float]:
        """An upper bound on the total rate of N workers on this chain within `budget`, and
        the part of it due to the states built so far (which only grows as more are built;
        -inf when not worked out because the bound is above `enough` anyway).

        With j workers active each holds at most `budget - (j-1)·M_min` bytes (every active
        state keeps one version per stage) and so rates at most the best state built so far
        within that, or `U`: no state yet to come rates above `Σ coeff_i/LCM_i`, as `g ≤ 1`
        and LCMs only grow.
        """
        later = float(self.state.coeff @ self.state.inv_lcm)
        m_min = self.model.min_worker_bytes
        kmax = min(num_workers, budget // max(m_min, 1))
        if self.mem > budget or kmax * later > enough:  # no state built so far fits, or no need
            return kmax * later, -math.inf
        memory, rates = self._states()
        best_from = np.maximum.accumulate(rates[::-1])[::-1]  # best rate at or after each state
        room = budget - np.arange(kmax) * m_min
        first = np.searchsorted(-memory, -room, side="left")  # first state within the room
        built = np.where(first < len(rates), best_from[np.minimum(first, len(rates) - 1)], -math.inf)
        workers = np.arange(1, kmax + 1)
        return float((workers * np.maximum(built, later)).max()), float((workers * built).max())

    def chain(self) -> WorkerChain:
        """The whole chain (built to its end)."""
        while not self.done:
            if self._tail:
                build_tails([self])
            else:
                self.advance()
        return WorkerChain(
            model=self.model,
            rates=np.concatenate(self._rates, dtype=np.float64),
            memory=np.concatenate(self._memory, dtype=np.int64),
            ratios=np.concatenate(self._ratios, dtype=np.float64),
            kinds=np.concatenate(self._kinds, dtype=np.int8),
            stages=np.concatenate(self._stages, dtype=np.int64),
            accumulations=np.concatenate(self._accs, dtype=np.int64),
        )


def build_chain(model: StageModel) -> WorkerChain:
    """Walk one worker from no technique to removal, always taking its best-ratio step.

    Ties go to the lowest stage (S2 and S3 never compete at one stage; S4 is only applicable
    once no stage step is left).
    """
    return ChainBuilder(model).chain()


def build_tails(
    builders: Sequence[ChainBuilder],
    max_steps: int | None = None,
    beaten: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
    safe_memory: int | None = None,
) -> list[bool]:
    """Build the tails of chains whose S2 steps are all taken, in lock-step
    (`S3Batch.tails`); return, per builder, whether its chain is done. `beaten(rows,
    memory, upper)` (rows: indices into `builders`) stops rows that cannot win; their state
    is kept so that they resume where they stopped. It is asked only about rows whose
    memory is above `safe_memory`, when given."""
    if not builders:
        return []
    order = sorted(range(len(builders)), key=lambda n: -builders[n].tail_steps_left())
    batch = S3Batch.stack([builders[n].state.s3 for n in order])
    memory = np.array([builders[n].mem for n in order], dtype=np.int64)
    index = np.array(order)

    def rowwise(rows: np.ndarray, mem: np.ndarray, upper: np.ndarray) -> np.ndarray:
        assert beaten is not None
        return beaten(index[rows], mem, upper)

    tails = batch.tails(memory, max_steps, None if beaten is None else rowwise, safe_memory)
    for row, (n, tail) in enumerate(zip(order, tails, strict=True)):
        builder = builders[n]
        if not tail.finished:
            batch.store(row, builder.state.s3)
        builder.take_tail(tail)
    return [b.done for b in builders]
