//! The bidirectional sync engine, its state store and audit trail.
