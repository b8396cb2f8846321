"""The Ray engine on a simulated cluster: two raylets of 1 CPU each and an S3-compatible
server (moto's) on 127.0.0.1 (see ``conftest.py``).

Remote inputs are read in ranged requests and partitioned as local ones (each byte
fetched about twice: the two passes); the output equals the local engine's on the same
files; a killed worker is retried and the run ends as if nothing happened; a staging
folder one node cannot see and an unreachable store are one ``Error:`` line each
(object-storage output: ``test_object_output.py``).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

import qudata

S3 = TwoNodes = Any  # the fixtures of conftest.py

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

WORDS = [f"{stem}{n}" for stem in ("node", "bucket", "range", "retry") for n in range(12)]


def big_jsonl(path: Path, rows: int, seed: int = 5) -> bytes:
    rng = random.Random(seed)
    lines = []
    for n in range(rows):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(20, 120)))
        row: dict[str, Any] = {"id": f"r{n}", "text": text, "quality_score": rng.random()}
        if n % 97 == 5:
            row = {"id": f"r{n}", "text": lines[0] and "repeat " + WORDS[n % 7]}
        lines.append(orjson.dumps(row) + b"\n")
        if n % 400 == 7:
            lines.append(b"{not json\n")
    data = b"".join(lines)
    path.write_bytes(data)
    return data


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def same_dataset(
    local: Path, remote: Path, uris: dict[str, str], engines: tuple[str, str] = ("local", "ray")
) -> dict[str, Any]:
    """Every file equal, once the local inputs' paths are read as their URIs (``uris``),
    but the manifest, which differs in its ``run`` section and its remote inputs'
    entries only (:func:`same_inputs`), and the report (its charts' layout follows the
    names' length); the remote run's manifest."""
    a, b = tree(local), tree(remote)
    for path, uri in uris.items():
        a = {name: body.replace(path.encode(), uri.encode()) for name, body in a.items()}
    assert sorted(a) == sorted(b)
    ma, mb = orjson.loads(a["manifest.json"]), orjson.loads(b["manifest.json"])
    for old, new in zip(ma["inputs"], mb["inputs"], strict=True):
        if (
            "pieces" in new and "README.md" in a
        ):  # the card names its ranges, not the whole file's sha256
            shown = f"{len(new['pieces']):,} ranges (`manifest.json`)"
            a["README.md"] = a["README.md"].replace(
                f"`{old['sha256'][:16]}`".encode(), shown.encode()
            )
    # report.html: the charts' layout follows the length of the sources' names
    differ = [n for n in a if a[n] != b[n]]
    assert differ in ([], ["manifest.json"], ["manifest.json", "report.html"], ["report.html"])
    assert (ma.pop("run")["engine"], mb.pop("run")["engine"]) == engines
    same_inputs(ma.pop("inputs"), mb["inputs"])
    assert ma == {k: v for k, v in mb.items() if k != "inputs"}
    return mb  # type: ignore[no-any-return]


def same_inputs(local: list[dict[str, Any]], remote: list[dict[str, Any]]) -> None:
    """A remote input's entry is the local file's, with the store's size and ETag; a
    file cut into ranges gives each range's sha256 instead of the whole file's."""
    assert [(e["path"], e["records"]) for e in local] == [(e["path"], e["records"]) for e in remote]
    for old, new in zip(local, remote, strict=True):
        assert set(old) == {"path", "sha256", "records"}
        assert new["size"] > 0 and new["etag"].strip('"'), new
        if "pieces" in new:
            assert new["sha256"] is None and new["pieces"][-1]["end"] == new["size"]
        else:
            assert new["sha256"] == old["sha256"] and set(new) == {*old, "size", "etag"}


def cli(
    *args: str, config: dict[str, Any] | None = None, tmp: Path
) -> subprocess.CompletedProcess[str]:
    """``qudata pack`` in its own process (the driver of a real run), with ``config``."""
    command = [sys.executable, "-m", "qudata", "pack", *args]
    if config is not None:
        command += ["--config", _config_file(config, tmp)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)


def ray_config(two_nodes: TwoNodes, s3: S3 | None = None, **more: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"engine": {"name": "ray", "address": two_nodes.address}, **more}
    if s3 is not None:
        config["storage"] = {"options": s3.options}
    return config


def test_large_remote_jsonl_is_cut_and_read_in_ranges(
    s3: S3, two_nodes: TwoNodes, tmp_path: Path
) -> None:
    source = tmp_path / "big.jsonl"
    data = big_jsonl(source, 6000)
    s3.fs().pipe(f"{s3.bucket}/in/big.jsonl", data)
    uri = f"s3://{s3.bucket}/in/big.jsonl"
    common = {"dedup": {"method": "exact"}, "engine": {"partition_size": len(data) // 5}}
    qudata.pack_dataset([str(source)], tmp_path / "local", config=common)
    s3.reset()
    config = {**common, **ray_config(two_nodes, s3)}
    config["engine"] = {**common["engine"], **config["engine"]}
    qudata.pack_dataset([uri], tmp_path / "ray", config=config)
    fetched, requests = s3.fetched()
    manifest = same_dataset(tmp_path / "local", tmp_path / "ray", {str(source): uri})
    [entry] = manifest["inputs"]
    assert entry["records"] == 6000 + 15
    assert (entry["size"], entry["etag"]) == (len(data), s3.fs().info(uri)["ETag"])
    assert len(entry["pieces"]) >= 5
    for piece in entry["pieces"]:
        start, end = piece["start"], piece["end"]
        assert piece["sha256"] == hashlib.sha256(data[start:end]).hexdigest()
    ratio = fetched / len(data)
    print(f"bytes fetched / input bytes: {ratio:.2f} ({requests} requests)")
    # both passes read every partition once (ranged reads, the cuts 64 KiB each); the
    # whole file is never read again for its sha256 (the manifest gives its ranges')
    assert 2.0 <= ratio <= 2.1, ratio
    secret = s3.options["s3"]["secret"].encode()
    assert all(secret not in body for body in tree(tmp_path / "ray").values())


def test_small_remote_files_and_a_text_folder(s3: S3, two_nodes: TwoNodes, tmp_path: Path) -> None:
    """A folder of small text files and JSON Lines files on S3 (slices of text files are
    fetched concurrently) gives the local folder's dataset."""
    root = tmp_path / "notes"
    rng = random.Random(9)
    fs = s3.fs()
    for n in range(60):
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(5, 80))) + "\n"
        name = f"sub{n % 3}/note{n:03d}.{'md' if n % 4 else 'txt'}"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body, encoding="utf-8")
        fs.pipe(f"{s3.bucket}/notes/{name}", body.encode())
    config = {"dedup": {"method": "near"}, "engine": {"partition_size": 2048}}
    qudata.pack_dataset([str(root)], tmp_path / "local", config=config)
    remote = {**config, **ray_config(two_nodes, s3)}
    remote["engine"] = {**config["engine"], **remote["engine"]}
    s3.reset()
    qudata.pack_dataset([f"s3://{s3.bucket}/notes"], tmp_path / "ray", config=remote)
    requests = s3.requests()
    uris = {str(root / f"sub{n}"): f"s3://{s3.bucket}/notes/sub{n}" for n in range(3)}
    manifest = same_dataset(tmp_path / "local", tmp_path / "ray", uris)
    assert manifest["counts"]["read"] == 60
    # each file once per pass, never a listing or a metadata request per file (the
    # driver's listing gave every size and ETag)
    assert requests["get"] == 120 and requests["head"] == 0 and requests["list"] <= 8


@pytest.mark.parametrize("staged", [False, True], ids=["shared", "through-the-store"])
def test_a_killed_worker_is_retried(two_nodes: TwoNodes, tmp_path: Path, staged: bool) -> None:
    """kill -9 of the worker running a stage task: Ray runs the task again, the run ends
    with exit 0 and the dataset of an undisturbed run (also with the staging kept on
    object storage, ``storage.staging`` a URI: the task runs again in a new scratch
    folder)."""
    source = tmp_path / "in.jsonl"
    big_jsonl(source, 3000, seed=11)
    config = ray_config(two_nodes)
    config["engine"]["partition_size"] = 40_000
    if staged:
        config["storage"] = {"staging": (tmp_path / "store").as_uri()}
    args = [str(source), "-f", "chatml", "-f", "jsonl", "--tokenizer", "none", "-q",
            "--config", _config_file(config, tmp_path)]  # fmt: skip
    clean = cli(*args, "-o", str(tmp_path / "clean"), tmp=tmp_path)
    assert clean.returncode == 0, clean.stderr
    (two_nodes.hold / "armed").touch()
    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "qudata", "pack", *args, "-o", str(tmp_path / "killed")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )  # fmt: skip
        pid_file = two_nodes.hold / "pid"
        for _ in range(1200):
            if (pid_file.exists() and pid_file.read_text()) or run.poll() is not None:
                break
            time.sleep(0.05)
        if not pid_file.exists():
            run.kill()
            pytest.fail("no task reached the hook: " + run.communicate()[1])
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        err = run.communicate(timeout=240)[1]
    finally:
        (two_nodes.hold / "armed").unlink()
        (two_nodes.hold / "pid").unlink(missing_ok=True)
    assert run.returncode == 0, err
    a, b = tree(tmp_path / "clean"), tree(tmp_path / "killed")
    assert sorted(a) == sorted(b)
    differ = [n for n in a if a[n] != b[n]]  # the manifest's run section too
    if not staged:
        assert differ == []
    else:  # but the bytes the staging moved: the killed task's are not counted
        assert differ in ([], ["manifest.json"])
        ma, mb = orjson.loads(a["manifest.json"]), orjson.loads(b["manifest.json"])
        store = (tmp_path / "store").as_uri() + "/qudata-"
        assert ma["run"].pop("staging")["uri"].startswith(store)
        assert mb["run"].pop("staging")["uri"].startswith(store)
        assert ma == mb
        assert list((tmp_path / "store").rglob("*")) == []


def _config_file(config: dict[str, Any], tmp: Path) -> str:
    path = tmp / f"config-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return str(path)


def test_a_folder_one_node_does_not_see_is_refused(two_nodes: TwoNodes, tmp_path: Path) -> None:
    """The second node's tasks cannot see ``two_nodes.hidden`` (a head-only disk): the run
    stops before its first task, one line, exit 2, nothing written there."""
    source = tmp_path / "in.jsonl"
    big_jsonl(source, 200)
    out = two_nodes.hidden / "out"
    run = cli(str(source), "-o", str(out), "-q", config=ray_config(two_nodes), tmp=tmp_path)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), run.stderr
    assert "not shared by the nodes" in lines[0] and two_nodes.nodes[1][:12] in lines[0]
    assert list(two_nodes.hidden.iterdir()) == []  # no dataset, no staging, no lock left
    shared = cli(str(source), "-o", str(tmp_path / "out"), "-q", config=ray_config(two_nodes),
                 tmp=tmp_path)  # fmt: skip
    assert shared.returncode == 0, shared.stderr


def test_unreachable_storage_is_one_line(two_nodes: TwoNodes, tmp_path: Path) -> None:
    options = {"s3": {"endpoint_url": "http://127.0.0.1:9", "key": "k", "secret": "s",
                      "client_kwargs": {"region_name": "us-east-1"}}}  # fmt: skip
    config = {**ray_config(two_nodes), "storage": {"options": options}}
    uri = "s3://bucket/in/big.jsonl"
    run = cli(uri, "-o", str(tmp_path / "out"), "-q", config=config, tmp=tmp_path)
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {uri}: cannot list"), run.stderr
    assert not (tmp_path / "out").exists()


def test_remote_identity_follows_a_rewrite(s3: S3) -> None:
    """What ``--resume`` compares for a remote input: its size and ETag, from the listing
    of the run that reads it; storage options set the endpoint and the credentials."""
    from qudata.engines.ray_inputs import expand_sources
    from qudata.io.uri import configure, remote_identity

    configure(s3.options)
    uri = f"s3://{s3.bucket}/fingerprint/a.jsonl"
    try:
        s3.fs().pipe(uri, b'{"text": "one"}\n')
        [source] = expand_sources([f"s3://{s3.bucket}/fingerprint"]).sources
        before = remote_identity(source.path)
        s3.fs().pipe(uri, b'{"text": "two"}\n')  # the same size, other bytes
        expand_sources([f"s3://{s3.bucket}/fingerprint"])
        after = remote_identity(source.path)
    finally:
        configure({})
    assert before["size"] == after["size"] == 16
    assert before["etag"] != after["etag"]


def test_storage_lost_mid_run_fails_in_one_line_and_resumes(
    two_nodes: TwoNodes, new_s3: Any, tmp_path: Path
) -> None:
    """The store goes away while a task runs: the retries fail, one line naming the URI,
    exit 1, nothing published, the partitions done kept; once the store is back,
    ``--resume`` ends the run with the dataset of an undisturbed one."""
    source = tmp_path / "in.jsonl"
    data = big_jsonl(source, 1500, seed=3)
    server = new_s3()
    port = int(server.endpoint.rsplit(":", 1)[1])
    uri = f"s3://{server.bucket}/in.jsonl"
    server.fs().pipe(uri, data)
    options = server.options
    options["s3"]["config_kwargs"] = {"retries": {"max_attempts": 1}}  # fail fast
    config = {**ray_config(two_nodes), "storage": {"options": options}}
    config["engine"]["partition_size"] = 30_000
    # --dedup none: the dedup step removes key files that the scans' records name (a resumed
    # run then scans again); a limit of --resume, not of the cluster
    args = [uri, "-f", "jsonl", "--tokenizer", "none", "--dedup", "none", "-q", "--config",
            _config_file(config, tmp_path)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = tmp_path / "out"
    (two_nodes.hold / "armed").write_text("write_partition")  # every scan recorded
    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "qudata", "pack", *args, "-o", str(out)],
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
        server.process.kill()
        server.process.wait()
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        err = run.communicate(timeout=240)[1]
    finally:
        (two_nodes.hold / "armed").unlink()
        (two_nodes.hold / "pid").unlink(missing_ok=True)
        server.process.kill()
    assert run.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {uri}: cannot read: "), err
    assert lines[0].endswith("run again with --resume")
    assert not out.exists() and len(list(tmp_path.glob(".out.qudata-partial-*"))) == 1
    server = new_s3(port)  # the store is back, with the same object (the same ETag)
    try:
        server.fs().pipe(uri, data)
        resumed = cli(*args, "-o", str(out), "--resume", tmp=tmp_path)
        clean = cli(*args, "-o", str(tmp_path / "clean"), tmp=tmp_path)
    finally:
        server.process.kill()
        server.process.wait()
    assert resumed.returncode == 0 and clean.returncode == 0, resumed.stderr + clean.stderr
    a, b = tree(tmp_path / "clean"), tree(out)
    assert [n for n in a if a[n] != b[n]] == ["manifest.json"]
    ma, mb = orjson.loads(a["manifest.json"]), orjson.loads(b["manifest.json"])
    assert mb["run"].pop("resumed") > 0 and ma["run"].pop("resumed") == 0
    assert ma == mb


def test_the_local_engine_reads_s3_too(s3: S3, tmp_path: Path) -> None:
    """Without Ray: the same listing, ranged reads and storage options, also in the
    local engine's worker processes."""
    source = tmp_path / "local.jsonl"
    data = big_jsonl(source, 1200, seed=8)
    uri = f"s3://{s3.bucket}/local-engine/local.jsonl"
    s3.fs().pipe(uri, data)
    config = {"engine": {"workers": 2, "partition_size": len(data) // 4}}
    qudata.pack_dataset([str(source)], tmp_path / "disk", config=config)
    qudata.pack_dataset(
        [uri], tmp_path / "s3", config={**config, "storage": {"options": s3.options}}
    )
    manifest = same_dataset(
        tmp_path / "disk", tmp_path / "s3", {str(source): uri}, engines=("local", "local")
    )
    assert manifest["inputs"][0]["path"] == uri


def test_a_lost_node_is_retried(two_nodes: TwoNodes, tmp_path: Path) -> None:
    """The second node dies while one of its tasks runs: Ray runs its tasks again on the
    head node; exit 0 and the dataset of an undisturbed run. (The last test of the
    module: the cluster has one node after it.)"""
    source = tmp_path / "in.jsonl"
    big_jsonl(source, 3000, seed=12)
    config = ray_config(two_nodes)
    config["engine"]["partition_size"] = 40_000
    args = [str(source), "-f", "jsonl", "--tokenizer", "none", "-q",
            "--config", _config_file(config, tmp_path)]  # fmt: skip
    clean = cli(*args, "-o", str(tmp_path / "clean"), tmp=tmp_path)
    assert clean.returncode == 0, clean.stderr
    (two_nodes.hold / "armed").write_text(f"node={two_nodes.nodes[1]}")
    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "qudata", "pack", *args, "-o", str(tmp_path / "lost")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )  # fmt: skip
        pid_file = two_nodes.hold / "pid"
        for _ in range(1200):
            if (pid_file.exists() and pid_file.read_text()) or run.poll() is not None:
                break
            time.sleep(0.05)
        if not pid_file.exists():
            run.kill()
            pytest.fail("no task reached the hook: " + run.communicate()[1])
        second = next(n for n in two_nodes.cluster.worker_nodes)
        two_nodes.cluster.remove_node(second, allow_graceful=False)
        err = run.communicate(timeout=240)[1]
    finally:
        (two_nodes.hold / "armed").unlink()
        (two_nodes.hold / "pid").unlink(missing_ok=True)
    assert run.returncode == 0, err
    a, b = tree(tmp_path / "clean"), tree(tmp_path / "lost")
    assert sorted(a) == sorted(b)
    differ = [n for n in a if a[n] != b[n]]
    assert differ in ([], ["manifest.json"])  # its run section counts the workers
    ma, mb = orjson.loads(a["manifest.json"]), orjson.loads(b["manifest.json"])
    ma.pop("run"), mb.pop("run")
    assert ma == mb
