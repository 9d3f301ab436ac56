"""What nanochat-d12 takes from upstream, pinned: the nanochat tree, ClimbMix, the CORE bundle, FA3.

The recipe is karpathy/nanochat (MIT, (c) 2025 Andrej Karpathy) at the commit the paper ran
(0aaca568, tree 4302d7c5): every file of that tree is fetched from raw GitHub at the commit and
checked against the sha256 recorded here (`TREE_SHA256`), so a moved tag or a rewritten branch
cannot change a byte of the starting recipe.

The data: ClimbMix parquet shards (`karpathy/climbmix-400b-shuffle` on the Hugging Face Hub,
CC-BY-NC-4.0) verified by the checksum the Hub publishes at the commit its revision names on
the first prepare; the validation shard is `shard_06542.parquet`, fixed by name. The CORE
bundle (22 ICL tasks, DCLM) is a zip on S3 that publishes no checksum: its sha256 is recorded
at the first prepare and checked on every later one (`Source.first_use`). The FA3 kernel is
pulled by `kernels` from the Hub's kernel repo at prepare time, for this machine's torch
(see `fa3`).
"""

from __future__ import annotations

REPO = "karpathy/nanochat"
COMMIT = "0aaca56805eb13f6e6e1fff789a08086902f12ab"  # the paper's pin (2026-04-14)
TREE = "4302d7c546328832620007afd58193a9f198dabc"  # its git tree id

TREE_SHA256: dict[str, str] = {  # every file of the tree at COMMIT, by path
    ".gitignore": "86c0ffa07eb6ef9b6bfae2fbc55eac22c1fcdd6d099cd7367fc50f5af5c33b21",
    ".python-version": "7a41a41354ab8049091ef1a00253ca00567f5a1d3f9aef5502c0b4b5ce9ae707",
    "LICENSE": "42bb09f339a8af8b90d3b4969b6f6e4ba4aff3b5c614103b031fccdf71c8f772",
    "README.md": "5c7547aaa56d40fcad09cc81d5ceb2230fea619d76a0a3c18d69f733c67be917",
    "dev/LEADERBOARD.md": "ead16910ead45a4fd203d87df3fa5c1435303e18fa1f7eb5f3a88f65e5fd03a7",
    "dev/LOG.md": "bf584af8da9b4f577c5df985b3333ee3d9424e5c134bba8af8bae906b53011d0",
    "dev/gen_synthetic_data.py": "380b2bef81394a39355180d3ea30ea4a944a255eeb0501ddca64a36d6aef6e6a",
    "dev/repackage_data_reference.py": "c0da07e626a850255f9eaa2eb7872c18f2aadfd04927867e18a0b5b05a898dad",
    "nanochat/__init__.py": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "nanochat/checkpoint_manager.py": "4ec1d23fbed353e0ad5cd77e40978528c9f7a72e657072c6c6b5af6c9cae9328",
    "nanochat/common.py": "8950542a6da1c102f8463aebaa74e1403ccc06fb6b287903470d0b2a5869c286",
    "nanochat/core_eval.py": "9303997ff17fa48ad5e5730f33b7e79a687cc2a1fdad928666bb63dc3514c51d",
    "nanochat/dataloader.py": "5cc72d7207931f112d685ba8e04c112e1a4ab7756dbbb29b95bdb4908a21864d",
    "nanochat/dataset.py": "3ec2ad5987875e3d7f3ec72f08d78089fe8a3b20090448b798c21c4efb93d18a",
    "nanochat/engine.py": "d53fc041180c1e8fe6ca2e507b11b57e6422258d70a35a994fced16d51820a20",
    "nanochat/execution.py": "6fe9cb07e07d80aa5b55440a4448a5908983887abe665f00eb697e86ad39566e",
    "nanochat/flash_attention.py": "ed349be4b21a1af24958a378ba8cbd90a28dfb41033acf2573b29de41989fe93",
    "nanochat/fp8.py": "fb56d323639a315393b04cecd3469dc129e8c975638cfc7ced8067f647b868b6",
    "nanochat/gpt.py": "f0d0a4e59c21c8f7226935eec7ee76ab9852d64268a3d6bb41288cad50a3c7c1",
    "nanochat/loss_eval.py": "00faad1e0ae8912022f79ee4bf583c4f9b4c058e4523c5674144648c49229fd6",
    "nanochat/optim.py": "4cc4ed098960bbce579d4926b27d2d241712b060488e53c2d336d432f68f4f5b",
    "nanochat/report.py": "5011b2f151fd87e94e273ccdc49284cd8be7cf2aa29d9af3bdeb8f7a2fab5fde",
    "nanochat/tokenizer.py": "aff263228b25484f6c0cfc654701feba73ac952f20b6d375d3bb2a2b3bea28a1",
    "pyproject.toml": "eb19b8a0cc7a0af623702137ac4ceaf2df7d694dc0c00d1dbc89de08ab7ffa77",
    "runs/miniseries.sh": "f43d83d635af3a7f2e018e8c3d9d44f014687671d7a1c32a08d22cd2bb7ec41d",
    "runs/runcpu.sh": "d0eef38f6ddc6207079ded718bf210a4f8f590828cdb98deeda110c4e3183303",
    "runs/scaling_laws.sh": "cc79e5a3f7191bb81c0489951af6cec98b485c9a1e7501ba8192a2ecf2a184e8",
    "runs/speedrun.sh": "b175f187deb453555da2201251b8e9dab8814daa3b6addfa050288c5d7ed04c8",
    "scripts/base_eval.py": "39b3a392eb06f3861a62fd7ecb2f41b6ac7a11dde546c29d6c7407a6c0f93d31",
    "scripts/base_train.py": "ab06118eb9139ea45759a077c7a9b85e3a9c0d90cf3a7faa7fabf92a2fc5bd49",
    "scripts/chat_cli.py": "333a27c74f93d278f3e5588d92def7d5d5fa03065f5e2f0e44e2b36361aea9df",
    "scripts/chat_eval.py": "f241b7fd5b51803bdb29d3369a9e673442a6742a1ba1134c10e62eee6bf3d5c2",
    "scripts/chat_rl.py": "c56d877e3d69e54f13069358d44d016f3386efb17a310a5626f359f86de558be",
    "scripts/chat_sft.py": "d3c73f2b0194ddc4d62df60ae6158886d1a1375ee4c9c58fac2d6fed34c6c7d1",
    "scripts/chat_web.py": "f88b768edc7bc6c3ecb9b23b402a9795bdf8d48d22ae2e1ce962970d26f9d8da",
    "scripts/tok_eval.py": "bfb8814f24cb3bbedaabfc4391a9c45fe938493796a54886c30c12c213d28671",
    "scripts/tok_train.py": "7192001cf52b918a06efe7998e5bf5d9105e70d25a582f72ba6229b167cbfd06",
    "tasks/arc.py": "6a51bbd8a6c7d9df918fb5ed1e69c86021ed421ac943810b53ddb7e1a82b7f66",
    "tasks/common.py": "78e0c68297105b561d5450257d1e91a56ddaebd7fb3ea687dad7342b48921ae0",
    "tasks/customjson.py": "a028d5515e55864366a9c62755889c1ad7408015b7be926975f065ef8db9fb5c",
    "tasks/gsm8k.py": "e239e235ef0b39c9f6b4fb487e6da56ab2d6d998622fc97985efe8504aa0cad7",
    "tasks/humaneval.py": "706f2c95ace1ce8e5f0c833a97089e0dd6cb3f9d6f964985105bb63ecaee1d11",
    "tasks/mmlu.py": "2900402ee33e085c1ef48220745776536f1a5c422944499f6547e1fd8a5e13b0",
    "tasks/smoltalk.py": "952904d62f72f096ddcad11e0a236d0af040d480796c0ae600a124cda60d87b1",
    "tasks/spellingbee.py": "d77a9f177b65598df0f8f4b2c5d10d1bd3df631b6a2162f45009bacff4d3798a",
    "tests/test_attention_fallback.py": "cf3d8a26f18b50d797ae43b1e90178fef83c13b878192fd62dd795d4d1037c10",
    "tests/test_engine.py": "00310f9f3e7337ce390c9ae0bec190d2dc2236732787a7648a0e9b410444e525",
    "uv.lock": "713baa5c8e96c2364bcc1430bca7dea672349024dfa58931404b25d6f9e33703",
}
TREE_BYTES = 1_178_523

HF_DATASET = "karpathy/climbmix-400b-shuffle"
HF_REVISION = "main"  # no dataset commit is known here: pinned at the first prepare (tasks/_hub.py)
VAL_SHARD = 6542  # upstream's validation shard; always this one, whatever else is on disk
SHARD_BYTES = 100_000_000  # about (zstd parquet, ~250M characters)
EVAL_BUNDLE_URL = "https://karpathy-public.s3.us-west-2.amazonaws.com/eval_bundle.zip"
EVAL_BUNDLE_BYTES = 162_000_000  # about
FA3_REPO = "varunneal/flash-attention-3"  # the Hub kernel repo nanochat's flash_attention.py loads


def shard_name(index: int) -> str:
    """ClimbMix's file name for shard `index` (upstream's naming)."""
    return f"shard_{index:05d}.parquet"


def upstream_url(path: str, base: str = "https://raw.githubusercontent.com") -> str:
    """Where a file of the pinned tree is fetched from (raw GitHub at COMMIT)."""
    return f"{base}/{REPO}/{COMMIT}/{path}"
