#!/usr/bin/env bash
# Install Debian's headless-capable Chromium and its WebDriver if they are missing, for the
# dashboard's browser test (tests/integration/test_dashboard_browser.py). Idempotent; the test
# itself downloads nothing.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
echo "installing chromium and chromium-driver ..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
