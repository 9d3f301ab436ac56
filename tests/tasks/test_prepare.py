"""Preparing a task: real downloads over a loopback HTTP server, real files, real hashes."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tasks._manifest import MANIFEST_NAME, human
from tasks._prepare import Plan, Source, prepare, require_prepared, status
from tasks.exceptions import (
    BuildError, ChecksumError, DiskSpaceError, DownloadError, NotPreparedError, PrepareError,
)
from tests.tasks.loopback import COMMIT, Loopback

RECIPE = b"print('train')\n" * 50
SHARD = bytes(range(256)) * 400  # 102,400 bytes
TARBALL = b"labels:" + bytes(range(7)) * 3000


@pytest.fixture
def server():
    with Loopback() as s:
        yield s


def build_fixture(root: Path) -> None:
    """A build like the real tasks': derive public/, hidden/ and recipe/ in a temp dir, then rename."""
    tmp = Path(tempfile.mkdtemp(prefix=".build.", dir=root))
    (tmp / "public").mkdir()
    (tmp / "hidden").mkdir()
    (tmp / "recipe").mkdir()
    os.link(root / "data" / "shard.bin", tmp / "public" / "shard.bin")  # big files: hard links, no copy
    (tmp / "hidden" / "labels.bin").write_bytes((root / "downloads" / "cifar.tar").read_bytes()[7:])
    (tmp / "recipe" / "train.py").write_bytes((root / "upstream" / "train.py").read_bytes() + b"# patched\n")
    for sub in ("public", "hidden", "recipe"):
        if (root / sub).exists():
            shutil.rmtree(root / sub)
        os.replace(tmp / sub, root / sub)
    tmp.rmdir()


def make_plan(server: Loopback, build=build_fixture, **changes) -> Plan:
    server.add("train.py", RECIPE)
    server.add("cifar.tar", TARBALL)
    server.add_hf("fixtures/golf-data", "shards/shard.bin", SHARD, revision=COMMIT)
    sources = (
        Source("upstream/train.py", url=f"{server.url}/files/train.py", sha256=hashlib.sha256(RECIPE).hexdigest()),
        Source("downloads/cifar.tar", url=f"{server.url}/files/cifar.tar", size=len(TARBALL),
               md5=hashlib.md5(TARBALL).hexdigest()),
        Source("data/shard.bin", hf_repo="fixtures/golf-data", hf_file="shards/shard.bin", hf_revision=COMMIT,
               sha256=hashlib.sha256(SHARD).hexdigest()),
    )
    fields = dict(sources=sources, build=build, download_bytes=len(RECIPE) + len(TARBALL) + len(SHARD),
                  built_bytes=len(TARBALL) + len(RECIPE), notes="fixture data, no licence needed")
    return Plan(**{**fields, **changes})


def run(server: Loopback, plan: Plan, root: Path, **kw):
    return prepare("fake", plan, root, hf_endpoint=server.url, **kw)


def test_fresh_prepare_fetches_verifies_builds_and_records(server, tmp_path):
    root = tmp_path / "fake"
    manifest = run(server, make_plan(server), root)
    assert (root / "upstream" / "train.py").read_bytes() == RECIPE
    assert (root / "public" / "shard.bin").read_bytes() == SHARD
    assert (root / "recipe" / "train.py").read_bytes().endswith(b"# patched\n")
    assert manifest.complete and manifest.did[-1] == "built"
    assert set(manifest.files) == {"upstream/train.py", "downloads/cifar.tar", "data/shard.bin",
                                   "public/shard.bin", "hidden/labels.bin", "recipe/train.py"}
    assert manifest.files["public/shard.bin"].sha256 == hashlib.sha256(SHARD).hexdigest()
    assert manifest.files["hidden/labels.bin"].size == len(TARBALL) - 7
    assert (root / MANIFEST_NAME).is_file() and not (root / ".hf").exists()
    assert root.stat().st_mode & 0o777 == 0o700
    assert status("fake", make_plan(server), root).prepared
    assert require_prepared("fake", make_plan(server), root) == root


def test_second_prepare_does_nothing_and_fetches_nothing(server, tmp_path):
    root = tmp_path / "fake"
    run(server, make_plan(server), root)
    before = len(server.log)
    again = run(server, make_plan(server), root)
    assert again.did == ()
    assert again.complete
    assert len(server.log) == before  # no request at all, not even a HEAD


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    root = tmp_path / "fake"
    plan = make_plan(server)
    server.drops["/files/cifar.tar"] = [5000]
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        run(server, plan, root, retries=0)
    assert (root / "downloads" / "cifar.tar.part").stat().st_size == 5000
    assert (root / "upstream" / "train.py").read_bytes() == RECIPE  # what finished stays verified
    manifest = run(server, plan, root)
    assert server.requests("/files/cifar.tar") == ["", "bytes=5000-"]
    assert server.requests("/files/train.py") == [""]  # fetched once, not again
    assert (root / "downloads" / "cifar.tar").read_bytes() == TARBALL
    assert manifest.complete and not (root / "downloads" / "cifar.tar.part").exists()


def test_dropped_connection_is_resumed_within_one_run(server, tmp_path):
    root = tmp_path / "fake"
    server.drops["/files/cifar.tar"] = [3000, 9000]
    manifest = run(server, make_plan(server), root, retries=3)
    assert server.requests("/files/cifar.tar") == ["", "bytes=3000-", "bytes=12000-"]
    assert manifest.sources["downloads/cifar.tar"].size == len(TARBALL)


def test_hub_download_recovers_from_a_drop(server, tmp_path):
    # huggingface_hub resumes from its last whole 10 MB chunk: for this small file, from 0
    root = tmp_path / "fake"
    path = f"/datasets/fixtures/golf-data/resolve/{COMMIT}/shards/shard.bin"
    server.drops[path] = [40000]
    run(server, make_plan(server), root)
    assert server.requests(path, "HEAD")
    assert len(server.requests(path)) == 2
    assert (root / "data" / "shard.bin").read_bytes() == SHARD


def test_bad_checksum_names_the_file_and_deletes_only_its_bytes(server, tmp_path):
    root = tmp_path / "fake"
    plan = make_plan(server)
    server.corrupt.add("/files/train.py")
    bad = hashlib.sha256(RECIPE[:len(RECIPE) // 2] + bytes([RECIPE[len(RECIPE) // 2] ^ 0xFF])
                         + RECIPE[len(RECIPE) // 2 + 1:]).hexdigest()
    with pytest.raises(ChecksumError) as err:
        run(server, plan, root)
    msg = str(err.value)
    assert "upstream/train.py" in msg and bad in msg and hashlib.sha256(RECIPE).hexdigest() in msg
    assert not (root / "upstream" / "train.py").exists() and not (root / "upstream" / "train.py.part").exists()
    server.corrupt.clear()
    assert run(server, plan, root).complete


def test_bad_checksum_keeps_the_sources_already_verified(server, tmp_path):
    root = tmp_path / "fake"
    plan = make_plan(server)
    server.add_hf("fixtures/golf-data", "shards/shard.bin", SHARD[:-1] + b"x", revision=COMMIT)
    with pytest.raises(ChecksumError, match="data/shard.bin"):
        run(server, plan, root)
    assert (root / "upstream" / "train.py").read_bytes() == RECIPE
    assert (root / "downloads" / "cifar.tar").read_bytes() == TARBALL
    assert status("fake", plan, root).missing == ("data/shard.bin", "build")


def test_size_and_md5_verification_catches_a_wrong_size_and_a_wrong_md5(server, tmp_path):
    plan = make_plan(server)
    wrong_size = Source("downloads/cifar.tar", url=f"{server.url}/files/cifar.tar", size=len(TARBALL) + 1,
                        md5=hashlib.md5(TARBALL).hexdigest())
    with pytest.raises(ChecksumError, match=f"size {len(TARBALL):,} bytes, expected {len(TARBALL) + 1:,}"):
        run(server, Plan((wrong_size,), build_fixture, 1, 0), tmp_path / "a")
    wrong_md5 = Source("downloads/cifar.tar", url=f"{server.url}/files/cifar.tar", size=len(TARBALL), md5="0" * 32)
    with pytest.raises(ChecksumError, match=f"MD5 {hashlib.md5(TARBALL).hexdigest()}, expected 0{{32}}"):
        run(server, Plan((wrong_md5,), build_fixture, 1, 0), tmp_path / "b")
    assert run(server, plan, tmp_path / "c").sources["downloads/cifar.tar"].md5 == hashlib.md5(TARBALL).hexdigest()


def test_full_disk_is_reported_before_any_download(server, tmp_path):
    free = shutil.disk_usage(tmp_path).free
    plan = make_plan(server, download_bytes=free + 1)  # more than this disk has
    with pytest.raises(DiskSpaceError) as err:
        run(server, plan, tmp_path / "fake")
    assert str(tmp_path / "fake") in str(err.value) and "nothing was downloaded" in str(err.value)
    assert server.log == [] and not (tmp_path / "fake").exists()


def test_status_says_the_command_and_the_disk_needed(server, tmp_path):
    plan = make_plan(server)
    st = status("fake", plan, tmp_path / "fake")
    assert not st.prepared
    assert st.missing == ("upstream/train.py", "downloads/cifar.tar", "data/shard.bin", "build")
    assert st.command == f"autoresearch tasks prepare fake --root {tmp_path / 'fake'}"
    assert st.needed_bytes == plan.download_bytes + plan.built_bytes
    with pytest.raises(NotPreparedError) as err:
        require_prepared("fake", plan, tmp_path / "fake")
    assert f"`{st.command}` (needs {human(st.needed_bytes)} of free disk" in str(err.value)


def test_failed_build_keeps_sources_and_is_retried(server, tmp_path):
    root = tmp_path / "fake"
    calls = []

    def flaky(r: Path) -> None:
        calls.append(r)
        if len(calls) == 1:
            raise RuntimeError("patch did not apply")
        build_fixture(r)

    plan = make_plan(server, build=flaky)
    with pytest.raises(BuildError, match="RuntimeError: patch did not apply.*sources are kept"):
        run(server, plan, root)
    assert "patch did not apply" in (root / ".build-error.log").read_text()
    assert status("fake", plan, root).missing == ("build",)
    fetched = len(server.log)
    manifest = run(server, plan, root)
    assert manifest.did == ("built",) and len(server.log) == fetched
    assert not (root / ".build-error.log").exists()


def test_verify_rehashes_and_repairs_a_rotten_file(server, tmp_path):
    root = tmp_path / "fake"
    run(server, make_plan(server), root)
    recipe = root / "recipe" / "train.py"
    recipe.write_bytes(b"t" * recipe.stat().st_size)
    target = root / "upstream" / "train.py"
    target.write_bytes(b"x" * len(RECIPE))  # same size: only a re-hash sees it
    assert run(server, make_plan(server), root).did == ()  # the fast check trusts sizes
    manifest = run(server, make_plan(server), root, verify=True)
    assert "bad: upstream/train.py" in manifest.did and "fetched upstream/train.py" in manifest.did
    assert target.read_bytes() == RECIPE
    assert (root / "recipe" / "train.py").read_bytes().endswith(b"# patched\n")


def test_a_changed_plan_version_rebuilds_without_refetching(server, tmp_path):
    root = tmp_path / "fake"
    run(server, make_plan(server), root)
    fetched = len(server.log)
    assert run(server, make_plan(server, version="2"), root).did == ("built",)
    assert len(server.log) == fetched


def test_a_file_placed_by_hand_is_checked_not_deleted(server, tmp_path):
    root = tmp_path / "fake"
    (root / "upstream").mkdir(parents=True)
    (root / "upstream" / "train.py").write_bytes(b"my own edit")
    with pytest.raises(ChecksumError, match="left there: delete or replace it"):
        run(server, make_plan(server), root)
    assert (root / "upstream" / "train.py").read_bytes() == b"my own edit"
    assert server.requests("/files/train.py") == []


@pytest.mark.parametrize("bad", [
    dict(dest="../x", url="http://h/x", sha256="0" * 64),
    dict(dest="public/x", url="http://h/x", sha256="0" * 64),
    dict(dest="x", sha256="0" * 64),
    dict(dest="x", url="http://h/x"),
    dict(dest="x", url="http://h/x", md5="0" * 32),
])
def test_a_source_without_a_place_an_origin_or_a_checksum_is_refused(bad):
    with pytest.raises(ValueError, match="Source"):
        Source(**bad)


def test_a_second_prepare_of_the_same_root_is_refused_while_one_runs(server, tmp_path):
    import fcntl

    root = tmp_path / "fake"
    root.mkdir()
    with open(root / ".prepare.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(PrepareError, match="another `prepare` of fake is running"):
            run(server, make_plan(server), root)
    assert server.log == [] and run(server, make_plan(server), root).complete


class Recorded:
    """A Progress that keeps what it was told."""

    def __init__(self):
        self.starts, self.files, self.bytes, self.messages = [], [], 0, []

    def start(self, total_bytes, files):
        self.starts.append((total_bytes, files))

    def file(self, dest, size, done=0):
        self.files.append((dest, size, done))
        self.bytes += done

    def advance(self, nbytes):
        self.bytes += nbytes

    def message(self, text):
        self.messages.append(text)


def test_progress_counts_every_byte_and_file(server, tmp_path):
    plan = make_plan(server)
    seen = Recorded()
    run(server, plan, tmp_path / "fake", progress=seen)
    assert seen.starts == [(plan.download_bytes, 3)]
    assert [f[0] for f in seen.files] == ["upstream/train.py", "downloads/cifar.tar", "data/shard.bin"]
    assert seen.bytes == plan.download_bytes
    again = Recorded()
    run(server, plan, tmp_path / "fake", progress=again)
    assert again.messages == [f"fake is already prepared in {tmp_path / 'fake'}; nothing to do"]


def test_resumed_progress_counts_the_bytes_already_held(server, tmp_path):
    root = tmp_path / "fake"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "cifar.tar.part").write_bytes(TARBALL[:1000])  # a killed earlier run
    seen = Recorded()
    run(server, make_plan(server), root, progress=seen)
    assert ("downloads/cifar.tar", len(TARBALL), 1000) in seen.files
    assert server.requests("/files/cifar.tar") == ["bytes=1000-"]
    assert seen.bytes == make_plan(server).download_bytes


def test_an_unreachable_server_is_a_download_error_that_says_to_rerun(tmp_path):
    with Loopback() as gone:
        url = gone.url
    plan = Plan((Source("upstream/x", url=f"{url}/files/x", sha256="0" * 64),), build_fixture, 10, 0)
    with pytest.raises(DownloadError, match="run the same command again"):
        prepare("fake", plan, tmp_path / "fake", retries=1)
    assert not (tmp_path / "fake" / "prepared.json").exists()


def test_a_directory_holding_other_files_is_not_taken_as_a_root(server, tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(PrepareError, match=f"give a new or empty directory, e.g. --root {tmp_path / 'fake'}"):
        run(server, make_plan(server), tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me" and server.log == []


def test_a_source_pinned_anew_replaces_the_old_download(server, tmp_path):
    root = tmp_path / "fake"
    run(server, make_plan(server), root)
    newer = RECIPE + b"print('v2')\n"
    server.add("train-v2.py", newer)
    old = make_plan(server)
    sources = (Source("upstream/train.py", url=f"{server.url}/files/train-v2.py",
                      sha256=hashlib.sha256(newer).hexdigest()),) + old.sources[1:]
    manifest = run(server, make_plan(server, sources=sources), root)
    assert manifest.did == ("fetched upstream/train.py", "built")
    assert (root / "recipe" / "train.py").read_bytes() == newer + b"# patched\n"


def test_a_redirected_download_resumes_at_its_new_location(server, tmp_path):
    root = tmp_path / "fake"
    server.add("cdn-cifar.tar", TARBALL)
    server.redirects["/files/cifar.tar"] = "/files/cdn-cifar.tar"
    server.drops["/files/cdn-cifar.tar"] = [7000]
    manifest = run(server, make_plan(server), root)
    assert server.requests("/files/cifar.tar") == ["", "bytes=7000-"]
    assert server.requests("/files/cdn-cifar.tar") == ["", "bytes=7000-"]
    assert manifest.sources["downloads/cifar.tar"].md5 == hashlib.md5(TARBALL).hexdigest()
