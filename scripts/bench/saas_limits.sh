#!/usr/bin/env bash
# HubSpot ↔ QuickBooks through the sync engine against the stateful fakes enforcing the
# vendors' published limits, N records each way (default 10 000), clock scaled by SCALE
# (default 60) so the run takes seconds. Reports, per run (first load, all changed, nothing
# changed; HubSpot → QuickBooks, then QuickBooks → HubSpot), the API calls used against the
# minimum the batch and page sizes allow, and the wall time against the floor the published
# limits put on that minimum; checks on the fakes' side that every record arrived and that a
# sample holds its counterpart's values. The last stdout line is the figures as JSON.
#
#   scripts/bench/saas_limits.sh                  # 10 000 records, clock ×60, release build
#   scripts/bench/saas_limits.sh 2000 120
#   PROFILE=dev scripts/bench/saas_limits.sh      # reuse a debug build (slower: CPU-bound)
#
# Limits enforced by the fakes: HubSpot (Professional) 190 calls per rolling 10 s, 5 searches
# per second, batches ≤ 100 inputs; QuickBooks 500 requests/min per realm, 10 concurrent,
# 40 batch requests/min, batches ≤ 30 operations, queries ≤ 1000 results.
#
# How the clock is scaled (decision, also in docs/connectors/hubspot.md and quickbooks.md):
# both fakes shorten every rate-limit window by SCALE (HubSpotFake::time_scale,
# QuickBooksFake::time_scale) and the connectors are built through library calls whose
# limiters run SCALE times faster (syncctl_hubspot::build_time_scaled,
# syncctl_quickbooks::Limits::scaled). Neither is reachable from a config file, a flag or an
# environment variable of the shipped binary, so no user can make syncctl exceed a vendor's
# limits; the only production knob is HubSpot's `tier` (the published limit of the account).
# The floor is computed in unscaled seconds from the published limits (every window fresh at
# the start, the first window's allowance at once) and divided by SCALE.
#
# Needs: cargo. Builds the bench target of the syncctl crate (crates/syncctl/benches/saas_limits.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."

n="${1:-10000}"
scale="${2:-60}"
profile="${PROFILE:-bench}"
exec cargo bench -q --profile "$profile" -p syncctl --bench saas_limits -- "$n" "$scale"
