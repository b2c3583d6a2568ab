//! SHA-256 fingerprints as text: state-store bindings, request ids derived from a task's
//! idempotency key, the seed of a rotated refresh token. One definition, so they all read the
//! same (64 lowercase hex digits).

use sha2::{Digest, Sha256};

/// The SHA-256 of `data` as 64 lowercase hex digits.
#[must_use]
pub fn sha256_hex(data: impl AsRef<[u8]>) -> String {
    Sha256::digest(data.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_the_lowercase_hex_of_the_standard_digest() {
        // FIPS 180-2 test vector.
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_hex(b"").len(), 64);
    }
}
