//! Encryption at rest in the objects workload, which asks SSE-S3 for every write of an
//! odd key (`object_workload::sealed`): such a key's bytes must be sealed (an
//! encryption record, and shards that decode to ciphertext, not to its body), an even
//! key's must not be, and a sealed body must open, under the nodes' master key, to
//! exactly the body. The durability checker opens each blob with [`open_blob`].

use std::collections::BTreeMap;

use engine::meta::DataLayout;
use engine::meta::encryption::ObjectEncryption;
use engine::s3::sse::{self, Key, Opener};

use crate::object_workload::ObjectHistory;

/// Every node's SSE-S3 master key.
pub const MASTER_KEY: [u8; 32] = [0x5a; 32];

/// Per key, how the cluster said its current body is encrypted (absent: not at all).
pub type Sealed = BTreeMap<usize, ObjectEncryption>;

/// The plaintext of one blob of a sealed object, from the bytes its shards decode to.
pub fn open_blob(
    record: &ObjectEncryption,
    layout: &DataLayout,
    sealed: &[u8],
) -> Result<Vec<u8>, String> {
    let ObjectEncryption::Managed { wrapped } = record else {
        return Err("is sealed with SSE-C, which this workload never asks for".into());
    };
    let data = sse::unwrap(&Key(MASTER_KEY), wrapped)
        .map_err(|e| format!("has a data key that does not unwrap: {e}"))?;
    let plain_len = sse::plain_len(layout.size);
    let mut opener = Opener::new(
        &sse::blob_key(&data, layout.data_id),
        0..plain_len,
        plain_len,
    );
    let plain = opener
        .push(bytes::Bytes::copy_from_slice(sealed))
        .map_err(|e| format!("has a blob that does not open: {e}"))?;
    if !opener.done() {
        return Err("has a blob shorter than its sealed length".into());
    }
    Ok(plain.to_vec())
}

/// Odd keys (whose writes all asked for SSE-S3) are sealed, and no even key is.
pub fn check_sealed(
    h: &ObjectHistory,
    layouts: &BTreeMap<usize, Option<Vec<DataLayout>>>,
    sealed: &Sealed,
) -> Vec<String> {
    let mut violations = Vec::new();
    for (&index, blobs) in layouts {
        if blobs.is_none() {
            continue;
        }
        let key = &h.keys[index];
        match (index % 2 == 1, sealed.contains_key(&index)) {
            (true, false) if !key.data.is_empty() => violations.push(format!(
                "object {} was written with SSE-S3 but is stored in the clear",
                key.key
            )),
            (false, true) => violations.push(format!(
                "object {} is sealed although no write of it asked for that",
                key.key
            )),
            _ => {}
        }
    }
    violations
}

/// Whether `raw` (a sealed blob's bytes) holds a run of `body`: it must not.
pub fn shows_plaintext(raw: &[u8], body: &[u8]) -> bool {
    body.len() >= 32 && raw.windows(32).any(|w| w == &body[..32])
}
