"""Fetch one target from a TUF repository directory with python-tuf's ngclient.

Usage: ngclient_fetch.py REPO_DIR BOOTSTRAP_ROOT TARGET_NAME CLIENT_DIR

REPO_DIR holds metadata/ (served as the metadata base URL) and targets/ (the target base
URL). It is served by http.server on 127.0.0.1 (a free port) in a thread of this process.
On success prints JSON {"path", "length", "custom", "root_version"}; on failure prints the
exception type and message to stderr and exits 1.
"""

import functools
import http.server
import json
import os
import sys
import threading

from tuf.ngclient import Updater


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature fixed by http.server
        pass


def main() -> int:
    repo_dir, bootstrap_root, target_name, client_dir = sys.argv[1:5]
    handler = functools.partial(QuietHandler, directory=repo_dir)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        metadata_dir = os.path.join(client_dir, "metadata")
        os.makedirs(metadata_dir, exist_ok=True)
        with open(bootstrap_root, "rb") as f:
            root = f.read()
        updater = Updater(
            metadata_dir=metadata_dir,
            metadata_base_url=f"{base}/metadata/",
            target_dir=os.path.join(client_dir, "targets"),
            target_base_url=f"{base}/targets/",
            bootstrap=root,
        )
        updater.refresh()
        info = updater.get_targetinfo(target_name)
        if info is None:
            print(f"TargetNotFound: {target_name}", file=sys.stderr)
            return 1
        path = updater.download_target(info)
        # The updater keeps the trusted root in its metadata dir as root.json.
        with open(os.path.join(metadata_dir, "root.json"), "rb") as f:
            root_version = json.load(f)["signed"]["version"]
        print(json.dumps({"path": path, "length": info.length, "custom": info.custom, "root_version": root_version}))
        return 0
    except Exception as e:  # noqa: BLE001 - report any failure to the Rust test
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
