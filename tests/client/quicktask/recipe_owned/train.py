"""The toy recipe with owners: alpha owns X, beta owns Y, both own WIDTH, gamma owns none."""

# --- tunables ---
X = 0.0  # tunable float [-10, 10] owner=alpha
Y = 2.0  # tunable float [-10, 10] owner=beta
WIDTH = 8  # tunable int [1, 64] log owner=alpha,beta

import os
import time

if os.environ.get("AR_SMOKE") == "1":
    raise SystemExit(0)
time.sleep(float(os.environ.get("QUICK_SLEEP", "0")))
with open("result.txt", "w") as f:
    f.write(f"{X} {Y} {WIDTH}\n")
