#!/usr/bin/env bash
# Audits Cargo.lock against the RustSec advisory database kept in tools/advisory-db (no network
# for the database; see tools/advisory-db/SOURCE.md): a dependency with a known vulnerability
# fails the tests. Installs the pinned cargo-audit when it is missing: a compile from crates.io,
# once (cached in ~/.cargo/bin after), measured at 10 min of CPU (598 s), 57 min wall on a 2-core
# machine shared with six other builds; alone on 2 cores expect about 5 min. The audit itself
# takes about 2 s.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_AUDIT_VERSION=0.22.2
if ! cargo audit --version 2>/dev/null | grep -q " ${CARGO_AUDIT_VERSION}\$"; then
  echo "Installing cargo-audit ${CARGO_AUDIT_VERSION} (once; it compiles from source)…" >&2
  started=$(date +%s)
  # binary-scanning (auditing compiled binaries) is not used: only Cargo.lock is audited.
  cargo install cargo-audit --version "${CARGO_AUDIT_VERSION}" --locked --no-default-features
  echo "cargo-audit installed in $(( $(date +%s) - started ))s." >&2
fi

# --stale: the snapshot has no git metadata, so cargo-audit cannot tell its age.
cargo audit --db tools/advisory-db --no-fetch --stale
