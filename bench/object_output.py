"""The cost of an object-storage commit (``-o s3://...``) against a local ``-o`` (issue 23).

    head -c 50000000 /tmp/c200.jsonl | sed '$d' > /tmp/c50.jsonl
    PYTHONPATH=src python bench/object_output.py /tmp/c50.jsonl [-f chatml ...] [--rounds 2]

moto's S3 server (the tests' ``tests/engines/s3_server.py``) on 127.0.0.1, local engine.
Per round: one run into a local folder, one into ``s3://bench/out`` (``--overwrite``
after the first), timing the whole run and, inside the second, the upload with its
read-back (:meth:`qudata.io.remote_output.RemoteOutput.publish`); then checks that the two
datasets are the same, byte for byte (the manifest but its ``run`` section).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from cluster import fetched, start_server

import qudata
from qudata.io.remote_output import RemoteOutput


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus")
    parser.add_argument("-f", "--format", action="append", dest="formats")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    import boto3
    import s3fs

    process, endpoint = start_server()
    creds = {"key": "k", "secret": "s", "client_kwargs": {"region_name": "us-east-1"}}
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s",
                 region_name="us-east-1").create_bucket(Bucket="bench")  # fmt: skip
    fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True, **creds)
    spent: list[float] = []
    original = RemoteOutput.publish

    def timed(self: RemoteOutput, *a: Any, **k: Any) -> None:
        start = time.perf_counter()
        original(self, *a, **k)
        spent.append(time.perf_counter() - start)

    RemoteOutput.publish = timed  # type: ignore[method-assign]
    reading: list[float] = []
    sha = RemoteOutput._sha256

    def timed_sha(self: RemoteOutput, key: str) -> str:
        start = time.perf_counter()
        try:
            return sha(self, key)
        finally:
            reading.append(time.perf_counter() - start)

    RemoteOutput._sha256 = timed_sha  # type: ignore[method-assign]
    work = Path(tempfile.mkdtemp(prefix="objstore-bench-"))
    config = {"storage": {"options": {"s3": {"endpoint_url": endpoint, **creds}},
                          "staging": str(work / "stage")}}  # fmt: skip
    try:
        for n in range(args.rounds):
            start = time.perf_counter()
            qudata.pack_dataset(args.corpus, work / "local", formats=args.formats, overwrite=True)
            local = time.perf_counter() - start
            fetched(endpoint, reset=True)
            reading.clear()
            start = time.perf_counter()
            qudata.pack_dataset(args.corpus, "s3://bench/out", formats=args.formats,
                                config=config, overwrite=True)  # fmt: skip
            remote = time.perf_counter() - start
            read_back = fetched(endpoint)
            files = {p.relative_to(work / "local").as_posix(): p.read_bytes()
                     for p in (work / "local").rglob("*") if p.is_file()}  # fmt: skip
            size = sum(len(b) for b in files.values())
            stored = {k[len("bench/out/") :]: fs.cat_file(k) for k in fs.find("bench/out/")}
            assert sorted(stored) == sorted(files)
            for name, body in files.items():
                if name == "manifest.json":
                    a, b = orjson.loads(body), orjson.loads(stored[name])
                    a.pop("run"), b.pop("run")
                    assert a == b
                else:
                    assert stored[name] == body, name
            print(
                f"round {n + 1}: local -o {local:.2f} s, s3 -o {remote:.2f} s "
                f"(+{100 * (remote - local) / local:.1f}%), upload+read-back {spent[-1]:.2f} s "
                f"({100 * spent[-1] / remote:.1f}% of the s3 run; read-back {sum(reading):.2f} s), "
                f"output {size / 1e6:.1f} MB "
                f"in {len(files)} files, read back {read_back / 1e6:.1f} MB; identical"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        process.kill()
        process.wait()


if __name__ == "__main__":
    main()
