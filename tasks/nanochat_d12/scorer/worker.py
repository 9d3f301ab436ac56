"""The model worker: the trial's model, answering the scorer's batches (see session.py).

    python worker.py CODE_DIR CHECKPOINT_DIR

Started by the scorer under landlock.py, so nothing here (nor the trial's code it imports)
can read the hidden data or write the result. It imports the trial's `nanochat` package from
CODE_DIR (the tree the train phase ran) and builds the model with that package's own
checkpoint loader (`nanochat.checkpoint_manager.build_model`) from the last `model_<step>.pt`
in CHECKPOINT_DIR; nothing else of the trial's code runs. It answers, per batch, the loss and
the greedy token at every scored position under the model's own logits, and on demand the raw
logits at a few positions. Protocol bytes go through private copies of fds 0 and 1; whatever
the trial's code prints lands on stderr.
"""

from __future__ import annotations

import glob
import json
import os
import sys

from session import read_frame, write_frame


def _protocol_files():
    """Private copies of stdin/stdout for frames; fd 1 becomes stderr, fd 0 /dev/null."""
    fd_in, fd_out = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = sys.stderr
    return os.fdopen(fd_in, "rb", buffering=1 << 16), os.fdopen(fd_out, "wb", buffering=1 << 16)


def _device(torch):
    if not torch.cuda.is_available():
        return torch.device("cpu")
    torch.cuda.set_device(0)
    return torch.device("cuda", 0)


def load(torch, code: str, ckpt: str, device):
    """The trial's model, built by its own loader from the checkpoint's last step."""
    sys.path.insert(0, code)
    from nanochat.checkpoint_manager import build_model

    steps = [int(os.path.basename(p)[6:-3]) for p in glob.glob(os.path.join(ckpt, "model_*.pt"))]
    if not steps:
        raise FileNotFoundError(f"no model_<step>.pt in {ckpt}")
    model, _tokenizer, meta = build_model(ckpt, max(steps), device, "eval")
    return model, meta


class Answerer:
    def __init__(self, torch, model, device) -> None:
        self.torch, self.model, self.device = torch, model, device
        self.logits = None

    def windows(self, payload: bytes) -> bytes:
        import numpy as np

        torch = self.torch
        head = np.frombuffer(payload[:8], "<i4")
        b, t = int(head[0]), int(head[1])
        grid = np.frombuffer(payload[8:8 + 4 * b * t], "<i4").reshape(b, t)
        spans = np.frombuffer(payload[8 + 4 * b * t:], "<i4").reshape(b, 2)
        x = torch.from_numpy(grid.astype("int64")).to(self.device)
        with torch.inference_mode():
            logits = self.model(x).float()
        self.logits = logits
        nll, top = [], []
        for i, (lo, hi) in enumerate(spans.tolist()):
            if hi <= lo:
                continue
            rows = logits[i, lo:hi]
            nll.append(torch.nn.functional.cross_entropy(rows, x[i, lo + 1:hi + 1], reduction="none"))
            top.append(rows.argmax(dim=-1))
        if not nll:
            return b""
        return (torch.cat(nll).cpu().numpy().astype("<f4").tobytes()
                + torch.cat(top).cpu().numpy().astype("<i4").tobytes())

    def rows(self, payload: bytes) -> bytes:
        import numpy as np

        pairs = np.frombuffer(payload, "<i4").reshape(-1, 2).astype("int64")
        r = self.torch.from_numpy(pairs[:, 0]).to(self.device)
        p = self.torch.from_numpy(pairs[:, 1]).to(self.device)
        return self.logits[r, p].cpu().numpy().astype("<f4").tobytes()


def main(argv: list[str]) -> int:
    fin, fout = _protocol_files()
    import torch

    device = _device(torch)
    model, meta = load(torch, argv[0], argv[1], device)
    model.eval()
    cfg = model.config
    limit = int(model.cos.size(1)) if hasattr(model, "cos") else int(cfg.sequence_len)
    ready = {"vocab": int(cfg.vocab_size), "limit": limit, "n_layer": int(cfg.n_layer),
             "sequence_len": int(cfg.sequence_len), "device": str(device), "step": meta.get("step"),
             "params": int(sum(p.numel() for p in model.parameters()))}
    write_frame(fout, b"RDY ", json.dumps(ready).encode())
    answerer = Answerer(torch, model, device)
    while True:
        tag, payload = read_frame(fin)
        if tag == b"END ":
            return 0
        if tag == b"WIN ":
            write_frame(fout, b"ANS ", answerer.windows(payload))
        elif tag == b"CHK ":
            write_frame(fout, b"LOG ", answerer.rows(payload))
        else:
            raise ValueError(f"unexpected frame {tag!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
