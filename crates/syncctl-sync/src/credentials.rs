//! Rotating credentials kept in the state store, encrypted with `SYNCCTL_STATE_KEY`.
//!
//! [`StateCredentials`] is the platform's [`CredentialStore`] for runs that have a state store:
//! a QuickBooks refresh token Intuit rotated during one run is read by the next one, on any
//! pod, from the same place as the links and cursors.
//!
//! * **With `SYNCCTL_STATE_KEY`** (32 random bytes, base64 or hex: `openssl rand -base64 32`)
//!   values are sealed with AES-256-GCM (aws-lc-rs, the TLS stack's crypto), a fresh random
//!   96-bit nonce per save and the credential's name as associated data, and stored as
//!   `aes-256-gcm:` + base64(nonce ‖ ciphertext ‖ tag). A wrong key fails the tag check: the
//!   run is refused as a configuration error before any connector is asked for anything, so a
//!   wrong key can never make a connector fall back to a dead token and lock itself out.
//! * **Without it** values are stored as `plain:` + the value, with a warning on every save.
//!   Refusing instead would not protect the token: the provider has already rotated it when
//!   the save happens, and a refused save locks the integration out until someone
//!   re-authorises it. The state store already holds the synced records themselves (every
//!   link's base values), so it must be protected like the systems it syncs; the key adds a
//!   second factor for the one secret in it. A value saved in plain is still read once a key
//!   is set, and sealed at its next save.
//! * **Dry runs** open the state store read-only. A token rotated during a dry run is the one
//!   write a dry run makes: it opens the store for writing (creating it if need be) and saves
//!   it, because losing it would lock the integration out.

use std::path::PathBuf;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use syncctl_core::{ConnectorError, CredentialStore};

use crate::error::SyncError;
use crate::store::StateStore;

/// The environment variable holding the key.
pub const STATE_KEY_VAR: &str = "SYNCCTL_STATE_KEY";

const SEALED: &str = "aes-256-gcm:";
const PLAIN: &str = "plain:";
/// How the credential store names itself in errors.
const WHO: &str = "credential store";

/// The AES-256-GCM key from `SYNCCTL_STATE_KEY`.
pub struct StateKey(LessSafeKey);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

impl StateKey {
    /// Parses 32 bytes written as base64 (standard or URL-safe, padded or not) or 64 hex
    /// digits. A passphrase is refused: a key derived from one would be as weak as it.
    ///
    /// # Errors
    /// Anything that is not 32 bytes in one of those forms (the message never repeats it).
    pub fn parse(value: &str) -> Result<Self, SyncError> {
        let v = value.trim();
        let bytes = if v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&v[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .ok()
        } else {
            let engines = [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                &base64::engine::general_purpose::URL_SAFE,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            engines.iter().find_map(|e| e.decode(v).ok())
        };
        let refused = || {
            SyncError::StoreConfig(format!(
                "{STATE_KEY_VAR} must be 32 random bytes written as base64 (44 characters) or 64 hex digits; generate one with `openssl rand -base64 32`"
            ))
        };
        let bytes = bytes.filter(|b| b.len() == 32).ok_or_else(refused)?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| refused())?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// `value` sealed for `name`: `aes-256-gcm:` + base64(nonce ‖ ciphertext ‖ tag).
    fn seal(&self, name: &str, value: &str) -> Result<String, ConnectorError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| ConnectorError::failed(WHO, "no randomness for a nonce"))?;
        let mut data = value.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut data,
            )
            .map_err(|_| ConnectorError::failed(WHO, "encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!(
            "{SEALED}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// The value sealed for `name`, or why not (never the value).
    fn open(&self, name: &str, sealed: &str) -> Result<String, ConnectorError> {
        let wrong = || {
            ConnectorError::config(
                WHO,
                format!(
                    "the stored credential {name:?} cannot be decrypted with {STATE_KEY_VAR}: the key is not the one it was saved with (set the original key, or delete the credential and configure the secret again)"
                ),
            )
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| wrong())?;
        if raw.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, data) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut data = data.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut data)
            .map_err(|_| wrong())?;
        String::from_utf8(plain.to_vec()).map_err(|_| wrong())
    }
}

/// The platform's credential store in the sync state store.
pub struct StateCredentials {
    store: Arc<StateStore>,
    key: Option<Arc<StateKey>>,
    /// Where to open the store for writing when `store` is read-only (a dry run).
    writable: Option<(String, PathBuf)>,
    opened: tokio::sync::OnceCell<StateStore>,
}

impl std::fmt::Debug for StateCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCredentials")
            .field("store", &self.store.display())
            .field("encrypted", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

impl StateCredentials {
    /// Credentials in `store`, sealed with `key` when there is one.
    #[must_use]
    pub fn new(store: Arc<StateStore>, key: Option<StateKey>) -> Self {
        Self {
            store,
            key: key.map(Arc::new),
            writable: None,
            opened: tokio::sync::OnceCell::new(),
        }
    }

    /// When `store` is read-only, saves open the state store at `url` (relative to `base`)
    /// for writing: a rotated token must be kept even by a dry run.
    #[must_use]
    pub fn saving_to(mut self, url: impl Into<String>, base: impl Into<PathBuf>) -> Self {
        self.writable = Some((url.into(), base.into()));
        self
    }

    /// Checks that every stored credential opens with the configured key (or that none is
    /// sealed when no key is set), so a wrong `SYNCCTL_STATE_KEY` refuses the run before any
    /// connector is asked for anything.
    ///
    /// # Errors
    /// The first credential that cannot be read, as a configuration error.
    pub async fn verify(&self) -> Result<(), SyncError> {
        let names = self.store.credential_names().await?;
        for name in names {
            self.load(&name).await?;
        }
        Ok(())
    }

    fn decode(&self, name: &str, stored: &str) -> Result<SecretString, ConnectorError> {
        if let Some(sealed) = stored.strip_prefix(SEALED) {
            let Some(key) = &self.key else {
                return Err(ConnectorError::config(
                    WHO,
                    format!(
                        "the stored credential {name:?} is encrypted: set {STATE_KEY_VAR} to the key it was saved with"
                    ),
                ));
            };
            return key.open(name, sealed).map(SecretString::from);
        }
        if let Some(plain) = stored.strip_prefix(PLAIN) {
            return Ok(SecretString::from(plain.to_owned()));
        }
        Err(ConnectorError::config(
            WHO,
            format!("the stored credential {name:?} is in an unknown format"),
        ))
    }

    fn store_error(e: &SyncError) -> ConnectorError {
        use syncctl_core::{Classified, ErrorClass};
        match e.class() {
            ErrorClass::Config | ErrorClass::Usage => ConnectorError::config(WHO, e.to_string()),
            ErrorClass::Auth => ConnectorError::Auth {
                connector: WHO.to_owned(),
                message: e.to_string(),
            },
            _ => ConnectorError::unavailable(WHO, e.to_string()),
        }
    }

    async fn writer(&self) -> Result<&StateStore, ConnectorError> {
        if !self.store.is_read_only() {
            return Ok(&self.store);
        }
        let Some((url, base)) = &self.writable else {
            return Err(ConnectorError::config(
                WHO,
                "the state store is open read-only and no writable location is known",
            ));
        };
        self.opened
            .get_or_try_init(|| async {
                tracing::warn!(
                    "a credential rotated during a dry run: opening the state store for writing to keep it"
                );
                StateStore::open(url, base).await
            })
            .await
            .map_err(|e| Self::store_error(&e))
    }
}

#[async_trait::async_trait]
impl CredentialStore for StateCredentials {
    async fn load(&self, name: &str) -> Result<Option<SecretString>, ConnectorError> {
        // A value saved by this process during a dry run is in the store opened for writing.
        let stored = match self.opened.get() {
            Some(w) => w.credential(name).await,
            None => self.store.credential(name).await,
        }
        .map_err(|e| Self::store_error(&e))?;
        stored.map(|s| self.decode(name, &s)).transpose()
    }

    async fn ready_to_save(&self) -> Result<(), ConnectorError> {
        self.writer().await.map(|_| ())
    }

    async fn save(&self, name: &str, value: &SecretString) -> Result<(), ConnectorError> {
        let stored = match &self.key {
            Some(key) => key.seal(name, value.expose_secret())?,
            None => {
                tracing::warn!(
                    credential = name,
                    "{STATE_KEY_VAR} is not set: the credential is stored unencrypted in the state store; set {STATE_KEY_VAR} to encrypt it"
                );
                format!("{PLAIN}{}", value.expose_secret())
            }
        };
        self.writer()
            .await?
            .save_credential(name, &stored)
            .await
            .map_err(|e| Self::store_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_B64: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

    async fn creds(key: Option<&str>) -> (Arc<StateStore>, StateCredentials) {
        let store = Arc::new(StateStore::memory().await.unwrap());
        let c = StateCredentials::new(store.clone(), key.map(|k| StateKey::parse(k).unwrap()));
        (store, c)
    }

    #[test]
    fn keys_are_32_bytes_in_base64_or_hex() {
        assert!(StateKey::parse(KEY_B64).is_ok());
        assert!(StateKey::parse(&"ab".repeat(32)).is_ok());
        let e = StateKey::parse("correct horse battery staple").unwrap_err();
        assert!(e.to_string().contains("32 random bytes"), "{e}");
        assert!(!e.to_string().contains("horse"));
        assert!(
            StateKey::parse("q83vEjRWeJCrze8SNFZ4kA==").is_err(),
            "16 bytes"
        );
    }

    #[tokio::test]
    async fn sealed_values_round_trip_and_never_appear_in_the_store() {
        let (store, c) = creds(Some(KEY_B64)).await;
        let secret = SecretString::from("refresh-token-value-42".to_owned());
        c.save("quickbooks:app:1:refresh_token", &secret)
            .await
            .unwrap();
        let raw = store
            .credential("quickbooks:app:1:refresh_token")
            .await
            .unwrap()
            .unwrap();
        assert!(raw.starts_with(SEALED) && !raw.contains("refresh-token-value-42"));
        let back = c
            .load("quickbooks:app:1:refresh_token")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back.expose_secret(), "refresh-token-value-42");
        c.save("quickbooks:app:1:refresh_token", &secret)
            .await
            .unwrap();
        let again = store
            .credential("quickbooks:app:1:refresh_token")
            .await
            .unwrap()
            .unwrap();
        assert_ne!(raw, again, "a fresh nonce per save");
        c.verify().await.unwrap();
    }

    #[tokio::test]
    async fn a_wrong_or_missing_key_is_a_config_error_that_names_the_variable() {
        let (store, c) = creds(Some(KEY_B64)).await;
        c.save("n", &SecretString::from("s3cret".to_owned()))
            .await
            .unwrap();
        let other = StateCredentials::new(
            store.clone(),
            Some(StateKey::parse(&"cd".repeat(32)).unwrap()),
        );
        let e = other.load("n").await.unwrap_err();
        assert_eq!(
            syncctl_core::Classified::class(&e),
            syncctl_core::ErrorClass::Config
        );
        assert!(e.to_string().contains(STATE_KEY_VAR) && !e.to_string().contains("s3cret"));
        assert!(other.verify().await.is_err());
        let none = StateCredentials::new(store.clone(), None);
        assert!(
            none.load("n")
                .await
                .unwrap_err()
                .to_string()
                .contains("is encrypted")
        );
        // A sealed value moved to another name does not open (the name is authenticated).
        let raw = store.credential("n").await.unwrap().unwrap();
        store.save_credential("m", &raw).await.unwrap();
        assert!(c.load("m").await.is_err());
    }

    #[tokio::test]
    async fn without_a_key_values_are_kept_in_plain_and_sealed_once_a_key_is_set() {
        let (store, plain) = creds(None).await;
        plain
            .save("n", &SecretString::from("v1".to_owned()))
            .await
            .unwrap();
        assert_eq!(store.credential("n").await.unwrap().unwrap(), "plain:v1");
        let keyed = StateCredentials::new(store.clone(), Some(StateKey::parse(KEY_B64).unwrap()));
        assert_eq!(
            keyed.load("n").await.unwrap().unwrap().expose_secret(),
            "v1"
        );
        keyed
            .save("n", &SecretString::from("v2".to_owned()))
            .await
            .unwrap();
        assert!(
            store
                .credential("n")
                .await
                .unwrap()
                .unwrap()
                .starts_with(SEALED)
        );
    }
}
