"""One registry type for every name → factory family (strategies, arrivals, models, data sets, …).

A `Registry[T]` is a read-only `Mapping[str, T]` filled by `add` or the `register` decorator:

* a name (or alias) registered twice raises `RuntimeError` — a bug, found at import time;
* an unknown name raises `UnknownNameError`, a `ValidationError` with one line
  "unknown <kind> 'foo'; choose one of a, b, c" that the CLI prints as it is;
* aliases resolve to their entry but are not listed: iteration, `names()` and the error list
  the canonical names in registration order.

`UnknownNameError` is also a `KeyError`, so `name in registry` and `registry.get(name)` keep
their `dict` meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from planner.errors import ValidationError

T = TypeVar("T")

# The unknown-name line; a family may reword it (keeping `name` and `choices`) or extend it.
UNKNOWN = "unknown {kind} {name!r}; choose one of {choices}"


class UnknownNameError(ValidationError, KeyError):
    """A name no entry of the registry has; its message is one complete line."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Mapping[str, T], Generic[T]):
    """Entries of one family by name, with aliases; see the module docstring."""

    def __init__(self, kind: str, entries: Mapping[str, T] | None = None, message: str = UNKNOWN) -> None:
        """`kind` names the family in errors ("model"); `entries` are registered in order;
        `message` formats the unknown-name line from `kind`, `name` and `choices`."""
        self.kind = kind
        self.message = message
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        for name, entry in (entries or {}).items():
            self.add(name, entry)

    def add(self, name: str, entry: T, *aliases: str) -> T:
        """Register `entry` under `name` and `aliases`; return it (so `add` can be a decorator body)."""
        for key in (name, *aliases):
            if key in self._entries or key in self._aliases:
                raise RuntimeError(f"{self.kind} {key!r} registered twice")
        self._entries[name] = entry
        self._aliases.update(dict.fromkeys(aliases, name))
        return entry

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        """Decorator form of `add`: `@MODELS.register("mlp")`."""
        return lambda entry: self.add(name, entry, *aliases)

    def canonical(self, name: str) -> str:
        """The registered name `name` stands for (itself or the name it is an alias of)."""
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        choices = ", ".join(self._entries)
        raise UnknownNameError(self.message.format(kind=self.kind, name=name, choices=choices))

    def names(self) -> tuple[str, ...]:
        """Canonical names in registration order (aliases left out)."""
        return tuple(self._entries)

    def __getitem__(self, name: str) -> T:
        return self._entries[self.canonical(name)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
