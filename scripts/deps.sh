#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Install the Debian packages husk builds and tests with (only what is missing).
set -euo pipefail
pkgs=(meson ninja-build pkg-config gcc libc6-dev libjansson-dev libcmocka-dev libseccomp-dev
      libcap-dev libssl-dev python3-pytest busybox-static clang-format util-linux iproute2
      libelf-dev libarchive-dev libzstd-dev zstd erofs-utils squashfs-tools umoci
      node-llhttp libmd-dev libsqlite3-dev curl libcurl4-openssl-dev zlib1g-dev libmnl-dev
      libnftables-dev nftables)
# What the manual pages and the completion are checked with (tests/integration/test_cli_docs.py).
pkgs+=(man-db groff-base bash-completion shellcheck)
# The corpus (tests/corpus): the programs it packs, and what builds its Node addon.
pkgs+=(python3-yaml python3-requests python3-jinja2 imagemagick file jq sqlite3 git perl gzip
       xz-utils bc mawk openssl ca-certificates)
# Node: Debian's nodejs and npm unless a node (with npm, as NodeSource's) is installed already.
command -v node >/dev/null || pkgs+=(nodejs libnode-dev)
command -v npm >/dev/null || pkgs+=(npm)
pkgs+=("$@")
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
