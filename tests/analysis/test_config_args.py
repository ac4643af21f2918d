"""Flags generated from config dataclasses: names, defaults, help, parsed values, overrides, errors."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from analysis.cli import HelpFormatter, OneLineParser
from analysis.config_args import add_config_arguments, config_values, given_flags
from planner.config_field import config_field, field_specs
from planner.errors import FerretError


def _names() -> list[str]:
    return ["alpha", "beta"]


@dataclasses.dataclass(frozen=True)
class Example:
    count: int = config_field(1, help="how many", unit="int", ge=1)
    scale: float = config_field(0.5, help="a factor", unit="float", ge=0, lt=1)
    size: int = config_field(1024, help="a size", unit="bytes", gt=0, flag="size-limit")
    wait_s: float = config_field(0.0, help="a wait", unit="seconds", ge=0, flag="wait")
    decay: float = config_field(1.0, help="a decay", unit="rate")
    link_Bps: float = config_field(math.inf, help="a link", unit="bandwidth", gt=0, default_text="free")
    kind: str = config_field("alpha", help="one of {names}", names=_names)
    mode: str = config_field("a", help="a mode", choices=("a", "b"))
    source: Path | None = config_field(None, help="a file", unit="path")
    betas: tuple[float, float] = config_field((0.9, 0.99), help="two rates", unit="pair", ge=0, lt=1)
    fast: bool = config_field(False, help="go fast", unit="flag")
    options: dict = config_field(default_factory=dict, help="free options", unit="key-value")
    files: tuple = config_field((), help="more files", unit="path", repeat=True, flag="file")
    gain: float = config_field(0.2, help="a gain", unit="float", setting_of="tuning")
    rounds: int = config_field(3, help="rounds", unit="int", ge=0, setting_of="tuning")
    internal: int = config_field(7, help="set elsewhere", via="--count")
    plain: int = 4  # no spec: no flag


def parser(override: bool = False) -> OneLineParser:
    p = OneLineParser(prog="ferret test", formatter_class=HelpFormatter)
    add_config_arguments(p, Example, title="example", override=override)
    return p


def test_every_unit_parses_to_the_fields_type():
    args = parser().parse_args(
        ["--count", "3", "--scale", "0.25", "--size-limit", "2KiB", "--wait", "2ms", "--decay", "2/ms",
         "--link-Bps", "1GiB/s", "--kind", "beta", "--mode", "b", "--source", "x.json", "--betas", "0.5,0.75",
         "--fast", "--options", "k=2", "--file", "a", "--file", "b", "--tuning-option", "gain=0.5",
         "--tuning-option", "rounds=0"]
    )  # fmt: skip
    values = config_values(args, Example)
    assert values == {
        "count": 3, "scale": 0.25, "size": 2048, "wait_s": pytest.approx(2e-3), "decay": pytest.approx(2000.0),
        "link_Bps": 2.0**30, "kind": "beta", "mode": "b", "source": Path("x.json"), "betas": (0.5, 0.75),
        "fast": True, "options": {"k": 2}, "files": (Path("a"), Path("b")), "gain": 0.5, "rounds": 0,
    }  # fmt: skip
    assert Example(**values).size == 2048
    assert given_flags(args, Example)[:3] == ["--count", "--scale", "--size-limit"]


def test_plain_defaults_are_the_fields_and_nothing_is_given():
    args = parser().parse_args([])
    values = config_values(args, Example)
    assert Example(**values) == Example()
    assert (args.size_limit, args.wait, args.options, args.file, args.tuning_option) == (1024, 0.0, [], [], [])
    assert given_flags(args, Example) == []
    assert not hasattr(args, "internal") and not hasattr(args, "plain")


def test_override_mode_leaves_absent_flags_out():
    args = parser(override=True).parse_args(["--scale", "0.1", "--tuning-option", "gain=1"])
    assert config_values(args, Example) == {"scale": 0.1, "gain": 1.0}
    assert not hasattr(args, "count") and not hasattr(args, "fast")
    assert given_flags(args, Example, override=True) == ["--scale", "--tuning-option"]
    assert dataclasses.replace(Example(count=5), **config_values(args, Example)).count == 5


def test_help_names_every_flag_with_its_default_and_lazy_names():
    text = " ".join(parser().format_help().split())
    for f, spec in field_specs(Example):
        if spec.via is None and spec.setting_of is None:
            assert f"--{spec.flag_for(f.name)}" in text, f.name
    assert "--tuning-option KEY=VALUE" in text and "gain: a gain (0.2); rounds: rounds (3)" in text
    assert "one of alpha, beta" in text and "{names}" not in text
    assert "how many (default: 1)" in text and "a link (default: free)" in text
    assert "--internal" not in text and "--plain" not in text
    override = " ".join(parser(override=True).format_help().split())
    assert "how many; default 1" in override and "go fast; default off" in override
    assert "a link; default free" in override


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--count", "0"], "argument --count: count must be an integer ≥ 1, got '0'"),
        (["--count", "two"], "argument --count: invalid integer 'two'"),
        (["--scale", "1"], "scale must be in [0, 1), got '1'"),
        (["--scale", "nan"], "invalid number 'nan': must be finite"),
        (["--size-limit", "0B"], "size must be > 0, got '0B'"),
        (["--wait=-1ms"], "wait_s must be ≥ 0, got '-1ms'"),
        (["--wait", "soon"], "invalid time 'soon'"),
        (["--betas", "0.9"], "invalid pair '0.9'"),
        (["--betas", "0.9,1.5"], "betas must be in [0, 1), got '0.9,1.5'"),
        (["--mode", "c"], "invalid choice: 'c'"),
    ],
)
def test_a_bad_value_is_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ferret test: error: ") and message in err, err


def test_zero_is_allowed_where_the_bound_allows_it():
    assert parser().parse_args(["--wait", "0"]).wait == 0.0


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("gian=1", "--tuning-option gian: unknown setting; choose gain, rounds"),
        ("gain=big", "tuning setting gain must be a number, got 'big'"),
        ("rounds=-1", "tuning setting rounds must be an integer ≥ 0, got -1"),
        ("rounds=1.5", "tuning setting rounds must be an integer, got 1.5"),
    ],
)
def test_a_bad_setting_is_a_one_line_user_error(option, message):
    args = parser().parse_args(["--tuning-option", option])
    with pytest.raises(FerretError) as exc:
        config_values(args, Example)
    assert str(exc.value) == message


def test_exclusive_fields_share_one_group_across_classes(capsys):
    @dataclasses.dataclass(frozen=True)
    class A:
        one: int | None = config_field(None, help="one", unit="int", exclusive="size", group="g")

    @dataclasses.dataclass(frozen=True)
    class B:
        two: int = config_field(2, help="two", unit="int", exclusive="size", group="g")

    p = OneLineParser(prog="ferret test")
    add_config_arguments(p, A)
    add_config_arguments(p, B)
    assert [g.title for g in p._action_groups].count("g") == 1
    with pytest.raises(SystemExit):
        p.parse_args(["--one", "1", "--two", "3"])
    assert "not allowed with argument" in capsys.readouterr().err
