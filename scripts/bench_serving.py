"""Closed-loop load generator for any OpenAI-compatible /v1/embeddings endpoint on this machine.

Reports requests/s, inputs/s, tokens/s (real tokens from `usage`), latency percentiles and errors as
JSON; with several --concurrency values it sweeps and can plot throughput and p99 to a PNG.
Bounded by --num-requests and --max-seconds; refuses any host that is not loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import realistic_texts  # noqa: E402


def require_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise SystemExit(f"refusing to load {host}: this benchmark only targets loopback addresses")


async def run_load(
    url: str,
    model: str,
    texts: list[str],
    concurrency: int,
    inputs_per_request: int,
    num_requests: int,
    max_seconds: float,
    encoding_format: str,
    dimensions: int | None,
    extra_body: dict | None = None,
) -> dict:
    """`concurrency` workers each send one request at a time until the count or time bound is reached.

    `extra_body` adds fields a peer needs in every request (vLLM: `truncate_prompt_tokens`).

    aiohttp and msgspec keep the client's own CPU small: on a 2-core machine the load generator competes with
    the server it measures (httpx cost about 3.5 ms of CPU per request here).
    """
    import aiohttp
    import msgspec

    latencies: list[float] = []
    tokens = 0
    errors: dict[str, int] = {}
    next_request = 0
    deadline = time.perf_counter() + max_seconds
    encoder = msgspec.json.Encoder()

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_request, tokens
        while next_request < num_requests and time.perf_counter() < deadline:
            i = next_request
            next_request += 1
            start_index = (i * inputs_per_request) % len(texts)
            batch = [texts[(start_index + j) % len(texts)] for j in range(inputs_per_request)]
            body = {
                "model": model,
                "input": batch if inputs_per_request > 1 else batch[0],
                "encoding_format": encoding_format,
            }
            if dimensions:
                body["dimensions"] = dimensions
            body.update(extra_body or {})
            started = time.perf_counter()
            try:
                async with session.post(
                    url, data=encoder.encode(body), headers={"content-type": "application/json"}
                ) as response:
                    payload = await response.read()
                    status = response.status
            except aiohttp.ClientError as error:
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                continue
            elapsed = time.perf_counter() - started
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
                continue
            latencies.append(elapsed)
            tokens += msgspec.json.decode(payload).get("usage", {}).get("prompt_tokens", 0)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    done = len(latencies)
    lat_ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "concurrency": concurrency,
        "inputs_per_request": inputs_per_request,
        "requests": done,
        "seconds": round(wall, 3),
        "requests_per_s": done / wall,
        "inputs_per_s": done * inputs_per_request / wall,
        "tokens_per_s": tokens / wall,
        "tokens": tokens,
        "latency_ms": {p: float(np.percentile(lat_ms, q)) for p, q in (("p50", 50), ("p90", 90), ("p99", 99))},
        "errors": errors,
    }


def plot_sweep(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conc = [r["concurrency"] for r in results]
    fig, left = plt.subplots(figsize=(7, 4))
    left.plot(conc, [r["tokens_per_s"] for r in results], "o-", color="tab:blue")
    left.set_xscale("log", base=2)
    left.set_xlabel("concurrency")
    left.set_ylabel("tokens/s", color="tab:blue")
    right = left.twinx()
    right.plot(conc, [r["latency_ms"]["p99"] for r in results], "s--", color="tab:red")
    right.set_ylabel("p99 latency (ms)", color="tab:red")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:30000/v1/embeddings")
    parser.add_argument("--model", default="default")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64])
    parser.add_argument("--inputs-per-request", type=int, default=1)
    parser.add_argument("--num-requests", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--num-texts", type=int, default=4000)
    parser.add_argument("--encoding-format", default="float", choices=["float", "base64"])
    parser.add_argument("--dimensions", type=int)
    parser.add_argument("--warmup-requests", type=int, default=50)
    parser.add_argument("--texts", choices=["realistic", "short"], default="realistic")
    parser.add_argument("--plot", help="PNG path for the concurrency sweep")
    parser.add_argument("--output", help="write the JSON results here too")
    args = parser.parse_args()
    require_loopback(args.url)
    texts = (
        realistic_texts(args.num_texts)
        if args.texts == "realistic"
        else ["What is the weather like in the mountains today?"]
    )
    results = []
    for concurrency in args.concurrency:
        common = (args.url, args.model, texts, concurrency, args.inputs_per_request)
        asyncio.run(run_load(*common, args.warmup_requests, args.max_seconds, args.encoding_format, args.dimensions))
        results.append(
            asyncio.run(run_load(*common, args.num_requests, args.max_seconds, args.encoding_format, args.dimensions))
        )
        print(json.dumps(results[-1]), flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))
    if args.plot:
        plot_sweep(results, args.plot)


if __name__ == "__main__":
    main()
