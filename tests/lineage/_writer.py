"""A separate process that records trials into a lineage store (used by reliability tests).

usage: python -m tests.lineage._writer URL SEARCH_ID NAME COUNT [snapshot-bytes]
Each trial is created (exp id assigned), claimed and finished by this process.
"""

from __future__ import annotations

import os
import sys

from lineage.models import Outcome
from lineage.sql import SqlLineageStore


def main() -> None:
    url, sid, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = SqlLineageStore(url)
    for i in range(count):
        t = store.create_trial(sid, specialist=name, hypothesis=f"{name} #{i}\twith\ttabs\n|x|")
        claimed = store.claim_trial(sid, f"{name}:{os.getpid()}", exp_id=t.exp_id)
        if claimed is None:
            raise SystemExit(f"{name}: exp {t.exp_id} claimed by someone else")
        store.finish_trial(sid, t.exp_id, Outcome(status="valid", score=1000.0 - i, metrics={"i": i}))
        print(t.exp_id, flush=True)
    store.close()


if __name__ == "__main__":
    main()
