"""`ferret profile`: a per-layer cost profile of a model, measured or estimated by roofline."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from analysis.config_args import unit_type
from analysis.output import write_siblings
from analysis.units import cli_type, format_bytes, format_seconds
from planner.fileio import atomic_files
from planner.profile import ModelProfile
from planner.quantities import MAX_COUNT

NAME = "profile"
OUTPUT = "file"
HELP = "profile a model per layer: measured on cpu/cuda, or a roofline estimate for a named device"
DESCRIPTION = (
    "Build MODEL for an input shape and class count, then write its per-layer profile (forward and "
    "backward time, parameter and activation bytes, forward FLOPs) as JSON the planner reads. "
    "--device cpu|cuda[:N] times every layer (warm-up, then the median of --repeats); "
    "--device roofline:NAME estimates the times on a device you do not have (h100, a100, titan-xp, "
    "cpu, or roofline:peak=19.5T,bw=2T,launch=5us for a custom one). Beside --out p.json it writes "
    "p.config.json (the resolved arguments) and p.summary.json (totals); all three together or none."
)


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"invalid input shape {text!r} (expected C,H,W or a feature count, e.g. 3,32,32)") from None
    if not dims or min(dims) < 1 or len(dims) > 3:
        raise ValueError(f"invalid input shape {text!r}: 1 to 3 positive sizes (C,H,W or a feature count)")
    if math.prod(dims) > MAX_COUNT:
        raise ValueError(f"invalid input shape {text!r}: more than {MAX_COUNT:.3g} values per datum")
    return dims


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="model name: mlp, mnistnet, convnet, resnet32, resnet18, mobilenetv2"
    )
    parser.add_argument(
        "--input-shape",
        type=cli_type(parse_shape),
        default=None,
        help="input shape C,H,W (or a feature count); default: the model's usual input",
    )
    parser.add_argument("--classes", type=unit_type("int", "classes", ge=2), default=10, help="number of classes")
    parser.add_argument(
        "--batch", type=unit_type("int", "batch", ge=1, le=2**20), default=1, help="micro-batch size profiled"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or roofline:NAME")
    parser.add_argument(
        "--repeats", type=unit_type("int", "repeats", ge=1, le=10**6), default=10, help="timed rounds (median kept)"
    )
    parser.add_argument(
        "--warmup", type=unit_type("int", "warmup", ge=0, le=10**6), default=3, help="untimed rounds before timing"
    )
    parser.add_argument(
        "--threads",
        type=unit_type("int", "threads", ge=1, le=4096),
        default=1,
        help="CPU threads while timing; 1 (as `ferret run` uses) because batch-1 layers are too small for "
        "intra-op threads to help, and on a busy machine spinning threads inflate times by orders of magnitude",
    )
    parser.add_argument("--seed", type=unit_type("seed", "seed"), default=0, help="seed of the weights and the input")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="profile JSON to write (siblings: <stem>.config.json, <stem>.summary.json)",
    )


def run(args: argparse.Namespace) -> int:
    from executor.models import build_model
    from executor.models.registry import DEFAULT_INPUT_SHAPES, _load_builtin_models
    from executor.profiler import profile_model, roofline_profile

    _load_builtin_models()
    shape = args.input_shape or DEFAULT_INPUT_SHAPES.get(args.model)
    if shape is None:
        shape = (1, 28, 28)  # an unknown model fails in build_model with the list of names
    model = build_model(args.model, shape, args.classes, seed=args.seed)
    if args.device.startswith("roofline:"):
        profile = roofline_profile(model, args.device.removeprefix("roofline:"), batch_size=args.batch)
    else:
        profile = profile_model(
            model,
            batch_size=args.batch,
            device=args.device,
            warmup=args.warmup,
            repeats=args.repeats,
            seed=args.seed,
            threads=args.threads,
        )
    summary = {
        "profile": str(args.out),
        "model": profile.model,
        "device": profile.device,
        "source": profile.source,
        "batch_size": profile.batch_size,
        "input_shape": list(shape),
        "num_classes": args.classes,
        "num_layers": profile.num_layers,
        "t_fwd_s": float(profile.t_fwd.sum()),
        "t_bwd_s": float(profile.t_bwd.sum()),
        "param_bytes": int(profile.param_bytes.sum()),
        "act_bytes": int(profile.act_bytes.sum()),
        "fwd_flops": int(profile.fwd_flops.sum()),
    }
    with atomic_files(args.out) as stage:
        profile.save(stage / args.out.name)
        write_siblings(stage, args.out, args, summary, input_shape=list(shape))
    print(format_table(profile))
    print(f"wrote {args.out} ({profile.source} on {profile.device}, batch {profile.batch_size})")
    return 0


def format_table(profile: ModelProfile) -> str:
    header = f"{'layer':<14}{'fwd':>11}{'bwd':>11}{'params':>12}{'activation':>12}{'MFLOPs':>10}"
    rows = [header, "-" * len(header)]
    for layer in profile.layers:
        rows.append(
            f"{layer.name:<14}{format_seconds(layer.t_fwd_s):>11}{format_seconds(layer.t_bwd_s):>11}"
            f"{format_bytes(layer.param_bytes):>12}{format_bytes(layer.act_bytes):>12}{layer.fwd_flops / 1e6:>10.2f}"
        )
    rows.append("-" * len(header))
    rows.append(
        f"{'total':<14}{format_seconds(float(profile.t_fwd.sum())):>11}{format_seconds(float(profile.t_bwd.sum())):>11}"
        f"{format_bytes(int(profile.param_bytes.sum())):>12}{format_bytes(int(profile.act_bytes.sum())):>12}"
        f"{int(profile.fwd_flops.sum()) / 1e6:>10.2f}"
    )
    return "\n".join(rows)
