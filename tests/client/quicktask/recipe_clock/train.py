"""The toy recipe, also writing when its run began and ended (epoch seconds), so a test can
see which runs overlapped."""

# --- tunables ---
X = 0.0  # tunable float [-10, 10]
Y = 2.0  # tunable float [-10, 10]
WIDTH = 8  # tunable int [1, 64]

import os
import time

if os.environ.get("AR_SMOKE") == "1":
    raise SystemExit(0)
began = time.time()
time.sleep(float(os.environ.get("QUICK_SLEEP", "0")))
with open("result.txt", "w") as f:
    f.write(f"{X} {Y} {WIDTH} {began} {time.time()}\n")
