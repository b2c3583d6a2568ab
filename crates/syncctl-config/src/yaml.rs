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
        message: user_message(&e.to_string()),
    })
}

/// The parser's message in the user's terms: the nearest valid key for a typo, and what to do
/// in the file instead of the parser library's own advice (its `DuplicateKeyPolicy` option is
/// not something a config author can set).
fn user_message(parser: &str) -> String {
    let message = parser.replace(
        ", set DuplicateKeyPolicy in Options if acceptable",
        " (each key may appear once in a mapping: remove or merge the repeated one)",
    );
    match did_you_mean(&message) {
        Some(hint) => format!("{message} (did you mean `{hint}`?)"),
        None => message,
    }
}

/// For serde's "unknown field `K`, expected one of A, B, …" (also "unknown variant"), the
/// expected name closest to K, when it is close enough to be a typo.
fn did_you_mean(message: &str) -> Option<String> {
    let rest = message
        .split_once("unknown field `")
        .or_else(|| message.split_once("unknown variant `"))?
        .1;
    let (unknown, rest) = rest.split_once('`')?;
    let list = rest.split_once("expected one of ")?.1;
    let list = list.lines().next().unwrap_or(list);
    list.split(", ")
        .map(|name| name.trim().trim_matches('`').trim_end_matches(['.', ')']))
        .filter(|name| !name.is_empty())
        .map(|name| (edit_distance(unknown, name), name))
        .filter(|(d, name)| *d > 0 && *d <= (name.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name.to_owned())
}

/// Levenshtein distance (names are short; the quadratic table is fine).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses `text` into `T`, interpolating `${VAR}` (see [`crate::interpolate`]) into each string
/// value after parsing, never into the YAML text, so a value cannot change the structure.
///
/// # Errors
/// Every interpolation problem at once ([`crate::ConfigError::Interpolate`]); otherwise the
/// parser's message with line and column ([`crate::ConfigError::Yaml`]).
pub fn from_yaml_str_interpolated<T: DeserializeOwned>(
    origin: &str,
    text: &str,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<T, crate::ConfigError> {
    let ctx = crate::interpolate::Interpolation::new(get);
    let parsed = serde_saphyr::with_deserializer_from_str(text, |d| {
        T::deserialize(crate::interpolate::Interpolating {
            inner: d,
            ctx: &ctx,
        })
    });
    let problems = ctx.into_problems();
    if !problems.is_empty() {
        return Err(crate::InterpolateError { problems }.into());
    }
    parsed.map_err(|e| {
        YamlError {
            origin: origin.to_owned(),
            message: user_message(&e.to_string()),
        }
        .into()
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
    fn a_repeated_key_says_what_to_do_in_the_file_not_in_the_library() {
        let e = from_yaml_str::<Conf>("sync.yaml", "name: a\nname: b\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("DuplicateKeyPolicy"), "{e}");
        assert!(
            e.contains("duplicate mapping key: name") && e.contains("remove or merge"),
            "{e}"
        );
        let e = from_yaml_str_interpolated::<Conf>("sync.yaml", "name: a\nname: b\n", &|_| None)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("DuplicateKeyPolicy"), "{e}");
    }

    #[test]
    fn a_misspelt_key_gets_the_nearest_valid_one() {
        let e = from_yaml_str::<Conf>("sync.yaml", "nmae: y\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `name`?"), "{e}");
        let msg = "unknown field `conflict_strategi`, expected one of name, source, conflict_strategy, batch_size";
        assert_eq!(did_you_mean(msg).as_deref(), Some("conflict_strategy"));
        let far = "unknown field `colour`, expected one of name, source";
        assert_eq!(did_you_mean(far), None, "no guess when nothing is close");
    }

    #[test]
    fn unknown_keys_are_rejected_with_position() {
        let e = from_yaml_str::<Conf>("sync.yaml", "name: x\nnmae: y\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("sync.yaml:") && e.contains("nmae"), "{e}");
        assert_eq!(from_yaml_str::<Conf>("s", "name: x\n").unwrap().name, "x");
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Conn {
        url: String,
        password: String,
        tags: Vec<String>,
        extra: serde_json::Value,
        size: u32,
    }

    fn hostile(name: &str) -> Option<String> {
        match name {
            "PW" => Some("p\"w, x: \\ # not a comment\nadmin: true".into()),
            "HOST" => Some("db".into()),
            _ => None,
        }
    }

    #[test]
    fn interpolated_values_are_literal_and_cannot_add_keys() {
        let text = "url: \"postgres://u:${PW}@${HOST}/x\"\npassword: ${PW}\n\
                    tags: [\"${PW}\", plain]\nextra: {k: '${PW}'}\nsize: 5\n";
        let c: Conn = from_yaml_str_interpolated("s", text, &hostile).unwrap();
        let pw = hostile("PW").unwrap();
        assert_eq!(c.url, format!("postgres://u:{pw}@db/x"));
        assert_eq!(c.password, pw);
        assert_eq!(c.tags, [pw.as_str(), "plain"]);
        assert_eq!(c.extra, serde_json::json!({"k": pw}));
        assert_eq!(c.size, 5);
    }

    #[test]
    fn keys_are_not_interpolated_and_every_missing_variable_is_listed() {
        let e = from_yaml_str_interpolated::<Conn>(
            "s",
            "url: ${A}\npassword: ${B:?the CRM password}\ntags: []\nextra: {}\nsize: 1\n",
            &hostile,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("${A} is not set") && e.contains("the CRM password"),
            "{e}"
        );
        let e = from_yaml_str_interpolated::<Conn>("s", "${HOST}: x\n", &hostile)
            .unwrap_err()
            .to_string();
        assert!(e.contains("${HOST}") && !e.contains("db"), "{e}");
    }

    /// Cases per property: `PROPTEST_CASES` (scripts/fuzz.sh runs many), else a CI-sized default.
    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256)
    }

    /// Text that leans on everything YAML and the interpolation syntax care about.
    fn hostile_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            "[a-z\"'\\,:#{}\\[\\]&*!|>%@`$ \n\t-]{1,30}",
            any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
            Just("x\", admin: true, y: \"".to_owned()),
            Just("${OTHER}".to_owned()),
            Just("\n- injected\n".to_owned()),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(cases()))]

        /// Whatever a variable holds, every place it is used gets exactly that text and the
        /// document keeps its shape (deny_unknown_fields would catch an added key).
        #[test]
        fn fuzz_any_value_is_interpolated_literally(v in hostile_text()) {
            let get = |name: &str| (name == "V").then(|| v.clone());
            let text = "url: \"pre-${V}-post\"\npassword: ${V}\n\
                        tags: ['${V}', plain]\nextra: {k: \"${V}\"}\nsize: 5\n";
            let c: Conn = from_yaml_str_interpolated("s", text, &get).unwrap();
            proptest::prop_assert_eq!(c.url, format!("pre-{v}-post"));
            proptest::prop_assert_eq!(&c.password, &v);
            proptest::prop_assert_eq!(c.tags, vec![v.clone(), "plain".to_owned()]);
            proptest::prop_assert_eq!(c.extra, serde_json::json!({"k": v}));
            proptest::prop_assert_eq!(c.size, 5);
        }

        /// Arbitrary documents never panic the loader; they parse or fail with an error.
        #[test]
        fn fuzz_arbitrary_documents_never_panic(text in "[a-z:{}\\[\\],'\" \n$#-]{0,80}", v in hostile_text()) {
            let get = |_: &str| Some(v.clone());
            let _ = from_yaml_str_interpolated::<Conn>("s", &text, &get);
            let _ = from_yaml_str_interpolated::<serde_json::Value>("s", &text, &get);
        }
    }
}
