"""The Ray backend on a local Ray cluster: the Fig. 6 preset's wall time, and a worker lost mid-run, then resumed.

    python bench/ray_backend.py [--cpus 2] [--seed 0]

Each part runs in a process of its own, one after the other.

1. The Fig. 6 CPU preset (its four models at once, max_concurrent=4), first through the local
   backend (worker processes), then through the Ray backend on a Ray started here with --cpus CPUs:
   wall time from submission to the last run's end. Each run gets one thread in both, so the two
   must record the same training errors to the last digit.
2. A killed worker: the preset's ResNet-20 with a checkpoint every 50 steps; its Ray worker process
   gets SIGKILL after the checkpoint at step 100. Recorded: the time until the run is marked
   interrupted, the step it resumes from, and that the resumed run completes with every record once.
3. A lost node: a head without CPUs and one worker node (ray.cluster_utils, all on this machine);
   the node is removed mid-run, as a machine that loses power, a new node joins, and the run resumes.

The 2 cores may be shared: the load average is written before and after each part.
"""

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import ray
import torch
from ray.cluster_utils import Cluster

from explorer.analysis.runs import read_run
from explorer.train.execution import LocalBackend
from explorer.train.jobs import JobManager
from explorer.train.presets import PRESETS
from explorer.train.ray_backend import LOOPBACK, RayBackend

# The workers import this copy of explorer, wherever the script is started from.
CODE = {"py_modules": [str(common.ROOT / "explorer")], "excludes": ["__pycache__"]}
RAY_OPTIONS = {"object_store_memory": 200 * 2**20, "include_dashboard": False, "log_to_driver": False,
               "runtime_env": CODE}
NODE = {"num_cpus": 1, "object_store_memory": 100 * 2**20, "node_ip_address": LOOPBACK}  # loopback only


def load() -> float:
    return round(os.getloadavg()[0], 2)


def final_errors(run_dir: str) -> dict:
    metrics = read_run(run_dir).metrics
    train = [m["error"] for m in metrics if m["split"] == "train"][-3:]  # three logs smooth batch noise
    test = [m["error"] for m in metrics if m["split"] == "test"]
    return {"train_error": sum(train) / len(train), "test_error": test[-1]}


def run_preset(backend, seed: int) -> dict:
    configs = PRESETS["fig6"].configs("cpu", seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        manager = JobManager(folder, max_concurrent=4, backend=backend)
        before = load()
        start = time.perf_counter()
        jobs = manager.submit_group(configs, group=f"fig6-{seed}")
        for job in jobs:
            manager.wait(job.run_dir)
        seconds = time.perf_counter() - start
        states = {job.config.model.name: job.result.state for job in jobs}
        models = {job.config.model.name: final_errors(job.run_dir) for job in jobs if job.result.state == "completed"}
        manager.shutdown()
    return {"seconds": seconds, "states": states, "models": models, "threads_per_run": backend.cpu_threads(4),
            "load_before": before, "load_after": load()}


def lost_then_resumed(manager: JobManager, lose, seed: int, replace=lambda: None) -> dict:
    """Train the preset's ResNet-20, ``lose`` its worker after the checkpoint at step 100, ``replace`` it, resume."""
    base = next(config for config in PRESETS["fig6"].configs("cpu", seed=seed) if config.model.name == "cifar-resnet20")
    config = base.replace(probes=dataclasses.replace(base.probes, checkpoint_every=50))
    before = load()
    job = manager.submit(config)
    deadline = time.monotonic() + 600
    while (job.run.status().get("checkpoint_step") or 0) < 100:
        assert time.monotonic() < deadline, f"no checkpoint at step 100 within 10 minutes: {job.run.status()}"
        time.sleep(0.05)
    first_worker = job.run.status()["ray_worker"]
    lost = time.perf_counter()
    lose(first_worker)
    result = manager.wait(job.run_dir, 300)
    detected = time.perf_counter() - lost
    status = job.run.status()
    replace()
    resumed_at = time.perf_counter()
    resumed = manager.resume(job.run_dir)
    final = manager.wait(resumed.run_dir, 900)
    resume_seconds = time.perf_counter() - resumed_at
    steps = [m["step"] for m in job.run.metrics().records if m["split"] == "train"]
    probes = [(p["kind"], p["step"]) for p in job.run.probes().records]
    expected_probes = {(kind, step) for kind in ("grad_norm", "response_std")
                       for step in range(0, config.optim.steps, config.probes.probe_every)}
    return {
        "state_after_loss": result.state, "message": status["message"], "detect_seconds": detected,
        "step_when_lost": status.get("step"), "checkpoint_step": status.get("checkpoint_step"),
        "final_state": final.state, "resume_seconds": resume_seconds,
        "train_steps_once_each": steps == list(range(config.probes.log_every, config.optim.steps + 1,
                                                     config.probes.log_every)),
        "probes_once_each": sorted(probes) == sorted(expected_probes),
        "first_node": first_worker["node_id"], "resumed_node": job.run.status()["ray_worker"]["node_id"],
        "load_before": before, "load_after": load(),
    }


def part_local(args) -> dict:
    return {"local": run_preset(LocalBackend(), args.seed)}


def part_ray(args) -> dict:
    ray.init(address="local", num_cpus=args.cpus, _node_ip_address=LOOPBACK, **RAY_OPTIONS)
    try:
        backend = RayBackend()
        on_ray = run_preset(backend, args.seed)
        with tempfile.TemporaryDirectory() as folder:
            manager = JobManager(folder, max_concurrent=1, backend=backend)
            killed = lost_then_resumed(manager, lambda worker: os.kill(worker["pid"], signal.SIGKILL), args.seed)
            manager.shutdown()
    finally:
        ray.shutdown()
    return {"ray": on_ray, "killed": killed}


def part_node(args) -> dict:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 100 * 2**20,
                                                            "include_dashboard": False,
                                                            "node_ip_address": LOOPBACK})
    try:
        node = cluster.add_node(**NODE)
        ray.init(address=cluster.address, log_to_driver=False, runtime_env=CODE)
        cluster.wait_for_nodes()
        with tempfile.TemporaryDirectory() as folder:
            manager = JobManager(folder, max_concurrent=1, backend=RayBackend())
            node_lost = lost_then_resumed(manager, lambda worker: cluster.remove_node(node, allow_graceful=False),
                                          args.seed, replace=lambda: cluster.add_node(**NODE))
            manager.shutdown()
    finally:
        ray.shutdown()
        cluster.shutdown()
    return {"node_lost": node_lost}


PARTS = {"local": part_local, "ray": part_ray, "node": part_node}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)  # one part, in a process of its own
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        Path(args.out).write_text(json.dumps(PARTS[args.part](args)))
        return
    uptime = [f"{average:.2f}" for average in os.getloadavg()]
    print("load average (1, 5, 15 min):", " ".join(uptime), flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for part in PARTS:  # each Ray in a fresh process: a second ray.init in one process is not what the app does
            out = Path(folder) / f"{part}.json"
            subprocess.run([sys.executable, __file__, "--part", part, "--out", str(out), "--cpus", str(args.cpus),
                            "--seed", str(args.seed)], check=True)
            results.update(json.loads(out.read_text()))
            print(part, results, flush=True)
    report(args, uptime, results["local"], results["ray"], results["killed"], results["node_lost"])


def report(args, uptime: list[str], local: dict, on_ray: dict, killed: dict, node_lost: dict) -> None:
    same = local["models"] == on_ray["models"]
    lines = ["# The Ray backend on a local Ray cluster", "",
             (f"Ray {ray.__version__}, a local Ray with {args.cpus} CPUs (200 MB object store, no dashboard), seed "
              f"{args.seed}. Load average when the script started (1, 5, 15 min): {' '.join(uptime)}; the cores "
              "are shared with other work, so wall times carry that noise."), "",
             "## The Fig. 6 CPU preset, four runs submitted at once (max_concurrent=4)", "",
             "| backend | wall time, submission to last end | threads per run | load before, after | states |",
             "|---|---|---|---|---|"]
    for name, result in (("local (worker processes)", local), ("ray (actors on the local Ray)", on_ray)):
        lines.append(f"| {name} | {result['seconds']:.0f} s | {result['threads_per_run']} | "
                     f"{result['load_before']}, {result['load_after']} | "
                     f"{', '.join(sorted(set(result['states'].values())))} |")
    lines += ["", (f"Ray/local: {on_ray['seconds'] / local['seconds']:.2f}. On the Ray backend each run reserves "
                   f"a CPU: {args.cpus} of the 4 train at once and the others wait for Ray to place them; the local "
                   "backend runs all four at once on one thread each."), "",
              f"Training errors equal to the last digit on both backends: {'yes' if same else 'no'}.", "",
              "| model | local: train, test error | ray: train, test error |", "|---|---|---|"]
    for name, errors in local["models"].items():
        theirs = on_ray["models"].get(name, {})
        lines.append(f"| {name} | {errors['train_error']:.2%}, {errors['test_error']:.2%} | "
                     f"{theirs.get('train_error', float('nan')):.2%}, {theirs.get('test_error', float('nan')):.2%} |")
    for title, lost in (("A worker killed mid-run (SIGKILL of its Ray worker process)", killed),
                        ("A node lost mid-run (its raylet and workers killed), a new node joined", node_lost)):
        where = "another" if lost["resumed_node"] != lost["first_node"] else "the same"
        lines += ["", f"## {title}", "",
                  (f"- detected in {lost['detect_seconds']:.1f} s: the run is {lost['state_after_loss']}, "
                   f"\"{lost['message']}\""),
                  (f"- lost at step {lost['step_when_lost']}; resumed from the checkpoint at step "
                   f"{lost['checkpoint_step']}, on {where} node"),
                  (f"- the resumed run: {lost['final_state']} in {lost['resume_seconds']:.0f} s; every training "
                   f"record once: {'yes' if lost['train_steps_once_each'] else 'no'}; every probe once: "
                   f"{'yes' if lost['probes_once_each'] else 'no'}"),
                  f"- load before, after: {lost['load_before']}, {lost['load_after']}"]
    common.record("ray-backend", torch.device("cpu"),
                  {"ray": ray.__version__, "cpus": args.cpus, "seed": args.seed, "load_average_at_start": uptime,
                   "fig6": {"local": local, "ray": on_ray, "errors_equal": same},
                   "killed_worker": killed, "lost_node": node_lost}, lines)


if __name__ == "__main__":
    main()
