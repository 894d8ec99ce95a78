"""Sharded layers on 2 gloo ranks equal the unsharded layers; the batch broadcast delivers the same batch."""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from tests.support.launch import free_port


def _worker(rank: int, port: int, results) -> None:
    from engine.distributed import BatchBroadcaster, init_tensor_parallel
    from engine.layers.gate_up_linear import GateUpParallelLinear
    from engine.layers.linear import (
        ColumnParallelLinear,
        MergedColumnParallelLinear,
        QKVParallelLinear,
        RowParallelLinear,
    )
    from engine.layers.vocab_embedding import VocabParallelEmbedding

    init_tensor_parallel(rank, 2, f"127.0.0.1:{port}", "cpu")
    torch.manual_seed(0)  # identical full weights and inputs on both ranks
    w_up, w_down, table = torch.randn(8, 6), torch.randn(6, 8), torch.randn(11, 6)
    wq, wk, wv = torch.randn(4 * 2, 6), torch.randn(1 * 2, 6), torch.randn(1 * 2, 6)
    x, ids = torch.randn(5, 6), torch.tensor([0, 3, 5, 6, 10])
    w_fused = torch.randn(2 * 4, 6)  # two outputs of 4 stored as one tensor, as ModernBERT's Wi

    up, down = ColumnParallelLinear(6, 8, bias=False), RowParallelLinear(8, 6, bias=False)
    up.weight_loader(up.weight, w_up)
    down.weight_loader(down.weight, w_down)
    embed = VocabParallelEmbedding(11, 6)
    embed.weight_loader(embed.weight, table)
    qkv = QKVParallelLinear(6, head_dim=2, num_heads=4, num_kv_heads=1, bias=False)  # 1 KV head: replicated
    for shard, w in (("q", wq), ("k", wk), ("v", wv)):
        qkv.weight_loader(qkv.weight, w, shard)

    merged = MergedColumnParallelLinear(6, [4, 4], bias=False)
    merged.weight_loader(merged.weight, w_fused)  # no shard id: split into its outputs, then each by rank
    first, second = (x @ w_fused.T).split(4, dim=1)
    half = slice(rank * 2, rank * 2 + 2)
    merged_ok = torch.allclose(merged(x), torch.cat((first[:, half], second[:, half]), dim=1))

    gate_up = GateUpParallelLinear(6, 4, "silu", bias=False)
    gate_up.weight_loader(gate_up.weight, w_fused)
    merged_ok = merged_ok and torch.allclose(gate_up.gated(x), F.silu(first[:, half]) * second[:, half], atol=1e-6)

    residual = torch.randn(5, 6)  # the skip connection joins once, on rank 0, before the all-reduce
    mlp_ok = torch.allclose(down(up(x)), x @ w_up.T @ w_down.T, atol=1e-5)
    mlp_ok = mlp_ok and torch.allclose(down(up(x), residual), x @ w_up.T @ w_down.T + residual, atol=1e-5)
    embed_ok = torch.equal(embed(ids), table[ids])
    q, k, v = qkv(x).split([2 * 2, 2, 2], dim=1)  # per rank: 2 query heads, 1 KV head
    qkv_ok = (
        torch.allclose(q, (x @ wq.T)[:, rank * 4 : rank * 4 + 4])
        and torch.allclose(k, x @ wk.T)
        and torch.allclose(v, x @ wv.T)
    )

    broadcaster = BatchBroadcaster()
    if rank == 0:
        broadcaster.send([np.array([1, 2, 3], np.int32), np.array([7], np.int32)])
        broadcaster.send([np.array([4, 5], np.int32)], token_types=[np.array([0, 1], np.int32)])
        broadcaster.send_stop()
        received = "sender"
    else:
        received = []
        while (batch := broadcaster.receive()) is not None:
            sequences, types = batch
            received.append(([s.tolist() for s in sequences], types and [t.tolist() for t in types]))
    results[rank] = (mlp_ok and merged_ok, embed_ok, qkv_ok, received)
    dist.destroy_process_group()


def test_sharded_layers_and_batch_broadcast_on_two_ranks():
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(free_port(), results), nprocs=2, join=True)
    for rank in (0, 1):
        mlp_ok, embed_ok, qkv_ok, _ = results[rank]
        assert mlp_ok and embed_ok and qkv_ok, (rank, results[rank])
    assert results[1][3] == [([[1, 2, 3], [7]], None), ([[4, 5]], [[0, 1]])]
