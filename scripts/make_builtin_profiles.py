"""Regenerate planner/builtin_profiles/*.json from the roofline profiler (or --check them).

Usage: python scripts/make_builtin_profiles.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from executor.profiler.builtin import BUILTIN_DIR, builtin_profiles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a shipped file differs instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for filename, profile in builtin_profiles().items():
        path = BUILTIN_DIR / filename
        if args.check:
            shipped = json.loads(path.read_text()) if path.is_file() else None
            if shipped != profile.to_json():
                stale.append(filename)
        else:
            profile.save(path)
            print(f"wrote {path.relative_to(BUILTIN_DIR.parents[1])}")
    if stale:
        print(f"stale built-in profiles (run scripts/make_builtin_profiles.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
