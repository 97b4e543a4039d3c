//! Server-side encryption's replicated state: how each object version's (or upload's)
//! bytes were sealed, and a bucket's default (`s3::sse` has the keys and the format).
//!
//! Both are bucket settings rows, as ACLs and tags are: keyed by the version's log
//! index (dropped with the version) or by the upload's id (moved onto the version its
//! completion writes). A customer's key itself is never stored: only the salt its
//! object's data key derives from, and the key's MD5, which S3 sends back.

use serde::{Deserialize, Serialize};

/// How an object version's or an upload's bytes are encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectEncryption {
    /// SSE-S3: a random data key, stored wrapped (sealed) under the master key.
    Managed { wrapped: Vec<u8> },
    /// SSE-C: the random salt the data key derives from with the customer's key, and
    /// that key's MD5 (base64), which a later request's key must match.
    Customer { salt: [u8; 32], key_md5: String },
}

/// A bucket's default encryption (PutBucketEncryption): writes that ask for none are
/// encrypted with SSE-S3.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEncryption {
    /// S3's BucketKeyEnabled, kept and given back (every object has its own key here).
    pub bucket_key_enabled: bool,
}

/// The row of a bucket's default encryption.
pub const BUCKET_ENCRYPTION: &str = "b/encryption";

/// The row of the encryption of the object version written at log index `version`.
pub fn object_encryption(version: u64) -> String {
    format!("o/e/{version:020}")
}

/// The row of the encryption of an upload in progress.
pub fn upload_encryption(upload_id: &str) -> String {
    format!("o/ue/{upload_id}")
}
