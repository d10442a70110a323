"""Benchmark: latency of the extraction service under load (`mmie serve`, real uvicorn on 127.0.0.1).

Starts the service on the given model folders on a free port (in this process, a uvicorn thread),
then sends ``--requests`` POST /extract requests (synthetic posts: text + 1..4 images as multipart
uploads, as the page sends them) from ``--concurrency`` client threads, and reports p50/p95/max latency,
requests/s and the error count.

    python benchmarks/service_load.py --ner demo_out/runs/mner_tpm_mi/model --re demo_out/runs/mre_glra/model \\
        --sample demo_out/synth_mre --requests 500 --concurrency 16

Appends a run to benchmarks/results/service_load.json (benchmarks/_results.py). The machine may be shared: the figures are what it gave.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _results import recorded_run, relative
from extract_speed import RESULTS, synthetic_posts


def start(app) -> tuple[str, object]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ner", type=Path, required=True)
    parser.add_argument("--re", type=Path, required=True)
    parser.add_argument("--sample", type=Path, required=True)
    parser.add_argument("--posts", type=int, default=32, help="distinct posts cycled through")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path, default=RESULTS / "service_load.json")
    args = parser.parse_args()

    import httpx

    from mmie.pipeline import Extractor
    from mmie.pipeline.service import create_app

    settings = {key: value for key, value in vars(args).items() if key != "out"}
    settings.update(ner=relative(args.ner), re=relative(args.re), sample=relative(args.sample))
    with recorded_run(args.out, settings) as record:
        posts = synthetic_posts(args.sample, args.posts)
        url, server = start(create_app(Extractor.from_pretrained(ner=args.ner, re=args.re)))
        client = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=args.concurrency))

        def call(k: int) -> tuple[float, int]:
            post = posts[k % len(posts)]
            files = [("images", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(post["images"])]
            started = time.perf_counter()
            response = client.post(f"{url}/extract", data={"text": post["text"]}, files=files or None)
            return time.perf_counter() - started, response.status_code

        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            answers = list(pool.map(call, range(args.requests)))
        elapsed = time.perf_counter() - started
        server.should_exit = True
        latencies = sorted(seconds for seconds, _ in answers)
        record["results"] = result = {
            "benchmark": "service_load",
            "data": f"SYNTHETIC posts of {relative(args.sample)}, multipart uploads",
            "requests": args.requests,
            "concurrency": args.concurrency,
            "errors": sum(status != 200 for _, status in answers),
            "latency_ms": {
                "p50": round(1000 * statistics.median(latencies), 1),
                "p95": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
                "max": round(1000 * latencies[-1], 1),
            },
            "requests_per_s": round(args.requests / elapsed, 2),
        }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
