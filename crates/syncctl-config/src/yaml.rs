//! YAML loading through serde-saphyr (serde_yaml is archived upstream).

use serde::de::DeserializeOwned;

/// A YAML document could not be turned into the expected type.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct YamlError {
    /// Where the YAML came from (a file path).
    pub origin: String,
    /// The parser's message, with line and column.
    pub message: String,
}

/// Parses `text` (from `origin`, used in messages) into `T`.
///
/// # Errors
/// Returns the parser's message with line and column, for example an unknown field.
pub fn from_yaml_str<T: DeserializeOwned>(origin: &str, text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str(text).map_err(|e| YamlError {
        origin: origin.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Conf {
        name: String,
    }

    #[test]
    fn unknown_keys_are_rejected_with_position() {
        let e = from_yaml_str::<Conf>("sync.yaml", "name: x\nnmae: y\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("sync.yaml:") && e.contains("nmae"), "{e}");
        assert_eq!(from_yaml_str::<Conf>("s", "name: x\n").unwrap().name, "x");
    }
}
