#!/usr/bin/env bash
# Build the container image with podman where no image registry is reachable: its base is Debian bookworm made
# from Debian's packages (mmdebstrap), then the Dockerfile builds on it.
#   scripts/build_image.sh [TAG]          (needs: apt-get install podman mmdebstrap; run as root)
# Where this machine has its own pip settings (a pip.conf with find-links or a local index, a CA bundle for a TLS
# proxy), the build reads them too, read-only.
set -euo pipefail
cd "$(dirname "$0")/.."
exec 9>"${TMPDIR:-/tmp}/armorm-build-image.lock"
flock 9  # one build at a time: a second one waits, then finds every layer already built
TAG=${1:-armorm-explorer}
BASE=localhost/armorm-base:bookworm
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if ! podman image exists "$BASE"; then
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$WORK/base.tar"
  podman import --quiet "$WORK/base.tar" "$BASE"
fi
VOLUMES=()
for path in /etc/pip.conf /etc/xdg/pip /etc/ssl/certs/ca-certificates.crt /opt/wheels /opt/pypi /opt/pypi-more; do
  if [ -e "$path" ]; then VOLUMES+=(-v "$path:$path:ro"); fi
done
# Docker's image format: podman's default, OCI, has no place for HEALTHCHECK and drops it with a warning
# (podman-build(1), --format: https://docs.podman.io/en/latest/markdown/podman-build.1.html)
podman build --format docker --isolation chroot --build-arg "BASE=$BASE" "${VOLUMES[@]}" -t "$TAG" .
