"""The staging kept on object storage (``engines/ray_staging.py``, ``ray_scratch.py``),
without Ray: a call runs in a scratch folder, fetches what it reads (checked by sha256),
uploads what it writes; the driver's index, its file view and ``--resume``'s rebuild.
The prefix is a ``file://`` URI (fsspec's local file system, as a store)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from qudata.config import load_config
from qudata.engines.ray_scratch import Mismatch, mirrored, run_folder
from qudata.engines.ray_staging import Mirror, staging_prefix
from qudata.plan.job import Job


def write_two(a: Path, b: Path) -> int:
    a.parent.mkdir(parents=True, exist_ok=True)
    a.write_bytes(b"alpha\n")
    b.parent.mkdir(parents=True, exist_ok=True)
    b.write_bytes(b"beta\n" * 3)
    return 2


def consume(a: Path, out: Path) -> bytes:
    data = a.read_bytes()
    a.unlink()  # as the commit consumes a part
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data.upper())
    return data


def call(mirror: Mirror, function: object, *args: object) -> object:
    sync = mirror.sync_for(function, args)  # type: ignore[arg-type]
    result, changes = mirrored(function, args, sync)  # type: ignore[arg-type]
    mirror.apply(changes)
    return result


@pytest.fixture
def mirror(tmp_path: Path) -> Mirror:
    root = tmp_path / "driver" / "staging"
    root.mkdir(parents=True)
    return Mirror((tmp_path / "store").as_uri() + "/run", root)


def test_a_call_fetches_what_it_reads_and_uploads_what_it_writes(
    mirror: Mirror, tmp_path: Path
) -> None:
    root, store = mirror.root, tmp_path / "store" / "run"
    a, b = root / ".parts" / "x" / "a.part", root / ".parts" / "y" / "b.part"
    assert call(mirror, write_two, a, b) == 2
    assert not a.exists()  # the task wrote in its scratch folder, not in the driver's
    assert (store / ".parts/x/a.part").read_bytes() == b"alpha\n"
    assert mirror.index[".parts/x/a.part"] == (6, hashlib.sha256(b"alpha\n").hexdigest())
    assert mirror.size(b) == 15 and mirror.size(root / "none") is None
    out = root / "chatml" / "train.jsonl"  # not a part: the driver downloads it
    assert call(mirror, consume, a, out) == b"alpha\n"
    assert out.read_bytes() == b"ALPHA\n"
    assert not (store / ".parts/x/a.part").exists() and ".parts/x/a.part" not in mirror.index
    assert mirror.moved == {"fetched": 6, "uploaded": 27, "pulled": 6}
    mirror.remove(b)  # the driver's own steps (the dedup step's spill)
    assert not (store / ".parts/y/b.part").exists()
    mirror.close()
    assert not store.exists()


def test_a_changed_staged_file_is_an_error_naming_it(mirror: Mirror, tmp_path: Path) -> None:
    root, store = mirror.root, tmp_path / "store" / "run"
    a, b = root / ".parts" / "x" / "a.part", root / ".parts" / "y" / "b.part"
    call(mirror, write_two, a, b)
    (store / ".parts/x/a.part").write_bytes(b"alphA\n")  # same size, other bytes
    with pytest.raises(Mismatch, match=r"/run/\.parts/x/a\.part: the staged file is not "
                       r"the one its task wrote \(sha256 differs\)"):  # fmt: skip
        call(mirror, consume, a, root / "out")
    (store / ".parts/x/a.part").unlink()
    with pytest.raises(Mismatch, match="missing from the staging prefix"):
        call(mirror, consume, a, root / "out")


def test_resume_rebuilds_the_index_from_the_records(tmp_path: Path) -> None:
    """A killed run's records name their files with their sha256: those are indexed; a
    record whose first line is not its body's sha256, and files no record names, are not.
    The stage that takes a record fetches it and its files; missing ones are left out."""
    store = tmp_path / "store" / "run"
    root = tmp_path / "staging"
    root.mkdir()
    (store / ".parts/dedup").mkdir(parents=True)
    (store / ".parts/done").mkdir(parents=True)
    (store / ".parts/dedup/000000.pos").write_bytes(b"12345678")
    (store / ".parts/dedup/000001.pos").write_bytes(b"stray")
    files = {"dedup/000000.pos": hashlib.sha256(b"12345678").hexdigest(),
             "dedup/000000.keys": "0" * 64}  # fmt: skip
    body = orjson.dumps({"stage": "scan", "partition": 0, "files": files, "result": {}})
    good = hashlib.sha256(body).hexdigest().encode() + b"\n" + body
    (store / ".parts/done/scan-000000.json").write_bytes(good)
    (store / ".parts/done/scan-000001.json").write_bytes(b"0" * 64 + b"\n" + body)
    mirror = Mirror((tmp_path / "store").as_uri() + "/run", root, resume=True)
    assert sorted(mirror.index) == [".parts/dedup/000000.pos", ".parts/done/scan-000000.json"]
    job = Job(load_config(None), root, [])
    job.resume = True
    from qudata.stages.scan import scan_partition

    sync = mirror.sync_for(scan_partition, (job, 0))
    assert sorted(sync.fetch) == [".parts/dedup/000000.pos", ".parts/done/scan-000000.json"]
    assert set(sync.fetch) <= sync.optional
    (store / ".parts/dedup/000000.pos").write_bytes(b"changed!")  # left out, not an error

    def reads(job: Job, index: int) -> list[str]:
        return sorted(p.relative_to(job.staging).as_posix() for p in job.staging.rglob("*"))

    reads.__name__ = "scan_partition"
    found, changes = mirrored(reads, (job, 0), mirror.sync_for(reads, (job, 0)))
    assert ".parts/done/scan-000000.json" in found and ".parts/dedup/000000.pos" not in found
    assert changes.written == {} and changes.removed == []
    mirror.close()
    assert not store.exists()


def test_the_staging_prefix() -> None:
    assert staging_prefix("s3://b/data/out", None) == "s3://b/data/.out.qudata-staging"
    assert staging_prefix("s3://b/out/", "/mnt/x") == "s3://b/.out.qudata-staging"
    assert staging_prefix("s3://b", None) is None  # a bucket's root: nothing beside it
    assert staging_prefix("/data/out", None) is None
    digest = hashlib.sha256(b"/data/out").hexdigest()[:16]
    assert staging_prefix("/data/out", "gs://t/tmp/") == f"gs://t/tmp/qudata-{digest}"


def test_a_staging_prefix_in_an_input_folder_is_refused(tmp_path: Path) -> None:
    import qudata
    from qudata.errors import ConfigError

    source = tmp_path / "in" / "a.jsonl"
    source.parent.mkdir()
    source.write_bytes(b'{"text": "one"}\n{"text": "two"}\n')
    folder = source.parent.as_uri()
    with pytest.raises(ConfigError, match=r"storage.staging .* lies in the input "):
        qudata.pack_dataset([folder], tmp_path / "out",
                            config={"storage": {"staging": folder + "/tmp"}})  # fmt: skip
    # the local engine with a URI staging: a local temporary folder, nothing named "file:"
    out = (tmp_path / "out").as_uri()
    report = qudata.pack_dataset([folder], out, config={"storage": {"staging": "s3://b/t"}})
    assert report.output_dir == out and (tmp_path / "out" / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]


def test_each_stage_fetches_only_what_it_reads(mirror: Mirror) -> None:
    """The table per stage function: map 2 its partition's dedup verdicts and checks'
    verdicts, the mix survey its scan's mix part too, a format's commit that format's
    recorded parts (not the other formats', not another partition's)."""
    from qudata.driver import _commit
    from qudata.stages.mix import survey_partition
    from qudata.stages.write import write_partition

    job = Job(load_config({"dedup": {"method": "exact"}}), mirror.root, [])
    for n in range(3):
        for name in (f"dedup/{n:06d}.pos", f"dedup/{n:06d}.keys", f"dedup/{n:06d}.sig",
                     f"dedup/{n:06d}.verdicts.npz", f"checks/{n:06d}.part",
                     f"mix/{n:06d}.part", f"chatml/{n:06d}.part", f"jsonl/{n:06d}.part",
                     f"rejects/{n:06d}.part"):  # fmt: skip
            mirror.index[f".parts/{name}"] = (10, "0" * 64)
    dedup = [f".parts/dedup/000001{s}" for s in (".keys", ".pos", ".verdicts.npz")]
    write = mirror.sync_for(write_partition, (job, 1)).fetch
    assert sorted(write) == [".parts/checks/000001.part", *dedup]
    survey = mirror.sync_for(survey_partition, (job, 1)).fetch
    assert sorted(survey) == [*dedup, ".parts/mix/000001.part"]
    commit = mirror.sync_for(_commit, (job, "jsonl", {}, ["a", None, "c"])).fetch
    assert sorted(commit) == [".parts/jsonl/000000.part", ".parts/jsonl/000002.part"]
    rejects = mirror.sync_for(_commit, (job, None, {}, ["a", "b", None])).fetch
    assert sorted(rejects) == [".parts/rejects/000000.part", ".parts/rejects/000001.part"]
    job.cfg = load_config({"dedup": {"method": "none"}})
    assert sorted(mirror.sync_for(write_partition, (job, 2)).fetch) == [".parts/checks/000002.part"]


def test_what_a_call_names_in_its_data_is_fetched_on_first_use(
    mirror: Mirror, tmp_path: Path
) -> None:
    """A dedup step's data-dependent reads (here: ``assemble``'s kept documents' ids):
    only the partitions the call asks for through ``need`` are fetched."""
    from qudata.io.on_demand import need

    folder = mirror.root / ".parts" / "dedup"
    for n in range(4):
        (tmp_path / "store/run/.parts/dedup").mkdir(parents=True, exist_ok=True)
        body = f"ids of {n}".encode()
        (tmp_path / f"store/run/.parts/dedup/{n:06d}.ids").write_bytes(body)
        mirror.index[f".parts/dedup/{n:06d}.ids"] = (len(body), hashlib.sha256(body).hexdigest())

    def assemble(directory: Path, partition: int) -> list[bytes]:
        return [need(directory / f"{n:06d}.ids").read_bytes() for n in (partition, 3, 3)]

    sync = mirror.sync_for(assemble, (folder, 1))
    assert sync.fetch == {} and len(sync.lazy) == 4
    result, changes = mirrored(assemble, (folder, 1), sync)
    assert result == [b"ids of 1", b"ids of 3", b"ids of 3"]
    assert changes.fetched == 16 and changes.written == {} and changes.removed == []


def test_resume_fetches_the_files_a_stage_s_own_record_names(tmp_path: Path) -> None:
    """A record as a stage writes it (:func:`qudata.stages.resume.record`: its files by
    their xxh3-128) on the prefix: the stage that takes it up fetches the record and its
    part, checked against that digest; a part changed since is left out (computed again)."""
    import shutil

    from qudata.stages.resume import record

    root = tmp_path / "staging"
    job = Job(load_config(None), root, [])
    part = job.part_file("jsonl", 0)
    part.parent.mkdir(parents=True)
    part.write_bytes(b'{"text": "one"}\n')
    record(job, "write", 0, {}, [part])
    store = tmp_path / "store" / "run"
    shutil.copytree(root / ".parts", store / ".parts")  # what the killed run staged
    shutil.rmtree(root / ".parts")
    mirror = Mirror((tmp_path / "store").as_uri() + "/run", root, resume=True)
    job.resume = True

    def reads(job: Job, index: int) -> list[str]:
        files = job.staging.rglob("*")
        return sorted(p.relative_to(job.staging).as_posix() for p in files if p.is_file())

    reads.__name__ = "write_partition"
    found, _ = mirrored(reads, (job, 0), mirror.sync_for(reads, (job, 0)))
    assert found == [".parts/done/write-000000.json", ".parts/jsonl/000000.part"]
    (store / ".parts/jsonl/000000.part").write_bytes(b'{"text": "two"}\n')
    shutil.rmtree(run_folder(mirror.run) / "cache")  # a node that has not fetched it yet
    found, _ = mirrored(reads, (job, 0), mirror.sync_for(reads, (job, 0)))
    assert found == [".parts/done/write-000000.json"]
    mirror.close()
