#!/usr/bin/env bash
# Prepares what the QEMU sandbox backend (crates/ferry-sandbox/src/sandbox/qemu.rs) needs:
#   - qemu-system-x86 and busybox-static from Debian (apt-get, only if missing);
#   - a Debian guest kernel (the vmlinuz of linux-image-<abi>-amd64, fetched with
#     `apt-get download` and unpacked with `dpkg-deb -x`, never installed into the host) and the
#     e1000 network driver module, copied to $FERRY_QEMU_GUEST_DIR/x86_64/{vmlinuz,e1000.ko},
#     plus vmlinux, the uncompressed ELF kernel extracted from vmlinuz (needs python3).
# Idempotent: does nothing when everything is already in place.
#
# Usage: scripts/fetch-qemu-guest.sh            (default dir /var/cache/ferry/qemu-guest)
#        FERRY_QEMU_GUEST_DIR=/some/dir scripts/fetch-qemu-guest.sh
set -euo pipefail

DIR="${FERRY_QEMU_GUEST_DIR:-/var/cache/ferry/qemu-guest}"
ARCH_DIR="$DIR/x86_64"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 \
    || missing+=(busybox-static)
command -v dpkg-deb >/dev/null 2>&1 || missing+=(dpkg)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "fetch-qemu-guest: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ -s "$ARCH_DIR/vmlinuz" ] && [ -s "$ARCH_DIR/vmlinux" ] && [ -s "$ARCH_DIR/e1000.ko" ] \
    && [ -s "$ARCH_DIR/release" ]; then
    echo "fetch-qemu-guest: guest kernel $(cat "$ARCH_DIR/release") already in $ARCH_DIR"
    exit 0
fi

# The exact kernel package the metapackage points at, e.g. linux-image-6.1.0-56-amd64.
PKG="$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
if [ -z "$PKG" ]; then
    $SUDO apt-get update -qq
    PKG="$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
fi
[ -n "$PKG" ] || { echo "fetch-qemu-guest: cannot resolve linux-image-amd64 to a kernel package" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"
echo "fetch-qemu-guest: downloading $PKG (not installed into the host)"
(cd "$WORK" && apt-get download "$PKG" >/dev/null 2>&1 || (cd "$WORK" && apt-get download "$PKG"))
dpkg-deb -x "$WORK"/"$PKG"_*.deb "$WORK/x"

RELEASE="${PKG#linux-image-}"
VMLINUZ="$WORK/x/boot/vmlinuz-$RELEASE"
E1000="$(find "$WORK/x/lib/modules/$RELEASE" -name e1000.ko | head -n1)"
[ -s "$VMLINUZ" ] || { echo "fetch-qemu-guest: $PKG has no $VMLINUZ" >&2; exit 1; }
[ -n "$E1000" ] || { echo "fetch-qemu-guest: $PKG has no e1000.ko" >&2; exit 1; }

$SUDO mkdir -p "$ARCH_DIR"
$SUDO install -m 0644 "$VMLINUZ" "$ARCH_DIR/vmlinuz"
$SUDO install -m 0644 "$E1000" "$ARCH_DIR/e1000.ko"
# The uncompressed ELF kernel (xz stream inside the bzImage): QEMU boots it through its PVH
# entry point, skipping the firmware's real-mode loader and the in-guest decompression, which
# under TCG halves the boot time. The sandbox falls back to vmlinuz without it.
python3 - "$VMLINUZ" "$WORK/vmlinux" <<'PY'
import lzma, sys
data = open(sys.argv[1], "rb").read()
start = data.find(b"\xfd7zXZ\x00")
if start < 0:
    sys.exit("no xz stream in " + sys.argv[1])
elf = lzma.LZMADecompressor().decompress(data[start:])
if not elf.startswith(b"\x7fELF"):
    sys.exit("the xz stream in " + sys.argv[1] + " is not an ELF kernel")
open(sys.argv[2], "wb").write(elf)
PY
$SUDO install -m 0644 "$WORK/vmlinux" "$ARCH_DIR/vmlinux"
echo "$RELEASE" | $SUDO tee "$ARCH_DIR/release" >/dev/null
echo "fetch-qemu-guest: guest kernel $RELEASE ready in $ARCH_DIR"
