#!/usr/bin/env bash
# Installs the Debian 12 packages softdiff needs, idempotently: nothing is
# downloaded when every package is already there. Usage: install_deps.sh [extra packages...]
set -euo pipefail
packages=(build-essential cmake ninja-build pkg-config
          libeigen3-dev xtensor-dev libxtensor-blas-dev libfftw3-dev
          libopenblas-openmp-dev zlib1g-dev libpng-dev nlohmann-json3-dev
          catch2 libbenchmark-dev dataset-fashion-mnist "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
