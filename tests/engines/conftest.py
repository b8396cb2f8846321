"""A simulated cluster: an S3-compatible server and a two-node Ray cluster on this host.

``s3``: moto's server (``s3_server.py``) on 127.0.0.1 on a free port, with a bucket,
its storage options (what ``storage.options`` of a run gives) and the object bytes it
has sent. ``two_nodes``: a Ray cluster of two raylets of 1 CPU each; the second node's
tasks cannot see the folder ``hidden`` (the environment variable ``QUDATA_TEST_HIDE`` of
its workers: :func:`qudata.engines.ray.check_shared` treats it as missing there), and a
task finding ``hold/armed`` sleeps with its pid in ``hold/pid`` (``QUDATA_TEST_HOLD``)
so that a test can kill its worker.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SERVER = Path(__file__).with_name("s3_server.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class S3:
    """The running server: its endpoint, bucket and storage options."""

    endpoint: str
    bucket: str
    process: subprocess.Popen[bytes]

    @property
    def options(self) -> dict[str, dict[str, Any]]:
        return {
            "s3": {
                "endpoint_url": self.endpoint,
                "key": "testing-key",
                "secret": "testing-secret-do-not-publish",
                "client_kwargs": {"region_name": "us-east-1"},
            }
        }

    def fs(self) -> Any:
        import s3fs

        options = self.options["s3"]
        return s3fs.S3FileSystem(skip_instance_cache=True, **options)

    def _control(self, path: str, method: str = "GET") -> list[int]:
        request = urllib.request.Request(self.endpoint + path, method=method)
        with urllib.request.urlopen(request, timeout=10) as answer:
            return [int(n) for n in answer.read().split()]

    def fetched(self) -> tuple[int, int]:
        """Object bytes sent, object requests answered, since the last reset."""
        fetched, requests, _, _ = self._control("/_qudata/fetched")
        return fetched, requests

    def requests(self) -> dict[str, int]:
        """The requests answered since the last reset: object reads (``get``), metadata
        requests (``head``) and listings (``list``)."""
        _, gets, heads, listings = self._control("/_qudata/fetched")
        return {"get": gets, "head": heads, "list": listings}

    def reset(self) -> None:
        self._control("/_qudata/reset", "POST")


def start_s3(port: int | None = None) -> S3:
    """A new server (on ``port``, default a free one) with an empty bucket."""
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = S3(f"http://127.0.0.1:{port}", "bucket", process)
    for _ in range(200):
        try:
            server.fetched()
            break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        process.wait()
        pytest.fail("the S3 server did not start")
    try:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            aws_access_key_id="testing-key",
            aws_secret_access_key="testing-secret-do-not-publish",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=server.bucket)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return server


@pytest.fixture
def new_s3() -> Any:
    """:func:`start_s3`: a server of the test's own (to stop it)."""
    return start_s3


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    server = start_s3()
    try:
        yield server
    finally:
        server.process.kill()
        server.process.wait()


@dataclass
class TwoNodes:
    address: str
    hidden: Path  # a folder the second node's tasks cannot see
    hold: Path  # the kill hook's folder
    nodes: list[str]  # node ids: head, second
    cluster: Any  # ray.cluster_utils.Cluster


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    hidden = tmp_path_factory.mktemp("head-only")
    hold = tmp_path_factory.mktemp("hold")
    names = ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED", "QUDATA_TEST_HOLD")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(
        RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", QUDATA_TEST_HOLD=str(hold)
    )
    store = 80 * 1024**2
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": store, "include_dashboard": False},
    )
    second = cluster.add_node(
        num_cpus=1, object_store_memory=store, env_vars={"QUDATA_TEST_HIDE": str(hidden)}
    )
    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    try:
        head = cluster.head_node.node_id
        yield TwoNodes(cluster.address, hidden, hold, [head, second.node_id], cluster)
    finally:
        ray.shutdown()
        cluster.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
