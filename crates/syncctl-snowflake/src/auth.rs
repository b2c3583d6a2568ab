//! SQL API authentication: key-pair JWT, OAuth token or programmatic access token, each with
//! its `X-Snowflake-Authorization-Token-Type`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pkcs8::{EncryptedPrivateKeyInfoRef, ObjectIdentifier, PrivateKeyInfoRef, SecretDocument};
use reqwest::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use syncctl_http::{
    AccessToken, AuthProvider, BearerToken, HttpError, RefreshingToken, TokenFetcher,
};

use crate::SnowflakeError;

/// The header that tells Snowflake what kind of bearer token it is given.
pub const TOKEN_TYPE_HEADER: &str = "x-snowflake-authorization-token-type";

/// Longest JWT lifetime Snowflake accepts.
pub const MAX_JWT_LIFETIME: Duration = Duration::from_secs(3600);

/// The lifetime we give our JWTs (the Airflow provider's 59 minutes).
pub const JWT_LIFETIME: Duration = Duration::from_secs(59 * 60);

/// Renew this long before expiry (so after 54 minutes, like the Airflow provider).
pub const JWT_RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);

/// An RSA private key loaded from PEM (PKCS#8, encrypted PKCS#8 or PKCS#1).
#[derive(Clone)]
pub struct PrivateKey {
    der: SecretBytes,
    fingerprint: String,
}

/// Key bytes that never print.
#[derive(Clone)]
struct SecretBytes(Vec<u8>);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Loads a PEM private key; `passphrase` is needed for `ENCRYPTED PRIVATE KEY`.
    ///
    /// # Errors
    /// [`SnowflakeError::Config`] when the key cannot be read or decrypted. Messages never
    /// include key material.
    pub fn from_pem(
        pem: &SecretString,
        passphrase: Option<&SecretString>,
    ) -> Result<Self, SnowflakeError> {
        let text = normalise_pem(pem.expose_secret());
        let pkcs1 = if text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
            let pass = passphrase.ok_or_else(|| {
                key_error("it is encrypted; set SNOWFLAKE_PRIVATE_KEY_PASSPHRASE")
            })?;
            let doc = pem_document(&text, "ENCRYPTED PRIVATE KEY")?;
            let info = EncryptedPrivateKeyInfoRef::try_from(doc.as_bytes())
                .map_err(|_| key_error(UNREADABLE_ENCRYPTION))?;
            let plain = info
                .decrypt(pass.expose_secret().as_bytes())
                .map_err(|e| key_error(decrypt_failure(&e)))?;
            // A wrong passphrase can also decrypt to garbage with valid padding.
            rsa_key_of_pkcs8(plain.as_bytes())
                .map_err(|_| key_error("it could not be decrypted (wrong passphrase?)"))?
        } else if text.contains("BEGIN RSA PRIVATE KEY") {
            pem_document(&text, "RSA PRIVATE KEY")?.as_bytes().to_vec()
        } else if text.contains("BEGIN PRIVATE KEY") {
            rsa_key_of_pkcs8(pem_document(&text, "PRIVATE KEY")?.as_bytes())?
        } else {
            return Err(key_error(
                "it is not a PEM private key (expected -----BEGIN PRIVATE KEY----- or -----BEGIN ENCRYPTED PRIVATE KEY-----)",
            ));
        };
        let pair = RsaKeyPair::from_der(&pkcs1)
            .map_err(|_| key_error("it is not a valid RSA private key"))?;
        let spki = pair
            .public_key()
            .as_der()
            .map_err(|_| key_error("its public key cannot be encoded"))?;
        let fingerprint = format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki.as_ref()))
        );
        Ok(Self {
            der: SecretBytes(pkcs1),
            fingerprint,
        })
    }

    /// `SHA256:<base64 of the SHA-256 of the public key's DER>`, as `DESC USER` shows it in
    /// `RSA_PUBLIC_KEY_FP`.
    #[must_use]
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// `rsaEncryption` (RFC 8017), the only key algorithm Snowflake's RS256 JWTs can use.
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Legacy PBES1 and PKCS#12 schemes (`openssl pkcs8 -v1 …`) are refused: they are weak and the
/// pkcs8 crate does not decrypt them.
const UNREADABLE_ENCRYPTION: &str = "it is not encrypted the way syncctl reads (PBES2); re-encrypt it with openssl pkcs8 -topk8 -v2 aes-256-cbc (or -v2 des3, as in Snowflake's guide)";

/// A key error whose message never carries key material.
fn key_error(what: &str) -> SnowflakeError {
    SnowflakeError::Config(format!("cannot use the Snowflake private key: {what}"))
}

/// The DER inside a PEM block with `label`.
fn pem_document(text: &str, label: &str) -> Result<SecretDocument, SnowflakeError> {
    match SecretDocument::from_pem(text) {
        Ok((found, doc)) if found == label => Ok(doc),
        _ => Err(key_error(&format!(
            "it is not a valid PEM block (-----BEGIN {label}-----)"
        ))),
    }
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo`.
fn rsa_key_of_pkcs8(der: &[u8]) -> Result<Vec<u8>, SnowflakeError> {
    let info = PrivateKeyInfoRef::try_from(der)
        .map_err(|_| key_error("it is not a valid PKCS#8 RSA key"))?;
    if info.algorithm.oid != RSA_ENCRYPTION {
        return Err(key_error(
            "it is not an RSA key (Snowflake key-pair authentication needs RSA)",
        ));
    }
    Ok(info.private_key.as_bytes().to_vec())
}

/// Why an encrypted key did not decrypt, in words that name no key material.
fn decrypt_failure(e: &pkcs8::Error) -> &'static str {
    use pkcs8::pkcs5::Error as Pkcs5;
    match e {
        pkcs8::Error::EncryptedPrivateKey(Pkcs5::DecryptFailed) => {
            "it could not be decrypted (wrong passphrase?)"
        }
        pkcs8::Error::EncryptedPrivateKey(Pkcs5::NoPbes1CryptSupport) => UNREADABLE_ENCRYPTION,
        pkcs8::Error::EncryptedPrivateKey(Pkcs5::UnsupportedAlgorithm { .. }) => {
            UNREADABLE_ENCRYPTION
        }
        _ => "it could not be decrypted (wrong passphrase, or not a PKCS#8 key)",
    }
}

/// PEM text pasted into an environment variable often arrives with literal `\n`s.
fn normalise_pem(text: &str) -> String {
    let t = text.trim();
    if !t.contains('\n') && t.contains("\\n") {
        t.replace("\\n", "\n")
    } else {
        t.to_owned()
    }
}

/// The account part of a JWT: upper-cased, region and cloud suffix dropped (`xy12345.us-east-2.aws`
/// → `XY12345`); for `.global` accounts the part before the first `-`.
#[must_use]
pub fn jwt_account(account: &str) -> String {
    let a = account.trim();
    let cut = if a.contains(".global") {
        a.find('-')
    } else {
        a.find('.')
    };
    let a = match cut {
        Some(i) if i > 0 => &a[..i],
        _ => a,
    };
    a.to_ascii_uppercase()
}

/// Signs key-pair JWTs for the SQL API.
#[derive(Clone)]
pub struct KeyPairJwt {
    account: String,
    user: String,
    key: PrivateKey,
    lifetime: Duration,
}

impl std::fmt::Debug for KeyPairJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPairJwt")
            .field("account", &self.account)
            .field("user", &self.user)
            .field("fingerprint", &self.key.fingerprint)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    iat: i64,
    exp: i64,
}

impl KeyPairJwt {
    /// A signer for `account` and `user` (both normalised the way Snowflake expects).
    #[must_use]
    pub fn new(account: &str, user: &str, key: PrivateKey) -> Self {
        Self {
            account: jwt_account(account),
            user: user.trim().to_ascii_uppercase(),
            key,
            lifetime: JWT_LIFETIME,
        }
    }

    /// Overrides the lifetime (capped at Snowflake's one hour).
    #[must_use]
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime.min(MAX_JWT_LIFETIME);
        self
    }

    /// `ACCOUNT.USER`.
    #[must_use]
    pub fn subject(&self) -> String {
        format!("{}.{}", self.account, self.user)
    }

    /// `ACCOUNT.USER.SHA256:<fingerprint>`.
    #[must_use]
    pub fn issuer(&self) -> String {
        format!("{}.{}", self.subject(), self.key.fingerprint)
    }

    /// Signs a token valid from `now` (seconds since the epoch) for the lifetime.
    ///
    /// # Errors
    /// [`SnowflakeError::Config`] when signing fails (a key the signer cannot use).
    pub fn sign(&self, now: i64) -> Result<SecretString, SnowflakeError> {
        let iss = self.issuer();
        let sub = self.subject();
        let claims = Claims {
            iss: &iss,
            sub: &sub,
            iat: now,
            exp: now + i64::try_from(self.lifetime.as_secs()).unwrap_or(3540),
        };
        let key = EncodingKey::from_rsa_der(&self.key.der.0);
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key)
            .map(SecretString::from)
            .map_err(|e| {
                SnowflakeError::Config(format!("cannot sign the Snowflake JWT: {}", e.kind_name()))
            })
    }
}

/// A short name of a jsonwebtoken error kind (its Display may quote input).
trait KindName {
    fn kind_name(&self) -> &'static str;
}

impl KindName for jsonwebtoken::errors::Error {
    fn kind_name(&self) -> &'static str {
        use jsonwebtoken::errors::ErrorKind;
        match self.kind() {
            ErrorKind::InvalidRsaKey(_) => "invalid RSA key",
            ErrorKind::InvalidKeyFormat => "invalid key format",
            ErrorKind::RsaFailedSigning => "RSA signing failed",
            _ => "signing error",
        }
    }
}

#[async_trait]
impl TokenFetcher for KeyPairJwt {
    async fn fetch(&self) -> Result<AccessToken, HttpError> {
        let now = chrono::Utc::now().timestamp();
        let token = self.sign(now).map_err(|e| HttpError::Credentials {
            service: "snowflake".into(),
            message: e.to_string(),
            transient: false,
        })?;
        Ok(AccessToken::expiring_in(token, Some(self.lifetime)))
    }

    fn method(&self) -> &'static str {
        "key-pair JWT"
    }
}

/// Which credential the SQL API gets.
#[derive(Clone)]
pub enum Credentials {
    /// Key-pair JWT (`KEYPAIR_JWT`).
    KeyPair(KeyPairJwt),
    /// An OAuth access token (`OAUTH`).
    OAuth(SecretString),
    /// A programmatic access token (`PROGRAMMATIC_ACCESS_TOKEN`).
    ProgrammaticAccessToken(SecretString),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

impl Credentials {
    /// The `X-Snowflake-Authorization-Token-Type` value.
    #[must_use]
    pub fn token_type(&self) -> &'static str {
        match self {
            Self::KeyPair(_) => "KEYPAIR_JWT",
            Self::OAuth(_) => "OAUTH",
            Self::ProgrammaticAccessToken(_) => "PROGRAMMATIC_ACCESS_TOKEN",
        }
    }

    /// The method in words, for `doctor` and logs.
    #[must_use]
    pub fn describe(&self) -> &'static str {
        match self {
            Self::KeyPair(_) => "key-pair JWT",
            Self::OAuth(_) => "OAuth token",
            Self::ProgrammaticAccessToken(_) => "programmatic access token",
        }
    }

    /// The public-key fingerprint, for key-pair auth.
    #[must_use]
    pub fn fingerprint(&self) -> Option<&str> {
        match self {
            Self::KeyPair(k) => Some(k.key.fingerprint()),
            _ => None,
        }
    }

    /// The auth provider for the HTTP client: JWTs are renewed five minutes before they
    /// expire (and once after a 401); tokens are sent as they are.
    #[must_use]
    pub fn provider(&self) -> Arc<dyn AuthProvider> {
        let name = HeaderName::from_static(TOKEN_TYPE_HEADER);
        let value = HeaderValue::from_static(self.token_type());
        match self {
            Self::KeyPair(jwt) => Arc::new(
                RefreshingToken::new("snowflake", jwt.clone(), JWT_RENEW_BEFORE)
                    .with_header(name, value),
            ),
            Self::OAuth(t) | Self::ProgrammaticAccessToken(t) => {
                Arc::new(BearerToken::new("snowflake", t.clone()).with_header(name, value))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_follow_the_jwt_rules() {
        assert_eq!(jwt_account("myorg-acct"), "MYORG-ACCT");
        assert_eq!(jwt_account("xy12345.us-east-2.aws"), "XY12345");
        assert_eq!(jwt_account("myorg-acct.global"), "MYORG");
        assert_eq!(jwt_account(" acct "), "ACCT");
    }

    #[test]
    fn garbage_keys_are_config_errors_without_key_material() {
        let e = PrivateKey::from_pem(&SecretString::from("not a key"), None).unwrap_err();
        assert!(matches!(e, SnowflakeError::Config(_)));
        let fake = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----";
        let e = PrivateKey::from_pem(&SecretString::from(fake), None).unwrap_err();
        assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----";
        let e = PrivateKey::from_pem(&SecretString::from(enc), None).unwrap_err();
        assert!(e.to_string().contains("PASSPHRASE"), "{e}");
    }

    #[test]
    fn escaped_newlines_are_restored() {
        assert_eq!(normalise_pem("a\\nb"), "a\nb");
        assert_eq!(normalise_pem("a\nb\\n"), "a\nb\\n");
    }
}
