"""Benchmark: the extraction service under load (`mmie serve`, a real server on 127.0.0.1).

Each case starts its own `mmie serve` process on the given model folders (default limits unless
``--max-pending-mb`` / ``--max-batch`` / ``--max-wait-ms`` / ``--max-queue`` say otherwise), waits for
it, and measures it from outside:

* ``load``: ``--requests`` POST /extract requests (synthetic posts: text + 1..4 images as multipart
  uploads, as the page sends them) from ``--concurrency`` client threads per round, for each service
  mode of ``--modes`` (micro-batches, one at a time; each on its own server, both up for the whole
  case), ``--rounds`` rounds with the modes taking turns, so a busy moment of the machine falls on
  both: p50/p95/max latency over all rounds, requests/s per round and their median, errors, the
  batches by size, and the ratio of requests/s per round and its median. Target (issue #23, at
  concurrency 16): micro-batches >= 3x the requests/s of one at a time, p95 <= 1.0 s, 0 errors.
* ``overflow``: the same requests from ``--overflow-concurrency`` (64) client threads against the
  micro-batching service: counted are answers 200, clean 503s (with Retry-After) and errors (any
  other status, a timeout, a reset). Target: 0 errors, and the overflow answered 503.

Before ``load`` and ``overflow`` are measured, each distinct post (``--posts``) is sent once (the
steady state: an image's vision features are computed at its first sight, then cached in memory).
* ``burst``: ``--burst`` (50) requests at once, each of the maximum size: four 4096 x 4096 JPEGs
  under the 16 MiB body limit. Counted: answers 200, clean 503s (with Retry-After) and errors
  (anything else); the server's peak RSS (VmHWM), its RSS before, right after, and ``--settle`` (60)
  seconds after the burst. Target: 0 errors, peak RSS <= 3 GB.
* ``long``: one post of 2,000 characters (synthetic posts' texts joined, so the NER model finds
  their names) with 4 images, default limits: latency, entities, relations, skipped candidate
  pairs. Target: answered within 10 s, the skipped pairs reported.

    python benchmarks/service_load.py --ner demo_out/runs/mner_tpm_mi/model --re demo_out/runs/mre_glra/model \\
        --sample demo_out/synth_mre --cases load,overflow,burst,long

Appends a run (command line, machine, settings, results per case) to benchmarks/results/service_load.json
through benchmarks/_results.py. The machine may be shared: the figures are what it gave.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _results import recorded_run, relative, run_main
from extract_speed import RESULTS, synthetic_posts

MAX_SIDE = 4096
TARGET_PEAK_RSS_GB = 3.0
TARGET_SPEEDUP, TARGET_P95_MS = 3.0, 1000.0  # issue #23, at concurrency 16


# ------------------------------------------------------------------------------ the server, from outside


class Server:
    """`mmie serve` in its own process (so its RSS is its own), on a free port of 127.0.0.1."""

    def __init__(self, ner: Path, re_model: Path, extra: list[str]) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "mmie.cli", "serve", "--ner", str(ner), "--re", str(re_model)]
        command += ["--host", "127.0.0.1", "--port", str(self.port), *extra]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_ready(self, client, seconds: float = 300) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mmie serve exited with {self.process.returncode}")
            try:
                if client.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except Exception:
                pass
            time.sleep(0.5)
        raise RuntimeError("mmie serve did not answer /health")

    def runner(self, client) -> dict:
        """The service's runner as /health shows it (mode, batches by size)."""
        return client.get(f"{self.url}/health", timeout=30).json()["runner"]

    def memory_mb(self) -> dict[str, float]:
        """VmRSS (now) and VmHWM (the peak so far) of the server process, in MB."""
        values = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = round(int(rest.split()[0]) / 1024, 1)
        return {"rss_mb": values["VmRSS"], "peak_rss_mb": values["VmHWM"]}

    def stop(self) -> None:
        self.process.terminate()  # our own child, by its pid
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def multipart(text: str, images: list[bytes]) -> tuple[bytes, str]:
    """A multipart/form-data body (built once, shared by the client threads) and its content type."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\n{text}\r\n'.encode()]
    for k, data in enumerate(images):
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{k}.jpg"\r\n'
        parts.append(head.encode() + b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def percentiles(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50": None, "p95": None, "max": None}
    ordered = sorted(seconds)
    return {
        "p50": round(1000 * statistics.median(ordered), 1),
        "p95": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 1),
        "max": round(1000 * ordered[-1], 1),
    }


# ------------------------------------------------------------------------------ cases


def bodies_of(args) -> list[tuple[bytes, str]]:
    return [multipart(post["text"], post["images"]) for post in synthetic_posts(args.sample, args.posts)]


def send_all(client, server: Server, bodies: list[tuple[bytes, str]], requests: int, concurrency: int) -> dict:
    """``requests`` requests from ``concurrency`` threads: per request (seconds, status, Retry-After given);
    a request that raises (timeout, reset) has status -1."""

    def call(k: int) -> tuple[float, int, bool]:
        body, content_type = bodies[k % len(bodies)]
        started = time.perf_counter()
        try:
            response = client.post(f"{server.url}/extract", content=body, headers={"content-type": content_type})
        except Exception:
            return time.perf_counter() - started, -1, False
        return time.perf_counter() - started, response.status_code, "retry-after" in response.headers

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(call, range(requests)))
    return {"answers": answers, "seconds": time.perf_counter() - started}


def warm_posts(client, server: Server, bodies: list[tuple[bytes, str]], concurrency: int) -> dict:
    """Each distinct post once before measuring, so that the figures are of the steady state: the first
    sight of an image costs its vision-encoder passes (then kept in the in-memory feature cache)."""
    warm_up(client, server)
    sent = send_all(client, server, bodies, len(bodies), concurrency)
    return {
        "requests": len(bodies),
        "seconds": round(sent["seconds"], 1),
        "statuses": sorted({status for _, status, _ in sent["answers"]}),
    }


def load_case(args, modes: list[str], extra: list[str]) -> dict:
    """Every mode on its own server, warmed; then ``args.rounds`` rounds of ``args.requests`` requests,
    the modes taking turns within each round."""
    import httpx

    bodies = bodies_of(args)
    servers = {mode: Server(args.ner, args.re, [*extra, "--mode", mode]) for mode in modes}
    client = httpx.Client(timeout=300, limits=httpx.Limits(max_connections=args.concurrency))
    try:
        warmed = {}
        for mode, server in servers.items():
            server.wait_ready(client)
            warmed[mode] = warm_posts(client, server, bodies, args.concurrency)
        sent: dict[str, list[dict]] = {mode: [] for mode in modes}
        for number in range(args.rounds):
            for mode in modes if number % 2 == 0 else modes[::-1]:
                sent[mode].append(send_all(client, servers[mode], bodies, args.requests, args.concurrency))
        by_mode = {}
        for mode, server in servers.items():
            answers = [answer for round_ in sent[mode] for answer in round_["answers"]]
            per_round = [round(args.requests / round_["seconds"], 2) for round_ in sent[mode]]
            by_mode[mode] = {
                "warm_up": warmed[mode],
                "requests": args.requests * args.rounds,
                "rounds": args.rounds,
                "concurrency": args.concurrency,
                "errors": sum(status != 200 for _, status, _ in answers),
                "latency_ms": percentiles([seconds for seconds, _, _ in answers]),
                "requests_per_s": statistics.median(per_round),
                "requests_per_s_per_round": per_round,
                "runner": server.runner(client),
                "memory_after": server.memory_mb(),
            }
        return compare_modes(by_mode)
    finally:
        client.close()
        for server in servers.values():
            server.stop()


def overflow_case(args, client, server: Server) -> dict:
    bodies = bodies_of(args)
    warmed = warm_posts(client, server, bodies, args.concurrency)
    sent = send_all(client, server, bodies, args.requests, args.overflow_concurrency)
    answers = sent["answers"]
    served = [seconds for seconds, status, _ in answers if status == 200]
    clean_503 = sum(status == 503 and retry for _, status, retry in answers)
    errors = len(answers) - len(served) - clean_503
    return {
        "warm_up": warmed,
        "requests": args.requests,
        "concurrency": args.overflow_concurrency,
        "statuses": {
            str(code): sum(status == code for _, status, _ in answers) for code in sorted({a[1] for a in answers})
        },
        "answered_200": len(served),
        "clean_503_with_retry_after": clean_503,
        "errors": errors,
        "latency_ms_of_200": percentiles(served),
        "answered_per_s": round(len(served) / sent["seconds"], 2),
        "runner": server.runner(client),
        "target": {"errors": 0, "overflow_answered_503": True},
        "met": errors == 0 and clean_503 > 0,
    }


def warm_up(client, server: Server):
    """One small request with a picture, so that what loads on first use is loaded before measuring."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 80, 40)).save(buffer, format="JPEG")
    body, content_type = multipart("alice visited paris", [buffer.getvalue()])
    return client.post(f"{server.url}/extract", content=body, headers={"content-type": content_type})


def big_jpegs(sample: Path, limit: int) -> list[bytes]:
    """Four 4096 x 4096 JPEGs made from the sample's pictures (with grain, so they do not compress to
    nothing), at the highest quality that keeps the four, and the form around them, under ``limit``."""
    from PIL import Image

    sources = sorted((sample / "images").glob("*.jpg"))[:4]
    grain = Image.effect_noise((MAX_SIDE, MAX_SIDE), 24).convert("RGB")
    pictures = [
        Image.blend(Image.open(path).convert("RGB").resize((MAX_SIDE, MAX_SIDE), Image.Resampling.BICUBIC), grain, 0.25)
        for path in sources
    ]
    for quality in (90, 85, 80, 75, 70, 60, 50, 40):
        encoded = []
        for picture in pictures:
            buffer = io.BytesIO()
            picture.save(buffer, format="JPEG", quality=quality)
            encoded.append(buffer.getvalue())
        if sum(map(len, encoded)) < limit - 64 * 1024:
            return encoded
    raise RuntimeError("could not fit four 4096 x 4096 JPEGs under the body limit")


def burst_case(args, client, server: Server) -> dict:
    images = big_jpegs(args.sample, 16 * 2**20)
    body, content_type = multipart("Kawhi Leonard visited Toronto with the Raptors", images)
    warm = warm_up(client, server)
    before = server.memory_mb()

    def call(_: int) -> tuple[float, int, bool]:
        started = time.perf_counter()
        try:
            response = client.post(f"{server.url}/extract", content=body, headers={"content-type": content_type})
        except Exception:
            return time.perf_counter() - started, -1, False
        return time.perf_counter() - started, response.status_code, "retry-after" in response.headers

    started = time.perf_counter()
    with ThreadPoolExecutor(args.burst) as pool:
        answers = list(pool.map(call, range(args.burst)))
    elapsed = time.perf_counter() - started
    right_after = server.memory_mb()
    time.sleep(args.settle)
    settled = server.memory_mb()
    served = [seconds for seconds, status, _ in answers if status == 200]
    clean_503 = sum(status == 503 and retry for _, status, retry in answers)
    peak_gb = settled["peak_rss_mb"] / 1024
    return {
        "requests": args.burst,
        "body_bytes": len(body),
        "image_bytes": [len(data) for data in images],
        "warm_up_status": warm.status_code,
        "statuses": {
            str(code): sum(status == code for _, status, _ in answers) for code in sorted({a[1] for a in answers})
        },
        "answered_200": len(served),
        "clean_503_with_retry_after": clean_503,
        "errors": args.burst - len(served) - clean_503,
        "latency_ms_of_200": percentiles(served),
        "latency_ms_all": percentiles([seconds for seconds, _, _ in answers]),
        "seconds": round(elapsed, 1),
        "memory": {
            "before_burst": before,
            "right_after_burst": right_after,
            f"{args.settle:g}_s_after_burst": settled,
        },
        "target": {"errors": 0, "peak_rss_gb_at_most": TARGET_PEAK_RSS_GB},
        "met": args.burst - len(served) - clean_503 == 0 and peak_gb <= TARGET_PEAK_RSS_GB,
    }


def long_post(sample: Path, chars: int = 2000) -> tuple[str, list[bytes]]:
    posts = synthetic_posts(sample, 200)
    text = ""
    for post in posts:
        if len(text) + len(post["text"]) + 3 > chars:
            break
        text += post["text"] + " . "
    while len(text) < chars:
        text += "!"
    images = [data for post in posts for data in post["images"]][:4]
    return text[:chars], images


def long_case(args, client, server: Server) -> dict:
    text, images = long_post(args.sample)
    body, content_type = multipart(text, images)
    warm_up(client, server)
    started = time.perf_counter()
    response = client.post(f"{server.url}/extract", content=body, headers={"content-type": content_type})
    seconds = time.perf_counter() - started
    result = response.json() if response.status_code == 200 else {}
    return {
        "characters": len(text),
        "images": len(images),
        "status": response.status_code,
        "seconds": round(seconds, 2),
        "entities": len(result.get("entities", [])),
        "relations": len(result.get("relations", [])),
        "skipped_pairs": len(result.get("skipped_pairs", [])),
        "target": {"seconds_at_most": 10},
        "met": response.status_code == 200 and seconds <= 10,
    }


# The cases run on one batch-mode server each (the load case, on a server per mode, is load_case).
CASES = {"overflow": overflow_case, "burst": burst_case, "long": long_case}


def compare_modes(by_mode: dict[str, dict]) -> dict:
    """The load case per mode, the ratio of requests/s (per round, and its median), and the targets of issue #23."""
    result: dict = {"by_mode": by_mode}
    if {"batch", "one-at-a-time"} <= set(by_mode):
        batch = by_mode["batch"]
        ratios = [
            fast / slow
            for fast, slow in zip(
                batch["requests_per_s_per_round"], by_mode["one-at-a-time"]["requests_per_s_per_round"]
            )
        ]
        speedup = statistics.median(ratios)
        result["batch_over_one_at_a_time"] = round(speedup, 2)
        result["batch_over_one_at_a_time_per_round"] = [round(ratio, 2) for ratio in ratios]
        result["target"] = {"speedup_at_least": TARGET_SPEEDUP, "p95_ms_at_most": TARGET_P95_MS, "errors": 0}
        result["met"] = (
            speedup >= TARGET_SPEEDUP and batch["latency_ms"]["p95"] <= TARGET_P95_MS and batch["errors"] == 0
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ner", type=Path, required=True)
    parser.add_argument("--re", type=Path, required=True)
    parser.add_argument("--sample", type=Path, required=True)
    parser.add_argument("--cases", default="load,overflow,burst,long", help="comma-separated: load," + ",".join(CASES))
    parser.add_argument("--modes", default="batch,one-at-a-time", help="load: the service modes compared")
    parser.add_argument("--posts", type=int, default=32, help="load: distinct posts cycled through")
    parser.add_argument("--requests", type=int, default=500, help="load: per mode and round")
    parser.add_argument("--rounds", type=int, default=3, help="load: rounds, the modes taking turns")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--overflow-concurrency", type=int, default=64, help="overflow: client threads")
    parser.add_argument("--burst", type=int, default=50, help="burst: requests sent at once")
    parser.add_argument("--settle", type=float, default=60.0, help="burst: seconds before the RSS is read again")
    parser.add_argument("--max-pending-mb", type=float, default=None, help="passed to mmie serve")
    parser.add_argument("--max-batch", type=int, default=None, help="passed to mmie serve")
    parser.add_argument("--max-wait-ms", type=float, default=None, help="passed to mmie serve")
    parser.add_argument("--max-queue", type=int, default=None, help="passed to mmie serve")
    parser.add_argument("--out", type=Path, default=RESULTS / "service_load.json")
    args = parser.parse_args()

    extra = []
    for flag in ("max_pending_mb", "max_batch", "max_wait_ms", "max_queue"):
        if getattr(args, flag) is not None:
            extra += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    settings = {key: value for key, value in vars(args).items() if key != "out"}
    settings.update(ner=relative(args.ner), re=relative(args.re), sample=relative(args.sample))
    settings["server"] = "mmie serve, default limits" + (f" but {' '.join(extra)}" if extra else "")
    with recorded_run(args.out, settings) as run:
        run["results"] = {"data": f"SYNTHETIC posts of {relative(args.sample)}, multipart uploads"}
        for name in args.cases.split(","):
            if name == "load":
                run["results"][name] = load_case(args, args.modes.split(","), extra)
            else:
                run["results"][name] = run_case(args, name, "batch", extra)
            print(name, json.dumps(run["results"][name], indent=2), flush=True)
        if "load" in run["results"]:
            print("load", json.dumps({k: v for k, v in run["results"]["load"].items() if k != "by_mode"}), flush=True)


def run_case(args, name: str, mode: str, extra: list[str]) -> dict:
    """One case on its own `mmie serve` process in ``mode``."""
    import httpx

    server = Server(args.ner, args.re, [*extra, "--mode", mode])
    connections = max(args.concurrency, args.overflow_concurrency, args.burst)
    client = httpx.Client(timeout=300, limits=httpx.Limits(max_connections=connections))
    try:
        server.wait_ready(client)
        return CASES[name](args, client, server)
    finally:
        client.close()
        server.stop()


if __name__ == "__main__":
    run_main(main)
