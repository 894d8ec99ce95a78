"""Admission accounting: request and token bounds, 429 vs 413, release on exit, close and drain."""

from __future__ import annotations

import asyncio

import pytest

from server.http.admission import Admission
from server.http.errors import APIError
from server.launch.args import ServerArgs, ServerArgsError


def test_request_bound_gives_429_with_retry_after_and_release_frees_it():
    admission = Admission(max_queued_requests=2, max_queued_tokens=100)
    first, second = admission.admit(), admission.admit()
    with pytest.raises(APIError) as info:
        admission.admit()
    assert info.value.status == 429 and info.value.headers == {"Retry-After": "1"}
    with first:
        pass
    with admission.admit():
        assert admission.num_requests == 2
    with second:
        pass
    assert admission.num_requests == 0


def test_token_bound_grows_and_shrinks_reservations():
    admission = Admission(max_queued_requests=10, max_queued_tokens=100)
    with admission.admit() as a, admission.admit() as b:
        a.reserve(80)  # body bytes while reading
        with pytest.raises(APIError) as info:
            b.reserve(30)
        assert info.value.status == 429
        a.reserve(20)  # tokenized: fewer tokens than bytes
        b.reserve(30)
        assert admission.num_tokens == 50
        with pytest.raises(APIError) as info:
            b.reserve(101)  # could never fit: retrying would not help
        assert info.value.status == 413
    assert admission.num_tokens == 0 and admission.num_requests == 0


def test_closed_admission_gives_503_and_wait_idle_waits_for_the_last_request():
    async def scenario() -> tuple[bool, bool]:
        admission = Admission(max_queued_requests=10, max_queued_tokens=100)
        ticket = admission.admit()
        admission.close("shutting down")
        with pytest.raises(APIError) as info:
            admission.admit()
        assert info.value.status == 503
        assert not await admission.wait_idle(0.05)
        asyncio.get_running_loop().call_later(0.05, ticket.__exit__, None, None, None)
        return await admission.wait_idle(5), admission.num_requests == 0

    assert asyncio.run(scenario()) == (True, True)


@pytest.mark.parametrize(
    "overrides",
    [{"max_queued_requests": 0}, {"max_request_bytes": 10, "max_queued_tokens": 5}, {"shutdown_timeout": -1},
     {"api_key": ""}, {"engine_stall_timeout": 0}],
)  # fmt: skip
def test_bad_reliability_flags_are_rejected(overrides):
    with pytest.raises(ServerArgsError):
        ServerArgs(**overrides)
