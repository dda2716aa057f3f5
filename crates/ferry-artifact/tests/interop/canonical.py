"""Canonical JSON as securesystemslib encodes it.

Reads a JSON array of values on stdin; prints a JSON array with encode_canonical() of each,
and the python-tuf default key id of every value that is a key object (else null).
"""

import json
import sys

from securesystemslib.formats import encode_canonical
from securesystemslib.signer._utils import compute_default_keyid


def main() -> int:
    values = json.load(sys.stdin)
    canonical = [encode_canonical(v) for v in values]
    keyids = [
        compute_default_keyid(v["keytype"], v["scheme"], v["keyval"])
        if isinstance(v, dict) and set(v) == {"keytype", "scheme", "keyval"}
        else None
        for v in values
    ]
    json.dump({"canonical": canonical, "keyids": keyids}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
