//! Keyed response keys. A response's key is a keyed hash of its unkeyed identity, XXH3-128 of
//! (source system, survey id, source response id): without the warehouse's secret nobody can
//! recompute a key from a guessed source id (survey tools number responses 1, 2, 3…) and link a
//! row back to the survey tool's record. The keyed hash is BLAKE3 in keyed mode, truncated to
//! 128 bits. Because it is applied to the unkeyed identity, an existing warehouse's keys can be
//! migrated without the source ids (`palaute rekey`).

use rand::RngCore;

/// A warehouse's 256-bit key secret.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySecret([u8; 32]);

impl std::fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySecret(…)")
    }
}

impl KeySecret {
    /// A new secret from the operating system's randomness (through the thread's CSPRNG).
    pub fn generate() -> KeySecret {
        let mut b = [0u8; 32];
        rand::rng().fill_bytes(&mut b);
        KeySecret(b)
    }

    /// 64 hex digits.
    pub fn from_hex(s: &str) -> Option<KeySecret> {
        let s = s.trim();
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut b = [0u8; 32];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(KeySecret(b))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The stored key of an unkeyed identity.
    pub fn key(&self, unkeyed: u128) -> u128 {
        let h = blake3::keyed_hash(&self.0, &unkeyed.to_be_bytes());
        let mut k = [0u8; 16];
        k.copy_from_slice(&h.as_bytes()[..16]);
        u128::from_be_bytes(k)
    }

    /// A fingerprint that tells whether a secret is this one without revealing it (kept beside
    /// the tables, checked before each run).
    pub fn check(&self) -> String {
        blake3::keyed_hash(&self.0, b"palaute response key check")
            .to_hex()
            .to_string()
    }
}

/// The unkeyed identity of a source response: XXH3-128 of (system, survey, id).
pub fn unkeyed(system: &str, survey: &str, id: &str) -> u128 {
    let mut key = xxhash_rust::xxh3::Xxh3::new();
    key.update(system.as_bytes());
    key.update(b"\x1f");
    key.update(survey.as_bytes());
    key.update(b"\x1f");
    key.update(id.as_bytes());
    key.digest128()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_the_secret_and_hex_round_trips() {
        let a = KeySecret::generate();
        let b = KeySecret::generate();
        let id = unkeyed("limesurvey", "123456", "1");
        assert_ne!(a.key(id), b.key(id));
        assert_ne!(a.key(id), id);
        assert_eq!(a.key(id), a.key(id));
        assert_eq!(KeySecret::from_hex(&a.to_hex()), Some(a.clone()));
        assert_ne!(a.check(), b.check());
        assert!(KeySecret::from_hex("00").is_none());
        assert!(!format!("{a:?}").contains(&a.to_hex()[..8]));
    }
}
