"""A lost Ray node, tested (issue 21): two raylets on loopback, a run placed on the second, whose
raylet is killed; the run is interrupted within seconds and resumes from its last checkpoint on the
node that remains, with every record once. Every Ray here binds to 127.0.0.1 only."""

import time

import pytest

ray = pytest.importorskip("ray")

from explorer.train.jobs import JobManager  # noqa: E402
from explorer.train.ray_backend import LOOPBACK  # noqa: E402
from tests.test_ray_backend import ROOT, OneThreadEach, tiny, train_steps, wait_for  # noqa: E402

NODE = {"node_ip_address": LOOPBACK, "object_store_memory": 100 * 2**20}


@pytest.fixture(scope="module")
def two_nodes():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False, **NODE})
    second = cluster.add_node(num_cpus=1, **NODE)
    ray.init(address=cluster.address, log_to_driver=False,
             runtime_env={"py_modules": [str(ROOT / "explorer")], "excludes": ["__pycache__"]})
    cluster.wait_for_nodes()
    yield cluster, second
    ray.shutdown()
    cluster.shutdown()


def test_every_node_listens_on_loopback_only(two_nodes):
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {LOOPBACK}


def test_a_run_on_a_lost_node_is_interrupted_and_resumes_on_the_node_that_remains(two_nodes, tmp_path):
    cluster, second = two_nodes
    manager = JobManager(tmp_path, max_concurrent=2, backend=OneThreadEach())
    jobs = [manager.submit(tiny(steps=120, checkpoint_every=4)) for _ in range(2)]  # one on each node

    def placed() -> bool:
        return all((job.run.status().get("checkpoint_step") or 0) >= 8 for job in jobs)
    wait_for(placed, timeout=180)
    on_second = [job for job in jobs if job.run.status()["ray_worker"]["node_id"] == second.node_id]
    assert len(on_second) == 1, [job.run.status()["ray_worker"] for job in jobs]
    lost, other = on_second[0], next(job for job in jobs if job is not on_second[0])

    killed = time.perf_counter()
    cluster.remove_node(second, allow_graceful=False)  # its raylet and workers, killed
    result = manager.wait(lost.run_dir, timeout=120)
    detected = time.perf_counter() - killed
    assert result is not None and result.state == "interrupted", result
    assert detected < 30, f"the lost node was noticed after {detected:.0f} s"
    status = lost.run.status()
    assert "Ray" in status["message"] and f"resumes from the checkpoint at step {status['checkpoint_step']}" in (
        status["message"])

    manager.stop(other.run_dir)  # frees the remaining node's CPU for the resumed run
    manager.wait(other.run_dir, timeout=60)
    resumed = manager.resume(lost.run_dir)
    assert manager.wait(resumed.run_dir, timeout=300).state == "completed"
    assert lost.run.status()["ray_worker"]["node_id"] != second.node_id
    assert train_steps(lost.run) == list(range(2, 121, 2))  # none twice, none lost
    manager.shutdown(timeout=30)
