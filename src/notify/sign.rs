//! Standard Webhooks signatures (symmetric, `v1`): HMAC-SHA256 over `{id}.{timestamp}.{body}`.
//!
//! A delivery carries three headers: `webhook-id` (the event id, the same on every retry),
//! `webhook-timestamp` (unix seconds of the attempt) and `webhook-signature` (`v1,` + base64 of
//! the MAC; a space-separated list when several keys sign). See
//! <https://www.standardwebhooks.com> ("Verifying webhook authenticity").

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// The prefix of a base64-encoded secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Shortest accepted key (the spec asks for at least 24 random bytes).
pub const MIN_KEY_BYTES: usize = 24;

/// Why a signing secret was refused. Never contains any part of the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secret is empty")]
    Empty,
    #[error("the secret starts with `{SECRET_PREFIX}` but the rest is not valid base64")]
    NotBase64,
    #[error("the key is {len} bytes long; at least {MIN_KEY_BYTES} are required")]
    TooShort { len: usize },
}

/// A signing key. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(<{} bytes>)", self.key.len())
    }
}

impl SigningKey {
    /// A secret as configured: `whsec_` followed by the base64 key, or anything else taken as the
    /// raw key bytes. Surrounding whitespace (e.g. the newline of a secrets file) is ignored.
    pub fn parse(secret: &str) -> Result<SigningKey, SecretError> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(SecretError::Empty);
        }
        let key = match secret.strip_prefix(SECRET_PREFIX) {
            Some(encoded) => STANDARD
                .decode(encoded)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded))
                .map_err(|_| SecretError::NotBase64)?,
            None => secret.as_bytes().to_vec(),
        };
        if key.len() < MIN_KEY_BYTES {
            return Err(SecretError::TooShort { len: key.len() });
        }
        Ok(SigningKey { key })
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` value:
    /// `v1,<base64 HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(msg_id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }

    /// Whether any `v1` signature of a `webhook-signature` header value matches (constant-time
    /// comparison). The timestamp's freshness is the caller's to check.
    pub fn verify(&self, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        header
            .split(' ')
            .filter_map(|s| s.split_once(','))
            .filter(|(version, _)| *version == "v1")
            .filter_map(|(_, sig)| STANDARD.decode(sig).ok())
            .any(|sig| self.mac(msg_id, timestamp, body).verify_slice(&sig).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vectors of the Standard Webhooks reference libraries (JavaScript `sign function
    // works`; Rust `test_sign`).
    const VECTORS: &[(&str, &str, i64, &str, &str)] = &[
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
        (
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            r#"{"email":"test@example.com","username":"test_user"}"#,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        ),
    ];

    #[test]
    fn reference_test_vectors() {
        for (secret, id, ts, body, expected) in VECTORS {
            let key = SigningKey::parse(secret).unwrap();
            assert_eq!(key.sign(id, *ts, body.as_bytes()), *expected);
            assert!(key.verify(id, *ts, body.as_bytes(), expected));
        }
    }

    #[test]
    fn signature_is_hmac_sha256_of_id_timestamp_body() {
        // Recompute independently: HMAC-SHA256 over the concatenation, base64.
        let raw = "a raw secret of at least 24 bytes";
        let key = SigningKey::parse(raw).unwrap();
        let body = br#"{"event":"apply.failed"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(raw.as_bytes()).unwrap();
        mac.update(b"msg_1.1700000000.");
        mac.update(body);
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        assert_eq!(key.sign("msg_1", 1_700_000_000, body), expected);
        // `whsec_` + base64 of the same bytes is the same key.
        let encoded = format!("whsec_{}", STANDARD.encode(raw));
        assert_eq!(SigningKey::parse(&encoded).unwrap(), key);
    }

    #[test]
    fn verification_rejects_changes_and_accepts_any_listed_signature() {
        let key = SigningKey::parse(VECTORS[0].0).unwrap();
        let (_, id, ts, body, sig) = VECTORS[0];
        assert!(!key.verify(id, ts + 1, body.as_bytes(), sig));
        assert!(!key.verify("msg_other", ts, body.as_bytes(), sig));
        assert!(!key.verify(id, ts, b"{\"test\": 2432232315}", sig));
        assert!(!key.verify(
            id,
            ts,
            body.as_bytes(),
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
        assert!(!key.verify(id, ts, body.as_bytes(), "v1,"));
        assert!(!key.verify(id, ts, body.as_bytes(), ""));
        let rotated = format!("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {sig}");
        assert!(key.verify(id, ts, body.as_bytes(), &rotated));
    }

    #[test]
    fn secrets_are_validated_without_echoing_them() {
        assert_eq!(SigningKey::parse("  \n"), Err(SecretError::Empty));
        assert_eq!(SigningKey::parse("whsec_!!!"), Err(SecretError::NotBase64));
        assert_eq!(
            SigningKey::parse("short"),
            Err(SecretError::TooShort { len: 5 })
        );
        // A trailing newline (a secrets file) and unpadded base64 are accepted.
        assert_eq!(
            SigningKey::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\n").unwrap(),
            SigningKey::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap()
        );
        let padded = format!("whsec_{}", STANDARD.encode([7u8; 25]));
        assert!(padded.ends_with("=="));
        assert_eq!(
            SigningKey::parse(padded.trim_end_matches('=')).unwrap(),
            SigningKey::parse(&padded).unwrap()
        );
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(<24 bytes>)");
    }
}
