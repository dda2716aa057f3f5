"""Generate TUF test repositories with python-tuf's Metadata API (PyPI `tuf`).

Usage: make_repos.py OUT_DIR [SCENARIO ...]

For every scenario (all of them when none is named) writes OUT_DIR/<scenario>/:
  trusted_root.json   the root a client is initialised with (1.root.json)
  <stage>/metadata/   the repository's metadata as served at that stage
  <stage>/targets/    its target files (hash-prefixed on the basename with consistent snapshots)
A stage is the repository as it is at one moment; the Rust test (tuf_differential.rs) runs
clients against the stages in order and states what each step must do. Target contents are
short ASCII strings the Rust test asserts literally.
"""

import copy
import hashlib
import json
import os
import sys
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

NOW = datetime.now(timezone.utc).replace(microsecond=0)
LATER = NOW + timedelta(days=30)
PAST = NOW - timedelta(days=1)
SER = JSONSerializer(compact=False)
TOP = ["root", "timestamp", "snapshot", "targets"]

_RSA_POOL = []


def gen(kind="ed25519"):
    if kind == "ed25519":
        return CryptoSigner.generate_ed25519()
    if kind == "ecdsa":  # ecdsa / ecdsa-sha2-nistp256
        return CryptoSigner.generate_ecdsa()
    if kind == "rsa":  # rsa / rsassa-pss-sha256, 3072 bits; generation is slow, so keys
        # are reused across scenarios (never twice in one repository's top-level roles).
        if not _RSA_POOL:
            _RSA_POOL.extend(CryptoSigner.generate_rsa() for _ in range(3))
        return _RSA_POOL.pop(0) if len(_RSA_POOL) > 1 else CryptoSigner.generate_rsa()
    raise ValueError(kind)


class Repo:
    """A repository whose files accumulate like a real one (old versions stay served)."""

    def __init__(self, kinds=None, consistent=True):
        kinds = kinds or {}
        self.consistent = consistent
        self.signers = {r: [gen(kinds.get(r, "ed25519"))] for r in TOP}
        self.root = Metadata(Root(expires=LATER, consistent_snapshot=consistent))
        for role, signers in self.signers.items():
            for s in signers:
                self.root.signed.add_key(s.public_key, role)
        self.targets = {"targets": Metadata(Targets(expires=LATER))}
        self.role_signers = {"targets": self.signers["targets"]}
        self.snapshot = Metadata(Snapshot(expires=LATER))
        self.timestamp = Metadata(Timestamp(expires=LATER))
        self.snapshot_bytes = b""
        self.files = {}

    @staticmethod
    def sign(md, signers):
        md.signatures.clear()
        for s in signers:
            md.sign(s, append=True)
        return md.to_bytes(SER)

    # --- keys -------------------------------------------------------------------------
    def rotate(self, role, new_signers, threshold=1):
        for s in self.signers[role]:
            self.root.signed.revoke_key(s.public_key.keyid, role)
        for s in new_signers:
            self.root.signed.add_key(s.public_key, role)
        self.root.signed.roles[role].threshold = threshold
        self.signers[role] = list(new_signers)
        if role == "targets":
            self.role_signers["targets"] = list(new_signers)

    # --- publishing ------------------------------------------------------------------
    def publish_root(self, signers=None):
        data = self.sign(self.root, self.signers["root"] if signers is None else signers)
        self.files[f"metadata/{self.root.signed.version}.root.json"] = data
        self.files["metadata/root.json"] = data
        return data

    def add_target(self, name, data, role="targets", hashes=("sha256",), served=None):
        tf = TargetFile.from_data(name, data, list(hashes))
        self.targets[role].signed.targets[name] = tf
        self.serve_target(tf, data if served is None else served)
        return tf

    def serve_target(self, tf, data):
        d, sep, base = tf.path.rpartition("/")
        if self.consistent:
            for h in tf.hashes.values():
                self.files[f"targets/{d}{sep}{h}.{base}"] = data
        else:
            self.files[f"targets/{tf.path}"] = data

    def delegate(self, delegator, name, paths=None, prefixes=None, terminating=False, signer=None):
        signer = signer or gen()
        md = self.targets[delegator].signed
        if md.delegations is None:
            md.delegations = Delegations(keys={}, roles={})
        md.delegations.keys[signer.public_key.keyid] = signer.public_key
        md.delegations.roles[name] = DelegatedRole(
            name, [signer.public_key.keyid], 1, terminating, paths, prefixes
        )
        if name not in self.targets:
            self.targets[name] = Metadata(Targets(expires=LATER))
            self.role_signers[name] = [signer]

    def publish_targets(self, role):
        md = self.targets[role]
        data = self.sign(md, self.role_signers[role])
        q = quote(role, safe="")
        if self.consistent:
            self.files[f"metadata/{md.signed.version}.{q}.json"] = data
        self.files[f"metadata/{q}.json"] = data
        return data

    def publish_snapshot(self, omit=(), meta=None):
        self.snapshot.signed.meta = {
            f"{role}.json": MetaFile(version=md.signed.version)
            for role, md in self.targets.items()
            if role not in omit
        }
        self.snapshot.signed.meta.update(meta or {})
        data = self.sign(self.snapshot, self.signers["snapshot"])
        if self.consistent:
            self.files[f"metadata/{self.snapshot.signed.version}.snapshot.json"] = data
        self.files["metadata/snapshot.json"] = data
        self.snapshot_bytes = data
        return data

    def publish_timestamp(self, signers=None, snapshot_meta=None):
        self.timestamp.signed.snapshot_meta = snapshot_meta or MetaFile.from_data(
            self.snapshot.signed.version, self.snapshot_bytes, ["sha256"]
        )
        data = self.sign(self.timestamp, self.signers["timestamp"] if signers is None else signers)
        self.files["metadata/timestamp.json"] = data
        return data

    def publish_all(self, omit_from_snapshot=()):
        for role in self.targets:
            self.publish_targets(role)
        self.publish_snapshot(omit=omit_from_snapshot)
        self.publish_timestamp()

    def bump(self, *roles):
        for role in roles:
            md = {"root": self.root, "snapshot": self.snapshot, "timestamp": self.timestamp}.get(role)
            (md or self.targets[role]).signed.version += 1

    def stage(self, out, name):
        for rel, data in self.files.items():
            path = os.path.join(out, name, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        trusted = os.path.join(out, "trusted_root.json")
        if not os.path.exists(trusted):
            with open(trusted, "wb") as f:
                f.write(self.files["metadata/1.root.json"])


def basic(out, kinds=None, name="app/file.bin", data=b"hello", consistent=True, hashes=("sha256",)):
    r = Repo(kinds, consistent)
    r.publish_root()
    r.add_target(name, data, hashes=hashes)
    r.publish_all()
    r.stage(out, "s0")
    return r


SCENARIOS = {}


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


# --- key types -----------------------------------------------------------------------------
@scenario
def ecdsa_keys(out):
    basic(out, {r: "ecdsa" for r in TOP}, data=b"signed with ecdsa-sha2-nistp256")


@scenario
def rsa_keys(out):
    basic(out, {r: "rsa" for r in TOP}, data=b"signed with rsassa-pss-sha256")


@scenario
def mixed_key_types_root_threshold(out):
    # Root: ed25519 + ecdsa + rsa keys, threshold 2, signed by the ecdsa and rsa keys only.
    r = Repo({"targets": "ecdsa", "snapshot": "rsa", "timestamp": "ed25519", "root": "ed25519"})
    extra = [gen("ecdsa"), gen("rsa")]
    for s in extra:
        r.root.signed.add_key(s.public_key, "root")
    r.root.signed.roles["root"].threshold = 2
    r.publish_root(signers=extra)
    r.add_target("mixed.bin", b"three key types")
    r.publish_all()
    r.stage(out, "s0")


@scenario
def ecdsa_delegated_role(out):
    r = Repo()
    r.publish_root()
    r.delegate("targets", "ec-role", paths=["ec/*"], signer=gen("ecdsa"))
    r.delegate("targets", "rsa-role", paths=["rsa/*"], signer=gen("rsa"))
    r.add_target("ec/a.bin", b"listed by an ecdsa role", role="ec-role")
    r.add_target("rsa/b.bin", b"listed by an rsa role", role="rsa-role")
    r.publish_all()
    r.stage(out, "s0")


# --- delegations ---------------------------------------------------------------------------
@scenario
def delegation_preorder_dfs(out):
    r = Repo()
    r.publish_root()
    r.delegate("targets", "a", paths=["files/*"])
    r.delegate("targets", "b", paths=["files/*"])
    r.delegate("a", "a1", paths=["files/*"])
    r.add_target("files/x", b"from a1", role="a1")
    r.add_target("files/x", b"from b", role="b")
    r.add_target("files/z", b"only in b", role="b")
    r.publish_all()
    r.stage(out, "s0")


@scenario
def delegation_terminating(out):
    r = Repo()
    r.publish_root()
    r.delegate("targets", "t", paths=["a/*"], terminating=True)
    r.delegate("targets", "u", paths=["a/*", "b/*"])
    r.add_target("a/other", b"in t", role="t")
    r.add_target("a/t", b"hidden behind terminating t", role="u")
    r.add_target("b/t", b"b from u", role="u")
    r.publish_all()
    r.stage(out, "s0")


@scenario
def delegation_path_hash_prefixes(out):
    r = Repo()
    r.publish_root()
    name = "pkg/hashed.bin"
    first = hashlib.sha256(name.encode()).hexdigest()[0]
    other = "0" if first != "0" else "1"
    r.delegate("targets", "wrong-bin", prefixes=[other])
    r.delegate("targets", "right-bin", prefixes=["ff", first])
    r.add_target(name, b"from the wrong bin", role="wrong-bin")
    r.add_target(name, b"from the right bin", role="right-bin")
    r.publish_all()
    r.stage(out, "s0")


@scenario
def delegation_succinct_hash_bins(out):
    r = Repo()
    r.publish_root()
    signer = gen()
    succinct = SuccinctRoles([signer.public_key.keyid], 1, 3, "bin")
    r.targets["targets"].signed.delegations = Delegations(
        keys={signer.public_key.keyid: signer.public_key}, succinct_roles=succinct
    )
    for bin_name in succinct.get_roles():
        r.targets[bin_name] = Metadata(Targets(expires=LATER))
        r.role_signers[bin_name] = [signer]
    name = "succinct/target.bin"
    r.add_target(name, b"in its hash bin", role=succinct.get_role_for_target(name))
    # Listed in a bin the name does not hash to: must not be found.
    stray = "succinct/stray.bin"
    bins = succinct.get_roles()
    wrong = next(b for b in bins if b != succinct.get_role_for_target(stray))
    r.add_target(stray, b"in the wrong bin", role=wrong)
    r.publish_all()
    r.stage(out, "s0")


@scenario
def delegation_paths_glob_does_not_cross_slash(out):
    r = Repo()
    r.publish_root()
    r.delegate("targets", "g", paths=["dir/*.bin"])
    r.add_target("dir/x.bin", b"matches dir/*.bin", role="g")
    r.add_target("dir/sub/y.bin", b"star must not cross a slash", role="g")
    r.publish_all()
    r.stage(out, "s0")


@scenario
def delegated_role_missing_from_snapshot(out):
    r = Repo()
    r.publish_root()
    r.delegate("targets", "d", paths=["*"])
    r.add_target("d.bin", b"role d is not in snapshot", role="d")
    r.publish_all(omit_from_snapshot=("d",))
    r.stage(out, "s0")


@scenario
def delegation_cycle(out):
    r = Repo()
    r.publish_root()
    ka, kb = gen(), gen()
    r.delegate("targets", "a", paths=["*"], signer=ka)
    r.delegate("a", "b", paths=["*"], signer=kb)
    r.delegate("b", "a", paths=["*"], signer=ka)
    r.add_target("y", b"listed by b", role="b")
    r.publish_all()
    r.stage(out, "s0")


@scenario
def delegated_role_name_needs_percent_encoding(out):
    r = Repo()
    r.publish_root()
    r.delegate("targets", "team a+b", paths=["t/*"])
    r.add_target("t/enc.bin", b"from a role with a space in its name", role="team a+b")
    r.publish_all()
    r.stage(out, "s0")


# --- root and key rotation -------------------------------------------------------------
@scenario
def root_rotation(out):
    r = basic(out, data=b"before rotation")
    old = r.signers["root"]
    new = [gen("ecdsa"), gen()]
    r.rotate("root", new[:1])
    r.bump("root")
    r.publish_root(signers=old + new[:1])  # 2: signed by the old and the new key
    r.rotate("root", new, threshold=2)
    r.bump("root")
    r.publish_root(signers=new)  # 3: two keys, threshold 2, signed by both
    r.add_target("app/file.bin", b"after rotation")
    r.bump("targets", "snapshot", "timestamp")
    r.publish_all()
    r.stage(out, "s1")


def _root_rotation_signed_by(out, which):
    r = basic(out, data=b"before rotation")
    old, new = r.signers["root"], [gen()]
    r.rotate("root", new)
    r.bump("root")
    r.publish_root(signers=old if which == "old" else new)
    r.stage(out, "s1")


@scenario
def root_rotation_without_old_signature(out):
    _root_rotation_signed_by(out, "new")


@scenario
def root_rotation_without_new_signature(out):
    _root_rotation_signed_by(out, "old")


@scenario
def root_chain_longer_than_the_rotation_limit(out):
    # python-tuf's UpdaterConfig.max_root_rotations is 256: one refresh applies 2..257 and
    # stops there without an error; the next one goes on to the newest (259).
    r = basic(out, data=b"after a long root chain")
    for _ in range(258):
        r.bump("root")
        r.publish_root()
    r.stage(out, "s0")


@scenario
def timestamp_key_rotation_fast_forward_recovery(out):
    r = basic(out, data=b"before")  # s0 has timestamp v1; s1: a leaked key pushed v1000
    r.timestamp.signed.version = 1000
    r.publish_timestamp()
    r.stage(out, "s1")
    r.rotate("timestamp", [gen()])
    r.bump("root")
    r.publish_root(signers=r.signers["root"])
    r.timestamp.signed.version = 1
    r.add_target("app/file.bin", b"after recovery")
    r.bump("targets", "snapshot")
    r.publish_all()
    r.stage(out, "s2")


@scenario
def snapshot_key_rotation_fast_forward_recovery(out):
    r = basic(out, data=b"before")  # s1: a leaked snapshot key pushed snapshot v1000
    r.snapshot.signed.version = 1000
    r.bump("timestamp")
    r.publish_snapshot()
    r.publish_timestamp()
    r.stage(out, "s1")
    r.rotate("snapshot", [gen()])
    r.bump("root", "timestamp", "targets")
    r.publish_root()
    r.snapshot.signed.version = 1
    r.add_target("app/file.bin", b"after recovery")
    r.publish_all()
    r.stage(out, "s2")


# --- targets ----------------------------------------------------------------------------
@scenario
def consistent_snapshot_target_paths(out):
    r = Repo()
    r.publish_root()
    tf = r.add_target("dir/sub/file.bin", b"served as dir/sub/HASH.file.bin")
    # Decoys where a client putting the prefix on the whole path (or none) would look.
    h = tf.hashes["sha256"]
    r.files[f"targets/{h}.dir/sub/file.bin"] = b"wrong place"
    r.files["targets/dir/sub/file.bin"] = b"wrong place"
    r.publish_all()
    # Only versioned metadata is served for snapshot and targets.
    del r.files["metadata/snapshot.json"], r.files["metadata/targets.json"]
    r.stage(out, "s0")


@scenario
def non_consistent_snapshot(out):
    r = basic(out, name="plain/file.bin", data=b"plain path", consistent=False)
    assert "metadata/1.snapshot.json" not in r.files


@scenario
def sha512_only_target(out):
    basic(out, name="big/file.bin", data=b"listed with sha512 only", hashes=("sha512",))


@scenario
def target_already_stored(out):
    basic(out, name="keep/me.bin", data=b"download once")


@scenario
def target_with_sha256_and_sha512(out):
    basic(out, name="two/hashes.bin", data=b"both hashes", hashes=("sha256", "sha512"))


# --- attacks ----------------------------------------------------------------------------
def _expired(out, role):
    r = Repo()
    md = {"root": r.root, "timestamp": r.timestamp, "snapshot": r.snapshot}.get(role, r.targets["targets"])
    md.signed.expires = PAST
    r.publish_root()
    r.add_target("app/file.bin", b"expired " + role.encode())
    r.publish_all()
    r.stage(out, "s0")


@scenario
def expired_root(out):
    _expired(out, "root")


@scenario
def expired_timestamp(out):
    _expired(out, "timestamp")


@scenario
def expired_snapshot(out):
    _expired(out, "snapshot")


@scenario
def expired_targets(out):
    _expired(out, "targets")


@scenario
def timestamp_version_rollback(out):
    r = basic(out, data=b"v")
    saved = copy.deepcopy(r.files)
    r.bump("timestamp")
    r.publish_timestamp()
    r.stage(out, "s1")  # timestamp v2
    saved, r.files = r.files, saved
    r.stage(out, "s2")  # timestamp v1 again


@scenario
def snapshot_version_rollback(out):
    r = basic(out, data=b"v")
    r.bump("snapshot", "timestamp")
    r.publish_snapshot()
    r.publish_timestamp()
    r.stage(out, "s1")  # timestamp v2 -> snapshot v2
    r.snapshot.signed.version = 1
    r.publish_snapshot()
    r.bump("timestamp")
    r.publish_timestamp()
    r.stage(out, "s2")  # timestamp v3 -> snapshot v1


@scenario
def targets_version_rollback(out):
    r = basic(out, data=b"v")
    r.bump("targets", "snapshot", "timestamp")
    r.publish_all()
    r.stage(out, "s1")  # snapshot v2 -> targets v2
    r.targets["targets"].signed.version = 1
    r.bump("snapshot", "timestamp")
    r.publish_snapshot()
    r.publish_timestamp()
    r.stage(out, "s2")  # snapshot v3 -> targets v1


@scenario
def same_version_timestamp_with_new_content(out):
    r = basic(out, data=b"v")
    r.timestamp.signed.expires = LATER + timedelta(days=1)
    r.publish_timestamp()  # still version 1, different bytes
    r.stage(out, "s1")


@scenario
def same_version_timestamp_same_content(out):
    r = basic(out, data=b"unchanged")
    r.stage(out, "s1")


@scenario
def target_hash_mismatch(out):
    r = Repo()
    r.publish_root()
    r.add_target("app/file.bin", b"genuine bytes", served=b"evil! bytes!!")
    r.publish_all()
    r.stage(out, "s0")


@scenario
def target_length_mismatch(out):
    r = Repo()
    r.publish_root()
    r.add_target("app/file.bin", b"genuine", served=b"genuine plus endless data" * 40)
    r.publish_all()
    r.stage(out, "s0")


@scenario
def snapshot_hash_mismatch(out):
    r = Repo()
    r.publish_root()
    r.add_target("app/file.bin", b"x")
    r.publish_targets("targets")
    r.publish_snapshot()
    meta = MetaFile.from_data(1, r.snapshot_bytes, ["sha256"])
    meta.hashes["sha256"] = hashlib.sha256(b"something else").hexdigest()
    r.publish_timestamp(snapshot_meta=meta)
    r.stage(out, "s0")


@scenario
def snapshot_length_mismatch(out):
    r = Repo()
    r.publish_root()
    r.add_target("app/file.bin", b"x")
    r.publish_targets("targets")
    r.publish_snapshot()
    meta = MetaFile(version=1, length=len(r.snapshot_bytes) - 10)
    r.publish_timestamp(snapshot_meta=meta)
    r.stage(out, "s0")


@scenario
def targets_hash_mismatch(out):
    r = Repo()
    r.publish_root()
    r.add_target("app/file.bin", b"x")
    data = r.publish_targets("targets")
    meta = MetaFile.from_data(1, data + b" ", ["sha256"])
    meta.length = len(data)
    r.publish_snapshot(meta={"targets.json": meta})
    r.publish_timestamp()
    r.stage(out, "s0")


@scenario
def timestamp_signed_by_unknown_key(out):
    r = Repo()
    r.publish_root()
    r.add_target("app/file.bin", b"x")
    r.publish_targets("targets")
    r.publish_snapshot()
    r.publish_timestamp(signers=[gen()])
    r.stage(out, "s0")


@scenario
def invalid_signature_beyond_threshold(out):
    r = Repo()
    r.publish_root()
    r.add_target("app/file.bin", b"valid threshold plus junk")
    r.publish_targets("targets")
    r.publish_snapshot()
    # The valid signature, plus one by an unknown key and a corrupted one by a listed key.
    r.publish_timestamp(signers=r.signers["timestamp"] + [gen()])
    md = r.timestamp
    extra = gen()
    r.root.signed.add_key(extra.public_key, "timestamp")
    r.bump("root")
    r.publish_root()
    md.sign(extra, append=True)
    sig = md.signatures[extra.public_key.keyid]
    sig.signature = ("00" if sig.signature[:2] != "00" else "11") + sig.signature[2:]
    r.files["metadata/timestamp.json"] = md.to_bytes(SER)
    r.stage(out, "s0")


@scenario
def duplicate_signatures_count_once(out):
    r = Repo()
    second = gen()
    r.root.signed.add_key(second.public_key, "timestamp")
    r.root.signed.roles["timestamp"].threshold = 2
    r.publish_root()
    r.add_target("app/file.bin", b"x")
    r.publish_targets("targets")
    r.publish_snapshot()
    r.publish_timestamp()  # one key's signature only
    raw = r.files["metadata/timestamp.json"].decode()
    doc = json.loads(raw)
    doc["signatures"] = doc["signatures"] * 2  # the same key id twice
    r.files["metadata/timestamp.json"] = json.dumps(doc, indent=1).encode()
    r.stage(out, "s0")


@scenario
def delegated_role_signed_by_unknown_key(out):
    r = Repo()
    r.publish_root()
    r.delegate("targets", "d", paths=["d/*"])
    r.add_target("d/file.bin", b"signed by a key d does not trust", role="d")
    r.role_signers["d"] = [gen()]
    r.publish_all()
    r.stage(out, "s0")


@scenario
def expired_intermediate_root(out):
    r = basic(out, data=b"before")
    r.bump("root")
    r.root.signed.expires = PAST
    r.publish_root()  # 2: expired, but only the newest root's expiry matters
    r.bump("root")
    r.root.signed.expires = LATER
    r.publish_root()  # 3
    r.stage(out, "s1")


@scenario
def snapshot_with_wrong_type(out):
    # Timestamp points at a "snapshot" that is a targets document signed by the snapshot key.
    r = Repo()
    r.publish_root()
    r.add_target("app/file.bin", b"x")
    r.publish_targets("targets")
    fake = Metadata(Targets(version=1, expires=LATER))
    data = r.sign(fake, r.signers["snapshot"])
    r.files["metadata/1.snapshot.json"] = r.files["metadata/snapshot.json"] = data
    r.snapshot_bytes = data
    r.publish_timestamp()
    r.stage(out, "s0")


@scenario
def timestamp_with_wrong_type(out):
    # timestamp.json is a snapshot document signed by the timestamp key.
    r = Repo()
    r.publish_root()
    r.add_target("app/file.bin", b"x")
    r.publish_all()
    fake = Metadata(Snapshot(version=2, expires=LATER))
    r.files["metadata/timestamp.json"] = r.sign(fake, r.signers["timestamp"])
    r.stage(out, "s0")


@scenario
def targets_with_wrong_type(out):
    # 1.targets.json is a snapshot document signed by the targets key (snapshot lists it).
    r = Repo()
    r.publish_root()
    fake = Metadata(Snapshot(version=1, expires=LATER))
    data = r.sign(fake, r.signers["targets"])
    r.files["metadata/1.targets.json"] = r.files["metadata/targets.json"] = data
    r.publish_snapshot()
    r.publish_timestamp()
    r.stage(out, "s0")


@scenario
def snapshot_version_differs_from_timestamp(out):
    # Timestamp lists snapshot v1; the file served as 1.snapshot.json says version 2.
    r = Repo()
    r.publish_root()
    r.add_target("app/file.bin", b"x")
    r.publish_targets("targets")
    r.bump("snapshot")
    data = r.publish_snapshot()
    r.files["metadata/1.snapshot.json"] = data
    r.publish_timestamp(snapshot_meta=MetaFile(version=1))
    r.stage(out, "s0")


@scenario
def targets_version_differs_from_snapshot(out):
    # Snapshot lists targets v2; the file served as 2.targets.json says version 1.
    r = Repo()
    r.publish_root()
    r.add_target("app/file.bin", b"x")
    data = r.publish_targets("targets")
    r.files["metadata/2.targets.json"] = data
    r.publish_snapshot(meta={"targets.json": MetaFile(version=2)})
    r.publish_timestamp()
    r.stage(out, "s0")


@scenario
def root_rotation_signed_by_part_of_the_old_threshold(out):
    # Root v1 has two keys, threshold 2; v2 is signed by one of them and by its new keys.
    r = Repo()
    r.rotate("root", [gen(), gen()], threshold=2)
    r.publish_root()
    r.add_target("app/file.bin", b"x")
    r.publish_all()
    r.stage(out, "s0")
    old = r.signers["root"]
    new = [gen()]
    r.rotate("root", new)
    r.bump("root")
    r.publish_root(signers=old[:1] + new)
    r.stage(out, "s1")


@scenario
def delegated_targets_version_rollback(out):
    r = Repo()
    r.publish_root()
    r.delegate("targets", "d", paths=["*"])
    r.add_target("f.bin", b"v", role="d")
    r.publish_all()
    r.stage(out, "s0")
    r.bump("d", "snapshot", "timestamp")
    r.publish_all()
    r.stage(out, "s1")  # snapshot v2 -> d v2
    r.targets["d"].signed.version = 1
    r.bump("snapshot", "timestamp")
    r.publish_snapshot()
    r.publish_timestamp()
    r.stage(out, "s2")  # snapshot v3 -> d v1


@scenario
def snapshot_drops_a_listed_role(out):
    r = Repo()
    r.publish_root()
    r.delegate("targets", "d", paths=["*"])
    r.add_target("f.bin", b"v", role="d")
    r.publish_all()
    r.stage(out, "s0")
    r.bump("snapshot", "timestamp")
    r.publish_snapshot(omit=("d",))
    r.publish_timestamp()
    r.stage(out, "s1")


@scenario
def targets_length_mismatch(out):
    r = Repo()
    r.publish_root()
    r.add_target("app/file.bin", b"x")
    data = r.publish_targets("targets")
    r.publish_snapshot(meta={"targets.json": MetaFile(version=1, length=len(data) - 1)})
    r.publish_timestamp()
    r.stage(out, "s0")


@scenario
def targets_key_rotation(out):
    r = basic(out, data=b"signed by the old targets key")
    r.rotate("targets", [gen("ecdsa")])
    r.bump("root", "targets", "snapshot", "timestamp")
    r.publish_root()
    r.add_target("app/file.bin", b"signed by the new ecdsa targets key")
    r.publish_all()
    r.stage(out, "s1")


def _delegated_threshold(out, sign_with_both):
    r = Repo()
    r.publish_root()
    ec, rsa = gen("ecdsa"), gen("rsa")
    r.delegate("targets", "pair", paths=["pair/*"], signer=ec)
    role = r.targets["targets"].signed.delegations
    role.keys[rsa.public_key.keyid] = rsa.public_key
    role.roles["pair"].keyids.append(rsa.public_key.keyid)
    role.roles["pair"].threshold = 2
    r.role_signers["pair"] = [ec, rsa] if sign_with_both else [rsa]
    r.add_target("pair/file.bin", b"two of two signatures", role="pair")
    r.publish_all()
    r.stage(out, "s0")


@scenario
def delegated_threshold_met(out):
    _delegated_threshold(out, True)


@scenario
def delegated_threshold_not_met(out):
    _delegated_threshold(out, False)


@scenario
def timestamp_without_snapshot_hashes(out):
    r = Repo()
    r.publish_root()
    r.add_target("app/file.bin", b"snapshot listed by version only")
    r.publish_targets("targets")
    r.publish_snapshot()
    r.publish_timestamp(snapshot_meta=MetaFile(version=1))
    r.stage(out, "s0")


@scenario
def unknown_fields_are_signed(out):
    r = Repo()
    note = {"z": 1, "a": ["\u00e9\u4e2d", "\"q\"", "back\\slash", 2], "\u00fc": None}
    for md in (r.root, r.timestamp, r.snapshot, r.targets["targets"]):
        md.signed.unrecognized_fields["x-vendor-note"] = note
    r.publish_root()
    tf = r.add_target("app/file.bin", b"unknown fields are part of the signed bytes")
    tf.unrecognized_fields["custom"] = {"component": "main", "nested": {"b": [True, False]}}
    r.publish_all()
    r.stage(out, "s0")


def main() -> int:
    out = sys.argv[1]
    names = sys.argv[2:] or list(SCENARIOS)
    for name in names:
        SCENARIOS[name](os.path.join(out, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
