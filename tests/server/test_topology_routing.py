"""Where ranks run and which replica gets a request: placement per node, meeting ports, least-outstanding routing."""

from __future__ import annotations

import pytest

from server.http.replica_router import ReplicaRouter
from server.launch.args import ServerArgs, ServerArgsError
from server.launch.topology import local_placements


def test_node_1_of_2_runs_the_upper_half_of_every_replica():
    args = ServerArgs(tp_size=4, dp_size=2, nnodes=2, node_rank=1, dist_init_addr="10.0.0.1:5000")
    placed = [(p.dp_index, p.tp_rank, p.init_address, p.local_index, p.role) for p in local_placements(args)]
    assert placed == [
        (0, 2, "10.0.0.1:5000", 0, "d0t2"),
        (0, 3, "10.0.0.1:5000", 1, "d0t3"),
        (1, 2, "10.0.0.1:5001", 2, "d1t2"),
        (1, 3, "10.0.0.1:5001", 3, "d1t3"),
    ]
    assert [p.device("cuda") for p in local_placements(args)] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]


def test_one_node_meets_on_loopback_whatever_dist_init_addr_says():
    # one node: --dist-init-addr keeps only its port, so the rendezvous never binds beyond loopback
    args = ServerArgs(tp_size=2, dp_size=2, dist_init_addr="10.0.0.1:5000")
    assert [p.init_address for p in local_placements(args)] == ["127.0.0.1:5000"] * 2 + ["127.0.0.1:5001"] * 2
    assert all(p.init_address.startswith("127.0.0.1:") for p in local_placements(ServerArgs(tp_size=2)))


def test_one_rank_keeps_the_single_scheduler_name_and_device():
    (placement,) = local_placements(ServerArgs())
    assert (placement.role, placement.process_name, placement.init_address) == (
        "scheduler",
        "embedserve-scheduler",
        None,
    )
    assert placement.device("cuda") == "cuda"


@pytest.mark.parametrize(
    "kwargs",
    [dict(tp_size=0), dict(dp_size=0), dict(nnodes=2, node_rank=2, tp_size=2, dist_init_addr="h:1"),
     dict(tp_size=2, nnodes=2, dist_init_addr="no-port"), dict(dp_size=3, dist_init_addr="h:65535")],
)  # fmt: skip
def test_bad_layouts_are_refused(kwargs):
    with pytest.raises(ServerArgsError):
        ServerArgs(**kwargs)


def test_router_sends_to_the_replica_with_fewest_outstanding_tokens():
    router = ReplicaRouter(2)
    assert router.send("a", 100) == 0
    assert router.send("b", 10) == 1
    assert router.send("c", 10) == 1  # 20 outstanding on replica 1 is still fewer than 100
    router.finish("a")
    assert router.send("d", 5) == 0
    router.answered("b")
    router.finish("b")
    router.finish("c")
    assert [(r["requests_sent"], r["tokens_outstanding"]) for r in router.snapshot()] == [(2, 5), (2, 0)]
