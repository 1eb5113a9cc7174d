"""A small HTTP client for breedclf endpoints (standard library and Pillow only).

Nothing here imports torch or torchvision: ``breedclf predict --endpoint`` and a
:class:`Predictor` start in a fraction of a second on a machine that only talks to an endpoint.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from PIL import Image

from breedclf.errors import BreedclfError

if TYPE_CHECKING:
    # For annotations only: importing breedclf.saved_model loads torch (seconds), and a client
    # of a remote endpoint needs none of it.
    from breedclf.saved_model import Prediction

__all__ = [
    "EndpointConnectionError",
    "EndpointError",
    "EndpointRequestError",
    "EndpointServerError",
    "Predictor",
]

ClientImage: TypeAlias = str | Path | bytes | bytearray | Image.Image

_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


class EndpointError(BreedclfError, RuntimeError):
    """A request to an inference endpoint failed.

    Attributes:
        url: The URL that was requested.
        status_code: The HTTP status, or ``None`` when no response arrived.
        reason: The server's explanation (its JSON ``reason``) or the connection error.
    """

    def __init__(self, message: str, *, url: str, status_code: int | None, reason: str) -> None:
        super().__init__(message)
        self.url = url
        self.status_code = status_code
        self.reason = reason


class EndpointConnectionError(EndpointError):
    """The endpoint could not be reached or did not answer in time."""


class EndpointRequestError(EndpointError):
    """The endpoint refused the request (HTTP 4xx): the message says why."""


class EndpointServerError(EndpointError):
    """The endpoint failed or is overloaded (HTTP 5xx)."""


class Predictor:
    """Client of a breedclf inference server (``breedclf serve``) or any endpoint with the same
    ``POST /invocations`` protocol.

    Args:
        url: The server's base URL (``http://127.0.0.1:8080``) or its full ``/invocations`` URL.
        timeout: Seconds to wait for connecting and for each response.
        headers: Extra headers sent with every request (authentication, tracing).

    Example:
        >>> predictor = Predictor("http://127.0.0.1:8080")  # doctest: +SKIP
        >>> predictor.predict("dog.jpg", top_k=3)  # doctest: +SKIP
        [{'label': 'Labrador retriever', 'index': 95, 'probability': 0.91}, ...]
    """

    def __init__(
        self, url: str, *, timeout: float = 60.0, headers: dict[str, str] | None = None
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise EndpointError(
                f"endpoint URL must start with http:// or https:// and name a host, got {url!r}",
                url=url,
                status_code=None,
                reason="invalid URL",
            )
        path = parts.path.rstrip("/")
        base_path = path.removesuffix("/invocations")
        self.base_url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, base_path, "", ""))
        self.url = self.base_url + "/invocations"
        self.timeout = timeout
        self.headers = dict(headers or {})
        # A proxy from the environment must not capture requests to this machine.
        loopback = parts.hostname in {"localhost", "127.0.0.1", "::1"}
        handlers = [urllib.request.ProxyHandler({})] if loopback else []
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return f"Predictor({self.base_url!r})"

    def predict(self, image: ClientImage, *, top_k: int = 5) -> list[Prediction]:
        """Classify one image.

        Args:
            image: A file path, encoded image bytes, or a PIL image (sent as PNG).
            top_k: How many labelled classes to return, most probable first.

        Returns:
            ``[{"label", "index", "probability"}, ...]``.

        Raises:
            EndpointRequestError: The server refused the request (4xx), e.g. not an image.
            EndpointServerError: The server failed (5xx).
            EndpointConnectionError: The server cannot be reached or timed out.
            FileNotFoundError: ``image`` is a path that does not exist.
        """
        data = _encode(image)
        result = self._post(data, _sniff(data), top_k)
        return cast("list[Prediction]", result)

    def predict_batch(
        self, images: Sequence[ClientImage], *, top_k: int = 5
    ) -> list[list[Prediction]]:
        """Classify several images in one request (JSON ``instances`` with base64).

        Raises:
            EndpointRequestError, EndpointServerError, EndpointConnectionError: As
                :meth:`predict`.
        """
        if not images:
            return []
        instances = [base64.b64encode(_encode(image)).decode("ascii") for image in images]
        body = json.dumps({"instances": instances}).encode("utf-8")
        result = self._post(body, "application/json", top_k)
        return cast("list[list[Prediction]]", result)

    def ping(self) -> bool:
        """Whether ``GET /ping`` answers 200."""
        request = urllib.request.Request(self.base_url + "/ping", method="GET")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def _post(self, body: bytes, content_type: str, top_k: int) -> Any:
        url = f"{self.url}?{urllib.parse.urlencode({'top_k': int(top_k)})}"
        headers = {
            **self.headers,
            "Content-Type": content_type,
            "Accept": "application/json",
            "X-Amzn-SageMaker-Custom-Attributes": f"top_k={int(top_k)}",
        }
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise _http_error(self.url, exc) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = str(getattr(exc, "reason", exc))
            if isinstance(exc, TimeoutError) or "timed out" in reason:
                message = f"the endpoint {self.url} did not answer within {self.timeout:g} s"
            else:
                message = (
                    f"cannot reach the endpoint {self.url}: {reason}. Is the server running "
                    "(breedclf serve MODEL_DIR) and the URL right?"
                )
            raise EndpointConnectionError(
                message,
                url=self.url,
                status_code=None,
                reason=reason,
            ) from None
        try:
            return json.loads(payload)["predictions"]
        except (ValueError, KeyError, TypeError):
            raise EndpointServerError(
                f"the endpoint {self.url} answered something that is not a predictions JSON: "
                f"{payload[:200]!r}",
                url=self.url,
                status_code=200,
                reason="malformed response",
            ) from None


def _http_error(url: str, exc: urllib.error.HTTPError) -> EndpointError:
    try:
        raw = exc.read()
    except OSError:
        raw = b""
    finally:
        exc.close()
    try:
        reason = str(json.loads(raw)["reason"])
    except (ValueError, KeyError, TypeError):
        reason = raw.decode("utf-8", "replace").strip()[:500] or str(exc.reason)
    status = int(exc.code)
    cls = EndpointRequestError if status < 500 else EndpointServerError
    return cls(
        f"{url} answered HTTP {status}: {reason}", url=url, status_code=status, reason=reason
    )


def _encode(image: ClientImage) -> bytes:
    if isinstance(image, bytes | bytearray):
        return bytes(image)
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    path = Path(image)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    return path.read_bytes()


def _sniff(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, content_type in _MAGIC:
        if data.startswith(magic):
            return content_type
    return "application/octet-stream"
