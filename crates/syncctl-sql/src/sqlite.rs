//! The SQLite connector (implementation lands in the next commit).

use syncctl_core::{BuildContext, BuildFuture, ConnectorError, ConnectorFactory};

/// Registry entry.
pub const FACTORY: ConnectorFactory = ConnectorFactory {
    kind: "sqlite",
    summary: "SQLite",
    build,
};

fn build(_ctx: BuildContext, _settings: serde_json::Value) -> BuildFuture {
    Box::pin(async { Err(ConnectorError::config("sqlite", "not built yet")) })
}
