"""Staging through object storage against a shared staging folder, on a simulated cluster:
two raylets of 1 CPU each and moto's S3 server on 127.0.0.1 (as ``bench/cluster.py``).

    python bench/staging.py [--mb 20] [--dedup exact]

Packs one local JSON Lines file into ``s3://bench/out-*`` twice: with the staging in a
local folder both raylets see, and with ``storage.staging: s3://bench/tmp`` (every task
in a scratch folder, its files through the store). Prints the wall time of each, the
bytes the staging moved (the manifest's ``run.staging``: uploaded by the tasks, fetched
by them, downloaded by the driver) per byte of the published dataset, and the object
bytes the server sent in each run.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from cluster import WORDS, fetched, start_server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=20)
    parser.add_argument("--dedup", default="exact")
    args = parser.parse_args()
    os.environ.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    import boto3
    import ray
    import s3fs
    from ray.cluster_utils import Cluster

    import qudata

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
    rng = random.Random(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            lines, size, n = [], 0, 0
            while size < args.mb << 20:
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(50, 400)))
                lines.append(orjson.dumps({"id": f"d{n}", "text": text}) + b"\n")
                if n % 20 == 3:
                    lines.append(lines[-1])  # a duplicate
                size += len(lines[-1])
                n += 1
            source = root / "in.jsonl"
            source.write_bytes(b"".join(lines))
            for label, staging in (("shared folder", str(root / "stage")),
                                   ("through the store", "s3://bench/tmp")):  # fmt: skip
                config = {"engine": {"name": "ray", "address": cluster.address},
                          "storage": {"options": options, "staging": staging},
                          "quality": {"tokenizer": "none"}, "dedup": {"method": args.dedup},
                          "pack": {"formats": ["chatml", "jsonl"]}}  # fmt: skip
                out = f"bench/out-{label.split()[0]}"
                fetched(endpoint, reset=True)
                start = time.time()
                qudata.pack_dataset([source], f"s3://{out}", config=config)
                wall = time.time() - start
                sent = fetched(endpoint)
                published = sum(fs.du(out, total=False).values())
                manifest = orjson.loads(fs.cat_file(f"{out}/manifest.json"))
                moved = manifest["run"].get("staging")
                line = (f"{label}: input {source.stat().st_size / 1e6:.1f} MB, published "
                        f"{published / 1e6:.1f} MB, wall {wall:.1f} s, server sent "
                        f"{sent / 1e6:.1f} MB")  # fmt: skip
                if moved:
                    per = {k: moved[k] / published for k in ("uploaded", "fetched", "pulled")}
                    line += ", staging per published byte: " + ", ".join(
                        f"{k} {v:.2f}" for k, v in per.items()
                    )
                print(line, flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
        process.kill()


if __name__ == "__main__":
    main()
