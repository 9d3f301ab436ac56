"""The toy recipe with its constants outside any tunable block (nothing for a scripted proposer)."""

import os

X, Y, WIDTH = 0.0, 2.0, 8

if os.environ.get("AR_SMOKE") == "1":
    raise SystemExit(0)
with open("result.txt", "w") as f:
    f.write(f"{X} {Y} {WIDTH}\n")
