"""tiny-golf artifact: a small byte-level transformer, its compact weight file, and the loop
that answers the evaluator's scorer.

train.py imports this module to build and save the model, then copies this file beside
model.bin: those two files are the artifact, and every byte of them counts against the cap.
The evaluator starts `python run.py` in the artifact directory, without network, hidden data
or this project's code, and the scorer talks to it over stdin/stdout:

  scorer -> artifact: header <II (B, L), then B*L bytes: B contexts of L bytes, oldest first;
                      B == 0 (or end of input) means stop.
  artifact -> scorer: B*256 little-endian float32: for each context, the probability of each
                      of the 256 possible next bytes (finite, >= 0, summing to 1).

Every context holds only bytes before its target, and the scorer sends the next batch only
after reading all answers to this one, so nothing here can see a byte it is asked to predict.
"""

import json
import lzma
import struct
import sys
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MAGIC = b"TGF1"


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then a 4x GELU MLP."""

    def __init__(self, d_model: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model, bias=False)
        self.fc2 = nn.Linear(4 * d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.fc2(F.gelu(self.fc(self.ln2(x))))


class ByteGPT(nn.Module):
    """Bytes in, next-byte logits out, over a context of at most `block` bytes."""

    def __init__(self, n_layer: int, d_model: int, n_head: int, block: int) -> None:
        super().__init__()
        self.config = {"n_layer": n_layer, "d_model": d_model, "n_head": n_head, "block": block}
        self.block = block
        self.tok_emb = nn.Embedding(256, d_model)
        self.pos_emb = nn.Parameter(torch.zeros(block, d_model))
        self.blocks = nn.ModuleList(Block(d_model, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 256, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(idx) + self.pos_emb[: idx.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln_f(x))


# ------------------------------------------------------------------ compact weight file


def quantize(w: np.ndarray, bits: int) -> tuple[bytes, np.ndarray]:
    """Per-row symmetric quantization of a matrix to `bits`-bit ints, bit-packed."""
    qmax = 2 ** (bits - 1) - 1
    scale = np.maximum(np.abs(w).max(axis=1), 1e-8) / qmax
    q = np.clip(np.rint(w / scale[:, None]), -qmax, qmax).astype(np.int16) + qmax
    planes = (q.reshape(-1, 1) >> np.arange(bits)) & 1
    return np.packbits(planes.astype(np.uint8)).tobytes(), scale.astype(np.float32)


def dequantize(buf: bytes, scale: np.ndarray, shape: tuple[int, ...], bits: int) -> np.ndarray:
    """Inverse of quantize()."""
    n = int(np.prod(shape))
    planes = np.unpackbits(np.frombuffer(buf, dtype=np.uint8))[: n * bits].reshape(n, bits)
    q = (planes.astype(np.int32) << np.arange(bits)).sum(axis=1) - (2 ** (bits - 1) - 1)
    return (q.reshape(shape) * scale.reshape(-1, *[1] * (len(shape) - 1))).astype(np.float32)


def save(model: ByteGPT, path: Path, bits: int) -> int:
    """Write model.bin: MAGIC, <I header length, JSON header, lzma(payload). Returns bytes."""
    tensors, chunks = [], []
    for name, t in model.state_dict().items():
        w = t.detach().float().numpy()
        if w.ndim == 2:
            packed, scale = quantize(w, bits)
            chunks += [scale.tobytes(), packed]
            tensors.append([name, list(w.shape), bits, len(packed)])
        else:
            chunks.append(w.astype(np.float16).tobytes())
            tensors.append([name, list(w.shape), 16, w.size * 2])
    header = json.dumps({"config": model.config, "tensors": tensors}).encode()
    blob = MAGIC + struct.pack("<I", len(header)) + header
    blob += lzma.compress(b"".join(chunks), preset=9 | lzma.PRESET_EXTREME)
    Path(path).write_bytes(blob)
    return len(blob)


def load(path: Path) -> ByteGPT:
    """Rebuild the model from model.bin."""
    blob = Path(path).read_bytes()
    assert blob[:4] == MAGIC, "not a tiny-golf model file"
    (hlen,) = struct.unpack("<I", blob[4:8])
    header = json.loads(blob[8 : 8 + hlen])
    payload, pos, state = lzma.decompress(blob[8 + hlen :]), 0, {}
    for name, shape, bits, nbytes in header["tensors"]:
        if bits == 16:
            state[name] = np.frombuffer(payload, np.float16, int(np.prod(shape)), pos).reshape(shape)
            pos += nbytes
            continue
        scale = np.frombuffer(payload, np.float32, shape[0], pos)
        pos += 4 * shape[0]
        state[name] = dequantize(payload[pos : pos + nbytes], scale, tuple(shape), bits)
        pos += nbytes
    model = ByteGPT(**header["config"])
    model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()})
    return model.eval()


# ------------------------------------------------------------------ the scorer protocol


def read_exact(inp: BinaryIO, n: int) -> bytes:
    """Read exactly n bytes, or fewer only at end of input."""
    buf = bytearray()
    while len(buf) < n:
        chunk = inp.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


@torch.no_grad()
def serve(model: ByteGPT, inp: BinaryIO, out: BinaryIO) -> None:
    """Answer batches of contexts with next-byte distributions until told to stop."""
    while True:
        head = read_exact(inp, 8)
        if len(head) < 8:
            return
        b, length = struct.unpack("<II", head)
        if b == 0:
            return
        ctx = np.frombuffer(read_exact(inp, b * length), dtype=np.uint8).reshape(b, length)
        x = torch.from_numpy(ctx[:, -model.block :].astype(np.int64))
        probs = F.softmax(model(x)[:, -1].float(), dim=-1)
        out.write(probs.numpy().astype("<f4").tobytes())
        out.flush()


if __name__ == "__main__":
    torch.set_num_threads(1)  # batches this small: one thread is the fastest and steadiest
    serve(load(Path(__file__).with_name("model.bin")), sys.stdin.buffer, sys.stdout.buffer)
