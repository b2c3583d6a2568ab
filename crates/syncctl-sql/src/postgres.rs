//! The PostgreSQL connector: placeholder until its implementation lands (another engineer owns
//! this module). It implements `syncctl_core::connector` over [`crate::settings::SqlSettings`]
//! and must pass [`crate::conformance`].

use syncctl_core::{BuildContext, BuildFuture, ConnectorError, ConnectorFactory};

/// Registry entry.
pub const FACTORY: ConnectorFactory = ConnectorFactory {
    kind: "postgres",
    summary: "PostgreSQL table (url, object, key_column, updated_at_column)",
    build,
};

fn build(_ctx: BuildContext, _settings: serde_json::Value) -> BuildFuture {
    Box::pin(async {
        Err(ConnectorError::config(
            "postgres",
            "the postgres connector is not built yet in this version",
        ))
    })
}
