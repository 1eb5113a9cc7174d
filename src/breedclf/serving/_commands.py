"""``breedclf serve`` and ``breedclf package``: typed functions that Typer turns into commands.

Heavy imports (torch, the web framework) happen inside the functions, so the command line starts
fast and works without the ``serve`` extra until a command needs it.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Annotated

import typer

from breedclf.errors import ConfigurationError, MissingDependencyError
from breedclf.serving._deps import SERVER_PACKAGES

__all__ = ["package", "serve"]

logger = logging.getLogger("breedclf.serving")


def serve(
    model_dir: Annotated[
        Path, typer.Argument(help="Saved model directory (model.safetensors + breedclf.json).")
    ],
    host: Annotated[
        str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the server to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0 picks a free one).", min=0)] = 8080,
    # The options below default to ServingConfig's values (None here means "not given"): their
    # defaults are written there once, and docs/serving.md lists them (checked by a test).
    # ServingConfig cannot be imported here: its limits load torch, and every CLI call,
    # `predict --endpoint` included, imports this module.
    max_batch_size: Annotated[
        int | None, typer.Option(help="Most images per forward pass.", min=1)
    ] = None,
    max_wait_ms: Annotated[
        float | None,
        typer.Option(help="Longest wait for more requests to join a batch.", min=0),
    ] = None,
    request_timeout_s: Annotated[
        float | None,
        typer.Option(help="Longest time one request may take, upload included."),
    ] = None,
    max_body_bytes: Annotated[
        int | None,
        typer.Option(help="Largest request body in bytes (SageMaker: 6 MiB).", min=1),
    ] = None,
    max_pixels: Annotated[
        int | None,
        typer.Option(help="Largest image decoded, in pixels (the same limit as training).", min=1),
    ] = None,
    max_concurrency: Annotated[
        int | None,
        typer.Option(help="Most requests handled at once; more get a 503.", min=1),
    ] = None,
    max_buffered_bytes: Annotated[
        int | None,
        typer.Option(
            help="Most bytes of request bodies held at once; more get a 503.",
            min=1,
        ),
    ] = None,
    decode_threads: Annotated[
        int | None,
        typer.Option(help="Threads decoding images when requests queue.", min=1),
    ] = None,
    torch_threads: Annotated[
        int | None,
        typer.Option(
            help="Threads of the forward pass (default: one per CPU the process sees).", min=1
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(help="cpu, cuda, cuda:N or auto (CUDA when available).")
    ] = "auto",
    access_log: Annotated[bool, typer.Option(help="Log one line per request.")] = True,
    graceful_timeout_s: Annotated[
        int, typer.Option(help="On SIGTERM/Ctrl-C, seconds in-flight requests may finish.", min=1)
    ] = 30,
) -> None:
    """Serve a saved model over HTTP: POST /invocations, GET /ping, and a web page at /.

    Speaks SageMaker's container contract (port 8080, /ping, /invocations), batches concurrent
    requests into shared forward passes, and answers every bad request with a 4xx and a JSON
    reason. Stops gracefully on SIGTERM or Ctrl-C. Options left out take ServingConfig's
    defaults (listed in docs/serving.md).
    """
    try:
        import uvicorn

        from breedclf.serving._app import create_app
        from breedclf.serving._config import ServingConfig
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in SERVER_PACKAGES:
            raise
        raise MissingDependencyError(exc.name or "uvicorn", "serve", "breedclf serve") from exc
    from pydantic import ValidationError

    from breedclf.config import format_validation_error
    from breedclf.saved_model import load_model

    given = {
        "max_batch_size": max_batch_size,
        "max_wait_ms": max_wait_ms,
        "request_timeout_s": request_timeout_s,
        "max_body_bytes": max_body_bytes,
        "max_pixels": max_pixels,
        "max_concurrency": max_concurrency,
        "max_buffered_bytes": max_buffered_bytes,
        "decode_threads": decode_threads,
        "torch_threads": torch_threads,
    }
    try:
        config = ServingConfig.model_validate({k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise ConfigurationError(format_validation_error(exc, "serve options")) from None
    saved = load_model(model_dir, device=device)
    app = create_app(saved, config)
    server_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=access_log,
        timeout_graceful_shutdown=graceful_timeout_s,
        # A backstop far beyond the server's own JSON 503 limit (max_concurrency): uvicorn counts
        # idle kept-alive connections too, and answers a plain-text 503 past this.
        limit_concurrency=max(1024, config.max_concurrency * 4),
        timeout_keep_alive=5,
    )
    server = uvicorn.Server(server_config)
    sock = _bind_socket(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    typer.echo(
        f"breedclf: serving {saved.model.arch} ({len(saved.classes)} classes) at "
        f"http://{url_host}:{bound_port} (POST /invocations, GET /ping, web page at /)",
        err=True,
    )
    server.run(sockets=[sock])


def package(
    model_dir: Annotated[
        Path, typer.Argument(help="Saved model directory (model.safetensors + breedclf.json).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Archive to write.")] = Path(
        "model.tar.gz"
    ),
    vendor_deps: Annotated[
        bool,
        typer.Option(
            "--vendor-deps",
            help="Copy the dependencies into code/lib instead of writing requirements.txt, so "
            "the endpoint installs nothing (network-isolated endpoints). Run it with the "
            "container's Python version and CPU architecture.",
        ),
    ] = False,
) -> None:
    """Package a saved model as model.tar.gz for SageMaker's PyTorch inference container.

    The archive holds the model files at the top level, code/inference.py (breedclf's
    handlers), breedclf's source vendored under code/breedclf, and either
    code/requirements.txt (pip-installed when the endpoint starts) or, with --vendor-deps, the
    dependencies themselves under code/lib.
    """
    from breedclf.serving._package import package_model

    path = package_model(model_dir, output, vendor_dependencies=vendor_deps)
    typer.echo(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")


def _bind_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn, created with ``IPPROTO_TCP``.

    asyncio turns on ``TCP_NODELAY`` only for sockets whose protocol is ``IPPROTO_TCP``; a socket
    made with the default protocol 0 (as ``uvicorn.Config.bind_socket`` does) keeps Nagle's
    algorithm, which holds each response's body until the client's delayed ACK: +40 ms on every
    request of a kept-alive connection. Binding ourselves also lets ``--port 0`` report the port.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock
