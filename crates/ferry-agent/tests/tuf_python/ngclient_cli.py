"""python-tuf's ngclient.Updater behind the `ferry tuf-client` command line shape.

  ngclient_cli.py --metadata-dir MD init TRUSTED_ROOT
  ngclient_cli.py --metadata-url MU --metadata-dir MD refresh
  ngclient_cli.py --metadata-url MU --metadata-dir MD --target-name T [--target-name T2 ...]
                  --target-dir TD --target-base-url TU download

Options come before the command, in any order. Exit 0 on success, 1 on any failure (the
exception is printed on stderr). Like python-tuf's examples/client, `init` only stores the
root; refresh and download start from MD/root.json (bootstrap=None).

`ngclient_cli.py --batch` instead reads one JSON array of arguments per line on stdin and
answers each with one JSON line {"rc": 0|1, "stderr": "..."}: the test suite runs many
commands and importing python-tuf takes most of a process's run time.
"""

import argparse
import contextlib
import io
import json
import os
import shutil
import sys

from tuf.api.metadata import Metadata
from tuf.ngclient import Updater


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="ngclient_cli.py")
    p.add_argument("--metadata-dir", required=True)
    p.add_argument("--metadata-url")
    p.add_argument("--target-name", action="append", default=[])
    p.add_argument("--target-dir")
    p.add_argument("--target-base-url")
    p.add_argument("command", choices=["init", "refresh", "download"])
    p.add_argument("trusted_root", nargs="?")
    try:
        a = p.parse_args(argv)
    except SystemExit:
        return 1
    try:
        if a.command == "init":
            with open(a.trusted_root, "rb") as f:
                Metadata.from_bytes(f.read())
            os.makedirs(a.metadata_dir, exist_ok=True)
            shutil.copyfile(a.trusted_root, os.path.join(a.metadata_dir, "root.json"))
            return 0
        if a.command == "download":
            os.makedirs(a.target_dir, exist_ok=True)
        updater = Updater(
            metadata_dir=a.metadata_dir,
            metadata_base_url=a.metadata_url,
            target_dir=a.target_dir,
            target_base_url=a.target_base_url,
            bootstrap=None,
        )
        updater.refresh()
        if a.command == "download":
            for name in a.target_name:
                info = updater.get_targetinfo(name)
                if info is None:
                    raise LookupError(f"target {name} not found")
                if updater.find_cached_target(info) is None:
                    updater.download_target(info)
        return 0
    except Exception as e:  # noqa: BLE001 - any failure is exit 1
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1


def batch() -> int:
    for line in sys.stdin:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                rc = main(json.loads(line))
            except BaseException as e:  # noqa: BLE001 - keep serving
                print(f"{type(e).__name__}: {e}", file=sys.stderr)
                rc = 1
        print(json.dumps({"rc": rc, "stderr": err.getvalue()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(batch() if sys.argv[1:] == ["--batch"] else main())
