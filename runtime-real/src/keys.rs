//! The root S3 keys: given by flags or the environment, else stored in the data
//! directory, else generated and stored (mode 0600) before they are used.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The root access key pair.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <secret>)", self.access_key)
    }
}

/// Where the keys came from.
pub enum KeySource {
    Given,
    Stored(PathBuf),
    Generated(PathBuf),
}

pub(crate) fn random_key(len: usize, alphabet: &[u8]) -> String {
    let mut raw = vec![0u8; len];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    raw.iter()
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect()
}

/// The keys from flags or the environment, else the ones stored in `data`, else new
/// ones, stored (mode 0600) before they are used.
pub fn credentials(
    data: &Path,
    access: Option<String>,
    secret: Option<String>,
) -> anyhow::Result<(Credentials, KeySource)> {
    match (access, secret) {
        (Some(access_key), Some(secret_key)) => {
            if access_key.is_empty() || secret_key.len() < 8 {
                bail!("the access key must not be empty and the secret key needs 8 characters");
            }
            return Ok((
                Credentials {
                    access_key,
                    secret_key,
                },
                KeySource::Given,
            ));
        }
        (None, None) => {}
        _ => bail!("give both the access key and the secret key, or neither"),
    }
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let path = data.join("credentials.toml");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let creds: Credentials =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        return Ok((creds, KeySource::Stored(path)));
    }
    let creds = Credentials {
        access_key: random_key(20, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
        secret_key: random_key(
            40,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        ),
    };
    write_private(&path, &toml::to_string(&creds)?)?;
    Ok((creds, KeySource::Generated(path)))
}

/// Writes a file only its owner can read (mode 0600: keys), durably.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// SSE-S3's master key: from `file` (its text, base64 of 32 bytes) or `value` (the
/// same, from `HAMSTER_SSE_MASTER_KEY`); `None` when neither is given.
pub fn master_key(
    file: Option<&Path>,
    value: Option<&str>,
) -> anyhow::Result<Option<engine::s3::sse::Key>> {
    use base64::Engine as _;
    let (text, from) = match (file, value) {
        (Some(path), _) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the SSE master key {}", path.display()))?,
            path.display().to_string(),
        ),
        (None, Some(v)) => (v.to_string(), "HAMSTER_SSE_MASTER_KEY".to_string()),
        (None, None) => return Ok(None),
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok());
    match raw {
        Some(key) => Ok(Some(engine::s3::sse::Key(key))),
        None => bail!(
            "the SSE master key in {from} is not 32 bytes in base64 \
             (make one with: head -c 32 /dev/urandom | base64)"
        ),
    }
}
