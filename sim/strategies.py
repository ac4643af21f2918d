"""How each pipeline strategy behaves at run time: a registry of scheduling policies keyed by name.

The plan says *what* runs (partition, workers, techniques, placement, mini-batch); the policy
says *how* data enter and flow:

- **async** (Ferret, PipeDream, PipeDream-2BW): every datum enters its worker on its own
  (SPEC §3.1 interleaving); a worker holds at most `P` data, stage `j` at most `P-j` (1F1B);
  a stage steps its optimizer after `c^a` backwards. A worker absorbs what it can: a datum that
  finds it full waits in a bounded buffer (default 1 slot), and a fresher arrival replaces the
  oldest waiting datum (which is dropped), so what the worker takes next is never stale.
- **batched** (GPipe, 1F1B-flush, and the sequential learners of the 1-Skip / B-Skip
  baselines): data wait for a mini-batch of `plan.minibatch`; the batch runs — GPipe: every
  forward, then every backward (`barrier`); 1F1B-flush: 1F1B inside the batch — each stage
  steps once after its last backward of the batch, and the next batch starts after the flush.
  Sequential learners run the whole model as one stage on one device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from planner.closed_form import ceil_ratio
from planner.errors import FerretError
from planner.plan import Plan, WorkerConfig
from planner.profile import ModelProfile
from planner.registry import Registry

SELECTIONS = ("oldest", "newest", "random")
DROPS = ("arriving", "oldest")


@dataclass(frozen=True)
class SimStrategy:
    name: str
    description: str
    batched: bool  # False: per-datum async workers; True: mini-batches with a flush
    barrier: bool = False  # backward starts only once the whole batch has gone forward (GPipe)
    batch_window: bool = False  # a stage may hold the whole batch (GPipe) instead of P-j data (1F1B)
    full_batch: bool = True  # wait for a full mini-batch; False: take what is waiting (B-Skip)
    select: str = "oldest"  # which waiting data form the batch
    drop: str = "arriving"  # when the buffer is full: drop the arriving datum or the oldest waiting
    single_device: bool = False  # whole model as one stage on device 0 (sequential learners)
    default_buffer: Callable[[Plan], int] = lambda plan: 1

    def buffer_bound(self, plan: Plan, configured: int | None) -> int:
        bound = self.default_buffer(plan) if configured is None else configured
        if self.batched and self.full_batch and bound < plan.minibatch - 1:
            raise FerretError(
                f"strategy {self.name}: input_buffer {bound} cannot hold a mini-batch of {plan.minibatch} "
                f"(needs ≥ {plan.minibatch - 1} waiting slots)"
            )
        return bound


SIM_STRATEGIES: Registry[SimStrategy] = Registry(
    "strategy", message="the simulator does not know {kind} {name!r}; known: {choices}"
)


def register_strategy(strategy: SimStrategy, *aliases: str) -> SimStrategy:
    return SIM_STRATEGIES.add(strategy.name, strategy, *aliases)


for _name in ("ferret", "pipedream", "pipedream-2bw"):
    register_strategy(
        SimStrategy(_name, "asynchronous 1F1B workers with weight stashing", batched=False, drop="oldest")
    )

register_strategy(
    SimStrategy(
        "gpipe",
        "synchronous: all forwards, then all backwards, per mini-batch; flush",
        batched=True,
        barrier=True,
        batch_window=True,
        default_buffer=lambda plan: plan.minibatch,
    )
)
register_strategy(
    SimStrategy(
        "1f1b",
        "synchronous 1F1B with a flush per mini-batch (DAPPLE)",
        batched=True,
        default_buffer=lambda plan: plan.minibatch,
    ),
    "1f1b-flush",
    "dapple",
)
register_strategy(
    SimStrategy(
        "1-skip",
        "sequential learner; trains on the next datum when free, skips the rest",
        batched=True,
        barrier=True,
        batch_window=True,
        full_batch=False,
        select="newest",
        single_device=True,
        default_buffer=lambda plan: 0,
    ),
    "sequential",
)
for _name, _select in (("last-n", "newest"), ("random-n", "random")):
    register_strategy(
        SimStrategy(
            _name,
            f"sequential learner keeping the latest B data, training on a mini-batch of the {_select} N",
            batched=True,
            barrier=True,
            batch_window=True,
            full_batch=False,
            select=_select,
            drop="oldest",
            single_device=True,
            default_buffer=lambda plan: 2 * plan.minibatch,
        )
    )

SEQUENTIAL_STRATEGIES = ("1-skip", "last-n", "random-n")


def get_strategy(name: str) -> SimStrategy:
    return SIM_STRATEGIES[name]


def sequential_plan(
    num_layers: int,
    arrival_interval_s: float,
    strategy: str = "1-skip",
    minibatch: int = 1,
    decay_per_s: float = 1.0,
    value_per_datum: float = 1.0,
    budget_bytes: int | None = None,
) -> Plan:
    """The plan of a sequential single-device learner: the whole model as one stage on device 0."""
    if get_strategy(strategy).name not in SEQUENTIAL_STRATEGIES:
        raise FerretError(f"{strategy!r} is not a sequential learner; choose one of {', '.join(SEQUENTIAL_STRATEGIES)}")
    return Plan(
        strategy=strategy,
        partition=(0, num_layers),
        workers=(WorkerConfig.default(0, 1),),
        placement=((0,),),
        arrival_interval_s=arrival_interval_s,
        decay_per_s=decay_per_s,
        budget_bytes=budget_bytes,
        value_per_datum=value_per_datum,
        minibatch=minibatch,
    ).validate(num_layers)


def sequential_prediction(profile: ModelProfile, plan: Plan) -> tuple[float | None, int]:
    """Closed-form `(R, memory)` of a sequential learner under periodic arrivals.

    Memory: the model plus one mini-batch's activations. R (1-Skip only): the learner takes
    a datum, trains for `C = Σ tf + Σ tb`, then takes the next one to arrive, so it trains
    every `⌈C/td⌉`-th datum, each `C` after its arrival: `R = V·exp(-c·C) / (⌈C/td⌉·td)`.
    B-Skip's delays depend on the buffer's history and have no closed form here (`None`).
    """
    memory = int(profile.param_bytes.sum()) + plan.minibatch * int(profile.act_bytes.sum())
    if get_strategy(plan.strategy).name != "1-skip":
        return None, memory
    cycle = float(profile.t_fwd.sum() + profile.t_bwd.sum())
    period = ceil_ratio(cycle, plan.arrival_interval_s) * plan.arrival_interval_s
    return plan.value_per_datum * math.exp(-plan.decay_per_s * cycle) / period, memory
