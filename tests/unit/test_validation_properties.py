"""Property-based tests of the shared validation rules (durations, CIDRs, timestamps): what the
constructs check at synth time and the provider at plan time."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

from hypothesis import assume, given
from hypothesis import strategies as st

from tokendrop_provider.validation import cidr, duration, format_duration, parse_duration, rfc3339

seconds = st.integers(min_value=1, max_value=10 * 365 * 86400)


@given(seconds)
def test_format_then_parse_is_identity(n):
    delta = timedelta(seconds=n)
    assert parse_duration(format_duration(delta)) == delta


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=999), st.sampled_from("smhdw")), min_size=1, max_size=4))
def test_compound_durations_add_up(parts):
    text = "".join(f"{n}{unit}" for n, unit in parts)
    size = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    assert parse_duration(text) == timedelta(seconds=sum(n * size[u] for n, u in parts))


@given(st.text(max_size=12))
def test_anything_else_is_refused_with_a_readable_message(text):
    stripped = text.strip()
    if stripped and stripped[-1] in "smhdw" and stripped[:-1].replace(".", "", 1).isdigit():
        return  # a valid duration after all
    try:
        parse_duration(text)
        message = None
    except ValueError as err:
        message = str(err)
    assert message is None or "is not a duration" in message
    if message is None:
        assert stripped and stripped[-1] in "smhdw"


@given(seconds, seconds)
def test_duration_bounds(n, bound):
    rule = duration(minimum=timedelta(seconds=bound))
    verdict = rule(format_duration(timedelta(seconds=n)))
    assert (verdict is None) == (n >= bound)


networks = st.one_of(
    st.builds(lambda a, p: ipaddress.ip_network((a, p), strict=False),
              st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=0, max_value=32)),
    st.builds(lambda a, p: ipaddress.ip_network((a, p), strict=False),
              st.integers(min_value=0, max_value=2**128 - 1), st.integers(min_value=0, max_value=128)),
)


@given(networks)
def test_every_network_is_a_valid_cidr(network):
    assert cidr()(str(network)) is None


@given(networks, st.integers(min_value=1, max_value=2**16))
def test_host_bits_set_are_refused(network, offset):
    assume(network.num_addresses > 1)
    host = network.network_address + (offset % (network.num_addresses - 1) + 1)
    message = cidr()(f"{host}/{network.prefixlen}")
    assert message is not None and "host bits" in message


@given(st.text(max_size=20))
def test_cidr_rule_never_raises(text):
    result = cidr()(text)
    assert result is None or isinstance(result, str)


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 1, 1), timezones=st.just(UTC)))
def test_aware_timestamps_pass_naive_ones_do_not(moment):
    assert rfc3339()(moment.isoformat().replace("+00:00", "Z")) is None
    assert rfc3339()(moment.replace(tzinfo=None).isoformat()) is not None
