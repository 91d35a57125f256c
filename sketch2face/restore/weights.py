"""Where the GFPGAN weights come from: a local file, or the official file downloaded once into a
cache folder and checked against a pinned sha256.

* ``$SKETCH2FACE_GFPGAN_PATH`` (or ``checkpoint=``): a local file, used as is (not hash-pinned).
* Otherwise ``GFPGANv1.4.pth`` in :func:`cache_dir`, downloaded on first use from the official
  GitHub release (or ``$SKETCH2FACE_GFPGAN_URL``), verified while it streams, written to a
  temporary file and renamed, so a partial file never appears under the final name.
* Offline (``HF_HUB_OFFLINE``, as huggingface_hub reads it) nothing is downloaded.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import socket
import tempfile
import time
import urllib.parse
from pathlib import Path

from ..errors import GFPGAN_PATH_ENV, RestorationUnavailable

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "GFPGANv1.4.pth"
CHECKPOINT_URL = "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth"
# Not recomputed here (GitHub is unreachable from the build machine): the value published
# independently by several projects that pin this file, with the same byte size.
CHECKPOINT_SHA256 = "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad"
CHECKPOINT_BYTES = 348_632_874

PATH_ENV = GFPGAN_PATH_ENV
URL_ENV = "SKETCH2FACE_GFPGAN_URL"  # a mirror of the official file (the sha256 pin still applies)
CACHE_ENV = "SKETCH2FACE_CACHE"

CONNECT_TIMEOUT_S = 5.0  # DNS + TCP connect: offline fails fast instead of hanging
READ_TIMEOUT_S = 30.0  # the longest a stalled download may sit without a byte


class DownloadFailed(RestorationUnavailable):
    """The download failed: worth remembering, since retrying costs a network timeout or another 350 MB."""


def cache_dir() -> Path:
    """$SKETCH2FACE_CACHE, else $XDG_CACHE_HOME/sketch2face, else ~/.cache/sketch2face."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "sketch2face"


def sha256_of(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _resolve_host(url: str, timeout: float) -> None:
    """DNS lookup under a deadline: HTTP clients' connect timeouts don't cover the resolver."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        future = pool.submit(socket.getaddrinfo, parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
        future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise OSError(f"resolving {parts.hostname} took over {timeout:.0f} s") from None
    finally:
        pool.shutdown(wait=False)


def download_checkpoint(
    url: str,
    destination: Path,
    expected_sha256: str | None = CHECKPOINT_SHA256,
    expected_bytes: int | None = CHECKPOINT_BYTES,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
) -> Path:
    """Stream ``url`` to ``destination`` via a temporary file in the same folder, then rename.

    The file only appears under its final name complete and verified, so concurrent downloads
    (threads or processes) never see or leave a partial checkpoint. Timeouts default to
    CONNECT_TIMEOUT_S / READ_TIMEOUT_S. Raises RestorationUnavailable with a one-line reason.
    """
    import httpx  # gradio's HTTP client: (connect, read) timeouts and redirects (GitHub -> CDN)

    connect_timeout = CONNECT_TIMEOUT_S if connect_timeout is None else connect_timeout
    read_timeout = READ_TIMEOUT_S if read_timeout is None else read_timeout
    timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
    started = time.monotonic()
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part", delete=False)
    except OSError as error:
        reason = error.strerror or error
        raise RestorationUnavailable(f"Can't write the GFPGAN weights to {destination.parent} ({reason}); set {CACHE_ENV}.") from None
    partial = Path(handle.name)
    try:
        with handle:
            _resolve_host(url, connect_timeout)
            digest, received = hashlib.sha256(), 0
            headers = {"User-Agent": "sketch2face"}
            with httpx.stream("GET", url, timeout=timeout, follow_redirects=True, headers=headers) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes(1 << 20):
                    received += len(chunk)
                    if expected_bytes is not None and received > expected_bytes:
                        raise RestorationUnavailable(
                            f"The download from {url} is larger than {destination.name} ({expected_bytes} bytes); it was discarded."
                        )
                    digest.update(chunk)
                    handle.write(chunk)
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
            raise RestorationUnavailable(
                f"The downloaded {destination.name} has sha256 {digest.hexdigest()[:12]}..., not the pinned "
                f"{expected_sha256[:12]}... (corrupted, or not the official file); it was discarded."
            )
        os.replace(partial, destination)
        logger.info("Downloaded %s (%.0f MB) in %.0f s.", destination, received / 1e6, time.monotonic() - started)
        return destination
    except RestorationUnavailable:
        raise
    except httpx.HTTPStatusError as error:
        raise RestorationUnavailable(f"Could not download the GFPGAN weights from {url}: HTTP {error.response.status_code}.") from None
    except (httpx.HTTPError, OSError, ValueError) as error:  # DNS, refused, timeouts, disk full
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RestorationUnavailable(f"Could not download the GFPGAN weights from {url} (offline? {reason}).") from None
    finally:
        partial.unlink(missing_ok=True)



def locate_checkpoint(checkpoint: Path | None = None, url: str | None = None) -> Path:
    """The checkpoint to load: ``checkpoint``, else $SKETCH2FACE_GFPGAN_PATH (the user's own file:
    no pin), else the sha256-verified cached official file, downloaded first when missing.

    Raises RestorationUnavailable (DownloadFailed when the download itself failed).
    """
    explicit = checkpoint or (Path(os.environ[PATH_ENV]).expanduser() if os.environ.get(PATH_ENV) else None)
    if explicit is not None:
        if not explicit.is_file():
            source = "checkpoint=" if checkpoint else f"${PATH_ENV}"
            raise RestorationUnavailable(f"The GFPGAN checkpoint {explicit} ({source}) does not exist.")
        return explicit
    cached = cache_dir() / CHECKPOINT_NAME
    if cached.is_file():
        if sha256_of(cached) != CHECKPOINT_SHA256:
            raise RestorationUnavailable(
                f"{cached} does not match the pinned sha256 of {CHECKPOINT_NAME}; delete it to download it again."
            )
        return cached
    from huggingface_hub import is_offline_mode

    if is_offline_mode():
        raise RestorationUnavailable(
            f"The GFPGAN weights are not in {cached.parent} and offline mode is on; set {PATH_ENV} to a local {CHECKPOINT_NAME}."
        )
    url = url or os.environ.get(URL_ENV) or CHECKPOINT_URL
    logger.info("Downloading %s (%.0f MB) from %s to %s.", CHECKPOINT_NAME, CHECKPOINT_BYTES / 1e6, url, cached)
    try:
        return download_checkpoint(url, cached)  # verified while streaming: not hashed twice
    except RestorationUnavailable as error:
        logger.warning("Downloading %s failed: %s", CHECKPOINT_NAME, error)
        raise DownloadFailed(str(error)) from None
