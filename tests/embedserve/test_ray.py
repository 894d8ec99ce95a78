"""embedserve.ray.Embedder on a local Ray instance (loopback only): Ray Data rows get sentence-transformers' vectors."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.support.compare import assert_close_vectors
from tests.support.launch import REPO_ROOT
from tests.support.texts import varied_texts


@pytest.fixture
def local_ray():
    # Read when ray is imported: on Linux, Ray's processes would otherwise bind and meet on the machine's address.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # and it would report usage over the network
    import ray

    ray.init(
        num_cpus=2,
        object_store_memory=200 * 1024**2,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}},
        log_to_driver=False,
    )
    try:
        assert ray.util.get_node_ip_address() == "127.0.0.1", "this Ray instance is not on loopback"
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_map_batches_adds_the_reference_embeddings(local_ray, minilm, st_model_factory):
    from embedserve.ray import Embedder

    texts = varied_texts(300, long_words=100)
    dataset = local_ray.data.from_items([{"id": i, "text": text} for i, text in enumerate(texts)])
    rows = dataset.map_batches(Embedder, fn_constructor_kwargs={"model_path": None}, concurrency=1, batch_size=64)
    rows = sorted(rows.take_all(), key=lambda row: row["id"])
    assert [row["id"] for row in rows] == list(range(len(texts)))
    vectors = np.stack([row["embedding"] for row in rows])
    assert vectors.dtype == np.float32 and vectors.shape == (len(texts), 384)
    assert_close_vectors(vectors, st_model_factory(minilm).encode(texts, convert_to_numpy=True))
