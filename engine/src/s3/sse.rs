//! Server-side encryption's keys and block format (`s3::encryption` uses them).
//!
//! An encrypted object's bytes are sealed block by block with AES-256-GCM under a data
//! key of its own: every [`BLOCK`] plaintext bytes become a sealed block of the same
//! bytes plus a [`TAG_LEN`]-byte tag, so a range is read from (and decrypted in) only the
//! blocks that cover it, and the shards hold ciphertext only. A block's nonce is its
//! index and whether it is the last, so blocks cannot be reordered, dropped or cut off
//! unnoticed. An empty object is one empty sealed block.
//!
//! The data key is, for SSE-S3, drawn at random and stored wrapped (sealed) under the
//! node's master key; for SSE-C, derived (HKDF-SHA256) from the customer's key and a
//! random salt stored with the object, so the customer's key is never stored: only its
//! MD5, which S3 sends back and which a later request's key must match.

use std::ops::Range;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::s3::S3Error;

/// Plaintext bytes per sealed block.
pub const BLOCK: u64 = 64 * 1024;
/// The GCM tag each block carries.
pub const TAG_LEN: u64 = 16;
/// A wrapped data key: a nonce, the sealed key and its tag.
pub const WRAPPED_LEN: usize = NONCE_LEN + 32 + TAG_LEN as usize;
/// What S3's SSE headers name as the algorithm.
pub const ALGORITHM: &str = "AES256";

/// A 256-bit key: an object's data key, the master key, or a customer's key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub [u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("a 32-byte key"))
    }
}

/// Why sealed bytes did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// The bytes, the key or the block's place are not the ones it was sealed with.
    #[error("encrypted block {0} did not authenticate")]
    Corrupt(u64),
    #[error("a wrapped data key did not unwrap (another master key?)")]
    Unwrap,
}

/// How many sealed blocks `plain_len` plaintext bytes take.
pub fn blocks(plain_len: u64) -> u64 {
    plain_len.div_ceil(BLOCK).max(1)
}

/// The stored (sealed) length of `plain_len` plaintext bytes.
pub fn sealed_len(plain_len: u64) -> u64 {
    plain_len + blocks(plain_len) * TAG_LEN
}

/// The plaintext length of `sealed` bytes ([`sealed_len`]'s inverse).
pub fn plain_len(sealed: u64) -> u64 {
    sealed - sealed.div_ceil(BLOCK + TAG_LEN).max(1) * TAG_LEN
}

/// The blocks that cover plaintext `range` of an object of `plain_len` bytes: their
/// indexes, and where they lie in the sealed bytes.
pub fn cover(range: Range<u64>, plain_len: u64) -> (Range<u64>, Range<u64>) {
    let first = range.start / BLOCK;
    let end = range
        .end
        .div_ceil(BLOCK)
        .clamp(first + 1, blocks(plain_len));
    let start = first * (BLOCK + TAG_LEN);
    let stop = (end * (BLOCK + TAG_LEN)).min(sealed_len(plain_len));
    (first..end, start..stop)
}

fn nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[3] = u8::from(last);
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Seals a body that arrives in pieces of any size into whole blocks.
pub struct Sealer {
    aead: LessSafeKey,
    /// Total plaintext bytes the body has (known from its length).
    plain_len: u64,
    next: u64,
    /// The block being filled (at most [`BLOCK`] bytes).
    pending: Vec<u8>,
}

impl Sealer {
    pub fn new(key: Key, plain_len: u64) -> Self {
        Self {
            aead: key.aead(),
            plain_len,
            next: 0,
            pending: Vec::with_capacity(BLOCK as usize),
        }
    }

    fn seal_pending(&mut self, last: bool, out: &mut Vec<u8>) {
        let from = out.len();
        out.extend_from_slice(&self.pending);
        let tag = self
            .aead
            .seal_in_place_separate_tag(nonce(self.next, last), Aad::empty(), &mut out[from..])
            .expect("a block is far below GCM's limit");
        out.extend_from_slice(tag.as_ref());
        self.pending.clear();
        self.next += 1;
    }

    /// Takes the next piece; answers the blocks it completed, sealed. A block is
    /// sealed once full, except the last, which waits for [`Sealer::finish`] (a body
    /// longer than announced seals on, and then fails there).
    pub fn push(&mut self, mut piece: &[u8]) -> Vec<u8> {
        let last = blocks(self.plain_len) - 1;
        let mut out = Vec::with_capacity(piece.len() + piece.len() / BLOCK as usize * 16 + 16);
        loop {
            let take = (BLOCK as usize - self.pending.len()).min(piece.len());
            self.pending.extend_from_slice(&piece[..take]);
            piece = &piece[take..];
            let full = self.pending.len() == BLOCK as usize;
            if !(full && (self.next < last || !piece.is_empty())) {
                return out;
            }
            self.seal_pending(self.next == last, &mut out);
        }
    }

    /// The last block, sealed; `None` if the body was not `plain_len` bytes.
    pub fn finish(mut self) -> Option<Vec<u8>> {
        let last = blocks(self.plain_len) - 1;
        if self.next != last || self.pending.len() as u64 != self.plain_len - last * BLOCK {
            return None;
        }
        let mut out = Vec::with_capacity(self.pending.len() + TAG_LEN as usize);
        self.seal_pending(true, &mut out);
        Some(out)
    }
}

/// Opens the sealed blocks that cover a plaintext range (as [`cover`] names them) as
/// they arrive in pieces of any size, and gives back exactly that range's bytes. Blocks
/// open in place, in the buffer they arrived in (copied only to join a block split
/// across pieces).
pub struct Opener {
    aead: LessSafeKey,
    /// The next block's index, and the object's last block.
    next: u64,
    last: u64,
    /// The sealed length of the object's last block.
    last_len: usize,
    /// Plaintext bytes still to skip (of the first block), and still to give.
    skip: usize,
    left: usize,
    pending: BytesMut,
}

impl Opener {
    /// For plaintext `range` of an object (or part) of `plain_len` bytes.
    pub fn new(key: &Key, range: Range<u64>, plain_len: u64) -> Self {
        let (indexes, _) = cover(range.clone(), plain_len);
        let last = blocks(plain_len) - 1;
        Self {
            aead: key.aead(),
            next: indexes.start,
            last,
            last_len: (sealed_len(plain_len) - last * (BLOCK + TAG_LEN)) as usize,
            skip: (range.start - indexes.start * BLOCK) as usize,
            left: (range.end - range.start) as usize,
            pending: BytesMut::new(),
        }
    }

    /// Takes the next sealed piece; answers the plaintext of the blocks it completed
    /// (empty when it completed none).
    pub fn push(&mut self, piece: Bytes) -> Result<Bytes, SseError> {
        if self.pending.is_empty() {
            self.pending = piece
                .try_into_mut()
                .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        } else {
            self.pending.extend_from_slice(&piece);
        }
        // Blocks open in place; their plaintext moves down over the tags, so the
        // answer is the front of the same buffer.
        let (mut at, mut opened) = (0, 0);
        loop {
            let len = if self.next == self.last {
                self.last_len
            } else {
                (BLOCK + TAG_LEN) as usize
            };
            if self.left == 0 || self.pending.len() - at < len {
                break;
            }
            let last = self.next == self.last;
            let block = &mut self.pending[at..at + len];
            let plain = self
                .aead
                .open_in_place(nonce(self.next, last), Aad::empty(), block)
                .map_err(|_| SseError::Corrupt(self.next))?
                .len();
            let from = self.skip.min(plain);
            let upto = (from + self.left).min(plain);
            self.pending.copy_within(at + from..at + upto, opened);
            opened += upto - from;
            self.left -= upto - from;
            self.skip = 0;
            self.next += 1;
            at += len;
        }
        let mut done = self.pending.split_to(at);
        done.truncate(opened);
        Ok(done.freeze())
    }

    /// Whether the whole range was given.
    pub fn done(&self) -> bool {
        self.left == 0
    }
}

/// The data key sealed under `master` with `nonce` (random, from the caller's Rng).
pub fn wrap(master: &Key, data: &Key, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
    let mut sealed = data.0.to_vec();
    master
        .aead()
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(b"hamster data key"),
            &mut sealed,
        )
        .expect("32 bytes seal");
    let mut out = nonce.to_vec();
    out.extend(sealed);
    out
}

/// A data key [`wrap`] sealed under `master`.
pub fn unwrap(master: &Key, wrapped: &[u8]) -> Result<Key, SseError> {
    if wrapped.len() != WRAPPED_LEN {
        return Err(SseError::Unwrap);
    }
    let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SseError::Unwrap)?;
    let mut buf = sealed.to_vec();
    let key = master
        .aead()
        .open_in_place(nonce, Aad::from(b"hamster data key"), &mut buf)
        .map_err(|_| SseError::Unwrap)?;
    Ok(Key(key.try_into().map_err(|_| SseError::Unwrap)?))
}

/// An object's data key from a customer's key and the object's random salt.
pub fn derive(customer: &Key, salt: &[u8; 32]) -> Key {
    hkdf(customer, salt, b"hamster sse-c")
}

/// The key that seals one blob (an object's, or one of its parts') from the object's
/// data key and the blob's id, which every write draws anew: no two blobs share a key,
/// so no (key, nonce) pair ever seals two plaintexts, even when a part is sent again.
pub fn blob_key(data: &Key, data_id: u128) -> Key {
    let mut salt = [0u8; 32];
    salt[..16].copy_from_slice(&data_id.to_be_bytes());
    hkdf(data, &salt, b"hamster blob")
}

fn hkdf(secret: &Key, salt: &[u8; 32], info: &[u8]) -> Key {
    struct Len;
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            32
        }
    }
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, salt).extract(&secret.0);
    let mut out = [0u8; 32];
    prk.expand(&[info], Len)
        .and_then(|okm| okm.fill(&mut out))
        .expect("32 bytes of HKDF-SHA256");
    Key(out)
}

/// A customer's key as SSE-C headers give it: the algorithm, the key and its MD5, both
/// base64. Answers the key and its MD5 (base64), or S3's error.
pub fn customer_key(
    algorithm: &str,
    key_b64: &str,
    md5_b64: &str,
) -> Result<(Key, String), S3Error> {
    let b64 = base64::engine::general_purpose::STANDARD;
    if algorithm != ALGORITHM {
        return Err(S3Error::InvalidArgument(
            "The encryption algorithm specified is not valid: use AES256".into(),
        ));
    }
    let key = b64
        .decode(key_b64)
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| {
            S3Error::InvalidArgument(
                "The secret key was invalid for the specified algorithm".into(),
            )
        })?;
    let md5 = b64.encode(Md5::digest(key));
    if md5 != md5_b64 {
        return Err(S3Error::InvalidArgument(
            "The calculated MD5 hash of the key did not match the hash that was provided".into(),
        ));
    }
    Ok((Key(key), md5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn seal_all(key: &Key, plain: &[u8], piece: usize) -> Vec<u8> {
        let mut s = Sealer::new(key.clone(), plain.len() as u64);
        let mut out = Vec::new();
        for p in plain.chunks(piece.max(1)) {
            out.extend(s.push(p));
        }
        out.extend(s.finish().expect("whole body"));
        out
    }

    /// Plaintext `range` of an object of `plain_len` bytes from the sealed blocks that
    /// cover it, given in one piece.
    fn open(
        key: &Key,
        sealed: &[u8],
        range: Range<u64>,
        plain_len: u64,
    ) -> Result<Vec<u8>, SseError> {
        let mut opener = Opener::new(key, range, plain_len);
        let plain = opener.push(Bytes::copy_from_slice(sealed))?;
        Ok(plain.to_vec())
    }

    #[test]
    fn any_range_opens_from_the_blocks_that_cover_it() {
        let key = Key([7; 32]);
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5] {
            let plain = body(len as usize);
            for piece in [1000, BLOCK as usize, 7 * 1024 + 3] {
                let sealed = seal_all(&key, &plain, piece);
                assert_eq!(sealed.len() as u64, sealed_len(len), "len {len}");
                assert_eq!(plain_len(sealed_len(len)), len);
                assert!(len < 16 || sealed[..16] != plain[..16]);
                for range in [
                    0..len,
                    len / 3..len,
                    0..len.min(10),
                    len.saturating_sub(1)..len,
                ] {
                    let (_, at) = cover(range.clone(), len);
                    let part = &sealed[at.start as usize..at.end as usize];
                    let want = &plain[range.start as usize..range.end as usize];
                    // Whole, and streamed in pieces of another size.
                    assert_eq!(open(&key, part, range.clone(), len), Ok(want.to_vec()));
                    let mut opener = Opener::new(&key, range.clone(), len);
                    let mut streamed = Vec::new();
                    for p in part.chunks(piece) {
                        streamed
                            .extend_from_slice(&opener.push(Bytes::copy_from_slice(p)).unwrap());
                    }
                    assert!(opener.done(), "len {len} range {range:?}");
                    assert_eq!(streamed, want);
                }
            }
        }
    }

    #[test]
    fn tampered_reordered_or_cut_blocks_and_wrong_keys_do_not_open() {
        let key = Key([1; 32]);
        let plain = body(2 * BLOCK as usize + 10);
        let sealed = seal_all(&key, &plain, 4096);
        let step = (BLOCK + TAG_LEN) as usize;
        let len = plain.len() as u64;
        let mut flipped = sealed.clone();
        flipped[5] ^= 1;
        assert_eq!(open(&key, &flipped, 0..10, len), Err(SseError::Corrupt(0)));
        // Block 0 read as block 1; the last block read as if it were not (as block 2
        // of a longer object); a wrong key.
        let block1 = BLOCK..BLOCK + 1;
        assert_eq!(
            open(&key, &sealed[..step], block1, len),
            Err(SseError::Corrupt(1))
        );
        let three = body(3 * BLOCK as usize);
        let whole = seal_all(&key, &three, 4096);
        let (last, block2) = (&whole[2 * step..], 2 * BLOCK..2 * BLOCK + 1);
        let first_of_last = three[2 * BLOCK as usize..][..1].to_vec();
        assert_eq!(
            open(&key, last, block2.clone(), 3 * BLOCK),
            Ok(first_of_last)
        );
        assert_eq!(
            open(&key, last, block2, 4 * BLOCK),
            Err(SseError::Corrupt(2))
        );
        // A block cut short opens nothing, and the range is not done.
        let mut cut = Opener::new(&key, 0..10, len);
        assert_eq!(
            cut.push(Bytes::copy_from_slice(&sealed[..step - 1])),
            Ok(Bytes::new())
        );
        assert!(!cut.done());
        assert_eq!(
            open(&Key([2; 32]), &sealed[..step], 0..1, len),
            Err(SseError::Corrupt(0))
        );
        // A body shorter or longer than announced is refused.
        let mut short = Sealer::new(key.clone(), 100);
        short.push(&[0; 99]);
        assert!(short.finish().is_none());
        let mut long = Sealer::new(key, 100);
        long.push(&[0; 101]);
        assert!(long.finish().is_none());
    }

    #[test]
    fn data_keys_wrap_under_the_master_and_derive_from_a_customer_key() {
        let (master, data) = (Key([3; 32]), Key([4; 32]));
        let wrapped = wrap(&master, &data, [9; NONCE_LEN]);
        assert_eq!(wrapped.len(), WRAPPED_LEN);
        assert_eq!(unwrap(&master, &wrapped), Ok(data.clone()));
        assert_eq!(unwrap(&Key([5; 32]), &wrapped), Err(SseError::Unwrap));
        assert!(!wrapped.windows(32).any(|w| w == data.0));

        let customer = Key([6; 32]);
        assert_eq!(derive(&customer, &[1; 32]), derive(&customer, &[1; 32]));
        assert_ne!(derive(&customer, &[1; 32]), derive(&customer, &[2; 32]));
        assert_ne!(derive(&customer, &[1; 32]), customer);
        assert_ne!(blob_key(&data, 1), blob_key(&data, 2));
        assert_ne!(blob_key(&data, 1), blob_key(&Key([5; 32]), 1));

        let b64 = base64::engine::general_purpose::STANDARD;
        let md5 = b64.encode(Md5::digest([6u8; 32]));
        let (key, echoed) = customer_key("AES256", &b64.encode([6u8; 32]), &md5).unwrap();
        assert_eq!((key, echoed), (customer, md5.clone()));
        let code = |a: &str, k: &str, m: &str| customer_key(a, k, m).unwrap_err().code();
        assert_eq!(
            code("AES128", &b64.encode([6u8; 32]), &md5),
            "InvalidArgument"
        );
        assert_eq!(
            code("AES256", &b64.encode([6u8; 16]), &md5),
            "InvalidArgument"
        );
        assert_eq!(
            code("AES256", &b64.encode([7u8; 32]), &md5),
            "InvalidArgument"
        );
    }
}
