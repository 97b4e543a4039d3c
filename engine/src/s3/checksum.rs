//! Digests of object data: the MD5 behind ETags, and the `x-amz-checksum-*`
//! algorithms (CRC32, CRC32C, CRC64NVME, SHA-1, SHA-256), computed as the body streams
//! through ([`HashingSource`]) and combined across multipart parts the way S3 does.
//!
//! Values travel as S3 shows them: base64 of the big-endian digest. A multipart object
//! gets a *composite* checksum for SHA-1, SHA-256, CRC32 and CRC32C (the algorithm over
//! the concatenated part digests, shown with `-N`) and a *full-object* one for
//! CRC64NVME (the part CRCs combined, as if over the whole object), which is what S3
//! computes by default for each.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use md5::Digest as _;

use crate::data_path::{ByteSource, SourceError};
use crate::meta::{Checksum, ChecksumAlgorithm};
use crate::s3::S3Error;

fn crc_algorithm(alg: ChecksumAlgorithm) -> Option<crc_fast::CrcAlgorithm> {
    match alg {
        ChecksumAlgorithm::Crc32 => Some(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
        ChecksumAlgorithm::Crc32c => Some(crc_fast::CrcAlgorithm::Crc32Iscsi),
        ChecksumAlgorithm::Crc64Nvme => Some(crc_fast::CrcAlgorithm::Crc64Nvme),
        ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => None,
    }
}

/// Digest length in bytes.
fn digest_len(alg: ChecksumAlgorithm) -> usize {
    match alg {
        ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
        ChecksumAlgorithm::Crc64Nvme => 8,
        ChecksumAlgorithm::Sha1 => 20,
        ChecksumAlgorithm::Sha256 => 32,
    }
}

/// The header name's algorithm part (`x-amz-checksum-<name>`).
pub fn algorithm_name(alg: ChecksumAlgorithm) -> &'static str {
    match alg {
        ChecksumAlgorithm::Crc32 => "crc32",
        ChecksumAlgorithm::Crc32c => "crc32c",
        ChecksumAlgorithm::Crc64Nvme => "crc64nvme",
        ChecksumAlgorithm::Sha1 => "sha1",
        ChecksumAlgorithm::Sha256 => "sha256",
    }
}

enum State {
    Crc(crc_fast::Digest, ChecksumAlgorithm),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

/// One running checksum.
pub struct Hasher(State);

impl Hasher {
    pub fn new(alg: ChecksumAlgorithm) -> Self {
        Self(match crc_algorithm(alg) {
            Some(crc) => State::Crc(crc_fast::Digest::new(crc), alg),
            None if alg == ChecksumAlgorithm::Sha1 => State::Sha1(sha1::Sha1::new()),
            None => State::Sha256(sha2::Sha256::new()),
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            State::Crc(d, _) => d.update(data),
            State::Sha1(h) => h.update(data),
            State::Sha256(h) => h.update(data),
        }
    }

    /// The raw digest, big-endian.
    pub fn finish(self) -> Vec<u8> {
        match self.0 {
            State::Crc(d, alg) => {
                let v = d.finalize();
                v.to_be_bytes()[8 - digest_len(alg)..].to_vec()
            }
            State::Sha1(h) => h.finalize().to_vec(),
            State::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// Base64 of `data`'s digest under `alg`.
pub fn digest_b64(alg: ChecksumAlgorithm, data: &[u8]) -> String {
    let mut h = Hasher::new(alg);
    h.update(data);
    B64.encode(h.finish())
}

/// Decodes a checksum header value; checks it has the algorithm's length.
pub fn decode_digest(alg: ChecksumAlgorithm, value: &str) -> Result<Vec<u8>, S3Error> {
    let what = || format!("x-amz-checksum-{}", algorithm_name(alg));
    let raw = B64
        .decode(value.trim())
        .map_err(|_| S3Error::InvalidDigest(what()))?;
    if raw.len() != digest_len(alg) {
        return Err(S3Error::InvalidDigest(what()));
    }
    Ok(raw)
}

/// Decodes a Content-MD5 header value (base64 of 16 bytes).
pub fn decode_content_md5(value: &str) -> Result<[u8; 16], S3Error> {
    B64.decode(value.trim())
        .ok()
        .and_then(|raw| <[u8; 16]>::try_from(raw).ok())
        .ok_or_else(|| S3Error::InvalidDigest("Content-MD5".into()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The ETag of a multipart object: MD5 of the parts' binary MD5s, then `-N`.
pub fn multipart_etag(part_etags: &[&str]) -> String {
    let mut h = md5::Md5::new();
    for etag in part_etags {
        // Part ETags are our own MD5 hex; anything else is hashed as text (never panics).
        match unhex(etag) {
            Some(raw) => h.update(raw),
            None => h.update(etag.as_bytes()),
        }
    }
    format!("{}-{}", hex(&h.finalize()), part_etags.len())
}

/// The checksum of a multipart object from its parts' checksums and sizes (see module
/// docs); `None` when a part lacks one of the algorithm.
pub fn multipart_checksum(
    alg: ChecksumAlgorithm,
    parts: &[(Option<&Checksum>, u64)],
) -> Option<Checksum> {
    let mut raws = Vec::with_capacity(parts.len());
    for (c, len) in parts {
        let c = (*c).filter(|c| c.algorithm == alg)?;
        raws.push((decode_digest(alg, &c.value).ok()?, *len));
    }
    if alg == ChecksumAlgorithm::Crc64Nvme {
        let crc = crc_algorithm(alg).expect("a CRC");
        let mut whole: Option<u64> = None;
        for (raw, len) in &raws {
            let v = u64::from_be_bytes(raw.as_slice().try_into().ok()?);
            whole = Some(match whole {
                None => v,
                Some(acc) => crc_fast::checksum_combine(crc, acc, v, *len),
            });
        }
        return Some(Checksum {
            algorithm: alg,
            value: B64.encode(whole?.to_be_bytes()),
            parts: None,
        });
    }
    let mut h = Hasher::new(alg);
    for (raw, _) in &raws {
        h.update(raw);
    }
    Some(Checksum {
        algorithm: alg,
        value: B64.encode(h.finish()),
        parts: Some(parts.len() as u32),
    })
}

/// A body passing through on its way to the data path: counts it and computes its MD5
/// and, if asked, one checksum.
pub struct HashingSource<S> {
    inner: S,
    md5: md5::Md5,
    checksum: Option<(ChecksumAlgorithm, Hasher)>,
    len: u64,
}

/// What a [`HashingSource`] saw.
pub struct Digests {
    pub md5: [u8; 16],
    pub checksum: Option<Checksum>,
    pub len: u64,
}

impl<S: ByteSource> HashingSource<S> {
    pub fn new(inner: S, checksum: Option<ChecksumAlgorithm>) -> Self {
        Self {
            inner,
            md5: md5::Md5::new(),
            checksum: checksum.map(|alg| (alg, Hasher::new(alg))),
            len: 0,
        }
    }

    pub fn finish(self) -> Digests {
        Digests {
            md5: self.md5.finalize().into(),
            checksum: self.checksum.map(|(alg, h)| Checksum {
                algorithm: alg,
                value: B64.encode(h.finish()),
                parts: None,
            }),
            len: self.len,
        }
    }
}

impl<S: ByteSource> ByteSource for HashingSource<S> {
    async fn next_bytes(&mut self) -> Result<Option<Bytes>, SourceError> {
        let piece = self.inner.next_bytes().await?;
        if let Some(b) = &piece {
            self.md5.update(b);
            if let Some((_, h)) = &mut self.checksum {
                h.update(b);
            }
            self.len += b.len() as u64;
        }
        Ok(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known values from S3's documentation and the algorithms' check values.
    #[test]
    fn digests_match_known_values() {
        assert_eq!(
            digest_b64(ChecksumAlgorithm::Crc32, b"123456789"),
            "y/Q5Jg=="
        ); // 0xcbf43926
        assert_eq!(
            digest_b64(ChecksumAlgorithm::Crc32c, b"123456789"),
            "4waSgw=="
        ); // 0xe3069283
        assert_eq!(
            digest_b64(ChecksumAlgorithm::Sha256, b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(
            digest_b64(ChecksumAlgorithm::Sha1, b"abc"),
            "qZk+NkcGgWq6PiVxeFDCbJzQ2J0="
        );
        // CRC-64/NVME check value 0xae8b14860a799888.
        assert_eq!(
            decode_digest(
                ChecksumAlgorithm::Crc64Nvme,
                &digest_b64(ChecksumAlgorithm::Crc64Nvme, b"123456789")
            )
            .unwrap(),
            0xae8b_1486_0a79_9888u64.to_be_bytes()
        );
        assert!(
            decode_digest(ChecksumAlgorithm::Crc32, "AAAAAAAA").is_err(),
            "wrong length"
        );
        assert!(decode_content_md5("not base64!").is_err());
    }

    #[test]
    fn multipart_etags_and_checksums_compose_like_s3() {
        let md5 = |d: &[u8]| hex(&md5::Md5::digest(d));
        let (a, b) = (vec![1u8; 1000], vec![2u8; 700]);
        let etag = multipart_etag(&[&md5(&a), &md5(&b)]);
        let mut both = md5::Md5::digest(&a).to_vec();
        both.extend_from_slice(&md5::Md5::digest(&b));
        assert_eq!(etag, format!("{}-2", md5(&both)));

        // Full-object CRC64NVME: combining the parts' CRCs equals the CRC of the whole.
        let alg = ChecksumAlgorithm::Crc64Nvme;
        let part = |d: &[u8]| Checksum {
            algorithm: alg,
            value: digest_b64(alg, d),
            parts: None,
        };
        let (pa, pb) = (part(&a), part(&b));
        let whole = multipart_checksum(alg, &[(Some(&pa), 1000), (Some(&pb), 700)]).unwrap();
        assert_eq!(
            whole.value,
            digest_b64(alg, &[a.clone(), b.clone()].concat())
        );
        assert_eq!(whole.parts, None);

        // Composite SHA-256: the digest of the concatenated part digests, with -2.
        let alg = ChecksumAlgorithm::Sha256;
        let (sa, sb) = (
            Checksum {
                algorithm: alg,
                value: digest_b64(alg, &a),
                parts: None,
            },
            Checksum {
                algorithm: alg,
                value: digest_b64(alg, &b),
                parts: None,
            },
        );
        let composite = multipart_checksum(alg, &[(Some(&sa), 1000), (Some(&sb), 700)]).unwrap();
        let mut raw = decode_digest(alg, &sa.value).unwrap();
        raw.extend(decode_digest(alg, &sb.value).unwrap());
        assert_eq!(composite.value, digest_b64(alg, &raw));
        assert_eq!(composite.parts, Some(2));
        assert_eq!(
            multipart_checksum(alg, &[(Some(&sa), 1000), (None, 700)]),
            None
        );
    }
}
