"""Our patch to upstream's `airbench96_faster.py`: exact, anchored text replacements.

`patched_recipe(upstream_bytes)` checks the bytes against the pinned sha256, applies every
`Edit` in order (each anchor must occur exactly `count` times, or `PatchError` says which one
broke), and returns the starting recipe. What the edits do, and nothing else:

- the data comes from `$AR_DATA/{train,test}.pt` (never downloaded; torchvision is not imported,
  and its `Normalize` is replaced by the same two tensor operations);
- one run per process (upstream loops 200 runs), seeded from `AR_SEED`: Python's `random`
  and torch are seeded once at start, so upstream's own seed draws become deterministic;
- a smoke mode (`AR_SMOKE=1`, or `AIRBENCH_SMOKE=1` from the smoke profile): one epoch at
  most; without CUDA, and only then, it runs on the CPU in float32 with an eager
  `torch.compile` backend and small batches, so the harness's tests run anywhere;
- the argmax of the TTA logits for every test image goes to `predictions.txt` (the harness
  scores it; the process sees placeholder test labels, so its printed accuracy is meaningless);
- the main hyperparameters move into a `# --- tunables ---` block that the `hyp` dict reads.

On a GPU outside smoke mode the code does what upstream does: CUDA, half precision,
`torch.compile(mode='max-autotune')`, CUDA-event timing.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks._common import sha256_bytes
from tasks.cifar_airbench96._recipe_text import (
    HARNESS_BLOCK,
    HEADER,
    LOADER_OPEN,
    MAIN_BLOCK,
    NORMALIZE,
    SEEDING,
    TUNABLES,
)
from tasks.exceptions import DataIntegrityError, TaskError

REPO = "KellerJordan/cifar10-airbench"
COMMIT = "f1c599c4af24aca803e3e65a6a7e52a502e09d0e"
UPSTREAM_PATH = "airbench96_faster.py"
UPSTREAM_URL = f"https://raw.githubusercontent.com/{REPO}/{COMMIT}/{UPSTREAM_PATH}"
UPSTREAM_SHA256 = "53b6aafd8a2775c47472bf2f31784f4733a38dc76a784bd5ed1450e1498109b3"
UPSTREAM_BYTES = 29_408
# The patched recipe's sha256: a change to any edit changes it, on purpose (tests pin it).
PATCHED_SHA256 = "e1492181d38406bba394a12535509838a520e8cae070e0bebc83c101979e9ae6"


class PatchError(TaskError):
    """An anchor of the patch is missing or repeated in the upstream text."""


@dataclass(frozen=True)
class Edit:
    """Replace `anchor` (which must occur exactly `count` times) by `text`; `why` names it."""

    why: str
    anchor: str
    text: str
    count: int = 1


def _hyp(key: str, value: str, name: str) -> Edit:
    return Edit(f"hyp {key} from the tunable {name}", f"'{key}': {value},", f"'{key}': {name},")


EDITS: tuple[Edit, ...] = (
    Edit("header: origin, licence, what we changed", "# A variant of airbench optimized for time-to-96%.\n",
         HEADER + "# A variant of airbench optimized for time-to-96%.\n"),
    Edit("no torchvision", "import torchvision\nimport torchvision.transforms as T\n",
         "import random\nimport time\n"),
    Edit("harness settings and tunables", "torch.backends.cudnn.benchmark = True\n",
         "torch.backends.cudnn.benchmark = True\n" + HARNESS_BLOCK + TUNABLES),
    _hyp("train_epochs", "45.0", "TRAIN_EPOCHS"),
    _hyp("batch_size_masked", "512", "BATCH_SIZE_MASKED"),
    Edit("hyp lr from the tunable LR", "'lr': 9.0,", "'lr': LR,"),
    _hyp("weight_decay", "0.012", "WEIGHT_DECAY"),
    _hyp("label_smoothing", "0.2", "LABEL_SMOOTHING"),
    _hyp("cutout", "12", "CUTOUT"),
    _hyp("tta_level", "2", "TTA_LEVEL"),
    _hyp("block3", "512", "BLOCK3_WIDTH"),
    Edit("smoke mode shrinks the run", "\n#############################################\n#                DataLoader",
         "\n" + "apply_smoke(hyp)\n" + "\n#############################################\n#                DataLoader"),
    Edit("Normalize without torchvision", "CIFAR_STD = torch.tensor((0.2470, 0.2435, 0.2616))\n",
         "CIFAR_STD = torch.tensor((0.2470, 0.2435, 0.2616))\n" + NORMALIZE),
    Edit("prepared data only, on DEVICE",
         "        if not os.path.exists(data_path):\n"
         "            dset = torchvision.datasets.CIFAR10(path, download=True, train=train)\n"
         "            images = torch.tensor(dset.data)\n"
         "            labels = torch.tensor(dset.targets)\n"
         "            torch.save({'images': images, 'labels': labels, 'classes': dset.classes}, data_path)\n"
         "\n"
         "        data = torch.load(data_path, map_location='cuda')\n",
         LOADER_OPEN),
    Edit("images in DTYPE", "(self.images.half() / 255)", "(self.images.to(DTYPE) / 255)"),
    Edit("normalize function", "self.normalize = T.Normalize(CIFAR_MEAN, CIFAR_STD)", "self.normalize = normalize"),
    Edit("tensors on DEVICE", ".cuda()", ".to(DEVICE)", count=4),
    Edit("net in DTYPE on DEVICE", "net = net.half().to(DEVICE)", "net = net.to(device=DEVICE, dtype=DTYPE)"),
    Edit("data dir from AR_DATA", "InfiniteCifarLoader('cifar10',", "InfiniteCifarLoader(DATA_DIR,", count=3),
    Edit("timer events (host clock in the CPU fallback)", "torch.cuda.Event(enable_timing=True)",
         "Event(enable_timing=True)", count=2),
    Edit("synchronize (a no-op in the CPU fallback)", "torch.cuda.synchronize()", "synchronize()", count=4),
    Edit("keep the TTA logits for the predictions",
         "    tta_val_acc = evaluate(model, test_loader, tta_level=hyp['net']['tta_level'])\n",
         "    tta_logits = infer(model, test_loader, tta_level=hyp['net']['tta_level'])\n"
         "    tta_val_acc = (tta_logits.argmax(1) == test_loader.labels).float().mean().item()  # placeholder labels\n"),
    Edit("main returns the predictions", "    return tta_val_acc\n", "    return tta_logits.argmax(1)\n"),
    Edit("compile mode from the harness settings", ", mode='max-autotune')", ", **COMPILE)", count=3),
    Edit("one run per process, predictions written",
         "    print_columns(logging_columns_list, is_head=True)\n"
         "    accs = torch.tensor([main(run, hyp, model_proxy, model_trainbias, model_freezebias)\n"
         "                         for run in range(200)])\n", MAIN_BLOCK),
    Edit("no 200-run summary or log file",
         "    print('Mean: %.4f    Std: %.4f' % (accs.mean(), accs.std()))\n"
         "\n"
         "    log = {'code': code, 'accs': accs}\n"
         "    log_dir = os.path.join('logs', str(uuid.uuid4()))\n"
         "    os.makedirs(log_dir, exist_ok=True)\n"
         "    log_path = os.path.join(log_dir, 'log.pt')\n"
         "    print(os.path.abspath(log_path))\n"
         "    torch.save(log, os.path.join(log_dir, 'log.pt'))\n", ""),
    Edit("seeded from AR_SEED, a clear error without CUDA",
         "    with open(sys.argv[0]) as f:\n        code = f.read()\n", SEEDING),
)


def apply_edits(text: str, edits: tuple[Edit, ...] = EDITS) -> str:
    """Apply `edits` in order; raise PatchError naming the first anchor that does not fit."""
    for edit in edits:
        found = text.count(edit.anchor)
        if found != edit.count:
            raise PatchError(f"patch edit '{edit.why}': its anchor occurs {found} times in the text, "
                             f"expected {edit.count}; the upstream file is not the pinned one, or the "
                             f"edit list is out of order ({edit.anchor[:60]!r})")
        text = text.replace(edit.anchor, edit.text)
    return text


def patched_recipe(upstream: bytes) -> str:
    """The starting recipe: the pinned upstream bytes with every edit applied.

    Raises:
        DataIntegrityError: `upstream` is not the pinned file (its sha256 differs).
        PatchError: an edit's anchor does not fit (a bug in this module).
    """
    digest = sha256_bytes(upstream)
    if digest != UPSTREAM_SHA256:
        raise DataIntegrityError(f"{UPSTREAM_PATH}: sha256 {digest} is not the pinned {UPSTREAM_SHA256} "
                                 f"({REPO}@{COMMIT[:12]}); prepare the task again to fetch the pinned file")
    return apply_edits(upstream.decode("utf-8"))
