"""Write a small TUF repository with python-tuf's Metadata API.

Usage: write_repository.py OUT_DIR

Writes, with consistent snapshots: 1.root.json, 2.root.json (a root key rotation signed by
the old and the new root key), root.json (= v2), timestamp.json, 1.snapshot.json,
1.targets.json and the target file under targets/<dir>/<sha256>.<name>. Writes expected.json
with what the Rust test should find: target name, its bytes (hex), its custom data, and the
key ids python computed for every key.
"""

import json
import os
import sys
from datetime import datetime, timedelta, timezone

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

TARGET_NAME = "main/1.0.0.ferry"
TARGET_DATA = b"python-tuf made this target\n"
CUSTOM = {"component": "main", "version": "1.0.0", "device_types": ["gateway-v2"]}


def main() -> int:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=30)
    signers = {role: CryptoSigner.generate_ed25519() for role in ["root", "targets", "snapshot", "timestamp"]}
    serializer = JSONSerializer(compact=False)

    def write(md, name):
        data = md.to_bytes(serializer)
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        return data

    root = Metadata(Root(expires=expires, consistent_snapshot=True))
    for role, signer in signers.items():
        root.signed.add_key(signer.public_key, role)
    root.signed.unrecognized_fields["x-python-note"] = {"z": 1, "a": ["é", "\"q\"", "back\\slash"]}
    root.sign(signers["root"])
    write(root, "1.root.json")

    targets = Metadata(Targets(expires=expires))
    target = TargetFile.from_data(TARGET_NAME, TARGET_DATA, ["sha256", "sha512"])
    target.unrecognized_fields["custom"] = CUSTOM
    targets.signed.targets[TARGET_NAME] = target
    targets.signed.unrecognized_fields["x-python-extra"] = [1, 2, {"nested": True}]
    targets.sign(signers["targets"])
    write(targets, "1.targets.json")

    snapshot = Metadata(Snapshot(expires=expires))
    snapshot.signed.meta["targets.json"] = MetaFile(version=1)
    snapshot.sign(signers["snapshot"])
    snapshot_bytes = write(snapshot, "1.snapshot.json")

    timestamp = Metadata(Timestamp(expires=expires))
    timestamp.signed.snapshot_meta = MetaFile.from_data(1, snapshot_bytes, ["sha256", "sha512"])
    timestamp.sign(signers["timestamp"])
    write(timestamp, "timestamp.json")

    # Root rotation: v2 replaces the root key and is signed by the old and the new one.
    new_root_signer = CryptoSigner.generate_ed25519()
    root.signed.version = 2
    root.signed.revoke_key(signers["root"].public_key.keyid, "root")
    root.signed.add_key(new_root_signer.public_key, "root")
    root.signatures.clear()
    root.sign(signers["root"], append=True)
    root.sign(new_root_signer, append=True)
    write(root, "2.root.json")
    write(root, "root.json")

    sha256 = target.hashes["sha256"]
    target_path = os.path.join(out, "targets", "main", f"{sha256}.1.0.0.ferry")
    os.makedirs(os.path.dirname(target_path), exist_ok=True)
    with open(target_path, "wb") as f:
        f.write(TARGET_DATA)

    keys = {keyid: key.to_dict() for keyid, key in root.signed.keys.items()}
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(
            {
                "target": TARGET_NAME,
                "data_hex": TARGET_DATA.hex(),
                "sha256": sha256,
                "custom": CUSTOM,
                "keys": keys,
                "root_keyids_v2": root.signed.roles["root"].keyids,
            },
            f,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
