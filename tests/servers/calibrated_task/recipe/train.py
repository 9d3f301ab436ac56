"""quicktask's point, plus the train budget this phase was given (AR_CAL_TRAIN_S), written for the scorer."""

# --- tunables ---
X = 0.0  # tunable float [-10, 10]
Y = 2.0  # tunable float [-10, 10]

import os

if os.environ.get("AR_SMOKE") == "1":
    raise SystemExit(0)
with open("result.txt", "w") as f:
    f.write(f"{X} {Y} {os.environ.get('AR_CAL_TRAIN_S', 'unset')}\n")
