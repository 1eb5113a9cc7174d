"""Serving under load: ``breedclf serve`` vs a naive one-request-at-a-time handler, in one run.

Both servers load the same saved model and answer the same JPEG photos (scikit-image's
photographs re-encoded at dogImages-like sizes, 400–640 px wide, quality 90) with the same
top-5 JSON. The naive baseline is the handler course scripts write: a single-threaded
``http.server`` whose ``do_POST`` runs ``Image.open(...).convert("RGB")``, a torchvision
``transforms.Compose`` (Resize, CenterCrop, ToTensor, Normalize), ``model(x.unsqueeze(0))``
under ``torch.no_grad()``, softmax and top-k, one request at a time. (Its listen backlog is
raised to 128 so that concurrency 32 is not refused at the socket level.)

For each concurrency level (1, 8, 32 by default) each server is loaded for ``--duration``
seconds by that many client threads with keep-alive connections, the two servers alternating
which goes first. Reported: p50/p95/p99 latency, throughput, errors, the mean forward-pass batch
size of breedclf's server, its resident memory before and after the load, and two ratios:

* throughput of breedclf / naive at concurrency ≥ 8 (goal ≥ 2);
* p50 latency of breedclf at concurrency 1 / the bare cost of one request in-process — the
  server's own decode + preprocess + channels-last forward of one image, without HTTP — (goal
  ≤ 1.2).

Without ``--model-dir`` the model is EfficientNet-Lite0 with its ImageNet weights and a new
133-class head (the dogImages class count) at 224 px, built offline. The machine's load average
is printed: other processes on a 2-core machine move every figure, so compare only ratios
measured in the same run.

Run: ``uv run python bench/serve_load.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
WIDTHS = (500, 640, 400, 600)
GOAL_THROUGHPUT_RATIO = 2.0
GOAL_P50_RATIO = 1.2


# ------------------------------------------------------------------------------ inputs


def make_photos() -> list[bytes]:
    """scikit-image photographs as JPEGs at dogImages-like sizes (e.g. 500×375)."""
    from skimage import data as skdata

    out = []
    for name, width in zip(PHOTOS, WIDTHS, strict=True):
        array = np.asarray(getattr(skdata, name)(), dtype=np.uint8)
        image = Image.fromarray(array).convert("RGB")
        height = round(width * image.height / image.width)
        buffer = io.BytesIO()
        image.resize((width, height), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def build_model(directory: Path) -> Path:
    """EfficientNet-Lite0, ImageNet weights, a new 133-class head, 224 px; saved offline."""
    from breedclf.models import create_model
    from breedclf.saved_model import save_model

    model = create_model(
        "efficientnet_lite0",
        num_classes=133,
        weights="DEFAULT",
        generator=torch.Generator().manual_seed(0),
    )
    classes = [f"breed {i:03d}" for i in range(1, 134)]
    return save_model(model, classes, directory)


# ------------------------------------------------------------------------------ servers


def run_naive_server(model_dir: str, port_file: str) -> None:
    """The baseline: one request at a time, preprocessing written out as course scripts do."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from torchvision import transforms

    from breedclf.saved_model import load_model

    saved = load_model(model_dir, device="cpu")  # the same weights as the breedclf server
    model, classes, spec = saved.model.eval(), saved.classes, saved.preprocess
    transform = transforms.Compose(
        [
            transforms.Resize(spec.resize_size),
            transforms.CenterCrop(spec.input_size),
            transforms.ToTensor(),
            transforms.Normalize(spec.mean, spec.std),
        ]
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ping" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            image = Image.open(io.BytesIO(body)).convert("RGB")
            x = transform(image)
            with torch.no_grad():
                probs = torch.softmax(model(x.unsqueeze(0)), dim=1)[0]
            top = torch.topk(probs, 5)
            predictions = [
                {"label": classes[int(i)], "index": int(i), "probability": float(p)}
                for p, i in zip(top.values, top.indices, strict=True)
            ]
            out = json.dumps({"predictions": predictions}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(HTTPServer):
        request_queue_size = 128

    server = Server(("127.0.0.1", 0), Handler)
    Path(port_file).write_text(str(server.server_address[1]))
    server.serve_forever()


@dataclass
class Process:
    """A server subprocess and its URL."""

    name: str
    popen: subprocess.Popen[bytes]
    url: str

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def start_breedclf(model_dir: Path, log: Path, options: dict[str, object]) -> Process:
    code = (
        "from pathlib import Path\n"
        "from breedclf.serving._commands import serve\n"
        f"serve(Path({str(model_dir)!r}), port=0, access_log=False, **{options!r})\n"
    )
    with log.open("wb") as out:
        popen = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT)
    url = _wait_for(popen, lambda: _url_in(log), log)
    return Process("breedclf", popen, url)


def start_naive(model_dir: Path, tmp: Path) -> Process:
    port_file, log = tmp / "naive.port", tmp / "naive.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, __file__, "--naive-server", str(model_dir), str(port_file)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def url() -> str | None:
        text = port_file.read_text() if port_file.exists() else ""
        return f"http://127.0.0.1:{text}" if text.strip() else None

    return Process("naive", popen, _wait_for(popen, url, log))


def _url_in(log: Path) -> str | None:
    match = re.search(r"at (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
    return match.group(1) if match else None


def _wait_for(popen: subprocess.Popen[bytes], find: Any, log: Path) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()}")
        url = find()
        if url and _ping(url):
            return str(url)
        time.sleep(0.2)
    popen.kill()
    raise SystemExit(f"server did not start:\n{log.read_text()}")


def _ping(url: str) -> bool:
    try:
        connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=5)
        connection.request("GET", "/ping")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


# ------------------------------------------------------------------------------ load


class _NoDelayConnection(http.client.HTTPConnection):
    """http.client sends headers and body in two writes; with Nagle's algorithm on, the body
    then waits for the server's delayed ACK (~40 ms per request on a kept-alive connection).
    Real clients (curl, urllib3, browsers) set TCP_NODELAY; so does this one."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass
class LoadResult:
    """Latencies and counts of one server at one concurrency."""

    server: str
    concurrency: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    batch_sizes: list[int] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def run_load(
    url: str, name: str, photos: Sequence[bytes], concurrency: int, seconds: float
) -> LoadResult:
    """``concurrency`` threads POST photos round-robin for ``seconds``; in-flight ones finish."""
    result = LoadResult(name, concurrency, seconds)
    lock = threading.Lock()
    start_gate = threading.Barrier(concurrency + 1)
    stop_at: list[float] = []

    def client(worker: int) -> None:
        connection = _NoDelayConnection(url.removeprefix("http://"), timeout=120)
        latencies, batch_sizes, errors = [], [], 0
        i = worker
        start_gate.wait()
        while time.perf_counter() < stop_at[0]:
            body = photos[i % len(photos)]
            i += 1
            t0 = time.perf_counter()
            try:
                connection.request(
                    "POST", "/invocations", body=body, headers={"Content-Type": "image/jpeg"}
                )
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                errors += 1
                connection.close()
                continue
            if response.status != 200:
                errors += 1
                continue
            latencies.append((time.perf_counter() - t0) * 1000)
            batch = response.getheader("X-Breedclf-Batch-Size")
            if batch:
                batch_sizes.append(int(batch))
        connection.close()
        with lock:
            result.latencies_ms.extend(latencies)
            result.batch_sizes.extend(batch_sizes)
            result.errors += errors

    threads = [threading.Thread(target=client, args=(w,)) for w in range(concurrency)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    stop_at.append(began + seconds)
    start_gate.wait()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - began
    return result


def measure_bare(model_dir: Path, photos: Sequence[bytes], repeats: int) -> float:
    """Median ms of decoding + preprocessing + one forward pass of one image, in-process.

    The same computation the server does for a lone request (``SavedModel.preprocess_image``,
    then the channels-last forward of ``breedclf.serving``), without HTTP, queueing or threads.
    """
    from breedclf.saved_model import load_model
    from breedclf.serving._handler import predict_batch, prepare_for_serving

    saved = prepare_for_serving(load_model(model_dir, device="cpu"))
    for photo in photos:  # warm-up
        predict_batch(saved, saved.preprocess_image(photo).unsqueeze(0), 5)
    times = []
    for _ in range(repeats):
        for photo in photos:
            t0 = time.perf_counter()
            predict_batch(saved, saved.preprocess_image(photo).unsqueeze(0), 5)
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


# ------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path, help="saved model (default: Lite0, 133 classes)")
    parser.add_argument("--levels", default="1,8,32", help="client concurrency levels")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per level/server")
    parser.add_argument("--bare-repeats", type=int, default=6, help="rounds over the photos")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--naive-server", nargs=2, metavar=("MODEL_DIR", "PORT_FILE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.naive_server:
        run_naive_server(*args.naive_server)
        return 0
    levels = [int(x) for x in args.levels.split(",")]

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model_dir = args.model_dir or build_model(tmp / "model")
        photos = make_photos()
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"model: {model_dir}; photos: {len(photos)} JPEGs, "
            f"{min(map(len, photos)) // 1024}–{max(map(len, photos)) // 1024} KiB"
        )
        bare_before = measure_bare(model_dir, photos, args.bare_repeats)

        options = {"max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms}
        ours = start_breedclf(model_dir, tmp / "breedclf.log", options)
        naive = start_naive(model_dir, tmp)
        results: list[LoadResult] = []
        try:
            for process in (ours, naive):  # warm-up, unmeasured
                run_load(process.url, process.name, photos, 8, 2.0)
            rss_before = ours.rss_mib()
            naive_rss_before = naive.rss_mib()
            for k, level in enumerate(levels):
                order = (ours, naive) if k % 2 == 0 else (naive, ours)
                for process in order:
                    result = run_load(process.url, process.name, photos, level, args.duration)
                    results.append(result)
                    print(
                        f"  {process.name:8s} c={level:<3d} {result.throughput:6.1f} req/s  "
                        f"p50 {result.percentile(50):7.1f} ms",
                        flush=True,
                    )
            rss_after = ours.rss_mib()
            naive_rss_after = naive.rss_mib()
        finally:
            ours.stop()
            naive.stop()
        bare_after = measure_bare(model_dir, photos, args.bare_repeats)

    bare = (bare_before + bare_after) / 2
    print()
    print("| server | concurrency | req/s | p50 ms | p95 ms | p99 ms | errors | mean batch |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        mean_batch = f"{statistics.mean(r.batch_sizes):.1f}" if r.batch_sizes else "1"
        print(
            f"| {r.server} | {r.concurrency} | {r.throughput:.1f} | {r.percentile(50):.1f} | "
            f"{r.percentile(95):.1f} | {r.percentile(99):.1f} | {r.errors} | {mean_batch} |"
        )
    print()
    by = {(r.server, r.concurrency): r for r in results}
    summary: dict[str, Any] = {
        "bare_ms": bare,
        "bare_ms_before": bare_before,
        "bare_ms_after": bare_after,
    }
    for level in levels:
        ratio = by["breedclf", level].throughput / by["naive", level].throughput
        summary[f"throughput_ratio_c{level}"] = ratio
        met = "met" if ratio >= GOAL_THROUGHPUT_RATIO else "NOT met"
        goal = f" (goal ≥ {GOAL_THROUGHPUT_RATIO:g}: {met})" if level >= 8 else ""
        print(f"throughput breedclf / naive at c={level}: {ratio:.2f}x{goal}")
    if 1 in levels:
        p50 = by["breedclf", 1].percentile(50)
        ratio = p50 / bare
        summary["p50_ratio_c1"] = ratio
        print(
            f"p50 at c=1: {p50:.1f} ms = {ratio:.2f}x the bare preprocess + forward "
            f"({bare:.1f} ms; {bare_before:.1f} before, {bare_after:.1f} after the load) "
            f"(goal ≤ {GOAL_P50_RATIO:g}: {'met' if ratio <= GOAL_P50_RATIO else 'NOT met'})"
        )
    growth = (rss_after - rss_before) / rss_before
    summary.update(
        rss_before_mib=rss_before,
        rss_after_mib=rss_after,
        rss_growth=growth,
        naive_rss_before_mib=naive_rss_before,
        naive_rss_after_mib=naive_rss_after,
    )
    print(
        f"breedclf server RSS: {rss_before:.0f} MiB after warm-up, {rss_after:.0f} MiB after "
        f"the load ({growth:+.1%}); naive: {naive_rss_before:.0f} → {naive_rss_after:.0f} MiB"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        summary["results"] = [
            {
                "server": r.server,
                "concurrency": r.concurrency,
                "throughput": r.throughput,
                "p50_ms": r.percentile(50),
                "p95_ms": r.percentile(95),
                "p99_ms": r.percentile(99),
                "errors": r.errors,
                "requests": len(r.latencies_ms),
            }
            for r in results
        ]
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
