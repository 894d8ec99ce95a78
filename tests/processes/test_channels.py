"""Typed channels over real ZMQ ipc sockets in a private temporary folder."""

from __future__ import annotations

import asyncio
import os

import msgspec
import numpy as np
import pytest
import zmq
import zmq.asyncio

from processes.channels import AsyncPullChannel, AsyncPushChannel, PullChannel, PushChannel
from processes.ipc import IpcAddresses
from processes.messages import AbortRequest, BatchOutput, EmbedRequest, EmbedResponse, RawArray, SchedulerInput
from tests.support.wait import wait_until


@pytest.fixture
def ipc():
    addresses = IpcAddresses.create()
    yield addresses
    addresses.remove()


@pytest.fixture
def context():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def _request(rid: str) -> EmbedRequest:
    ids = np.arange(5, dtype=np.int32)
    return EmbedRequest(rid, RawArray.from_numpy(ids), RawArray.from_numpy(np.array([2, 3], np.int32)))


def _receive(channel: PullChannel, count: int) -> list:
    received: list = []
    wait_until(lambda: received.extend(channel.recv_all(block=False)) or len(received) >= count, 10)
    return received


def test_ipc_addresses_live_in_one_private_folder_and_are_removed():
    ipc = IpcAddresses.create()
    assert os.path.isdir(ipc.folder) and oct(os.stat(ipc.folder).st_mode & 0o777) == "0o700"
    assert all(a.startswith(f"ipc://{ipc.folder}/") for a in (ipc.scheduler, ipc.result, ipc.frontend))
    assert ipc.scheduler_for(0) == ipc.scheduler and ipc.scheduler_for(2) == f"{ipc.scheduler}-dp2"
    ipc.remove()
    assert not os.path.exists(ipc.folder)


def test_push_then_pull_delivers_the_typed_message(ipc, context):
    inbox = PullChannel(context, ipc.scheduler, SchedulerInput, bind=True)
    outbox = PushChannel[SchedulerInput](context, ipc.scheduler)
    outbox.send(_request("a"))
    outbox.send(AbortRequest("a"))
    assert inbox.recv() == _request("a")  # recv blocks until it arrives
    assert _receive(inbox, 1) == [AbortRequest("a")]


def test_recv_all_without_blocking_returns_nothing_when_nothing_waits(ipc, context):
    inbox = PullChannel(context, ipc.result, BatchOutput, bind=True)
    assert inbox.recv_all(block=False) == []


def test_recv_all_returns_every_message_in_order(ipc, context):
    inbox = PullChannel(context, ipc.scheduler, SchedulerInput, bind=True)
    outbox = PushChannel[SchedulerInput](context, ipc.scheduler)
    sent = [_request(f"r{i}") for i in range(20)]
    for message in sent:
        outbox.send(message)
    first = inbox.recv_all(block=True)  # waits for the first, then takes whatever else has arrived
    assert first and first[0] == sent[0]
    assert first + _receive(inbox, len(sent) - len(first)) == sent


def test_a_message_of_the_wrong_type_is_refused(ipc, context):
    inbox = PullChannel(context, ipc.result, BatchOutput, bind=True)
    outbox = PushChannel[EmbedResponse](context, ipc.result)  # kept open: closing drops what it has not sent
    outbox.send(EmbedResponse("a", 200, b"{}"))
    with pytest.raises(msgspec.ValidationError):
        _receive(inbox, 1)


def test_async_channels_carry_responses_to_the_event_loop(ipc):
    async def exchange() -> list[EmbedResponse]:
        context = zmq.asyncio.Context()
        try:
            inbox = AsyncPullChannel(context, ipc.frontend, EmbedResponse, bind=True)
            outbox = AsyncPushChannel[EmbedResponse](context, ipc.frontend)
            for i in range(3):
                outbox.send_nowait(EmbedResponse(f"r{i}", 200, b"{}"))
            return [await asyncio.wait_for(inbox.recv(), 10) for _ in range(3)]
        finally:
            context.destroy(linger=0)

    assert [r.rid for r in asyncio.run(exchange())] == ["r0", "r1", "r2"]
