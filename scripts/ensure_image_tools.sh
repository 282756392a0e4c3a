#!/usr/bin/env bash
# Tools for building the node images without a registry (scripts/build_node_image.sh) and
# for checking the systemd unit, installed idempotently from Debian's packages:
# debootstrap, QEMU user emulation registered with binfmt_misc (the arm64 image), and
# systemd-analyze.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
[ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
command -v update-binfmts >/dev/null 2>&1 || need+=(binfmt-support)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need[@]}" >/dev/null
fi
# QEMU's binfmt entries need the binfmt_misc file system; a container or a machine
# without a running systemd may not have mounted it.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  as_root update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
  || echo "warning: no binfmt_misc entry for aarch64; the arm64 image cannot be built" >&2
