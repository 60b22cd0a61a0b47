//! Stored secrets and checking them: SCRAM-SHA-256 verifiers for PostgreSQL passwords (the
//! format PostgreSQL itself stores, RFC 5802 / 7677) and argon2id hashes for HTTP bearer
//! tokens. Neither can be turned back into the secret; the server never holds one in clear.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// PBKDF2 iterations of a new verifier (PostgreSQL's default).
pub const SCRAM_ITERATIONS: u32 = 4096;

/// A SCRAM-SHA-256 verifier: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramVerifier(..)")
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Hi() of RFC 5802: PBKDF2 with HMAC-SHA-256, one block.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut u = hmac(password, &[salt, &1u32.to_be_bytes()]);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &[&u]);
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

impl ScramVerifier {
    /// The verifier of `password` under a new random salt.
    pub fn new(password: &str) -> ScramVerifier {
        let mut salt = vec![0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        ScramVerifier::with_salt(password, &salt, SCRAM_ITERATIONS)
    }

    pub fn with_salt(password: &str, salt: &[u8], iterations: u32) -> ScramVerifier {
        let salted = salted_password(password.as_bytes(), salt, iterations);
        let client_key = hmac(&salted, &[b"Client Key"]);
        ScramVerifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, &[b"Server Key"]),
        }
    }

    pub fn parse(s: &str) -> Result<ScramVerifier, String> {
        let bad = || {
            "not a SCRAM-SHA-256 verifier (SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>; \
             make one with `palaute serve hash-password`)"
                .to_string()
        };
        let rest = s.strip_prefix("SCRAM-SHA-256$").ok_or_else(bad)?;
        let (params, keys) = rest.split_once('$').ok_or_else(bad)?;
        let (iter, salt) = params.split_once(':').ok_or_else(bad)?;
        let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
        let iterations: u32 = iter.parse().map_err(|_| bad())?;
        if iterations < 4096 {
            return Err(format!("{iterations} iterations: at least 4096"));
        }
        let key = |k: &str| -> Result<[u8; 32], String> {
            B64.decode(k)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(bad)
        };
        Ok(ScramVerifier {
            iterations,
            salt: B64.decode(salt).map_err(|_| bad())?,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }

    pub fn encode(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

impl ScramVerifier {
    /// A verifier no password matches, the same for the same `user` and `key` (a secret of the
    /// running server): what an unknown user's exchange runs against, so that its salt and
    /// iteration count look like a real user's and do not change between attempts.
    pub fn decoy(key: &[u8; 32], user: &str) -> ScramVerifier {
        let part = |what: &str| -> [u8; 32] {
            blake3::keyed_hash(key, format!("{what}\0{user}").as_bytes()).into()
        };
        ScramVerifier {
            iterations: SCRAM_ITERATIONS,
            salt: part("salt")[..16].to_vec(),
            stored_key: part("stored"),
            server_key: part("server"),
        }
    }
}

/// The server's side of one SCRAM-SHA-256 exchange (no channel binding).
pub struct ScramExchange {
    verifier: ScramVerifier,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramExchange {
    /// Answer the client-first message with the server-first message. `verifier` is the user's,
    /// or, for an unknown user, a made-up one: the exchange then fails at the proof, as a wrong
    /// password does, and takes the same time.
    pub fn start(
        verifier: ScramVerifier,
        client_first: &str,
        server_nonce: &str,
    ) -> Result<(ScramExchange, String), String> {
        // gs2 header: no channel binding ("n,,"), or supported by the client but not used ("y,,")
        let bare = client_first
            .strip_prefix("n,,")
            .or_else(|| client_first.strip_prefix("y,,"))
            .ok_or("channel binding is not offered: use SCRAM-SHA-256 without it")?;
        let client_nonce = bare
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .filter(|n| !n.is_empty())
            .ok_or("no nonce in the client-first message")?;
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&verifier.salt),
            verifier.iterations
        );
        Ok((
            ScramExchange {
                verifier,
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
                nonce,
            },
            server_first,
        ))
    }

    /// Check the client-final message's proof; the server-final message when it holds.
    pub fn finish(self, client_final: &str) -> Result<String, String> {
        let (without_proof, proof) = client_final
            .rsplit_once(",p=")
            .ok_or("no proof in the client-final message")?;
        let nonce = without_proof
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .ok_or("no nonce in the client-final message")?;
        let binding = without_proof
            .split(',')
            .find_map(|a| a.strip_prefix("c="))
            .ok_or("no channel binding attribute in the client-final message")?;
        let proof: [u8; 32] = B64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or("the proof is not 32 bytes of base64")?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let signature = hmac(&self.verifier.stored_key, &[auth_message.as_bytes()]);
        let mut client_key = [0u8; 32];
        for i in 0..32 {
            client_key[i] = proof[i] ^ signature[i];
        }
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        // every check is made, and compared without an early exit, before deciding
        let ok = constant_time_eq(&stored, &self.verifier.stored_key)
            & (nonce == self.nonce)
            & (binding == "biws" || binding == "eSws");
        if !ok {
            return Err("password authentication failed".into());
        }
        let server_signature = hmac(&self.verifier.server_key, &[auth_message.as_bytes()]);
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An argon2id hash of a bearer token, in the PHC string format.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash(String);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

impl TokenHash {
    pub fn new(token: &str) -> TokenHash {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
        let h = argon2::Argon2::default()
            .hash_password(token.as_bytes(), &salt)
            .expect("argon2 with its default parameters");
        TokenHash(h.to_string())
    }

    pub fn parse(s: &str) -> Result<TokenHash, String> {
        let h = argon2::PasswordHash::new(s).map_err(|_| {
            "not an argon2 hash (make one with `palaute serve hash-password --token`)".to_string()
        })?;
        if !h.algorithm.as_str().starts_with("argon2") {
            return Err(format!("{}: use argon2id", h.algorithm));
        }
        Ok(TokenHash(s.to_string()))
    }

    pub fn verify(&self, token: &str) -> bool {
        use argon2::password_hash::PasswordVerifier;
        argon2::PasswordHash::new(&self.0).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(token.as_bytes(), &h)
                .is_ok()
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new bearer token for `user`: the user's name, a colon and 32 random characters.
pub fn new_token(user: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{user}:{secret}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7677_exchange_succeeds_and_a_wrong_proof_fails() {
        // RFC 7677, section 3: user "user", password "pencil"
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = ScramVerifier::with_salt("pencil", &salt, 4096);
        assert_eq!(ScramVerifier::parse(&v.encode()).unwrap(), v);
        let client_first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let (ex, server_first) =
            ScramExchange::start(v.clone(), client_first, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
                .unwrap();
        assert_eq!(
            server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            ex.finish(client_final).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        // another password's verifier: the same messages fail
        let other = ScramVerifier::with_salt("pencil2", &salt, 4096);
        let (ex, _) =
            ScramExchange::start(other, client_first, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0").unwrap();
        assert!(ex.finish(client_final).is_err());
    }

    #[test]
    fn a_token_hash_verifies_its_token_only() {
        let t = new_token("engineer");
        assert!(t.starts_with("engineer:") && t.len() == "engineer:".len() + 32);
        let h = TokenHash::new(&t);
        assert!(!h.as_str().contains(&t[9..]));
        let h = TokenHash::parse(h.as_str()).unwrap();
        assert!(h.verify(&t));
        assert!(!h.verify("engineer:wrong"));
        assert!(TokenHash::parse("plain-text-token").is_err());
    }
}
