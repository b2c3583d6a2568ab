//! The connector registry: connector kind → factory. The binary assembles one from the
//! `FACTORIES` list each connector crate exports; adding a connector is one crate plus one
//! line in the binary's list.

use serde::de::DeserializeOwned;

use crate::{BuildContext, Connector, ConnectorError, ConnectorFactory};

/// Every connector kind a binary can build.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    factories: Vec<&'static ConnectorFactory>,
}

impl Registry {
    /// A registry of every factory in `lists` (one list per connector crate).
    ///
    /// # Panics
    /// Two factories claim the same kind: a programming error caught by the binary's tests.
    #[must_use]
    pub fn new(lists: &[&'static [ConnectorFactory]]) -> Self {
        let factories: Vec<&'static ConnectorFactory> =
            lists.iter().flat_map(|l| l.iter()).collect();
        for (i, f) in factories.iter().enumerate() {
            assert!(
                !factories[..i].iter().any(|g| g.kind == f.kind),
                "connector kind `{}` is registered twice",
                f.kind
            );
        }
        Self { factories }
    }

    /// The factory for `kind`.
    #[must_use]
    pub fn get(&self, kind: &str) -> Option<&'static ConnectorFactory> {
        self.factories.iter().copied().find(|f| f.kind == kind)
    }

    /// Every kind, in registration order.
    #[must_use]
    pub fn kinds(&self) -> Vec<&'static str> {
        self.factories.iter().map(|f| f.kind).collect()
    }

    /// Every factory, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &'static ConnectorFactory> + '_ {
        self.factories.iter().copied()
    }

    /// Builds a connector of `kind` from its settings block.
    ///
    /// # Errors
    /// Unknown kind (the error lists the known ones), or settings the connector rejects.
    pub async fn build(
        &self,
        kind: &str,
        ctx: BuildContext,
        settings: serde_json::Value,
    ) -> Result<Box<dyn Connector>, ConnectorError> {
        let Some(f) = self.get(kind) else {
            return Err(ConnectorError::config(
                kind,
                format!("unknown connector; known: {}", self.kinds().join(", ")),
            ));
        };
        (f.build)(ctx, settings).await
    }
}

/// Deserializes a connector's settings struct from its config block, dropping the
/// `connector` key first so the struct can keep `#[serde(deny_unknown_fields)]`.
///
/// # Errors
/// A [`ConnectorError::Config`] naming the unknown, missing or malformed key.
pub fn parse_settings<T: DeserializeOwned>(
    kind: &str,
    mut settings: serde_json::Value,
) -> Result<T, ConnectorError> {
    if let Some(map) = settings.as_object_mut() {
        map.remove("connector");
    }
    serde_json::from_value(settings)
        .map_err(|e| ConnectorError::config(kind, format!("invalid settings: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_nothing(_: BuildContext, _: serde_json::Value) -> crate::BuildFuture {
        Box::pin(async { Err(ConnectorError::config("x", "never built")) })
    }

    static A: &[ConnectorFactory] = &[ConnectorFactory {
        kind: "a",
        summary: "A",
        build: build_nothing,
    }];
    static B: &[ConnectorFactory] = &[ConnectorFactory {
        kind: "b",
        summary: "B",
        build: build_nothing,
    }];

    #[tokio::test]
    async fn finds_kinds_across_lists_and_names_the_known_ones() {
        let r = Registry::new(&[A, B]);
        assert_eq!(r.kinds(), ["a", "b"]);
        assert!(r.get("b").is_some());
        let e = r
            .build("c", BuildContext::new("."), serde_json::json!({}))
            .await
            .err()
            .map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("c: unknown connector; known: a, b"));
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_kind_registered_twice_is_refused() {
        let _ = Registry::new(&[A, A]);
    }

    #[test]
    fn settings_drop_the_connector_key_and_name_unknown_keys() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)] // only deserialized
        struct S {
            object: String,
        }
        let ok: S =
            parse_settings("k", serde_json::json!({"connector": "k", "object": "o"})).unwrap();
        assert_eq!(ok.object, "o");
        let e = parse_settings::<S>("k", serde_json::json!({"objekt": "o"})).unwrap_err();
        assert!(e.to_string().contains("objekt"), "{e}");
    }
}
