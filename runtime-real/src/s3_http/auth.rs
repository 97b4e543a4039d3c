//! Whose signature a request carries: s3s asks for the secret of the access key a
//! request names and checks SigV4 with it. The root key's secret is the node's own;
//! every other key's is the engine's (`S3::secret_of`, unsealed from the replicated
//! metadata). An unknown key is `InvalidAccessKeyId`, as S3 answers it.

use std::sync::Arc;

use engine::s3::S3;
use s3s::S3Result;
use s3s::auth::{S3Auth, SecretKey};

use super::s3s_error;
use crate::RealEnv;
use crate::keys::Credentials;

pub struct KeyAuth {
    root: Credentials,
    s3: Arc<S3<RealEnv>>,
}

impl KeyAuth {
    pub fn new(root: Credentials, s3: Arc<S3<RealEnv>>) -> Self {
        Self { root, s3 }
    }
}

#[async_trait::async_trait]
impl S3Auth for KeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.root.access_key {
            return Ok(SecretKey::from(self.root.secret_key.as_str()));
        }
        match self.s3.secret_of(access_key).await {
            Ok(Some(secret)) => Ok(SecretKey::from(secret)),
            Ok(None) => Err(s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
            Err(e) => {
                tracing::warn!(access_key, error = %e, "looking up an access key failed");
                Err(s3s_error(e))
            }
        }
    }
}
