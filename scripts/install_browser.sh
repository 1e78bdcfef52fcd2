#!/usr/bin/env bash
# Debian's Chromium and its driver for the browser tests of `hdf app` (tests/test_app.py).
# Nothing here downloads a browser build: the packages come from the system's package manager.
# Without root or apt-get the browser tests are skipped, each saying why.
set -u
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium and chromium-driver for the browser tests"
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; then
        exit 0
    fi
fi
echo "no Chromium could be installed here: the browser tests of hdf app will be skipped"
exit 0
