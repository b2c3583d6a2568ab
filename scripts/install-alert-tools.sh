#!/usr/bin/env bash
# Installs the real receivers the alert and metrics tests talk to, and exports where they are:
#   * Prometheus Pushgateway (Debian package prometheus-pushgateway) -> SYNCCTL_TEST_PUSHGATEWAY_BIN
#   * aiosmtpd (PyPI, pinned in tools/alerts/requirements.txt) in a cached venv -> SYNCCTL_TEST_SMTP_PYTHON
# Sourced by scripts/test.sh (so the exports reach cargo test); also runnable on its own.
# Idempotent: on a warm machine it checks two files and returns.
# SYNCCTL_TEST_REQUIRE_ALERT_TOOLS=1 makes those tests fail, not skip, when a tool is missing.

_alert_tools_main() {
  local root venv stamp
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  venv="$root/tools/alerts/venv"
  stamp="$venv/.requirements.txt"

  if ! command -v prometheus-pushgateway >/dev/null 2>&1; then
    echo "install-alert-tools: installing prometheus-pushgateway (Debian)" >&2
    export DEBIAN_FRONTEND=noninteractive
    # The package's init script must not start a gateway on :9091; tests start their own.
    apt-get install -y -qq --no-install-recommends prometheus-pushgateway >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus-pushgateway >/dev/null; } \
      || return 1
  fi

  if [ ! -x "$venv/bin/python" ] || ! cmp -s "$root/tools/alerts/requirements.txt" "$stamp"; then
    echo "install-alert-tools: installing aiosmtpd into tools/alerts/venv (PyPI)" >&2
    python3 -m venv "$venv" || return 1
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$root/tools/alerts/requirements.txt" || return 1
    cp "$root/tools/alerts/requirements.txt" "$stamp"
  fi

  export SYNCCTL_TEST_PUSHGATEWAY_BIN="${SYNCCTL_TEST_PUSHGATEWAY_BIN:-$(command -v prometheus-pushgateway)}"
  export SYNCCTL_TEST_SMTP_PYTHON="${SYNCCTL_TEST_SMTP_PYTHON:-$venv/bin/python}"
  export SYNCCTL_TEST_REQUIRE_ALERT_TOOLS=1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  _alert_tools_main
  echo "SYNCCTL_TEST_PUSHGATEWAY_BIN=$SYNCCTL_TEST_PUSHGATEWAY_BIN"
  echo "SYNCCTL_TEST_SMTP_PYTHON=$SYNCCTL_TEST_SMTP_PYTHON"
else
  _alert_tools_main || { echo "install-alert-tools: failed" >&2; return 1; }
fi
