"""The CLI's user-error contract, checked one way: exit 2, one line on stderr naming the problem."""

from __future__ import annotations


def assert_one_line_error(capsys, code, *needles):
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
