"""A dataset written to object storage (``-o s3://bucket/out``) on moto's S3 server
(``conftest.py``): the same files, byte for byte, as a local ``-o`` (the manifest but its
``run`` section); ``manifest.json`` last, as the commit marker; ``--overwrite`` replaces
only a qudata dataset; an outage during the upload is one line and leaves no manifest.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

import qudata
from qudata.errors import OutputError, WriteError
from qudata.io.remote_output import RemoteOutput

S3 = TwoNodes = Any  # the fixtures of conftest.py

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

WORDS = [f"{stem}{n}" for stem in ("shard", "bucket", "commit", "marker") for n in range(10)]


def corpus(path: Path, rows: int, seed: int = 3) -> Path:
    rng = random.Random(seed)
    lines = []
    for n in range(rows):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(10, 80)))
        lines.append(orjson.dumps({"id": f"d{n}", "text": text}) + b"\n")
        if n % 50 == 9:
            lines.append(b"{broken\n")  # a reject
            lines.append(lines[-2])  # a duplicate
    path.write_bytes(b"".join(lines))
    return path


def local_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def bucket_tree(s3: S3, prefix: str) -> dict[str, bytes]:
    fs = s3.fs()
    base = f"{s3.bucket}/{prefix}/"
    return {key[len(base) :]: fs.cat_file(key) for key in fs.find(base)}


def assert_same(local: dict[str, bytes], remote: dict[str, bytes]) -> dict[str, Any]:
    """Every file byte for byte; the manifests equal but for their ``run`` section."""
    assert sorted(local) == sorted(remote)
    assert [n for n in local if local[n] != remote[n]] in ([], ["manifest.json"])
    a, b = orjson.loads(local["manifest.json"]), orjson.loads(remote["manifest.json"])
    a.pop("run"), b.pop("run")
    assert a == b
    return b  # type: ignore[no-any-return]


def config(s3: S3, tmp_path: Path, **more: Any) -> dict[str, Any]:
    return {"storage": {"options": s3.options, "staging": str(tmp_path / "stage")}, **more}


FORMATS = ["chatml", "jsonl"]


def test_s3_output_equals_a_local_output(
    s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = corpus(tmp_path / "in.jsonl", 300)
    monkeypatch.chdir(tmp_path)
    qudata.pack_dataset([source], tmp_path / "local", formats=FORMATS)
    uri = f"s3://{s3.bucket}/same/out"
    report = qudata.pack_dataset([source], uri, formats=FORMATS, config=config(s3, tmp_path))
    assert report.output_dir == uri
    remote = bucket_tree(s3, "same/out")
    manifest = assert_same(local_tree(tmp_path / "local"), remote)
    assert {"rejects.jsonl", "README.md", "report.html"} <= set(remote)
    assert remote["rejects.jsonl"].count(b"\n") >= 6 and any(n.startswith("jsonl/") for n in remote)
    assert manifest["counts"]
    secret = s3.options["s3"]["secret"].encode()
    assert not any(secret in body for body in remote.values())  # credentials never written
    # no local folder named after the URI, and the staging folder is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "local", "stage"]
    assert list((tmp_path / "stage").iterdir()) == []


def test_overwrite_replaces_only_a_qudata_dataset(s3: S3, tmp_path: Path) -> None:
    source = corpus(tmp_path / "in.jsonl", 120)
    uri = f"s3://{s3.bucket}/over/out"
    cfg = config(s3, tmp_path)
    qudata.pack_dataset([source], uri, formats=FORMATS, config=cfg)
    before = bucket_tree(s3, "over/out")
    with pytest.raises(OutputError, match=r"^s3://bucket/over/out: prefix is not empty \(use"):
        qudata.pack_dataset([source], uri, formats=["chatml"], config=cfg)
    assert bucket_tree(s3, "over/out") == before  # untouched
    # replaced by a dataset of one format: the other format's keys are gone
    qudata.pack_dataset([source], uri, formats=["chatml"], config=cfg, overwrite=True)
    qudata.pack_dataset([source], tmp_path / "local", formats=["chatml"])
    after = bucket_tree(s3, "over/out")
    assert_same(local_tree(tmp_path / "local"), after)
    assert not any(name.startswith("jsonl/") for name in after)
    # a prefix that is not a qudata dataset is never replaced
    fs = s3.fs()
    fs.pipe(f"{s3.bucket}/foreign/notes.txt", b"someone else's")
    with pytest.raises(OutputError, match="replaces only a qudata dataset"):
        qudata.pack_dataset(
            [source], f"s3://{s3.bucket}/foreign", formats=["chatml"], config=cfg, overwrite=True
        )
    assert bucket_tree(s3, "foreign") == {"notes.txt": b"someone else's"}


def test_an_input_under_the_output_prefix_is_refused(s3: S3, tmp_path: Path) -> None:
    s3.fs().pipe(f"{s3.bucket}/mixed/in.jsonl", b'{"text": "a"}\n')
    with pytest.raises(OutputError, match="the output prefix is or contains an input"):
        qudata.pack_dataset(
            [f"s3://{s3.bucket}/mixed/in.jsonl"], f"s3://{s3.bucket}/mixed",
            config=config(s3, tmp_path),
        )  # fmt: skip


class Proxy:
    """A TCP relay to the S3 server whose :meth:`down` is an outage: open connections
    cut, new ones refused."""

    def __init__(self, endpoint: str) -> None:
        self.target = int(endpoint.rsplit(":", 1)[1])
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        with suppress(OSError):
            while data := a.recv(1 << 16):
                b.sendall(data)
        for end in (a, b):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def down(self) -> None:
        with suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept(): no more connections
        self.listener.close()
        for end in self.sockets:
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


def test_an_outage_during_the_upload_is_one_line_and_no_manifest(
    s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = Proxy(s3.endpoint)
    options = {
        "s3": {
            **s3.options["s3"],
            "endpoint_url": f"http://127.0.0.1:{proxy.port}",
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
        }
    }
    cfg = {"storage": {"options": options, "staging": str(tmp_path / "stage")}}  # fmt: skip
    upload = RemoteOutput._upload
    calls: list[str] = []

    def failing(self: RemoteOutput, local: Path, key: str) -> None:
        calls.append(key)
        if len(calls) == 3:  # two files are in the bucket: the store goes away
            proxy.down()
        upload(self, local, key)

    monkeypatch.setattr(RemoteOutput, "_upload", failing)
    source = corpus(tmp_path / "in.jsonl", 120)
    uri = f"s3://{s3.bucket}/outage/out"
    with pytest.raises(WriteError) as caught:
        qudata.pack_dataset([source], uri, formats=FORMATS, config=cfg)
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == 1
    assert message.startswith(f"{uri}: cannot upload the dataset: ")
    assert message.endswith(f"objects could not be removed: delete {uri} yourself)")
    left = bucket_tree(s3, "outage/out")  # read directly, not through the relay
    assert "manifest.json" not in left and len(left) == 2  # no manifest: no dataset
    assert list((tmp_path / "stage").iterdir()) == []  # the local staging is gone too


def test_a_failed_upload_removes_what_it_wrote(
    s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure the store survives (here: a read-back that differs): nothing is left."""
    sha = RemoteOutput._sha256
    calls: list[str] = []

    def corrupt(self: RemoteOutput, key: str) -> str:
        calls.append(key)
        return "0" * 64 if len(calls) == 4 else sha(self, key)

    monkeypatch.setattr(RemoteOutput, "_sha256", corrupt)
    source = corpus(tmp_path / "in.jsonl", 60)
    uri = f"s3://{s3.bucket}/readback/out"
    with pytest.raises(
        WriteError,
        match=r"the stored bytes differ from the uploaded ones "
        r"\(sha256\); nothing was published \(the partial upload was removed\)",
    ):
        qudata.pack_dataset([source], uri, formats=FORMATS, config=config(s3, tmp_path))
    assert bucket_tree(s3, "readback/out") == {}
    # the prefix is free for the next run
    qudata.pack_dataset([source], uri, formats=FORMATS, config=config(s3, tmp_path))
    assert "manifest.json" in bucket_tree(s3, "readback/out")


def test_the_command_line_writes_to_the_bucket(s3: S3, tmp_path: Path) -> None:
    source = corpus(tmp_path / "in.jsonl", 40)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config(s3, tmp_path)), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    uri = f"s3://{s3.bucket}/cli/out"

    def run(*more: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "qudata", "pack", str(source), "-o", uri, "-q",
                   "--config", str(path), *more]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=240)  # fmt: skip

    first = run()
    assert first.returncode == 0, first.stderr
    assert "manifest.json" in bucket_tree(s3, "cli/out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml", "in.jsonl", "stage"]
    again = run()
    assert again.returncode == 2
    assert again.stderr == f"Error: {uri}: prefix is not empty (use --overwrite to replace it)\n"
    assert run("--overwrite").returncode == 0


@pytest.mark.parametrize(
    ("point", "said"),
    [("uploaded", "nothing was published"),
     ("published", "the complete, verified dataset was published to s3://bucket/sig/out")],
)  # fmt: skip
def test_a_signal_during_the_upload(s3: S3, tmp_path: Path, point: str, said: str) -> None:
    """SIGTERM after the first file is uploaded: the upload is removed, no manifest;
    after the manifest: the dataset is in place."""
    source = corpus(tmp_path / "in.jsonl", 60)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config(s3, tmp_path)), encoding="utf-8")
    marker = tmp_path / "paused"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "QUDATA_PAUSE_AT": point,
           "QUDATA_PAUSE_FILE": str(marker)}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "qudata", "pack", str(source), "-o", "s3://bucket/sig/out",
         "-q", "--config", str(path)],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for _ in range(1200):
        if marker.exists() or process.poll() is not None:
            break
        time.sleep(0.05)
    assert marker.exists(), "the run never paused"
    process.terminate()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143
    assert stderr == f"Interrupted: {said}\n"
    stored = bucket_tree(s3, "sig/out")
    if point == "uploaded":
        assert stored == {}
    else:
        assert "manifest.json" in stored and len(stored) == 7
    assert list((tmp_path / "stage").iterdir()) == []


@pytest.mark.cluster
def test_ray_on_two_nodes_writes_the_same_dataset(
    s3: S3, two_nodes: TwoNodes, tmp_path: Path
) -> None:
    source = corpus(tmp_path / "in.jsonl", 400)
    qudata.pack_dataset([source], tmp_path / "local", formats=FORMATS)
    cfg = config(s3, tmp_path, engine={"name": "ray", "address": two_nodes.address,
                                       "partition_size": "8KiB"})  # fmt: skip
    uri = f"s3://{s3.bucket}/ray/out"
    qudata.pack_dataset([source], uri, formats=FORMATS, config=cfg)
    remote = bucket_tree(s3, "ray/out")
    assert_same(local_tree(tmp_path / "local"), remote)
    assert orjson.loads(remote["manifest.json"])["run"]["engine"] == "ray"


def _bucket_keys(s3: S3) -> list[str]:
    return sorted(s3.fs().find(s3.bucket))


@pytest.mark.cluster
def test_a_staging_folder_one_node_does_not_see_goes_through_the_store(
    s3: S3, two_nodes: TwoNodes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nodes that share nothing but the store: the staging folder (``storage.staging``)
    is one the second node does not see, so the tasks work in scratch folders of their
    nodes and keep the staging under a prefix beside the output; S3 in and out, the
    local engine's dataset (its data files copied on the store from the staging prefix,
    not uploaded again), and neither the prefix nor the staging folder is left."""
    import s3fs

    copied: list[tuple[str, str]] = []
    copy = s3fs.S3FileSystem.copy

    def spy(self: Any, source: str, target: str, *args: Any, **kwargs: Any) -> Any:
        copied.append((source, target))
        return copy(self, source, target, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "copy", spy)
    s3fs.S3FileSystem.clear_instance_cache()  # an instance made before has its own copy
    source = corpus(tmp_path / "in.jsonl", 400)
    s3.fs().put_file(str(source), f"{s3.bucket}/mirror/in/in.jsonl")
    uri_in = f"s3://{s3.bucket}/mirror/in/*.jsonl"
    # the same partitions on both engines: a split remote input's manifest entry and card
    # row give its ranges (docs/command-line.md)
    cfg = config(s3, tmp_path, dedup={"method": "near"}, engine={"partition_size": "8KiB"})
    qudata.pack_dataset([uri_in], tmp_path / "local", formats=FORMATS, config=cfg)
    cfg["storage"]["staging"] = str(two_nodes.hidden)
    cfg["engine"] = {"name": "ray", "address": two_nodes.address, "partition_size": "8KiB"}
    uri = f"s3://{s3.bucket}/mirror/out"
    qudata.pack_dataset([uri_in], uri, formats=FORMATS, config=cfg)
    remote = bucket_tree(s3, "mirror/out")
    manifest = assert_same(local_tree(tmp_path / "local"), remote)
    assert manifest["counts"]["dropped"]["duplicate_exact"] > 0
    run = orjson.loads(remote["manifest.json"])["run"]
    assert run["engine"] == "ray" and run["workers"] == 2
    staging = run["staging"]
    assert staging["uri"] == f"s3://{s3.bucket}/mirror/.out.qudata-staging"
    assert staging["fetched"] > 0 and staging["uploaded"] > staging["pulled"] > 0
    assert [k for k in _bucket_keys(s3) if "qudata-staging" in k] == []
    assert list(two_nodes.hidden.iterdir()) == []
    data = sorted(n for n in remote if n.startswith(("chatml/", "jsonl/")) or n == "rejects.jsonl")
    staged = f"{s3.bucket}/mirror/.out.qudata-staging/"
    assert sorted((a[len(staged) :], b) for a, b in copied) == [
        (n, f"{s3.bucket}/mirror/out/{n}") for n in data if not n.endswith("README.md")
    ]


@pytest.mark.cluster
def test_an_outage_while_staged_on_the_store_is_one_line_and_resumes(
    s3: S3, two_nodes: TwoNodes, tmp_path: Path
) -> None:
    """The store goes away (a relay cut) while a map-2 task runs, its worker killed too:
    the retries fail, one line naming the staged file's URI, exit 1, nothing published,
    the staging prefix and folder kept; with the store back, ``--resume`` takes up the
    partitions the killed run staged there and publishes the undisturbed dataset."""
    proxy = Proxy(s3.endpoint)
    source = corpus(tmp_path / "in.jsonl", 600)

    def config_file(port: int) -> str:
        options = {"s3": {**s3.options["s3"], "endpoint_url": f"http://127.0.0.1:{port}",
                          "config_kwargs": {"retries": {"max_attempts": 1}}}}  # fmt: skip
        cfg = {
            "storage": {"options": options, "staging": str(two_nodes.hidden)},
            "engine": {"name": "ray", "address": two_nodes.address, "partition_size": "8KiB"},
        }
        path = tmp_path / "config.yaml"  # one path: the cards' commands name it
        path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        return str(path)

    uri = f"s3://{s3.bucket}/cut/out"
    pack = [sys.executable, "-m", "qudata", "pack", str(source), "-q", "--dedup", "none",
            "-f", "chatml", "-f", "jsonl"]  # fmt: skip
    args = [*pack, "-o", uri]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    (two_nodes.hold / "armed").write_text("write_partition")
    try:
        run = subprocess.Popen(
            [*args, "--config", config_file(proxy.port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        pid_file = two_nodes.hold / "pid"
        for _ in range(1200):
            if (pid_file.exists() and pid_file.read_text()) or run.poll() is not None:
                break
            time.sleep(0.05)
        if not pid_file.exists():
            run.kill()
            pytest.fail("no task reached the hook: " + run.communicate()[1])
        proxy.down()
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        err = run.communicate(timeout=240)[1]
    finally:
        (two_nodes.hold / "armed").unlink()
        (two_nodes.hold / "pid").unlink(missing_ok=True)
    assert run.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    staged = f"s3://{s3.bucket}/cut/.out.qudata-staging"
    assert lines[0].startswith(f"Error: {staged}/.parts/") and ": cannot " in lines[0], err
    assert lines[0].endswith("the partitions done are kept: run again with --resume")
    assert bucket_tree(s3, "cut/out") == {}  # nothing published
    kept = bucket_tree(s3, "cut/.out.qudata-staging")
    assert any(name.startswith(".parts/done/scan-") for name in kept)
    port = int(s3.endpoint.rsplit(":", 1)[1])
    resumed = subprocess.run(
        [*args, "--resume", "--config", config_file(port)],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    local = subprocess.run(
        [*pack, "-o", str(tmp_path / "local"), "--engine", "local", "--config", config_file(port)],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert local.returncode == 0, local.stderr
    remote = bucket_tree(s3, "cut/out")
    assert_same(local_tree(tmp_path / "local"), remote)
    assert orjson.loads(remote["manifest.json"])["run"]["resumed"] > 0
    assert bucket_tree(s3, "cut/.out.qudata-staging") == {}
    assert list(two_nodes.hidden.iterdir()) == []
