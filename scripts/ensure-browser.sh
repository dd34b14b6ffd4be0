#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (a test tool's own browser download does not work here).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "ensure-browser: installing chromium from Debian packages" >&2
    apt-get update -qq  # a stale list can name versions the mirror no longer has
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    exit 0
fi
echo "ensure-browser: /usr/bin/chromium is missing. Install it (Debian/Ubuntu: sudo apt-get install chromium)." >&2
exit 1
