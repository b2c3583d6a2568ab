//! The connector registry: kind → factory. Adding a connector = one module + one line here.

use syncctl_core::{BuildContext, Connector, ConnectorError, ConnectorFactory};

/// Every connector this crate provides.
pub const FACTORIES: &[ConnectorFactory] = &[
    crate::sqlite::FACTORY,
    crate::postgres::FACTORY,
    crate::mysql::FACTORY,
];

/// The factory for `kind`, if this crate has one.
#[must_use]
pub fn factory(kind: &str) -> Option<&'static ConnectorFactory> {
    FACTORIES.iter().find(|f| f.kind == kind)
}

/// Builds a connector of `kind` from its settings block.
///
/// # Errors
/// Unknown kind, or settings the connector rejects.
pub async fn build(
    kind: &str,
    ctx: BuildContext,
    settings: serde_json::Value,
) -> Result<Box<dyn Connector>, ConnectorError> {
    let Some(f) = factory(kind) else {
        let known: Vec<_> = FACTORIES.iter().map(|f| f.kind).collect();
        return Err(ConnectorError::config(
            kind,
            format!("unknown connector; known: {}", known.join(", ")),
        ));
    };
    (f.build)(ctx, settings).await
}

/// Settings parsing lives in core so that every connector crate shares it.
pub use syncctl_core::parse_settings;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_unique() {
        let mut kinds: Vec<_> = FACTORIES.iter().map(|f| f.kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), FACTORIES.len());
        assert!(factory("sqlite").is_some());
        assert!(factory("hubspot").is_none());
    }
}
