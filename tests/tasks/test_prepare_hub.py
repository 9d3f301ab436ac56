"""Hub files verified by the checksum the Hub publishes, when the task records none itself."""

from __future__ import annotations

import hashlib

import pytest

from tasks._prepare import Plan, Source, prepare
from tasks.exceptions import ChecksumError
from tests.tasks.loopback import COMMIT, Loopback

SHARD = bytes(range(256)) * 300
TOKENIZER = b"tokenizer model, stored in git\n" * 10


@pytest.fixture
def server():
    with Loopback() as s:
        yield s


def _build(root) -> None:
    for sub in ("public", "hidden", "recipe"):
        (root / sub).mkdir(exist_ok=True)


def _plan(server: Loopback) -> Plan:
    server.add_hf("fixtures/golf", "shards/a.bin", SHARD)  # at "main" and at the commit it names
    server.add_hf("fixtures/golf", "tok/tok.model", TOKENIZER, lfs=False)
    sources = (Source("data/a.bin", hf_repo="fixtures/golf", hf_file="shards/a.bin", hub_checksum=True),
               Source("data/tok.model", hf_repo="fixtures/golf", hf_file="tok/tok.model", hub_checksum=True))
    return Plan(sources=sources, build=_build, download_bytes=len(SHARD) + len(TOKENIZER), built_bytes=0)


def test_hub_files_are_pinned_to_a_commit_and_checked_against_the_hubs_checksums(server, tmp_path):
    manifest = prepare("hubbed", _plan(server), tmp_path / "t", hf_endpoint=server.url)
    shard, tok = manifest.files["data/a.bin"], manifest.files["data/tok.model"]
    assert shard.sha256 == hashlib.sha256(SHARD).hexdigest() and (tmp_path / "t" / "data" / "tok.model").read_bytes() == TOKENIZER
    assert shard.origin == tok.origin == f"Hub checksum at fixtures/golf@{COMMIT}"
    gets = [p for m, p, _ in server.log if m == "GET"]
    assert gets and all(f"/resolve/{COMMIT}/" in p for p in gets)  # the bytes come from the pinned commit
    before = len(server.log)
    again = prepare("hubbed", _plan(server), tmp_path / "t", hf_endpoint=server.url)
    assert again.did == () and len(server.log) == before  # recorded: nothing asked of the Hub again


@pytest.mark.parametrize("path", ["shards/a.bin", "tok/tok.model"])
def test_bytes_that_differ_from_the_hubs_checksum_are_refused(server, tmp_path, path):
    plan = _plan(server)
    server.corrupt.add(f"/datasets/fixtures/golf/resolve/{COMMIT}/{path}")
    with pytest.raises(ChecksumError, match="expected"):
        prepare("hubbed", plan, tmp_path / "t", hf_endpoint=server.url, retries=0)


def test_a_hub_source_needs_a_checksum_or_the_hubs():
    with pytest.raises(ValueError, match="hub_checksum=True"):
        Source("data/a.bin", hf_repo="fixtures/golf", hf_file="shards/a.bin")
