//! Record validation that reports every problem at once, and the value coercion that
//! validation and connectors share.
//!
//! * [`coerce`]: what counts as an integer, a date, the same value across systems.
//! * [`rules`]: the per-field rules of a sync config (`email: [required, email]`).
//! * [`schema`]: a connector's type rules (types, lengths, not-null, read-only fields).

pub mod coerce;
pub mod rules;
pub mod schema;

use serde::Serialize;

pub use coerce::{TypeMismatch, canonical_text, coerce, same_value};
pub use rules::{Rule, RuleSet};
pub use schema::check_against_schema;

/// One problem with one field of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The field.
    pub field: String,
    /// The rule broken (`email`, `max_length`, `type`, `not_null`).
    pub rule: String,
    /// A sentence naming the field and the problem (never the whole record).
    pub message: String,
}
