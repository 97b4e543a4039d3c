//! A tag: objects', uploads' and buckets' tag sets, and lifecycle rules' filters, are
//! made of them.

use serde::{Deserialize, Serialize};

/// One tag: a key and its value (S3's rules for them are `s3::tags`').
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}
