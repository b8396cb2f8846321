"""Figures of the Ray engine on a simulated cluster: two raylets of 1 CPU each and moto's
S3 server on 127.0.0.1 (the tests' ``tests/engines/s3_server.py``).

    python bench/cluster.py [--mb 20] [--files 300]

Prints, for one large remote JSON Lines file and for the same file zstd-compressed: the
bytes the store sent per input byte and each node's share of the task time (1 CPU per
node: the worker CPU); for ``--files`` small remote text files against the same files on
local disk, read by the same cluster: the wall time of each; the driver's CPU share.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

SERVER = Path(__file__).parent.parent / "tests" / "engines" / "s3_server.py"
WORDS = [f"{s}{n}" for s in ("node", "bucket", "range", "retry", "shard") for n in range(40)]


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, str(SERVER), str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(endpoint + "/_qudata/fetched", timeout=5).read()
            break
        except OSError:
            time.sleep(0.05)
    return process, endpoint


def counts(endpoint: str, reset: bool = False) -> list[int]:
    """The server's counts: object bytes sent, object GETs, HEADs, listings."""
    path = "/_qudata/reset" if reset else "/_qudata/fetched"
    request = urllib.request.Request(endpoint + path, method="POST" if reset else "GET")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return [int(n) for n in answer.read().split()]


def fetched(endpoint: str, reset: bool = False) -> int:
    return counts(endpoint, reset)[0]


LOG = Path(tempfile.gettempdir()) / f"qudata-cluster-bench-{os.getpid()}.log"


def _timed_call(
    function: Any, args: tuple[Any, ...], storage: dict[str, Any], sync: Any = None
) -> Any:
    """The engine's task body, logging its node and CPU seconds (the host's disk is shared
    by both raylets)."""
    import ray

    from qudata.engines import ray as engine

    start = time.process_time()
    try:
        return engine._call(function, args, storage, sync)  # the original on a worker
    finally:
        node = ray.get_runtime_context().get_node_id()[:8]
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(f"{node} {time.process_time() - start:.4f}\n")


def node_shares() -> dict[str, float]:
    """CPU seconds of the stage tasks per node since the last call."""
    seconds: dict[str, float] = {}
    if LOG.exists():
        for line in LOG.read_text().splitlines():
            node, cpu = line.split()
            seconds[node] = seconds.get(node, 0.0) + float(cpu)
        LOG.unlink()
    return seconds


def run(inputs: list[str], out: Path, config: dict[str, Any]) -> tuple[float, float, dict]:
    import qudata

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.time()
    report = qudata.pack_dataset(inputs, out, config=config)
    wall = time.time() - start
    assert report.read > 0, report
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    driver = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return wall, driver, node_shares()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=20)
    parser.add_argument("--files", type=int, default=300)
    args = parser.parse_args()
    os.environ.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    import boto3
    import ray
    import s3fs
    import zstandard
    from ray.cluster_utils import Cluster

    from qudata.engines import ray as engine

    engine._call = _timed_call  # on the driver, where the tasks are made
    process, endpoint = start_server()
    creds = {"key": "k", "secret": "s", "client_kwargs": {"region_name": "us-east-1"}}
    options = {"s3": {"endpoint_url": endpoint, **creds}}
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s",
                 region_name="us-east-1").create_bucket(Bucket="bench")  # fmt: skip
    fs = s3fs.S3FileSystem(endpoint_url=endpoint, **creds)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                      "object_store_memory": 100 << 20, "include_dashboard": False})  # fmt: skip
    cluster.add_node(num_cpus=1, object_store_memory=100 << 20)
    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    config = {"engine": {"name": "ray", "address": cluster.address},
              "storage": {"options": options}, "quality": {"tokenizer": "none"},
              "pack": {"formats": ["jsonl"]}}  # fmt: skip
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lines = []
        size = 0
        n = 0
        while size < args.mb << 20:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(50, 400)))
            line = orjson.dumps({"id": f"d{n}", "text": text}) + b"\n"
            lines.append(line)
            size += len(line)
            n += 1
        data = b"".join(lines)
        fs.pipe("bench/big.jsonl", data)
        fs.pipe("bench/big.jsonl.zst", zstandard.ZstdCompressor().compress(data))
        for name, stored in (
            ("big.jsonl", len(data)),
            ("big.jsonl.zst", fs.size("bench/big.jsonl.zst")),
        ):
            fetched(endpoint, reset=True)
            wall, driver, shares = run([f"s3://bench/{name}"], root / name, config)
            sent = fetched(endpoint)
            total = sum(shares.values()) or 1
            share = ", ".join(f"{node} {s / total:.0%}" for node, s in sorted(shares.items()))
            print(f"{name}: {stored / 1e6:.1f} MB stored, fetched {sent / stored:.2f}x, "
                  f"wall {wall:.1f} s, worker CPU per node: {share} (of {total:.1f} CPU s), "
                  f"driver CPU {driver:.1f} s = {driver / (driver + total):.0%}")  # fmt: skip
        notes = root / "notes"
        for i in range(args.files):
            body = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(20, 200))).encode()
            (notes / f"d{i % 10}").mkdir(parents=True, exist_ok=True)
            (notes / f"d{i % 10}" / f"n{i:04d}.txt").write_bytes(body)
            fs.pipe(f"bench/notes/d{i % 10}/n{i:04d}.txt", body)
        times = {}
        for label, where in (("local", str(notes)), ("s3", "s3://bench/notes")):
            counts(endpoint, reset=True)
            wall, driver, shares = run([where], root / f"notes-{label}", config)
            _, gets, heads, listings = counts(endpoint)
            times[label] = wall
            total = sum(shares.values())
            print(f"{args.files} small text files, {label}: wall {wall:.1f} s, "
                  f"worker CPU {total:.1f} s, driver CPU {driver:.1f} s"
                  + (f", per file: {gets / args.files:.2f} GET, {heads / args.files:.2f} HEAD"
                     f" ({listings} listings)" if label == "s3" else ""))  # fmt: skip
        print(f"small files remote / local: {times['s3'] / times['local']:.2f}x")
    ray.shutdown()
    cluster.shutdown()
    process.kill()


if __name__ == "__main__":
    main()
