"""Fit the learning-aware planning score's discounts from a handful of replays, and write them
beside the profile (`<profile>.learning.json`, read by `ferret plan --objective learning`).

    python benchmarks/fit_learning.py [--profile PATH | --roofline titan-xp] [--out DIR]
        [--stream class-incremental] [--seeds 0 1 2] [--jobs 2] [--compensation iter-fisher]

Runs Oracle and, at `td` = the slowest layer's forward and no memory limit, the candidates the
learning objective chooses from: on every Alg. 3 partition, the paper's plan (weight stashing)
and the latest-weights plan. Each replay's online accuracy over Oracle's (same seed) is one
observation; `planner.learning.fit` finds δ (per arrival of delay) and κ (per update of
staleness, per backward-weights kind) so that the score predicts them, and the table shows
measured vs predicted. Model MNISTNet on `digits`, Adam lr 1e-3, vanilla OCL.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

from exp_common import Job, Workload, pipeline, profile_for, run_all

from analysis.compare_table import markdown_table
from planner.learning import BUILTIN, Observation, beside, fit, learning_rate
from planner.learning_search import LearningPlanner
from planner.plan import Plan
from planner.profile import ModelProfile


def candidates(profile: ModelProfile) -> list[Plan]:
    """The learning objective's unconstrained candidates, one stashed (the c^r = 0 plan) and
    one latest-weights plan per partition."""
    td = float(profile.t_fwd.max())
    planner = LearningPlanner(profile, td, model=BUILTIN)  # only its candidates, not their scores
    plans = [c.plan for c in planner.candidates(None)]
    return [p for p in plans if any(w.latest for w in p.workers) or not any(w.recompute for w in p.workers)]


def label(plan: Plan) -> str:
    kind = "latest" if any(w.latest for w in plan.workers) else "stashed"
    return f"P={plan.num_stages} {list(plan.partition)} N={plan.num_workers} {kind}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, default=None, help="a profile JSON (default: the roofline one)")
    parser.add_argument("--roofline", default="titan-xp", help="device of the roofline profile when no --profile")
    parser.add_argument("--out", type=Path, default=Path("out/fit-learning"), help="where the profile copy goes")
    parser.add_argument("--stream", default="class-incremental")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--compensation", default="iter-fisher")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    workload = Workload(f"digits-{args.stream}", "digits", args.stream)
    if args.profile is None:
        profile_path = profile_for(workload, args.out)
    else:
        profile_path = args.out / args.profile.name
        if profile_path.resolve() != args.profile.resolve():
            shutil.copyfile(args.profile, profile_path)
        batch = args.profile.with_name(f"{args.profile.stem}-b16.json")
        if batch.exists():
            shutil.copyfile(batch, args.out / batch.name)
    profile = ModelProfile.load(profile_path)
    plans = candidates(profile)
    jobs = [Job("oracle", workload, s, profile_path, "oracle", tags={"plan": -1}) for s in args.seeds]
    for k, plan in enumerate(plans):
        path = args.out / f"candidate-{k}.json"
        plan.save(path)
        for seed in args.seeds:
            extra = pipeline(path, args.compensation)
            jobs.append(Job(label(plan), workload, seed, profile_path, "pipeline", pipeline=extra, tags={"plan": k}))
    started = time.perf_counter()
    results = run_all(jobs, args.jobs)
    oracle = {r["seed"]: r["online_accuracy"] for r in results if r["plan"] == -1}
    observations = [
        Observation(plans[r["plan"]], r["online_accuracy"] / oracle[r["seed"]]) for r in results if r["plan"] >= 0
    ]
    where = f"{profile.model}, {profile.device} ({profile.source}), {args.stream} digits, {args.compensation}"
    model = fit(profile, observations, fitted_on=where)
    model.save(beside(profile_path))
    rows = []
    for k, plan in enumerate(plans):
        mine = [o.accuracy_ratio for o in observations if o.plan is plan]
        online = [r["online_accuracy"] for r in results if r["plan"] == k]
        stale = [r["mean_staleness"] for r in results if r["plan"] == k]
        predicted = learning_rate(profile, plan, model) * plan.arrival_interval_s
        rows.append(
            (
                label(plan),
                f"{statistics.fmean(online):.2f}",
                f"{statistics.fmean(stale):.2f}",
                f"{statistics.fmean(mine):.3f}",
                f"{predicted:.3f}",
            )
        )
    print(
        f"Oracle {statistics.fmean(oracle.values()):.2f} % online; {len(jobs)} runs, "
        f"{time.perf_counter() - started:.0f} s wall\n"
    )
    print(markdown_table(("plan", "online acc %", "mean staleness", "acc / Oracle", "predicted"), rows))
    print(
        f"\nδ = {model.delay_per_arrival:.4g} per arrival, κ = {model.staleness} per update, "
        f"rms error {model.details['rms_error']:.3f} → {beside(profile_path)}"
    )


if __name__ == "__main__":
    main()
