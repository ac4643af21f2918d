"""argparse flags made from config dataclasses, and values read back from them.

A field declared with `planner.config_field.config_field` becomes one flag: its name, help,
default, unit parser (analysis/units.py) and bounds come from the declaration, so a command
never retypes them. Two modes:

- plain: the flag's default is the field's, so every field is in the parsed namespace (and in
  `config.json`); `config_values` returns them all.
- override (`override=True`): an absent flag is absent from the namespace (default SUPPRESS) and
  overrides nothing, so a config loaded from a file keeps its value; help states the field's
  own default.

Fields with `setting_of="X"` become KEYs of one repeatable `--X-option KEY=VALUE` flag; their
values are parsed and bounded when read back (`config_values`), with one-line `FerretError`s.
A bad value is one line too: argparse reports a unit or bound error as a usage error (exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from analysis.units import UNIT_NOUNS, UNIT_PARSERS, cli_type, parse_key_value
from planner.config_field import FieldSpec, Unit, field_default, field_specs
from planner.errors import FerretError

Container = argparse.ArgumentParser | argparse._ArgumentGroup


def add_config_arguments(
    parser: argparse.ArgumentParser, cls: Any, *, title: str | None = None, override: bool = False
) -> None:
    """A flag per field of `cls` with a spec (not `via`), in the section its `group` names (else
    `title`, else the parser's own); sections and exclusive groups with the same name are shared."""
    settings: dict[str, list[tuple[str, FieldSpec]]] = {}
    for f, spec in field_specs(cls):
        if spec.via is not None:
            continue
        if spec.setting_of is not None:
            settings.setdefault(spec.setting_of, []).append((f.name, spec))
            continue
        container = section(parser, spec.group or title, spec.exclusive)
        flag = spec.flag_for(f.name)
        action = container.add_argument(f"--{flag}", **_argument(f.name, spec, field_default(f), override))
        action.ferret_names = spec.names  # type: ignore[attr-defined]  # listed by help_text
    for owner, members in settings.items():
        container = section(parser, members[0][1].group or title, None)
        container.add_argument(
            f"--{owner}-option",
            type=cli_type(parse_key_value),
            action="append",
            default=argparse.SUPPRESS if override else [],
            metavar="KEY=VALUE",
            help=f"{owner} setting, repeatable: " + "; ".join(_setting_help(cls, n, s) for n, s in members),
        )


def config_dests(cls: Any) -> list[str]:
    """The argparse destinations of `cls`'s own flags (not its KEY=VALUE settings)."""
    return [_dest(f.name, spec) for f, spec in field_specs(cls) if spec.via is None and spec.setting_of is None]


def _dest(name: str, spec: FieldSpec) -> str:
    return spec.flag_for(name).replace("-", "_")


def config_values(args: argparse.Namespace, cls: Any) -> dict[str, Any]:
    """`{field: value}` for each of `cls`'s flags present in `args` (every flag in plain mode),
    KEY=VALUE settings parsed and bounded; ready for `cls(**...)` or `dataclasses.replace`."""
    values: dict[str, Any] = {}
    settings: dict[str, dict[str, FieldSpec]] = {}
    for f, spec in field_specs(cls):
        if spec.via is not None:
            continue
        if spec.setting_of is not None:
            settings.setdefault(spec.setting_of, {})[f.name] = spec
            continue
        dest = _dest(f.name, spec)
        if hasattr(args, dest):
            value = getattr(args, dest)
            values[f.name] = dict(value) if spec.unit == "key-value" else tuple(value) if spec.repeat else value
    for owner, members in settings.items():
        for key, raw in getattr(args, f"{owner}_option", []):
            values[key] = _setting(owner, members, key, raw)
    return values


def given_flags(args: argparse.Namespace, cls: Any, *, override: bool = False) -> list[str]:
    """The flags of `cls` given on the command line: present (override mode), or with a value
    other than the field's default (plain mode)."""
    given = []
    for f, spec in field_specs(cls):
        if spec.via is not None:
            continue
        flag = f"{spec.setting_of}-option" if spec.setting_of is not None else spec.flag_for(f.name)
        dest = flag.replace("-", "_")
        value = getattr(args, dest, None)
        present = hasattr(args, dest) if override else value not in (None, [], field_default(f))
        if present and f"--{flag}" not in given:
            given.append(f"--{flag}")
    return given


def help_text(action: argparse.Action) -> str:
    """An action's help with `{names}` filled in from its field's `names` (e.g. a registry's
    keys), computed only now, when help is shown: the registry may import heavy modules."""
    text = action.help or ""
    names: Callable[[], Iterable[str]] | None = getattr(action, "ferret_names", None)
    return text.replace("{names}", ", ".join(names())) if names is not None else text


def unit_type(
    unit: Unit,
    name: str,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> Callable[[str], Any]:
    """An argparse type for a flag that is not a config field: the unit's parser and physical
    range, then the bounds, exactly as a config field's flag checks them."""
    return cli_type(_bounded_parser(name, FieldSpec(help="", unit=unit, gt=gt, ge=ge, lt=lt, le=le)))


def _bounded_parser(name: str, spec: FieldSpec) -> Callable[[str], Any]:
    """The field's unit parser followed by its bounds; a `ValueError` says which and why."""
    parse = UNIT_PARSERS[spec.unit]

    def parse_bounded(text: str) -> Any:
        value = parse(text)
        if (problem := spec.problem(value)) is not None:
            raise ValueError(f"{name} {problem}, got {text!r}")
        return value

    parse_bounded.__name__ = spec.unit
    return parse_bounded


def _argument(name: str, spec: FieldSpec, default: Any, override: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"help": spec.help}
    if spec.unit == "flag":
        kwargs["action"] = "store_true"
    elif spec.unit == "key-value":
        kwargs.update(type=cli_type(parse_key_value), action="append", metavar="KEY=VALUE")
    else:
        kwargs["type"] = cli_type(_bounded_parser(name, spec))
        if spec.repeat:
            kwargs["action"] = "append"
    if spec.choices is not None:
        kwargs["choices"] = spec.choices
    if spec.metavar is not None:
        kwargs["metavar"] = spec.metavar
    if override:
        kwargs["default"] = argparse.SUPPRESS
        kwargs["help"] += f"; default {_default_text(spec, default)}"
    else:
        kwargs["default"] = [] if spec.repeat or spec.unit == "key-value" else default
        if spec.default_text is not None:
            kwargs["help"] += f" (default: {spec.default_text})"
    return kwargs


def _default_text(spec: FieldSpec, default: Any) -> str:
    if spec.default_text is not None:
        return spec.default_text
    if isinstance(default, bool):
        return "on" if default else "off"
    return f"{default:g}" if isinstance(default, int | float) else str(default)


def _setting_help(cls: Any, name: str, spec: FieldSpec) -> str:
    default = next(field_default(f) for f in dataclasses.fields(cls) if f.name == name)
    return f"{name}: {spec.help} ({_default_text(spec, default)})"


def _setting(owner: str, members: dict[str, FieldSpec], key: str, raw: Any) -> Any:
    spec = members.get(key)
    if spec is None:
        raise FerretError(f"--{owner}-option {key}: unknown setting; choose {', '.join(members)}")
    try:
        value = UNIT_PARSERS[spec.unit](str(raw))
    except ValueError:
        raise FerretError(f"{owner} setting {key} must be {UNIT_NOUNS[spec.unit]}, got {raw!r}") from None
    if (problem := spec.problem(value)) is not None:
        raise FerretError(f"{owner} setting {key} {problem}, got {raw!r}")
    return value


def section(parser: argparse.ArgumentParser, title: str | None, exclusive: str | None = None) -> Container:
    """The argument group titled `title` (made on first use), or within it the mutually
    exclusive group keyed `exclusive` (made on first use)."""
    group: Container = parser
    if title is not None:
        found = [g for g in parser._action_groups if g.title == title]
        group = found[0] if found else parser.add_argument_group(title)
    if exclusive is None:
        return group
    for mutex in parser._mutually_exclusive_groups:
        if getattr(mutex, "ferret_key", None) == exclusive:
            return mutex
    mutex = group.add_mutually_exclusive_group()
    mutex.ferret_key = exclusive  # type: ignore[attr-defined]
    return mutex
