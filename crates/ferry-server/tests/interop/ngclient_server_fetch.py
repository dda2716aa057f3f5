"""Refresh from a running Ferry server and download one target with python-tuf's ngclient.

Usage: ngclient_server_fetch.py METADATA_URL FILES_URL BOOTSTRAP_ROOT CLIENT_DIR TARGET_NAME

METADATA_URL is the server's `{public_url}/tuf/`, FILES_URL its `{files_url}/files/`. The
device bearer token is read from the FERRY_DEVICE_TOKEN environment variable and sent only
with requests under FILES_URL (the file service refuses anonymous downloads; TUF metadata is
public). CLIENT_DIR keeps the trusted metadata between runs, as a device would.

On success prints JSON {"path", "length", "sha256", "custom", "root_version",
"timestamp_version", "requests"}; on failure prints the exception type and message to
stderr and exits 1.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator

import urllib3

from tuf.api import exceptions
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface


class BearerFetcher(FetcherInterface):
    """Fetches with urllib3, adding `Authorization: Bearer` for URLs under `files_url`."""

    def __init__(self, files_url: str, token: str | None) -> None:
        self.files_url = files_url
        self.token = token
        self.requests: list[str] = []
        self.pool = urllib3.PoolManager(headers={"User-Agent": "ferry-interop python-tuf"})

    def _fetch(self, url: str) -> Iterator[bytes]:
        headers = {}
        if self.token and url.startswith(self.files_url):
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self.pool.request(
                "GET", url, headers=headers, preload_content=False, timeout=urllib3.Timeout(10)
            )
        except urllib3.exceptions.MaxRetryError as e:
            if isinstance(e.reason, urllib3.exceptions.TimeoutError):
                raise exceptions.SlowRetrievalError from e
            raise
        self.requests.append(f"{response.status} {url}")
        if response.status >= 400:
            body = response.data.decode("utf-8", "replace")
            response.release_conn()
            raise exceptions.DownloadHTTPError(
                f"HTTP {response.status} for {url}: {body}", response.status
            )
        return self._chunks(response)

    @staticmethod
    def _chunks(response: urllib3.response.BaseHTTPResponse) -> Iterator[bytes]:
        try:
            yield from response.stream(64 * 1024)
        finally:
            response.release_conn()


def main() -> int:
    metadata_url, files_url, bootstrap_root, client_dir, target_name = sys.argv[1:6]
    fetcher = BearerFetcher(files_url, os.environ.get("FERRY_DEVICE_TOKEN"))
    try:
        metadata_dir = os.path.join(client_dir, "metadata")
        os.makedirs(metadata_dir, exist_ok=True)
        with open(bootstrap_root, "rb") as f:
            root = f.read()
        updater = Updater(
            metadata_dir=metadata_dir,
            metadata_base_url=metadata_url,
            target_dir=os.path.join(client_dir, "targets"),
            target_base_url=files_url,
            fetcher=fetcher,
            bootstrap=root,
        )
        updater.refresh()
        info = updater.get_targetinfo(target_name)
        if info is None:
            print(f"TargetNotFound: {target_name}", file=sys.stderr)
            return 1
        path = updater.download_target(info)
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        with open(os.path.join(metadata_dir, "root.json"), "rb") as f:
            root_version = json.load(f)["signed"]["version"]
        with open(os.path.join(metadata_dir, "timestamp.json"), "rb") as f:
            timestamp_version = json.load(f)["signed"]["version"]
        print(
            json.dumps(
                {
                    "path": path,
                    "length": info.length,
                    "sha256": digest,
                    "custom": info.custom,
                    "root_version": root_version,
                    "timestamp_version": timestamp_version,
                    "requests": fetcher.requests,
                }
            )
        )
        return 0
    except Exception as e:  # noqa: BLE001 - report any failure to the Rust test
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        print(json.dumps({"requests": fetcher.requests}), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
