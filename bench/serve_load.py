"""Serving under load: ``breedclf serve`` vs a naive one-request-at-a-time handler, in one run.

Both servers load the same saved model and answer the same JPEG photos (scikit-image's
photographs re-encoded at dogImages-like sizes, 400–640 px wide, quality 90) with the same
top-5 JSON. The naive baseline is the handler course scripts write: a single-threaded
``http.server`` whose ``do_POST`` runs ``Image.open(...).convert("RGB")``, a torchvision
``transforms.Compose`` (Resize, CenterCrop, ToTensor, Normalize), ``model(x.unsqueeze(0))``
under ``torch.no_grad()``, softmax and top-k, one request at a time. (Its listen backlog is
raised to 128 so that concurrency 32 is not refused at the socket level.)

Load comes from a native generator — ``wrk`` (found on ``PATH``, else installed with apt-get
when run as root) POSTing the JPEGs through a Lua script — so that the measurement costs the
servers little CPU; ``hey`` is not used because it cannot rotate bodies. A Python client (one
thread per connection, keep-alive, ``TCP_NODELAY``) runs the same levels as a cross-check.
Where the machine has CPUs to spare (≥ 4), the generator and the servers are pinned to separate
cores with ``taskset``; on 2 CPUs they share both (pinning the generator to one core would halve
the servers), and the report says how the cores were split.

For each concurrency level (1, 8, 32 by default) each server is loaded for ``--duration``
seconds, the two servers alternating which goes first. Reported: req/s, p50/p95/p99 latency,
errors, the mean forward-pass batch size, both servers' resident memory before and after the
load, and each ratio against its goal:

* throughput breedclf / naive at concurrency 1: ≥ 1 (never slower than naive);
* p50 latency of breedclf at concurrency 1 / the bare cost of one request in-process — the
  server's own decode + preprocess + forward of one image, without HTTP — : ≤ 1.2;
* throughput breedclf / naive at concurrency ≥ 8: ≥ 2.

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
import shutil
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
GOAL_SINGLE_USER_RATIO = 1.0
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


def start_breedclf(
    model_dir: Path, log: Path, options: dict[str, object], prefix: Sequence[str]
) -> Process:
    code = (
        "from pathlib import Path\n"
        "from breedclf.serving._commands import serve\n"
        f"serve(Path({str(model_dir)!r}), port=0, access_log=False, **{options!r})\n"
    )
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [*prefix, sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT
        )
    url = _wait_for(popen, lambda: _url_in(log), log)
    return Process("breedclf", popen, url)


def start_naive(model_dir: Path, tmp: Path, prefix: Sequence[str]) -> Process:
    port_file, log = tmp / "naive.port", tmp / "naive.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [*prefix, sys.executable, __file__, "--naive-server", str(model_dir), str(port_file)],
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
    """Latencies and counts of one server at one concurrency, from one load generator."""

    server: str
    concurrency: int
    seconds: float
    generator: str = "python"
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    # wrk reports its own aggregates instead of every latency.
    requests: int | None = None
    percentiles_ms: dict[float, float] = field(default_factory=dict)
    mean_batch_size: float | None = None

    @property
    def throughput(self) -> float:
        count = self.requests if self.requests is not None else len(self.latencies_ms)
        return count / self.seconds

    def percentile(self, q: float) -> float:
        if q in self.percentiles_ms:
            return self.percentiles_ms[q]
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    @property
    def mean_batch(self) -> float:
        if self.mean_batch_size is not None:
            return self.mean_batch_size
        return statistics.mean(self.batch_sizes) if self.batch_sizes else 1.0


WRK_SCRIPT = r"""
-- POST the photos given after "--" in turn; collect status and batch-size headers per thread.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  bodies = {}
  for i, path in ipairs(args) do
    local file = assert(io.open(path, "rb"))
    bodies[i] = file:read("*all")
    file:close()
  end
  counter, batch_sum, batch_n, non200 = 0, 0, 0, 0
end
function request()
  counter = counter + 1
  return wrk.format("POST", "/invocations", {["Content-Type"] = "image/jpeg"},
                    bodies[(counter % #bodies) + 1])
end
function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
  local size = headers["x-breedclf-batch-size"] or headers["X-Breedclf-Batch-Size"]
  if size then batch_sum = batch_sum + tonumber(size); batch_n = batch_n + 1 end
end
function done(summary, latency, requests)
  local bs, bn, bad = 0, 0, 0
  for _, t in ipairs(threads) do
    bs = bs + t:get("batch_sum"); bn = bn + t:get("batch_n"); bad = bad + t:get("non200")
  end
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\"requests\": %d, \"duration_us\": %d, \"socket_errors\": %d, " ..
    "\"non200\": %d, \"p50_us\": %d, \"p95_us\": %d, \"p99_us\": %d, " ..
    "\"batch_sum\": %d, \"batch_n\": %d}\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, bad,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), bs, bn))
end
"""


def find_wrk() -> tuple[str | None, str]:
    """The wrk binary and how it was found (on PATH, installed now, or why not)."""
    found = shutil.which("wrk")
    if found:
        return found, f"wrk found at {found}"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, "wrk is not installed and cannot be (not root, or no apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "wrk"]
    if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, capture_output=True, timeout=600)
    found = shutil.which("wrk")
    return found, (f"wrk installed now with apt-get ({found})" if found else "wrk install failed")


def run_wrk(
    wrk: str,
    url: str,
    name: str,
    photo_paths: Sequence[Path],
    concurrency: int,
    seconds: float,
    script: Path,
    prefix: Sequence[str],
) -> LoadResult:
    """``concurrency`` keep-alive connections from one wrk thread, for ``seconds``."""
    command = [
        *prefix,
        wrk,
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "60s",
        "-s",
        str(script),
        f"{url}/invocations",
        "--",
        *map(str, photo_paths),
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise SystemExit(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    data = json.loads(line[9:])
    return LoadResult(
        name,
        concurrency,
        data["duration_us"] / 1e6,
        generator="wrk",
        errors=data["socket_errors"] + data["non200"],
        requests=data["requests"] - data["non200"],
        percentiles_ms={q: data[f"p{q}_us"] / 1000 for q in (50, 95, 99)},
        mean_batch_size=data["batch_sum"] / data["batch_n"] if data["batch_n"] else 1.0,
    )


def plan_cpus(pin: str) -> tuple[list[str], list[str], str]:
    """``taskset`` prefixes for the generator and the servers, and how the cores were split."""
    cpus = sorted(os.sched_getaffinity(0))
    if pin == "off" or (pin == "auto" and len(cpus) < 4):
        why = "pinning off" if pin == "off" else f"only {len(cpus)} CPUs, pinning would halve them"
        return [], [], f"not pinned ({why}): generator and servers share CPUs {cpus}"
    if shutil.which("taskset") is None:
        return [], [], "not pinned: taskset is not installed"
    if pin == "auto":
        generator, servers = cpus[-1:], cpus[:-1]
    else:
        gen_text, _, server_text = pin.partition(":")
        generator, servers = _cpu_list(gen_text), _cpu_list(server_text)
    return (
        ["taskset", "-c", ",".join(map(str, generator))],
        ["taskset", "-c", ",".join(map(str, servers))],
        f"generator on CPU {generator}, servers on CPUs {servers} (taskset)",
    )


def _cpu_list(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        out += range(int(first), int(last or first) + 1)
    return out


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
    then the prepared — BatchNorm-folded, channels-last — forward of ``breedclf.serving``),
    without HTTP or queueing, run back to back in a worker thread set up like the server's
    forward thread (``create_torch_pool``).
    """
    from breedclf.saved_model import load_model
    from breedclf.serving._handler import predict_batch, prepare_for_serving
    from breedclf.serving._threads import create_torch_pool, default_torch_threads

    saved = prepare_for_serving(load_model(model_dir, device="cpu"))

    def run() -> list[float]:
        for photo in photos:  # warm-up
            predict_batch(saved, saved.preprocess_image(photo).unsqueeze(0), 5)
        times = []
        for _ in range(repeats):
            for photo in photos:
                t0 = time.perf_counter()
                predict_batch(saved, saved.preprocess_image(photo).unsqueeze(0), 5)
                times.append((time.perf_counter() - t0) * 1000)
        return times

    pool = create_torch_pool(1, torch_threads=default_torch_threads(), name="bare")
    try:
        return statistics.median(pool.submit(run).result())
    finally:
        pool.shutdown()


# ------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path, help="saved model (default: Lite0, 133 classes)")
    parser.add_argument("--levels", default="1,8,32", help="client concurrency levels")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per level/server")
    parser.add_argument(
        "--cross-check-duration",
        type=float,
        default=5.0,
        help="seconds per level/server of the Python client cross-check (0: skip it)",
    )
    parser.add_argument(
        "--generator", choices=("auto", "wrk", "python"), default="auto", help="main load source"
    )
    parser.add_argument(
        "--pin",
        default="auto",
        help="'auto' (split cores when there are >= 4), 'off', or GEN_CPUS:SERVER_CPUS (0:1-3)",
    )
    parser.add_argument("--bare-repeats", type=int, default=6, help="rounds over the photos")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--decode-threads", type=int, help="breedclf serve --decode-threads")
    parser.add_argument("--torch-threads", type=int, help="breedclf serve --torch-threads")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--naive-server", nargs=2, metavar=("MODEL_DIR", "PORT_FILE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.naive_server:
        run_naive_server(*args.naive_server)
        return 0
    levels = [int(x) for x in args.levels.split(",")]
    wrk, how = (None, "Python client only (--generator python)")
    if args.generator != "python":
        wrk, how = find_wrk()
        if wrk is None and args.generator == "wrk":
            raise SystemExit(how)
    generator_cpus, server_cpus, split = plan_cpus(args.pin)

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model_dir = args.model_dir or build_model(tmp / "model")
        photos = make_photos()
        photo_paths = []
        for i, photo in enumerate(photos):
            photo_paths.append(tmp / f"photo{i}.jpg")
            photo_paths[-1].write_bytes(photo)
        script = tmp / "post.lua"
        script.write_text(WRK_SCRIPT)
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print(f"load generator: {how}; Python client cross-check: {args.cross_check_duration:g} s")
        print(f"cores: {split}")
        print(
            f"model: {model_dir}; photos: {len(photos)} JPEGs, "
            f"{min(map(len, photos)) // 1024}–{max(map(len, photos)) // 1024} KiB"
        )
        bare_before = measure_bare(model_dir, photos, args.bare_repeats)

        options: dict[str, object] = {
            "max_batch_size": args.max_batch_size,
            "max_wait_ms": args.max_wait_ms,
        }
        for name in ("decode_threads", "torch_threads"):
            if getattr(args, name) is not None:
                options[name] = getattr(args, name)
        print(f"breedclf serve options: {options}")
        ours = start_breedclf(model_dir, tmp / "breedclf.log", options, server_cpus)
        naive = start_naive(model_dir, tmp, server_cpus)
        if generator_cpus:  # the Python client runs in this process
            os.sched_setaffinity(0, _cpu_list(generator_cpus[-1]))
        results: list[LoadResult] = []
        checks: list[LoadResult] = []
        try:
            for process in (ours, naive):  # warm-up, unmeasured
                run_load(process.url, process.name, photos, 8, 2.0)
            rss_before = {p.name: p.rss_mib() for p in (ours, naive)}
            for k, level in enumerate(levels):
                order = (ours, naive) if k % 2 == 0 else (naive, ours)
                for process in order:
                    if wrk is not None:
                        result = run_wrk(
                            wrk, process.url, process.name, photo_paths, level,
                            args.duration, script, generator_cpus,
                        )  # fmt: skip
                    else:
                        result = run_load(process.url, process.name, photos, level, args.duration)
                    results.append(result)
                    line = (
                        f"  {process.name:8s} c={level:<3d} {result.throughput:6.1f} req/s  "
                        f"p50 {result.percentile(50):7.1f} ms ({result.generator})"
                    )
                    if wrk is not None and args.cross_check_duration > 0:
                        check = run_load(
                            process.url, process.name, photos, level, args.cross_check_duration
                        )
                        checks.append(check)
                        line += (
                            f"; python client {check.throughput:6.1f} req/s "
                            f"p50 {check.percentile(50):7.1f} ms"
                        )
                    print(line, flush=True)
            rss_after = {p.name: p.rss_mib() for p in (ours, naive)}
        finally:
            ours.stop()
            naive.stop()
        bare_after = measure_bare(model_dir, photos, args.bare_repeats)

    bare = (bare_before + bare_after) / 2
    print()
    print(
        "| server | concurrency | generator | req/s | p50 ms | p95 ms | p99 ms | errors "
        "| mean batch |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in [*results, *checks]:
        print(
            f"| {r.server} | {r.concurrency} | {r.generator} | {r.throughput:.1f} | "
            f"{r.percentile(50):.1f} | {r.percentile(95):.1f} | {r.percentile(99):.1f} | "
            f"{r.errors} | {r.mean_batch:.1f} |"
        )
    print()
    summary: dict[str, Any] = {
        "generator": how,
        "cores": split,
        "bare_ms": bare,
        "bare_ms_before": bare_before,
        "bare_ms_after": bare_after,
    }
    for label, group in (("", results), ("python_", checks)):
        by = {(r.server, r.concurrency): r for r in group}
        if not by:
            continue
        source = group[0].generator
        for level in levels:
            ratio = by["breedclf", level].throughput / by["naive", level].throughput
            summary[f"{label}throughput_ratio_c{level}"] = ratio
            goal = GOAL_THROUGHPUT_RATIO if level >= 8 else GOAL_SINGLE_USER_RATIO
            met = "met" if ratio >= goal else "NOT met"
            print(
                f"[{source}] throughput breedclf / naive at c={level}: {ratio:.2f}x "
                f"(goal ≥ {goal:g}: {met})"
            )
        if 1 in levels:
            p50 = by["breedclf", 1].percentile(50)
            ratio = p50 / bare
            summary[f"{label}p50_ratio_c1"] = ratio
            met = "met" if ratio <= GOAL_P50_RATIO else "NOT met"
            print(
                f"[{source}] p50 at c=1: {p50:.1f} ms = {ratio:.2f}x the bare decode + preprocess "
                f"+ forward ({bare:.1f} ms; {bare_before:.1f} before, {bare_after:.1f} after the "
                f"load) (goal ≤ {GOAL_P50_RATIO:g}: {met})"
            )
    summary.update(rss_before_mib=rss_before, rss_after_mib=rss_after)
    for name in ("breedclf", "naive"):
        growth = (rss_after[name] - rss_before[name]) / rss_before[name]
        print(
            f"{name} server RSS: {rss_before[name]:.0f} MiB after warm-up, "
            f"{rss_after[name]:.0f} MiB after the load ({growth:+.1%})"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        summary["results"] = [
            {
                "server": r.server,
                "concurrency": r.concurrency,
                "generator": r.generator,
                "throughput": r.throughput,
                "p50_ms": r.percentile(50),
                "p95_ms": r.percentile(95),
                "p99_ms": r.percentile(99),
                "errors": r.errors,
                "mean_batch": r.mean_batch,
            }
            for r in [*results, *checks]
        ]
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
