"""README.md and docs/*.md name only commands, flags, files and code that exist.

The docs tell a reader what to type and where to look; a renamed flag, field or a moved file
would leave them wrong without a sound. Read from the Markdown (tests/docs_reading.py), each
name is held to the code:

- commands: `ferret CMD ... --flag` in a code block or inline code (also `-m analysis CMD` after
  `torchrun`, and a span that opens with `CMD --`): CMD is a sub-command, and each `--flag` up to
  the next command (in `[...]`, `|`-alternatives, `--a/--b` lists; `--prefix-*` a glob) is an
  option of THAT command's parser, built by `analysis.cli`;
- scripts: `[python] [benchmarks/]X.py --flag`: the flag is a string in benchmarks/ or scripts/'
  X.py or in a benchmark module it imports;
- a flag with no command (in code, or in plain prose: `deploy --seed`): some `ferret` command,
  benchmark or script has it, or it is one of the other tools' flags in `FOREIGN_FLAGS`;
- paths, in code, prose and link targets (these from the doc's folder): a path from the
  repository's top (`sim/policy.py`, `executor/distributed/`, `benchmarks/exp_*.py`, `{a,b}`
  alternatives, `MODEL-DEVICE` placeholders in capitals) exists; `file.py:NAME` and
  `package.module.NAME[.member]` name what the module defines; a bare `name.py|md|sh` is a file
  somewhere in the repository or one its code writes (`comparison.md`);
- names: a `snake_case` name in inline code (a config field, a summary.json key, a function) is
  a word of the repository's code, but for `NOT_IN_CODE`; `Class.member` (`SimConfig.loop_s`),
  where Class is one of the packages', names a member of it or of its bases.

What the repository has comes from tests/repo_names.py.

The packages' own text (docstrings, help, error messages, comments) names only flags that exist,
too. It sits at the top of tests/ with test_docstrings.py and test_layering.py: like them it checks
the repository as a whole, not one package.
"""

from __future__ import annotations

import glob
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs_reading import Snippet, links, snippets
from tests.repo_names import (
    FLAG,
    PACKAGES,
    class_members,
    code_words,
    command_flags,
    every_flag,
    file_names,
    module_names,
    script_flags,
    sources,
    top_level,
)

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Other tools' flags that the docs name in passing: torchrun's, pytest's and pip's.
FOREIGN_FLAGS = frozenset(
    {
        "--nnodes",
        "--nproc-per-node",
        "--rdzv-backend",
        "--rdzv-endpoint",
        "--standalone",
        "--hypothesis-profile",
        "--no-build-isolation",
    }
)
# A line that opens with one of these runs another tool: its flags are that tool's.
FOREIGN_TOOLS = ("pip", "pytest", "python -m pytest", "torchrun", "git", "ruff", "mypy")
# Names (and `Class.member`s) in inline code that are rightly in no code of the repository.
NOT_IN_CODE = {
    "bottom_of": "RESULTS.md: a helper the loop no longer has",
    "float_richcompare": "CPython's",
    "device_0": "sim.md: memory_timeline.csv's column per device, written as device_{d}",
}
# Build products (.gitignore): absent from a fresh checkout until scripts/setup.sh builds them.
BUILT = re.compile(r"(\.so|\.pyd|_native\.json)$")

COMMAND = re.compile(r"(?:\bferret|-m analysis)\s+([a-z][a-z-]*)\b")
SCRIPT = re.compile(r"(?:^|\s)((?:benchmarks/|scripts/)?[\w-]+\.py)\b")
TOKEN = re.compile(r"(?<![\w./:-])[\w.*{},/:-]+")
FILE = re.compile(r"[\w-]+\.(py|md|sh)")
MODULE = re.compile(rf"(?:{'|'.join(PACKAGES)})\.\w")
IMPORT = re.compile(r"from ([\w.]+) import ([\w, ]+)")
CLASS_MEMBER = re.compile(r"(?<![\w.])([A-Z]\w*)\.([a-z_]\w*)((?:/[a-z_]\w*)*)")
NAME = re.compile(r"(?<![\w./:-])[a-z][a-z0-9]+(?:_[a-z0-9]+)+(?![\w/-]|\.\w)")


def doc_problems(doc: Path, root: Path = REPO) -> list[str]:
    """`doc:line: why` for every command, flag, path or name in `doc` that does not exist."""
    text = doc.read_text(encoding="utf-8")
    where = doc.relative_to(root)
    found = []
    for snippet in snippets(text):
        problems = [path_problem(token, root) for token in path_tokens(snippet.text, root)]
        problems += flag_problems(snippet, root) if snippet.kind != "prose" else unknown_flags(snippet.text, root)
        if snippet.kind == "inline":
            problems += [member_problem(m[1], n, root) for m in CLASS_MEMBER.finditer(snippet.text) for n in members(m)]
            problems += [f"`{n}`: no code of the repository has this name" for n in unknown_names(snippet.text, root)]
        found += [f"{where}:{snippet.line}: {problem}" for problem in problems if problem]
    for number, target in links(text):
        resolved = (doc.parent / target).resolve()
        if target and "://" not in target and resolved.is_relative_to(root) and not resolved.exists():
            found.append(f"{where}:{number}: link ({target}): no such file or folder")
    return found


def flag_problems(snippet: Snippet, root: Path) -> Iterator[str]:
    text = snippet.text
    commands: list[re.Match[str]] = list(COMMAND.finditer(text))
    opening = re.match(r"([a-z][a-z-]*)(?= --)", text)
    if not commands and snippet.kind == "inline" and opening and opening.group(1) in command_flags():
        commands = [opening]
    for command, following in itertools.zip_longest(commands, commands[1:]):
        name = command.group(1)
        if name not in command_flags():
            yield f"`ferret {name}`: no such command"
            continue
        for flag in FLAG.findall(text, command.end(), following.start() if following else len(text)):
            if not has_flag(flag, command_flags()[name]):
                yield f"`ferret {name} {flag}`: no such option of `ferret {name}`"
    if re.match(r"ferret\s+--", text):
        yield from (f"`ferret {f}`: no such option" for f in FLAG.findall(text) if f not in command_flags()[""])
        return
    if commands or re.match(rf"({'|'.join(FOREIGN_TOOLS)})\b", text):
        return
    script = SCRIPT.search(text)
    if script and FLAG.search(text, script.end()):
        path = benchmark(script.group(1), root)
        if path is None:
            return  # another tool's file and flags (`python setup.py build_ext --inplace`)
        for flag in FLAG.findall(text, script.end()):
            if not has_flag(flag, script_flags(path)):
                yield f"`{script.group(1)} {flag}`: no such option of {path.relative_to(root)}"
        return
    yield from unknown_flags(text, root)


def unknown_flags(text: str, root: Path) -> list[str]:
    """The flags in `text` that no command, benchmark or script has, nor `FOREIGN_FLAGS`."""
    every = every_flag(root) | FOREIGN_FLAGS
    return [f"`{f}`: no command, benchmark or script has it" for f in FLAG.findall(text) if not has_flag(f, every)]


def has_flag(flag: str, options: frozenset[str]) -> bool:
    if flag.endswith(("*", "…")):
        return any(option.startswith(flag[:-1]) for option in options)
    return flag in options


def benchmark(name: str, root: Path) -> Path | None:
    """The file in benchmarks/ or scripts/ that `name` (`benchmarks/x.py` or `x.py`) runs, if any."""
    candidates = [root / name] if "/" in name else [root / "benchmarks" / name, root / "scripts" / name]
    return next((p for p in candidates if p.parent.name in ("benchmarks", "scripts") and p.is_file()), None)


def path_tokens(text: str, root: Path) -> Iterator[str]:
    """What in `text` names a file, folder or module of the repository (see the module docstring);
    `from X import a, b` as `X.a`, `X.b`."""
    text = IMPORT.sub(lambda m: " ".join(f"{m.group(1)}.{n.strip()}" for n in m.group(2).split(",")), text)
    tops = top_level(root)
    for match in TOKEN.finditer(text):
        token = match.group(0).rstrip(".,:;")
        if "://" in text[match.start() : match.end() + 3] or BUILT.search(token):
            continue
        from_top = re.split(r"[/.:]", token, maxsplit=1)[0] in tops and ("/" in token or token in tops)
        if from_top or FILE.fullmatch(token) or (MODULE.match(token) and not FILE.search(token)):
            yield token


def path_problem(token: str, root: Path) -> str | None:
    """Why `token` names nothing in the repository, or None."""
    if FILE.fullmatch(token):
        known = token in file_names(root) or token in code_words(root)
        return None if known else f"`{token}`: no file of that name in the repository, nor one its code writes"
    if MODULE.match(token) and not FILE.search(token):
        first, *others = token.split("/")  # `analysis.cli.main/one_line`: two names of one module
        module = first.rpartition(".")[0]
        return next(
            filter(None, (dotted_problem(name, root) for name in [first, *(f"{module}.{o}" for o in others)])), None
        )
    path, _, name = token.partition(":")
    matches = [
        sorted(glob.glob(a, root_dir=root) or glob.glob(re.sub(r"\b[A-Z]{2,}\b", "*", a), root_dir=root))
        for a in alternatives(path)
    ]
    if not all(matches):  # a placeholder in capitals (`MODEL-DEVICE.json`) stands for any name
        return f"`{token}`: no such file or folder"
    name = name.lstrip(":").split(".")[0]
    if name and path.endswith(".py") and name not in module_names(root / matches[0][0]):
        return f"`{token}`: {matches[0][0]} has no `{name}`"
    return None


def alternatives(path: str) -> list[str]:
    """`a/{b,c}.py` → `a/b.py`, `a/c.py` (one `{...}`, as the docs write it)."""
    braces = re.search(r"\{([^{}]*)\}", path)
    if braces is None:
        return [path]
    return [path[: braces.start()] + choice + path[braces.end() :] for choice in braces.group(1).split(",")]


def dotted_problem(token: str, root: Path) -> str | None:
    """`package.module[.NAME[.member]]`: the longest module prefix exists and defines NAME, and
    NAME, if a class, has member."""
    parts = token.split(".")
    for cut in range(len(parts), 0, -1):
        base = root.joinpath(*parts[:cut])
        module = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if not module.is_file():
            continue
        rest = parts[cut:]
        if rest and rest[0] not in module_names(module):
            return f"`{token}`: {module.relative_to(root)} has no `{rest[0]}`"
        return member_problem(rest[0], rest[1], root) if len(rest) > 1 else None
    return f"`{token}`: no such module"


def members(match: re.Match[str]) -> list[str]:
    """`Class.a/b` names `a` and `b`."""
    return [match[2], *filter(None, match[3].split("/"))]


def member_problem(cls: str, member: str, root: Path) -> str | None:
    """Why `cls.member` names nothing, or None (also when `cls` is no class of the packages, or
    one with a base from elsewhere, which may define anything)."""
    known = class_members(cls, root)
    if known is None or member in known or f"{cls}.{member}" in NOT_IN_CODE:
        return None
    return f"`{cls}.{member}`: {cls} has no `{member}`"


def unknown_names(text: str, root: Path) -> list[str]:
    return [n for n in NAME.findall(text) if n not in code_words(root) and n not in NOT_IN_CODE]


def code_flag_problems(root: Path = REPO) -> list[str]:
    """`file:line: why` for every `--flag` that the packages' text (docstrings, help, messages,
    comments) names and nothing has: the code's own prose is held to the same rule."""
    every = every_flag(root) | FOREIGN_FLAGS
    found = []
    for path, text in sources(root).items():
        for match in FLAG.finditer(text) if path.parts[0] in PACKAGES else ():
            if not has_flag(match.group(0), every):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path}:{line}: `{match.group(0)}`: no command, benchmark or script has it")
    return found


def test_the_code_names_only_flags_that_exist():
    problems = code_flag_problems()
    assert problems == [], f"{len(problems)} flags the code names that do not exist:\n" + "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_the_docs_name_what_exists(doc):
    problems = doc_problems(doc)
    assert problems == [], f"{len(problems)} names in {doc.name} that do not exist:\n" + "\n".join(problems)


def test_the_checkers_see_what_does_not_exist(tmp_path):
    # Each line mixes what exists (brackets, `|`, a `\` continuation, a wrapped usage, a comment,
    # a span over two lines, globs, another tool's flag, members by a base and by `self.`), which
    # must pass, with planted errors, each of which must be named once.
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "policy.py").write_text(
        "class ReadyOps:\n    def push(self):\n        self.size = 1\n\n\nclass Queue(ReadyOps):\n    pass\n\n\n"
        'def may_start():\n    drop_rate = 0\n    raise ValueError("needs --nproc 2, not --nprocs")\n',
        encoding="utf-8",
    )
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "speed.py").write_text('parser.add_argument("--rounds")\n', encoding="utf-8")
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / "fake.md"
    doc.write_text(
        "```\n"
        "ferret simulate --plan p.json [--arrival poisson|bursty] \\\n"
        "    --costs c.json --nproc 2 --out sim/     # --nproc is run's\n"
        "ferret plot --out x/\n"
        "ferret whatif --profile p.json\n"
        "               [--budgets auto:12] [--bugdets 4MiB]\n"
        "python benchmarks/speed.py --rounds 3 --round 2\n"
        "```\n"
        "Run `ferret run --plan\nplan.json --mode distributed` or `run --nprocs 2`; `--framework-option`, `--jitterr`,\n"
        "`--tolerance-*`, `--tolerances-*`, `--nproc-per-node`; `ferret --version`.\n"
        "See `sim/policy.py:may_start`, `sim/policy.py:may_stop`, `sim/polcy.py`, sim/gone/x.py,\n"
        "`sim.policy.ReadyOps.push`, `sim.policy.ReadyOps.pop`, `sim.rules`, `policy.py`, `gone.md`,\n"
        "`sim/{policy,rules}.py`, [the doc](fake.md), [gone](../sim/gone.md), `drop_rate`, `drop_share`.\n"
        "`Queue.size/push`, `Queue.peek`, `Work.wait()`; plain --seed and --seeed.\n",
        encoding="utf-8",
    )
    assert doc_problems(doc, tmp_path) == [
        "docs/fake.md:2: `ferret simulate --nproc`: no such option of `ferret simulate`",
        "docs/fake.md:4: `ferret plot`: no such command",
        "docs/fake.md:5: `ferret whatif --bugdets`: no such option of `ferret whatif`",
        "docs/fake.md:7: `benchmarks/speed.py --round`: no such option of benchmarks/speed.py",
        "docs/fake.md:10: `ferret run --nprocs`: no such option of `ferret run`",
        "docs/fake.md:10: `--jitterr`: no command, benchmark or script has it",
        "docs/fake.md:11: `--tolerances-*`: no command, benchmark or script has it",
        "docs/fake.md:12: `sim/policy.py:may_stop`: sim/policy.py has no `may_stop`",
        "docs/fake.md:12: `sim/polcy.py`: no such file or folder",
        "docs/fake.md:13: `ReadyOps.pop`: ReadyOps has no `pop`",
        "docs/fake.md:13: `sim.rules`: no such module",
        "docs/fake.md:13: `gone.md`: no file of that name in the repository, nor one its code writes",
        "docs/fake.md:14: `sim/{policy,rules}.py`: no such file or folder",
        "docs/fake.md:14: `drop_share`: no code of the repository has this name",
        "docs/fake.md:15: `Queue.peek`: Queue has no `peek`",
        "docs/fake.md:12: `sim/gone/x.py`: no such file or folder",
        "docs/fake.md:15: `--seeed`: no command, benchmark or script has it",
        "docs/fake.md:14: link (../sim/gone.md): no such file or folder",
    ]
    assert code_flag_problems(tmp_path) == ["sim/policy.py:12: `--nprocs`: no command, benchmark or script has it"]
