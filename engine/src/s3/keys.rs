//! Access keys as admin operations (`KeyRequest`, root only), and the secret lookup
//! that SigV4 needs. A key's secret is sealed before it is proposed (ChaCha20-Poly1305
//! under a key derived from the root secret, the key id as associated data), so
//! neither the Raft log nor the metadata store nor a snapshot holds it in the clear.
//! Changing the root secret therefore makes the stored secrets unreadable: those keys
//! stop working and must be made again.

use std::collections::BTreeMap;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest, Sha256};

use crate::env::{Env, Rng};
use crate::meta::keys::AccessKey;
use crate::meta::{Applied, CommandV1};
use crate::s3::api::Caller;
use crate::s3::{S3, S3Error, applied_error, validate_bucket};

/// Longest key name.
pub const KEY_NAME_BYTES_MAX: usize = 128;

pub use crate::s3::api::{KeyInfo, KeyRequest, KeyResponse};

fn info(access_key: String, k: AccessKey) -> KeyInfo {
    KeyInfo {
        access_key,
        name: k.name,
        create_bucket: k.create_bucket,
        created_ms: k.created_ms,
        grants: k.grants,
    }
}

/// The sealing key for access-key secrets, from the root secret.
pub fn seal_key(root_secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"hamster access-key seal v1\0");
    h.update(root_secret.as_bytes());
    h.finalize().into()
}

fn seal(key: &[u8; 32], nonce: [u8; 12], id: &str, secret: &str) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let payload = Payload {
        msg: secret.as_bytes(),
        aad: id.as_bytes(),
    };
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), payload)
        .expect("ChaCha20-Poly1305 seals any secret that fits in memory");
    [nonce.as_slice(), &sealed].concat()
}

pub(crate) fn unseal(key: &[u8; 32], id: &str, sealed: &[u8]) -> Option<String> {
    if sealed.len() < 12 {
        return None;
    }
    let (nonce, ct) = sealed.split_at(12);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let plain = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: id.as_bytes(),
            },
        )
        .ok()?;
    String::from_utf8(plain).ok()
}

fn bad(what: &str) -> S3Error {
    S3Error::InvalidArgument(what.into())
}

fn check_new_key(name: &str, access_key: &str, secret_key: &str) -> Result<(), S3Error> {
    if name.is_empty() || name.len() > KEY_NAME_BYTES_MAX || name.chars().any(char::is_control) {
        return Err(bad(
            "a key name has 1 to 128 bytes and no control characters",
        ));
    }
    let id_ok = (16..=128).contains(&access_key.len())
        && access_key.bytes().all(|b| b.is_ascii_alphanumeric());
    if !id_ok || secret_key.len() < 16 {
        return Err(bad(
            "an access key id is 16 to 128 letters and digits, and a secret has at least 16 bytes",
        ));
    }
    Ok(())
}

impl<E: Env> S3<E> {
    /// Runs an admin request about keys: the root key only.
    pub async fn keys(&self, caller: &Caller, request: KeyRequest) -> Result<KeyResponse, S3Error> {
        if *caller != Caller::Root {
            return Err(S3Error::AccessDenied);
        }
        let done = |applied: Applied, key: &str| match applied {
            Applied::Done => Ok(KeyResponse::Done),
            Applied::NoSuchAccessKey => Err(S3Error::NoSuchAccessKey(key.into())),
            other => Err(applied_error(other)),
        };
        match request {
            KeyRequest::Create {
                name,
                create_bucket,
                access_key,
                secret_key,
            } => {
                check_new_key(&name, &access_key, &secret_key)?;
                if access_key == self.config.owner {
                    return Err(bad("that access key id is the root key's"));
                }
                let mut nonce = [0u8; 12];
                self.env.rng().fill(&mut nonce);
                let key = AccessKey {
                    name,
                    sealed_secret: seal(&self.config.seal_key, nonce, &access_key, &secret_key),
                    create_bucket,
                    created_ms: self.now_ms(),
                    grants: BTreeMap::new(),
                };
                let command = CommandV1::CreateKey {
                    access_key: access_key.clone(),
                    key,
                };
                done(self.propose(command).await?, &access_key)?;
                Ok(KeyResponse::Created {
                    access_key,
                    secret_key,
                })
            }
            KeyRequest::List => {
                let r = self.reader().await?;
                let keys = r
                    .access_keys()
                    .map_err(|e| S3Error::Internal(e.to_string()))?;
                Ok(KeyResponse::Keys(
                    keys.into_iter().map(|(id, k)| info(id, k)).collect(),
                ))
            }
            KeyRequest::Info { key } => {
                let r = self.reader().await?;
                match r
                    .access_key(&key)
                    .map_err(|e| S3Error::Internal(e.to_string()))?
                {
                    Some(k) => Ok(KeyResponse::Info(info(key, k))),
                    None => Err(S3Error::NoSuchAccessKey(key)),
                }
            }
            KeyRequest::Delete { key } => {
                let command = CommandV1::DeleteKey {
                    access_key: key.clone(),
                };
                done(self.propose(command).await?, &key)
            }
            KeyRequest::Grant {
                key,
                bucket,
                perms,
                allow,
            } => {
                if perms.is_none() {
                    return Err(bad("name at least one of --read, --write, --owner"));
                }
                validate_bucket(&bucket)?;
                let command = CommandV1::GrantKey {
                    access_key: key.clone(),
                    bucket,
                    perms,
                    allow,
                };
                done(self.propose(command).await?, &key)
            }
        }
    }

    /// The secret of access key `id` (not the root's), for checking a signature: from
    /// this node's applied state, or, for a key it has not applied yet (made a moment
    /// ago through another node), after a ReadIndex.
    pub async fn secret_of(&self, id: &str) -> Result<Option<String>, S3Error> {
        let known = match self.local_key(id)? {
            Some(k) => Some(k),
            None => self.known_key(&self.reader().await?, id)?,
        };
        Ok(known.map(|k| k.secret.to_string()))
    }

    /// A key's name, for showing an owner.
    pub fn key_name(&self, id: &str) -> Option<String> {
        self.local_key(id)
            .ok()
            .flatten()
            .map(|k| k.key.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_unseal_only_with_their_key_and_id() {
        let k = seal_key("root-secret");
        let sealed = seal(&k, [7; 12], "AKID", "s3cr3t-s3cr3t-s3cr3t");
        assert!(
            !sealed.windows(6).any(|w| w == b"s3cr3t"),
            "stored in the clear"
        );
        assert_eq!(
            unseal(&k, "AKID", &sealed).as_deref(),
            Some("s3cr3t-s3cr3t-s3cr3t")
        );
        assert_eq!(unseal(&seal_key("other"), "AKID", &sealed), None);
        assert_eq!(unseal(&k, "AKID2", &sealed), None, "bound to its key id");
        assert_eq!(unseal(&k, "AKID", &sealed[..5]), None);
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert_eq!(unseal(&k, "AKID", &flipped), None);
    }

    #[test]
    fn new_keys_are_checked() {
        let id = "AKIAAAAAAAAAAAAAAAAA";
        let secret = "0123456789abcdef0123";
        assert!(check_new_key("app", id, secret).is_ok());
        assert!(check_new_key("", id, secret).is_err());
        assert!(check_new_key(&"n".repeat(129), id, secret).is_err());
        assert!(check_new_key("a\nb", id, secret).is_err());
        assert!(check_new_key("app", "short", secret).is_err());
        assert!(check_new_key("app", "AKIA-AAAAAAAAAAAAAAA", secret).is_err());
        assert!(check_new_key("app", id, "short").is_err());
    }
}
