#!/usr/bin/env bash
# Installs the real servers the tests of dstream's components run against, where absent:
# Prometheus (Debian's package `prometheus`, scraping the metrics example) and moto's S3
# server (PyPI's `moto[server]`, behind the S3 store's tests and example).
set -euo pipefail

if ! command -v prometheus >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # The package starts a system service on some machines; the tests start their own.
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
prometheus --version 2>&1 | head -1

if ! command -v moto_server >/dev/null 2>&1; then
    python3 -m pip install --quiet 'moto[server]'
    # pyenv installs console scripts under its shims only after a rehash.
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
command -v moto_server
