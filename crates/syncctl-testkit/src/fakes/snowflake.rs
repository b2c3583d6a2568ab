//! Stateful fake of the snowflake API (its issue owns this file).

use crate::services::ServiceEntry;

/// The `syncctl-fakes serve` entries this fake provides.
#[must_use]
pub fn services() -> Vec<ServiceEntry> {
    Vec::new()
}
