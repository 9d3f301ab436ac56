"""What parameter-golf takes from upstream, pinned: the record's recipe file and the data.

The recipe is the 1.0810 record's `train_gpt.py` (openai/parameter-golf, MIT, © 2026 OpenAI)
at the commit that added it. That file is a two-line self-extractor (LZMA2 raw stream, base85
text, `exec`); `unpack` turns it back into source deterministically and checks both hashes.
`pack` is the same container in the other direction: it is what the patched recipe writes as
the counted code of its artifact (the record counted its packed file, 16.6 kB, not the 48.6 kB
source), and what preflight uses to project that size.

The data is FineWeb tokenised with the SP8192 tokenizer, as the record used it, from the
Hugging Face dataset repo `kevclark/parameter-golf`: 128 train shards (the downloader's
default is 80), the one validation shard, and the tokenizer model.
"""

from __future__ import annotations

import base64
import hashlib
import lzma
import re

from tasks.exceptions import DataIntegrityError

REPO = "openai/parameter-golf"
COMMIT = "857de4755ef003134e4d3130ca792ff54861c577"
RECORD_DIR = "records/track_10min_16mb/2026-04-09_SP8192_3LayerRecur_ParResid_QK525_LegalTTT"
PACKED_SHA256 = "477f432097ce619d4080af0a249d29e6e0bf31b7a747ec4e6b509b5be2e202ee"
PACKED_BYTES = 16_594
UNPACKED_SHA256 = "958bd4e44b6545b426418a92407498b0997ea25a1e1e6af7dfaf6f3ebcbc98aa"
UNPACKED_BYTES = 48_583

UPSTREAM_SHA256 = {  # files fetched from the repo at COMMIT (the record's recipe and the licence notices)
    "train_gpt.py": PACKED_SHA256,
    "LICENSE": "7de1e115d165f176e68f962acdb809b5ab8d8ae78d3981e0701392b2ac50c713",
    "THIRD_PARTY_NOTICES.md": "197bd74c0c267ff8fcd37816b6a0b5854ce2c758f2c1f39d3619ce7c82d74b23",
}

HF_REPO = "kevclark/parameter-golf"
HF_REVISION = "main"  # no commit of the dataset repo is known here; see README "Verification"
VOCAB = 8192
TRAIN_SHARDS = 128  # as the record's log says (train_shards: 128); the downloader defaults to 80
VAL_SHARDS = 1
SHARD_MAGIC, SHARD_VERSION, HEADER_INTS = 20240520, 1, 256
FULL_SHARD_TOKENS = 100_000_000
FULL_SHARD_BYTES = HEADER_INTS * 4 + 2 * FULL_SHARD_TOKENS  # 200,001,024
VAL_TOKENS_SCORED = 40_540_160  # the record's log: val_tokens (after trimming to whole 2048-token windows)
BPB_PER_LOSS = 0.3871312  # val_bpb / val_loss on the SP8192 validation set, every eval line of the record
VAL_SHARD_BYTES = 82_000_000  # about: 40.5M tokens (the exact count is not published)
TOKENIZER_BYTES = 400_000  # about
# sha256 of each Hub file at HF_REVISION, by file name. None are recorded yet: they were not
# reachable where this was written (see README, "Verification"). A file without an entry is
# left out of the plan, and the build names what is missing.
HUB_SHA256: dict[str, str] = {}

_PAYLOAD = re.compile(rb'b85decode\("([^"]+)"\)')
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2}]


def upstream_url(name: str) -> str:
    """Where a pinned upstream file is fetched from (raw GitHub at COMMIT)."""
    path = f"{RECORD_DIR}/{name}" if name == "train_gpt.py" else name
    return f"https://raw.githubusercontent.com/{REPO}/{COMMIT}/{path}"


def download_bytes(spec) -> int:
    """What the sources of `spec` take on disk (the Hub's shard sizes are the full-shard size)."""
    return spec.train_shards * FULL_SHARD_BYTES + spec.val_shards * VAL_SHARD_BYTES + TOKENIZER_BYTES + 100_000


def hf_path(name: str) -> str:
    """A file's path in the dataset repo (`datasets/` export root, as the downloader uses it)."""
    if name.endswith((".model", ".vocab")):
        return f"datasets/tokenizers/{name}"
    return f"datasets/datasets/fineweb10B_sp{VOCAB}/{name}"


def shard_name(split: str, i: int) -> str:
    return f"fineweb_{split}_{i:06d}.bin"


def tokenizer_name() -> str:
    return f"fineweb_{VOCAB}_bpe.model"


def unpack(packed: bytes) -> bytes:
    """The record's source from its self-extracting file, both ends checked by sha256.

    Raises:
        DataIntegrityError: the file is not the pinned one, or does not unpack to the pinned source.
    """
    digest = hashlib.sha256(packed).hexdigest()
    if digest != PACKED_SHA256:
        raise DataIntegrityError(f"record train_gpt.py: sha256 {digest} is not the pinned {PACKED_SHA256} "
                                 f"({REPO}@{COMMIT[:12]}); prepare the task again to fetch the pinned file")
    found = _PAYLOAD.findall(packed)
    if len(found) != 1:
        raise DataIntegrityError(f"record train_gpt.py: expected one b85decode payload, found {len(found)}")
    source = lzma.decompress(base64.b85decode(found[0]), format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
    got = hashlib.sha256(source).hexdigest()
    if got != UNPACKED_SHA256:
        raise DataIntegrityError(f"record train_gpt.py unpacked to sha256 {got}, not the pinned {UNPACKED_SHA256}")
    return source


def pack(source: str) -> str:
    """`source` as a self-extracting file: LZMA2 raw (preset 9e), base85, one `exec` line.

    Deterministic: the same source always packs to the same text. The patched recipe carries
    its own copy of this function (`_ar_pack`) so that the artifact's code is packed in the
    trial; the tests check that both agree.
    """
    blob = lzma.compress(source.encode("utf-8"), format=lzma.FORMAT_RAW,
                         filters=[{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}])
    return ("import lzma as L,base64 as B\nexec(L.decompress(B.b85decode(\"" + base64.b85encode(blob).decode()
            + "\"),format=L.FORMAT_RAW,filters=[{\"id\":L.FILTER_LZMA2}]))\n")
