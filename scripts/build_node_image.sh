#!/usr/bin/env bash
# Build a Motey node image locally, without a container registry:
#   1. a minimal Debian base image (debootstrap --variant=minbase + python3 + venv) packed
#      into an image archive for `docker load` (scripts/rootfs_image.py) -- built once,
#      then reused;
#   2. the Motey wheel from this checkout (python -m build, reproducible);
#   3. a wheelhouse with Motey's dependencies for the target platform, prepared on the
#      host (the build container needs no network);
#   4. docker build of the image's Dockerfile on that base, with those wheels.
# Every step is cached: a machine that already has the image rebuilds only the layers
# whose input changed (a code change re-installs the Motey wheel, nothing else).
#
# Usage: scripts/build_node_image.sh [amd64|arm64]
#   amd64 (default): motey-docker-image/Dockerfile      -> motey:latest
#   arm64          : motey-rpi-docker-image/Dockerfile  -> motey:rpi (QEMU user emulation)
# Environment: MOTEY_DEBIAN_MIRROR (default http://deb.debian.org/debian),
#   MOTEY_IMAGE (the tag), MOTEY_VENV (the Python environment that has `build`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ARCH=${1:-amd64}
SUITE=bookworm  # Debian 12: Python 3.11, the version the wheelhouse is made for
MIRROR=${MOTEY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
VENV=${MOTEY_VENV:-$ROOT/.venv}
case "$ARCH" in
  amd64) DOCKERFILE=motey-docker-image/Dockerfile; IMAGE=${MOTEY_IMAGE:-motey:latest}
         PIP_PLATFORM=manylinux2014_x86_64 ;;
  arm64) DOCKERFILE=motey-rpi-docker-image/Dockerfile; IMAGE=${MOTEY_IMAGE:-motey:rpi}
         PIP_PLATFORM=manylinux2014_aarch64 ;;
  *) echo "usage: $0 [amd64|arm64]" >&2; exit 2 ;;
esac
BASE=motey-base:$SUITE-$ARCH
say() { printf '==> %s\n' "$*"; }

# -- 1. base image ---------------------------------------------------------------------
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { echo "debootstrap missing (scripts/setup.sh installs it)" >&2; exit 1; }
  if [ "$ARCH" != "$(dpkg --print-architecture)" ] \
     && [ ! -e "/proc/sys/fs/binfmt_misc/qemu-${PIP_PLATFORM#manylinux2014_}" ]; then
    echo "no binfmt_misc entry for $ARCH: install qemu-user-static and binfmt-support" >&2
    exit 1
  fi
  rootfs=$(mktemp -d)
  # debootstrap mounts /proc and /sys inside the tree; never remove through a mount.
  cleanup_rootfs() {
    grep -o " $rootfs/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l || true
    rm -rf --one-file-system "$rootfs" "$rootfs.log"
  }
  trap cleanup_rootfs EXIT
  say "debootstrap $SUITE ($ARCH, minbase) into $rootfs"
  debootstrap --variant=minbase --arch="$ARCH" --include=python3,python3-venv \
    "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
  say "docker load $BASE"
  # Not `docker import`: it would label an arm64 tree amd64 (see rootfs_image.py).
  "$VENV/bin/python" scripts/rootfs_image.py "$rootfs" "$BASE" "$ARCH" | docker load >/dev/null
  cleanup_rootfs
  trap - EXIT
fi

# -- 2. + 3. build context: the Motey wheel and the dependencies' wheels ----------------
context=$(mktemp -d)
logs=$(mktemp -d)  # outside the context, which docker build sends whole
trap 'rm -rf "$context" "$logs"' EXIT
mkdir -p "$context/dist" "$context/wheels"
say "building the Motey wheel"
# A fixed timestamp makes the wheel byte-identical for identical sources, so Docker's
# layer cache keeps the install layer when nothing changed. The wheel is built from the
# sdist, in a fresh folder: a build/ left in the checkout could add stale files.
SOURCE_DATE_EPOCH=315532800 "$VENV/bin/python" -m build --outdir "$context/dist" . \
  >"$logs/build.log" 2>&1 || { tail -30 "$logs/build.log" >&2; exit 1; }
rm -f "$context"/dist/*.tar.gz
wheel=$(ls "$context"/dist/motey-*.whl)
say "collecting dependency wheels for $ARCH"
"$VENV/bin/python" -m pip download -q --disable-pip-version-check \
  --only-binary=:all: --platform "$PIP_PLATFORM" --python-version 3.11 \
  --implementation cp --abi cp311 --dest "$context/wheels" "$wheel" 2>&1 \
  | { grep -v "^WARNING: Location" || true; }
rm -f "$context"/wheels/motey-*.whl
[ -n "$(ls "$context/wheels")" ] || { echo "no dependency wheels downloaded" >&2; exit 1; }
find "$context/wheels" -exec touch -h -d @315532800 {} +
cp config.ini "$context/config.ini"
cp motey-docker-image/container-config.sh motey-docker-image/healthcheck.py "$context/"

# -- 4. the image ----------------------------------------------------------------------
say "docker build -f $DOCKERFILE -t $IMAGE (base $BASE)"
docker build --platform "linux/$ARCH" --build-arg "BASE_IMAGE=$BASE" \
  -f "$DOCKERFILE" -t "$IMAGE" "$context" >"$logs/docker-build.log" 2>&1 \
  || { tail -40 "$logs/docker-build.log" >&2; exit 1; }
# The image this build replaced (untagged now), and nothing else.
docker image prune -f --filter label=org.opencontainers.image.title=motey >/dev/null
say "built $IMAGE: $(docker run --rm --platform "linux/$ARCH" "$IMAGE" --version)"
