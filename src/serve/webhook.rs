//! Push webhook verification: GitHub (`X-Hub-Signature-256`), GitLab (`X-Gitlab-Token`) and a
//! generic HMAC receiver (`X-Weir-Signature: sha256=<hex>`). Every comparison is constant-time.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The header of the generic receiver: `sha256=` + hex HMAC-SHA256 of the raw body.
pub const GENERIC_SIGNATURE_HEADER: &str = "x-weir-signature";

/// Verifies a `sha256=<hex>` HMAC-SHA256 signature of `body` (GitHub's and the generic format).
pub fn verify_hmac_sha256(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(sig) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Compares two secrets in constant time (over their SHA-256, so the length does not leak).
pub fn secret_eq(expected: &[u8], given: &[u8]) -> bool {
    let a = Sha256::digest(expected);
    let b = Sha256::digest(given);
    a.ct_eq(&b).into()
}

/// `sha256=<hex>` signature of `body` (for clients and tests).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a push delivery says about the branch: `Some(branch)` for `refs/heads/<branch>`, `None`
/// when the payload names no ref (e.g. a ping or a generic delivery without one).
pub fn pushed_branch(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let r = v.get("ref")?.as_str()?;
    Some(r.strip_prefix("refs/heads/").unwrap_or(r).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_signatures() {
        // The example from GitHub's documentation on validating webhook deliveries.
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify_hmac_sha256(secret, body, Some(header)));
        assert_eq!(sign(secret, body), header);
        assert!(!verify_hmac_sha256(secret, b"Hello, World?", Some(header)));
        assert!(!verify_hmac_sha256(b"other", body, Some(header)));
        assert!(!verify_hmac_sha256(secret, body, None));
        assert!(!verify_hmac_sha256(secret, body, Some("sha1=abc")));
        assert!(!verify_hmac_sha256(secret, body, Some("sha256=zz")));
    }

    #[test]
    fn tokens_and_branches() {
        assert!(secret_eq(b"abc", b"abc"));
        assert!(!secret_eq(b"abc", b"abd"));
        assert!(!secret_eq(b"abc", b"abcd"));
        assert_eq!(
            pushed_branch(br#"{"ref":"refs/heads/main"}"#).as_deref(),
            Some("main")
        );
        assert_eq!(pushed_branch(br#"{"zen":"hi"}"#), None);
    }
}
