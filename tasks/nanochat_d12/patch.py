"""Our patch to the pinned nanochat tree: exact, anchored text replacements in six files.

`patched_tree(files)` takes the pinned tree (path -> bytes, every sha256 already checked) and
returns it with every `Edit` applied (each anchor must occur exactly `count` times, else
`PatchError` names the edit) and a comment header on each patched file that keeps nanochat's
MIT notice in view. What the edits do, and nothing else:

- `scripts/base_train.py`: `wandb` optional; the d12 defaults (`--depth 12`, no in-training
  CORE, no sampling: the harness computes CORE, and the bundle is not there); extra arguments
  from `AR_TRAIN_ARGS` (set by the harness and its profiles only); `AR_SMOKE=1` trains the
  real model for a few steps; the checkpoint goes to `$AR_CHECKPOINT_DIR` without the optimizer
  shards (what the harness collects), its metadata says which attention ran;
- `nanochat/dataset.py`: the data comes from `$AR_DATA`; the validation file is fixed by name
  (`$NANOCHAT_VAL_FILE`, default `shard_06542.parquet`), never "whichever file sorts last",
  and no file of that name is ever trained on;
- `nanochat/dataloader.py`: the same split; every row group the loader reads is logged to
  `$AR_LEDGER/rank<r>.jsonl` (the harness counts the tokens of what was read);
- `nanochat/tokenizer.py`: the tokenizer comes from `$AR_DATA/tokenizer`; HuggingFace
  `tokenizers` is optional (only its tokenizer class needs it);
- `nanochat/common.py`: a single-process `torchrun` (one GPU, or the CPU smoke) is not
  distributed: no process group, the plain optimizer (upstream would start one anyway, and
  its distributed optimizer needs collectives the CPU backend lacks);
- `nanochat/flash_attention.py`: says why FA3 did not load instead of falling back silently.

Without the `AR_*` variables (outside the harness) every path and default is upstream's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tasks.exceptions import TaskError

# sha256 over the patched files (path, NUL, bytes, NUL; sorted): any change to an edit
# changes it, on purpose (the tests pin it, and the plan's version carries it).
PATCHED_DIGEST = "d619ba1036f8ed1fd2c644568d3ff9793f0c32968f30968ba73e2047be536e7e"

_NOTICE = ("nanochat: MIT License, Copyright (c) 2025 Andrej Karpathy; the full notice is in LICENSE "
           "at the root of this tree.")


class PatchError(TaskError):
    """An anchor of the patch is missing or repeated in the text it is applied to."""


@dataclass(frozen=True)
class Edit:
    """Replace `anchor` (which must occur exactly `count` times) by `text`; `why` names it."""

    why: str
    anchor: str
    text: str
    count: int = 1


LEDGER = '''

def _ar_ledger(split, filepath, rg_idx, epoch):
    """autoresearch: one JSON line per row group read, in $AR_LEDGER/rank<r>.jsonl (the harness
    counts the tokens of what was read against the token budget)."""
    folder = os.environ.get("AR_LEDGER")
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"rank{int(os.environ.get('RANK', 0))}.jsonl"), "a") as f:
        f.write(json.dumps({"split": split, "file": os.path.basename(filepath), "rg": rg_idx, "epoch": epoch}) + "\\n")
'''

SPLIT = '''
VAL_FILE = os.environ.get("NANOCHAT_VAL_FILE") or os.path.join(DATA_DIR, index_to_filename(MAX_SHARD))


def split_parquet_files(split):
    """autoresearch: the files of a split. val is VAL_FILE, fixed by name; train is every other
    parquet file, never one named like the validation shard."""
    if split == "val":
        return [VAL_FILE]
    held_out = {os.path.basename(VAL_FILE), index_to_filename(MAX_SHARD)}
    return [p for p in list_parquet_files() if os.path.basename(p) not in held_out]
'''

HARNESS_ARGS = '''\
args = parser.parse_args(sys.argv[1:] + shlex.split(os.environ.get("AR_TRAIN_ARGS", "")))  # autoresearch: profile settings
if os.environ.get("AR_SMOKE") == "1":  # autoresearch smoke: the real model for a few steps, checkpoint included
    args.num_iterations = 4 if args.num_iterations <= 0 else min(args.num_iterations, 4)
    args.eval_every, args.eval_tokens = 2, args.device_batch_size * args.max_seq_len * int(os.environ.get("WORLD_SIZE", "1"))
'''

EDITS: dict[str, tuple[Edit, ...]] = {
    "scripts/base_train.py": (
        Edit("wandb optional", "import wandb\n",
             "try:\n    import wandb\nexcept ImportError:  # autoresearch: only --run other than 'dummy' needs it\n"
             "    wandb = None\n"),
        Edit("imports for the harness arguments", "import argparse\n", "import argparse\nimport shlex\nimport sys\n"),
        Edit("depth 12 by default", 'parser.add_argument("--depth", type=int, default=20,',
             'parser.add_argument("--depth", type=int, default=12,'),
        Edit("no CORE inside training (the harness computes it)",
             'parser.add_argument("--core-metric-every", type=int, default=2000,',
             'parser.add_argument("--core-metric-every", type=int, default=-1,'),
        Edit("no sampling inside training", 'parser.add_argument("--sample-every", type=int, default=2000,',
             'parser.add_argument("--sample-every", type=int, default=-1,'),
        Edit("harness arguments and the smoke mode", "args = parser.parse_args()\n", HARNESS_ARGS),
        Edit("the checkpoint where the harness collects it",
             'checkpoint_dir = os.path.join(base_dir, "base_checkpoints", output_dirname)',
             'checkpoint_dir = os.environ.get("AR_CHECKPOINT_DIR") or os.path.join(base_dir, "base_checkpoints", '
             'output_dirname)  # autoresearch'),
        Edit("no optimizer shards in the collected checkpoint", "            optimizer.state_dict(), # optimizer state",
             '            None if os.environ.get("AR_CHECKPOINT_DIR") else optimizer.state_dict(), '
             "# optimizer state (autoresearch: not collected)"),
        Edit("the metadata says which attention ran", '                "device_batch_size": args.device_batch_size,',
             '                "attention": "fa3" if using_fa3 else "sdpa",  # autoresearch\n'
             '                "device_batch_size": args.device_batch_size,'),
    ),
    "nanochat/dataset.py": (
        Edit("data from $AR_DATA, the validation file fixed by name",
             'DATA_DIR = os.path.join(base_dir, "base_data_climbmix")\n',
             'DATA_DIR = os.path.join(os.environ.get("AR_DATA") or base_dir, "base_data_climbmix")  # autoresearch\n'
             + SPLIT),
        Edit("splits by name", '    parquet_paths = list_parquet_files()\n'
             '    parquet_paths = parquet_paths[:-1] if split == "train" else parquet_paths[-1:]\n',
             "    parquet_paths = split_parquet_files(split)  # autoresearch: val fixed by name\n"),
    ),
    "nanochat/dataloader.py": (
        Edit("imports for the ledger", "import torch\nimport pyarrow.parquet as pq\n",
             "import json\nimport os\n\nimport torch\nimport pyarrow.parquet as pq\n"),
        Edit("splits by name", "from nanochat.dataset import list_parquet_files\n",
             "from nanochat.dataset import list_parquet_files, split_parquet_files\n" + LEDGER),
        Edit("the loader's files by name",
             '    parquet_paths = parquet_paths[:-1] if split == "train" else parquet_paths[-1:]\n',
             "    parquet_paths = split_parquet_files(split)  # autoresearch: val fixed by name\n"),
        Edit("every row group read is logged", "                rg = pf.read_row_group(rg_idx)\n",
             "                rg = pf.read_row_group(rg_idx)\n                _ar_ledger(split, filepath, rg_idx, epoch)\n"),
    ),
    "nanochat/tokenizer.py": (
        Edit("HuggingFace tokenizers optional",
             "from tokenizers import Tokenizer as HFTokenizer\nfrom tokenizers import pre_tokenizers, decoders, Regex\n"
             "from tokenizers.models import BPE\nfrom tokenizers.trainers import BpeTrainer\n",
             "try:  # autoresearch: only HuggingFaceTokenizer needs it\n"
             "    from tokenizers import Tokenizer as HFTokenizer\n    from tokenizers import pre_tokenizers, decoders, Regex\n"
             "    from tokenizers.models import BPE\n    from tokenizers.trainers import BpeTrainer\n"
             "except ImportError:\n    HFTokenizer = None\n"),
        Edit("the tokenizer from $AR_DATA", '    tokenizer_dir = os.path.join(base_dir, "tokenizer")\n',
             '    tokenizer_dir = os.path.join(os.environ.get("AR_DATA") or base_dir, "tokenizer")  # autoresearch\n',
             count=2),
    ),
    "nanochat/common.py": (
        Edit("one process is not distributed (torchrun with one GPU, or on a CPU)",
             '    return all(k in os.environ for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))\n',
             '    return (all(k in os.environ for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))\n'
             '            and int(os.environ["WORLD_SIZE"]) > 1)  # autoresearch: one process is not distributed\n'),
    ),
    "nanochat/flash_attention.py": (
        Edit("say why FA3 did not load", "    except Exception:\n        return None\n",
             "    except Exception as e:  # autoresearch: say why, the fallback to SDPA is otherwise silent\n"
             "        print(f\"FA3 not loaded: {type(e).__name__}: {e}\")\n        return None\n"),
    ),
}


def header(path: str) -> str:
    """The comment block put at the top of a patched file."""
    whats = "; ".join(e.why for e in EDITS[path])
    return (f"# Patched by autoresearch (tasks/nanochat_d12/patch.py) from {path} at the pinned commit:\n"
            f"# {whats}.\n# {_NOTICE}\n")


def apply_edits(text: str, edits: tuple[Edit, ...], path: str = "") -> str:
    """Apply `edits` in order; raise PatchError naming the first anchor that does not fit."""
    for edit in edits:
        found = text.count(edit.anchor)
        if found != edit.count:
            raise PatchError(f"patch edit '{edit.why}' of {path}: its anchor occurs {found} times, expected "
                             f"{edit.count}; the file is not the pinned one ({edit.anchor[:60]!r})")
        text = text.replace(edit.anchor, edit.text)
    return text


def patched_tree(files: dict[str, bytes]) -> dict[str, bytes]:
    """The starting recipe: `files` with every edit applied under a header.

    Raises:
        PatchError: a file to patch is missing, or an edit's anchor does not fit.
    """
    out = dict(files)
    for path, edits in EDITS.items():
        if path not in files:
            raise PatchError(f"the tree has no {path}: it is not the pinned nanochat tree")
        out[path] = (header(path) + apply_edits(files[path].decode("utf-8"), edits, path)).encode("utf-8")
    return out


def tree_digest(files: dict[str, bytes]) -> str:
    """sha256 over (path, NUL, bytes, NUL) of every file, in path order."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.encode() + b"\0" + files[path] + b"\0")
    return h.hexdigest()
