"""Accuracy of every seed's preds.json against the hidden labels."""
import json
import os
import pathlib

out = pathlib.Path(os.environ["AR_OUTPUTS"])
labels = json.loads(pathlib.Path(os.environ["AR_HIDDEN"], "labels.json").read_text())["labels"]
accs = []
for i in range(int(os.environ["AR_SEEDS"])):
    try:
        preds = json.loads((out / "train" / str(i) / "preds.json").read_text())
    except (OSError, ValueError):
        preds = []
    accs.append(sum(1 for a, b in zip(preds, labels) if a == b) / len(labels))
pathlib.Path(os.environ["AR_RESULT"]).write_text(json.dumps({"accuracy": sum(accs) / len(accs)}))
