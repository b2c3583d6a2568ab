//! What a sync's state is bound to, and the refusal to use it against anything else.
//!
//! Links pair record keys of two particular objects, and their base values belong to one
//! particular field mapping. The same sync `name` pointed at another database would pair
//! records by stored link ids and overwrite the wrong people on both sides, so every run
//! compares the config's [`Binding`] with the one recorded in the state store and refuses a
//! mismatch before reading anything. `--rebind` accepts a deliberate move (a renamed host, a
//! copied database) and records the new binding.

use serde::{Deserialize, Serialize};
use syncctl_core::Connector;

use crate::SyncError;
use crate::config::SyncConfig;
use crate::store::{Side, StateStore};

/// One side's identity: connector kind, endpoint (never a password) and object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideBinding {
    /// The connector kind (`csv`, `postgres`, …).
    pub connector: String,
    /// Where it points ([`Connector::endpoint`]).
    pub endpoint: String,
    /// The table, file or CRM object.
    pub object: String,
}

/// Everything a sync's links and base values depend on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The source side.
    pub source: SideBinding,
    /// The target side.
    pub target: SideBinding,
    /// The natural key rule, `source_field=target_field`.
    pub key: String,
    /// The field mapping, one `source→target` (with transform and direction) per field.
    pub fields: Vec<String>,
}

impl Binding {
    /// The binding a config and its two connectors describe.
    #[must_use]
    pub fn of(cfg: &SyncConfig, source: &dyn Connector, target: &dyn Connector) -> Self {
        let side = |c: &dyn Connector| SideBinding {
            connector: c.kind().to_owned(),
            endpoint: c.endpoint(),
            object: c.object().to_owned(),
        };
        let mut fields: Vec<String> = cfg
            .fields
            .iter()
            .map(|f| {
                let mut s = format!("{}→{}", f.source, f.target);
                if let Some(t) = f.transform {
                    s.push_str(&format!(" transform={}", format!("{t:?}").to_lowercase()));
                }
                if let Some(d) = f.direction {
                    s.push_str(&format!(" direction={}", d.as_str()));
                }
                s
            })
            .collect();
        fields.sort();
        Self {
            source: side(source),
            target: side(target),
            key: format!("{}={}", cfg.key.source, cfg.key.target),
            fields,
        }
    }

    /// A stable hex fingerprint (sha256 of the JSON form), for DBAs comparing stores.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        syncctl_core::digest::sha256_hex(serde_json::to_vec(self).unwrap_or_default())
    }

    /// What differs from `recorded`, one phrase per difference (empty when equal).
    #[must_use]
    pub fn differences(&self, recorded: &Self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, now, then) in [
            ("source", &self.source, &recorded.source),
            ("target", &self.target, &recorded.target),
        ] {
            for (what, a, b) in [
                ("connector", &now.connector, &then.connector),
                ("endpoint", &now.endpoint, &then.endpoint),
                ("object", &now.object, &then.object),
            ] {
                if a != b {
                    out.push(format!(
                        "{name} {what} is {a:?}, the state was built against {b:?}"
                    ));
                }
            }
        }
        if self.key != recorded.key {
            out.push(format!(
                "key is {:?}, the state was built against {:?}",
                self.key, recorded.key
            ));
        }
        let added: Vec<&str> = self
            .fields
            .iter()
            .filter(|f| !recorded.fields.contains(f))
            .map(String::as_str)
            .collect();
        let removed: Vec<&str> = recorded
            .fields
            .iter()
            .filter(|f| !self.fields.contains(f))
            .map(String::as_str)
            .collect();
        if !added.is_empty() || !removed.is_empty() {
            out.push(format!(
                "the field mapping changed (now also: [{}]; no longer: [{}])",
                added.join(", "),
                removed.join(", ")
            ));
        }
        out
    }
}

/// Compares the config's binding with the recorded one, before anything is read.
///
/// * Nothing recorded: records it (unless the store is read-only); an existing store from
///   before bindings gets a warning that its binding was taken from this run.
/// * Equal: nothing to do.
/// * Different: [`SyncError::Binding`] (exit 2), unless `rebind`, which records the new
///   binding and warns.
///
/// # Errors
/// A mismatch without `rebind`, or a state-store failure.
pub async fn check(
    store: &StateStore,
    cfg: &SyncConfig,
    source: &dyn Connector,
    target: &dyn Connector,
    rebind: bool,
    run_id: &str,
    warnings: &mut Vec<String>,
) -> Result<(), SyncError> {
    let now = Binding::of(cfg, source, target);
    let recorded = store.binding(&cfg.name).await?;
    let write = !store.is_read_only();
    match recorded {
        None => {
            if store.count_links(&cfg.name).await? > 0 {
                warnings.push(format!(
                    "the state of sync {:?} predates bindings; it is now bound to {} → {}",
                    cfg.name, now.source.endpoint, now.target.endpoint
                ));
            }
            if write {
                store.save_binding(&cfg.name, &now, run_id).await?;
            }
        }
        Some(then) => {
            let diffs = now.differences(&then);
            if diffs.is_empty() {
                return Ok(());
            }
            // The binding protects links and cursors; a state with neither (every earlier run
            // failed before pairing anything, e.g. on a config error) has nothing to misuse,
            // so a corrected config simply rebinds it.
            let unused = store.count_links(&cfg.name).await? == 0
                && store.cursor(&cfg.name, Side::Source).await?.is_none()
                && store.cursor(&cfg.name, Side::Target).await?.is_none();
            if unused {
                if write {
                    store.save_binding(&cfg.name, &now, run_id).await?;
                }
                return Ok(());
            }
            if !rebind {
                return Err(SyncError::Binding {
                    sync: cfg.name.clone(),
                    differences: diffs,
                });
            }
            let msg = format!(
                "--rebind: sync {:?} is rebound ({}); its links and base values are now used against the new binding",
                cfg.name,
                diffs.join("; ")
            );
            tracing::warn!("{msg}");
            warnings.push(msg);
            if write {
                store.save_binding(&cfg.name, &now, run_id).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(endpoint: &str, fields: &[&str]) -> Binding {
        let side = |e: &str| SideBinding {
            connector: "csv".into(),
            endpoint: e.into(),
            object: "people".into(),
        };
        Binding {
            source: side("csv:/a.csv"),
            target: side(endpoint),
            key: "email=email".into(),
            fields: fields.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn differences_name_what_moved() {
        let then = b("postgres://db1:5432/crm", &["a→a", "b→b"]);
        assert!(then.differences(&then).is_empty());
        let now = b("postgres://db2:5432/crm", &["a→a", "c→c"]);
        let d = now.differences(&then);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d[0].contains("target endpoint") && d[0].contains("db1"),
            "{d:?}"
        );
        assert!(
            d[1].contains("now also: [c→c]") && d[1].contains("no longer: [b→b]"),
            "{d:?}"
        );
        assert_ne!(now.fingerprint(), then.fingerprint());
        assert_eq!(then.fingerprint(), then.clone().fingerprint());
    }
}
