"""The model worker: the agent's model, answering the scorer's windows (see frames.py).

    python worker.py   (cwd: a dir holding artifact/train_gpt.py and the model file it loads)

Started by the scorer under landlock.py, so nothing here (nor the agent's code it imports)
can read the hidden data or write the result. It imports the artifact's code as a module
(its `main()` does not run), builds `h = Hyperparameters()` from the trial's environment,
loads the model with `load_eval_model(h, device)` and answers: per window batch, the
negative log-likelihood of every scored target under the model's own logits, and on demand
the raw logits at a few positions, which the scorer uses to check those numbers. Protocol
bytes go through private copies of fds 0 and 1; whatever the agent's code prints lands on
stderr.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback

from frames import expect, read_frame, unpack_windows, write_frame

ARTIFACT_CODE = "artifact/train_gpt.py"


def _protocol_fds() -> tuple[int, int]:
    """Private copies of stdin/stdout for frames; fd 1 becomes stderr, fd 0 /dev/null."""
    fd_in, fd_out = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = sys.stderr
    return fd_in, fd_out


def load_artifact(path: str):
    """The artifact's code as a module named `train_gpt` (not `__main__`: main() stays idle)."""
    spec = importlib.util.spec_from_file_location("train_gpt", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_gpt"] = module
    spec.loader.exec_module(module)
    return module


def _device(torch):
    if os.environ.get("AR_DEVICE") == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    torch.cuda.set_device(0)
    return torch.device("cuda", 0)


def _logits_fn(torch, model, device):
    """forward_logits, compiled like upstream's eval on CUDA (eager elsewhere, or if it will not compile)."""
    if device.type != "cuda" or os.environ.get("TORCHDYNAMO_DISABLE") == "1":
        return model.forward_logits, False
    return torch.compile(model.forward_logits, dynamic=False, fullgraph=True), True


class Answerer:
    """Holds the model and the last batch's logits."""

    def __init__(self, torch, model, device, vocab: int) -> None:
        self.torch, self.model, self.device, self.vocab = torch, model, device, vocab
        self.fn, self.compiled = _logits_fn(torch, model, device)
        self.logits = None

    def _forward(self, x):
        torch = self.torch
        with torch.inference_mode():
            if self.device.type == "cuda":
                with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                    return self._call(x)
            return self._call(x)

    def _call(self, x):
        try:
            return self.fn(x)
        except Exception:  # noqa: BLE001 - a model that will not compile is evaluated eagerly
            if not self.compiled:
                raise
            traceback.print_exc()
            self.fn, self.compiled = self.model.forward_logits, False
            return self.fn(x)

    def windows(self, payload: bytes) -> bytes:
        torch = self.torch
        start, end, x, y = unpack_windows(payload)
        xt = torch.from_numpy(x.astype("int64")).to(self.device)
        logits = self._forward(xt)
        if tuple(logits.shape) != (*x.shape, self.vocab):
            raise ValueError(f"forward_logits returned shape {tuple(logits.shape)}, expected {(*x.shape, self.vocab)}")
        self.logits = logits
        pos = torch.arange(x.shape[1], device=self.device)[None, :]
        mask = (pos >= torch.from_numpy(start.astype("int64")).to(self.device)[:, None]) & \
               (pos < torch.from_numpy(end.astype("int64")).to(self.device)[:, None])
        yt = torch.from_numpy(y.astype("int64")).to(self.device)
        nll = torch.nn.functional.cross_entropy(logits[mask].float(), yt[mask], reduction="none")
        return nll.float().cpu().numpy().astype("<f4").tobytes()

    def rows(self, payload: bytes) -> bytes:
        import numpy as np

        pairs = np.frombuffer(payload, dtype="<i4").reshape(-1, 2).astype("int64")
        if self.logits is None:
            raise ValueError("CHK before any WIN")
        b = self.torch.from_numpy(pairs[:, 0]).to(self.device)
        t = self.torch.from_numpy(pairs[:, 1]).to(self.device)
        return self.logits[b, t].float().cpu().numpy().astype("<f4").tobytes()


def serve(fd_in: int, fd_out: int, answerer: Answerer) -> None:
    while True:
        tag, payload = read_frame(fd_in)
        if tag == b"END ":
            return
        if tag != b"WIN ":
            raise ValueError(f"unexpected frame {tag!r}")
        write_frame(fd_out, b"NLL ", answerer.windows(payload))
        write_frame(fd_out, b"ROW ", answerer.rows(expect(fd_in, b"CHK ", None)))


def main() -> int:
    fd_in, fd_out = _protocol_fds()
    import torch

    module = load_artifact(ARTIFACT_CODE)
    h = module.Hyperparameters()
    device = _device(torch)
    model = module.load_eval_model(h, device)
    model.eval()
    vocab, seq_len = int(h.vocab_size), int(h.eval_seq_len)
    answerer = Answerer(torch, model, device, vocab)
    ready = {"vocab": vocab, "seq_len": seq_len, "device": str(device), "compiled": answerer.compiled}
    write_frame(fd_out, b"RDY ", json.dumps(ready).encode())
    serve(fd_in, fd_out, answerer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
