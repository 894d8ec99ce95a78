"""How many times a large image's pixels are copied between the frontend's preprocessed array and the model."""

import sys
import time
import tracemalloc
import warnings

import msgspec
import numpy as np
import torch
import zmq

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from processes.messages import EmbedRequest, ImageData, RawArray, RawArrayView, SchedulerInput

# Qwen2-VL pixels of a 3.2 MP image (16384 patches x 1176 floats)
pixels = np.random.default_rng(0).random((16384, 1176), dtype=np.float32)
ids = np.arange(100, dtype=np.int32)
req = EmbedRequest(
    "r",
    RawArray.from_numpy(ids),
    RawArray.from_numpy(np.array([100], np.int32)),
    images=[ImageData(0, RawArrayView.from_numpy(pixels), (1, 128, 128))],
)
ctx = zmq.Context()
a = ctx.socket(zmq.PUSH)
a.bind("ipc:///tmp/embedserve-measure-copies")
b = ctx.socket(zmq.PULL)
b.connect("ipc:///tmp/embedserve-measure-copies")
enc = msgspec.msgpack.Encoder()
dec = msgspec.msgpack.Decoder(SchedulerInput)
tracemalloc.start()
t0 = time.perf_counter()
frame_bytes = enc.encode(req)
t1 = time.perf_counter()
_, peak_encode = tracemalloc.get_traced_memory()
tracemalloc.reset_peak()
a.send(frame_bytes, copy=False)
frame = b.recv(copy=False)
t2 = time.perf_counter()
msg = dec.decode(frame.buffer)
arr = msg.images[0].pixel_values.to_numpy()
t3 = time.perf_counter()
_, peak_decode = tracemalloc.get_traced_memory()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    t = torch.from_numpy(arr)
print(
    f"pixels {pixels.nbytes / 1e6:.0f} MB; encode {1e3 * (t1 - t0):.1f} ms, python allocations during encode peak {peak_encode / 1e6:.0f} MB (one copy)"
)
print(
    f"decode {1e3 * (t3 - t2):.3f} ms, python allocations during decode peak {peak_decode / 1e6:.3f} MB; shares frame memory: {np.shares_memory(arr, np.frombuffer(frame.buffer, np.uint8))}; torch view shares: {t.data_ptr() == arr.ctypes.data}"
)
print("equal:", np.array_equal(arr, pixels))
