"""The CLI frame: discovery, help, one-line user errors."""

import subprocess
import sys

from analysis.cli import discover_commands, main


def test_help_lists_every_discovered_command(capsys):
    commands = discover_commands()
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for name, module in commands.items():
        assert name in out
        assert module.HELP.split()[0] in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: ferret" in capsys.readouterr().out


def test_unknown_command_is_one_line_error():
    proc = subprocess.run([sys.executable, "-m", "analysis", "frobnicate"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "invalid choice" in proc.stderr
