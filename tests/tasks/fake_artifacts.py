"""Source of fake tiny-golf artifacts (stdlib only), written to files and run as processes.

Each is a complete `run.py` that speaks the scorer protocol: header <II (B, L), B*L context
bytes, answer B*256 float32.
"""

from __future__ import annotations

_LOOP = '''
import struct, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer

def batches():
    while True:
        head = inp.read(8)
        if len(head) < 8:
            return
        b, length = struct.unpack("<II", head)
        if b == 0:
            return
        data = inp.read(b * length)
        yield b, length, [data[i * length:(i + 1) * length] for i in range(b)]
'''

UNIFORM = _LOOP + '''
row = struct.pack("<f", 1 / 256) * 256
for b, _, _ in batches():
    out.write(row * b)
    out.flush()
'''

UNNORMALISED = _LOOP + '''
row = struct.pack("<f", 2 / 256) * 256
for b, _, _ in batches():
    out.write(row * b)
    out.flush()
'''

NAN = _LOOP + '''
row = struct.pack("<f", float("nan")) + struct.pack("<f", 1 / 255) * 255
for b, _, _ in batches():
    out.write(row * b)
    out.flush()
'''

DIES_MIDWAY = _LOOP + '''
row = struct.pack("<f", 1 / 256) * 256
for i, (b, _, _) in enumerate(batches()):
    if i == 3:
        out.write(row * (b // 2))
        out.flush()
        sys.exit(1)
    out.write(row * b)
    out.flush()
'''

HANGS = _LOOP + '''
import time
for b, _, _ in batches():
    time.sleep(60)
'''

# Records every batch of contexts to contexts.log and tries to cheat: it remembers which byte
# followed every K-gram in any context it has seen (earlier batches and the current one) and
# bets 0.99 on it when a context ends with a remembered K-gram. That would win if any context
# ever showed the byte another answer must predict.
PEEKER = _LOOP + '''
import os
K = 8
seen = {}
log = open(os.environ.get("PEEK_LOG", "contexts.log"), "ab")
for b, length, ctxs in batches():
    log.write(struct.pack("<II", b, length) + b"".join(ctxs))
    log.flush()
    for c in ctxs:
        for i in range(K, len(c)):
            seen[c[i - K:i]] = c[i]
    answers = []
    for c in ctxs:
        guess = seen.get(c[-K:])
        if guess is None:
            answers.append(struct.pack("<f", 1 / 256) * 256)
        else:
            p = [0.01 / 255] * 256
            p[guess] = 0.99
            answers.append(struct.pack("<256f", *p))
    out.write(b"".join(answers))
    out.flush()
'''
