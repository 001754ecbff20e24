#!/usr/bin/env bash
# The local base images of `make images` (docs/deploy.md, "Containers"), for machines that cannot
# pull from Docker Hub or ghcr.io: Debian bookworm's Python 3.11 from Debian's packages
# (mmdebstrap, then `podman import`) and an image holding only this machine's uv binary.
#   infra/podman/build-base.sh BASE_TAG UV_TAG
# The Python image has /usr/local/bin/python like python:3.11-slim, so the Dockerfiles build on
# either. It trusts the CAs this machine trusts (/usr/local/share/ca-certificates: a TLS-inspecting
# egress proxy's, say) so that uv reaches PyPI during the build; the images built on it trust
# them too. Nothing is rebuilt when the tag already exists (`make images-clean` removes them).
set -euo pipefail
base_tag=${1:?base image tag}
uv_tag=${2:?uv image tag}
podman=${PODMAN:-podman}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! $podman image exists "$base_tag"; then
  # python3.11 and what python:3.11-slim has besides (certificates, /etc/services, time zones)
  # the hooks' "$1" is the new root, expanded by mmdebstrap's shell, not this one
  # shellcheck disable=SC2016
  mmdebstrap --variant=minbase \
    --include=python3.11,libpython3.11-stdlib,ca-certificates,netbase,tzdata \
    --customize-hook='ln -sf /usr/bin/python3.11 "$1/usr/local/bin/python"' \
    --customize-hook='ln -sf /usr/bin/python3.11 "$1/usr/local/bin/python3"' \
    --customize-hook='if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
        cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" &&
        chroot "$1" update-ca-certificates >/dev/null; fi' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$work/base.tar" "$mirror"
  $podman import --quiet \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$work/base.tar" "$base_tag" >/dev/null
  echo "built $base_tag"
fi

if ! $podman image exists "$uv_tag"; then
  uv_bin=$(command -v uv)
  # pyenv's shim is a script: the binary is the one it runs
  if command -v pyenv >/dev/null && pyenv which uv >/dev/null 2>&1; then uv_bin=$(pyenv which uv); fi
  mkdir "$work/uv" && cp "$uv_bin" "$work/uv/uv"
  tar -C "$work/uv" -cf "$work/uv.tar" uv
  $podman import --quiet "$work/uv.tar" "$uv_tag" >/dev/null
  echo "built $uv_tag ($("$uv_bin" --version))"
fi
