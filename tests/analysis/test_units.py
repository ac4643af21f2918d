import argparse

import pytest

from analysis.units import (
    cli_type,
    format_bytes,
    format_seconds,
    parse_bytes,
    parse_flop_count,
    parse_rate,
    parse_seconds,
    parse_size_range,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("64MiB", 64 * 2**20), ("1KiB", 1024), ("1.5 GiB", 3 * 2**29), ("10MB", 10**7), ("123", 123), ("2k", 2048)],
)
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["-1", "0", "12parsecs", "", "MiB", "nanMiB", "1e999"])
def test_parse_bytes_rejects(text):
    with pytest.raises(ValueError, match="size"):
        parse_bytes(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2.5G", 2.5e9), ("2.5GFLOP", 2.5e9), ("250 MFLOPs", 2.5e8), ("3e9", 3e9), ("12k", 12e3), ("1T", 1e12)],
)
def test_parse_flop_count(text, expected):
    assert parse_flop_count(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["lots", "2 GiB", "inf", "1e999G"])
def test_parse_flop_count_rejects(text):
    with pytest.raises(ValueError, match="FLOP count"):
        parse_flop_count(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2ms", 2e-3), ("3us", 3e-6), ("3µs", 3e-6), ("1.5s", 1.5), ("0.25", 0.25), ("10ns", 1e-8)],
)
def test_parse_seconds(text, expected):
    assert parse_seconds(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["0ms", "-2ms", "2 parsecs", "fast"])
def test_parse_seconds_rejects(text):
    with pytest.raises(ValueError, match="time"):
        parse_seconds(text)


def test_parse_rate():
    assert parse_rate("1/s") == 1.0
    assert parse_rate("2/ms") == pytest.approx(2000.0)
    assert parse_rate("0") == 0.0
    assert parse_rate("0.5") == 0.5
    with pytest.raises(ValueError):
        parse_rate("-1/s")
    with pytest.raises(ValueError):
        parse_rate("1/parsec")


def test_parse_size_range():
    assert list(parse_size_range("4MiB:32MiB:x2")) == [4 * 2**20, 8 * 2**20, 16 * 2**20, 32 * 2**20]
    assert list(parse_size_range("1KiB:3KiB:+1KiB")) == [1024, 2048, 3072]
    assert list(parse_size_range("1KiB,5KiB")) == [1024, 5120]
    for bad in ("4MiB:1MiB:x2", "1MiB:4MiB:x1", "1MiB:4MiB", "1MiB:4MiB:/2", "1MiB:4MiB:xnan", "1MiB:4MiB:x1e300"):
        with pytest.raises(ValueError):
            parse_size_range(bad)


def test_a_size_grid_is_counted_before_it_is_made():
    """A billion-point grid is counted in constant time, so a command can refuse it unbuilt."""
    assert len(parse_size_range("1B:1GiB:+1B")) == 2**30
    assert len(parse_size_range("1MiB:1TiB:x1.0000001")) > 10**8
    for text in ("4MiB:512MiB:x2", "1KiB:9KiB:+2KiB", "3KiB:3KiB:x2", "1MiB:1000MiB:x1.37"):
        grid = parse_size_range(text)
        assert len(grid) == len(list(grid)), text


@pytest.mark.parametrize(
    ("parser", "text", "why"),
    [
        (parse_bytes, "0.3B", "rounds to 0 bytes"),
        (parse_bytes, "2PiB", "unknown unit"),
        (parse_bytes, "1e25GiB", "1 PiB"),
        (parse_seconds, "1e-320s", "below 1e-12 s"),
        (parse_seconds, "1e12", "31 years"),
        (parse_rate, "1e300/s", "per second"),
    ],
)
def test_units_refuse_what_no_quantity_of_that_kind_is(parser, text, why):
    """Class 3 of issue 13: a size, time or rate outside what it can physically be is refused
    at the boundary, with the reason (not later as an overflow or a zero)."""
    with pytest.raises(ValueError, match=why):
        parser(text)


def test_format():
    assert format_bytes(3 * 2**20) == "3.00 MiB"
    assert format_bytes(float("inf")) == "∞"
    assert format_seconds(2e-3) == "2 ms"
    assert format_seconds(5e-7) == "500 ns"


def test_cli_type_turns_value_error_into_usage_error():
    with pytest.raises(argparse.ArgumentTypeError, match="12parsecs"):
        cli_type(parse_bytes)("12parsecs")


def test_number_parsers_say_what_they_expected():
    from analysis.units import float_at_least, int_at_least, parse_non_negative_int, parse_positive_float

    assert int_at_least(1)("3") == 3
    assert parse_non_negative_int("0") == 0
    with pytest.raises(ValueError, match=r"invalid sample count '0': must be ≥ 1"):
        int_at_least(1, "sample count")("0")
    with pytest.raises(ValueError, match=r"expected an integer ≥ 0"):
        parse_non_negative_int("1.5")
    assert parse_positive_float("2.5") == 2.5
    for bad in ("0", "-1", "inf", "nan", "x"):
        with pytest.raises(ValueError, match="invalid number"):
            parse_positive_float(bad)
    assert float_at_least(0.0)("0") == 0.0
