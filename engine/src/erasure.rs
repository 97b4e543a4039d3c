//! Erasure coding: the codec behind a small trait, stripe geometry, and range maps.
//!
//! Geometry: an object of `len` bytes is cut into stripes of `k * chunk` bytes; the last
//! stripe may be shorter. A stripe of `s` bytes is split into `k` data chunks of
//! `ceil(s / k)` bytes (the last one zero-padded) and encoded into `m` parity chunks of the
//! same size. Shard `i` of an object is chunk `i` of every stripe, laid end to end, so in
//! every shard stripe `t` starts at byte `t * chunk`. An empty object has no stripes and
//! empty shards.
//!
//! Invariant: any `k` of the `k + m` shards reconstruct the object exactly (tested for
//! every choice below), and [`Geometry::map_range`] names exactly the data-shard bytes
//! that hold a byte range, in object order.

use reed_solomon_erasure::galois_8;

/// Identifies a codec in shard headers, so a future codec can read old shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[repr(u16)]
pub enum CodecId {
    /// Reed-Solomon over GF(2^8), Vandermonde-derived matrix (reed-solomon-erasure 6).
    ReedSolomonGf8 = 1,
}

impl CodecId {
    pub fn from_u16(v: u16) -> Option<Self> {
        match v {
            1 => Some(Self::ReedSolomonGf8),
            _ => None,
        }
    }
}

/// Why a codec operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// k or m out of the supported range (k >= 1, k + m <= 255).
    #[error("unsupported profile {k}+{m}")]
    BadProfile { k: u32, m: u32 },
    /// Fewer than k chunks were present.
    #[error("too few shards to reconstruct: have {have}, need {need}")]
    TooFewShards { have: usize, need: usize },
    /// Chunks of one stripe differ in length, or the wrong number was given.
    #[error("malformed stripe: {0}")]
    Malformed(&'static str),
}

/// An erasure codec for one k+m profile.
pub trait Codec: Send + Sync {
    fn id(&self) -> CodecId;
    fn data_shards(&self) -> u32;
    fn parity_shards(&self) -> u32;
    /// Fills `parity` (m chunks) from `data` (k chunks), all of one length.
    fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), CodecError>;
    /// Rebuilds, in place, every chunk whose `present` flag is false from the others
    /// (at least k of the k+m must be present). Buffers are the caller's: no allocation.
    fn reconstruct(&self, chunks: &mut [&mut [u8]], present: &[bool]) -> Result<(), CodecError>;
}

/// [`Codec::reconstruct`] for owned chunks, `None` marking the missing ones.
pub fn reconstruct_owned(
    codec: &dyn Codec,
    chunks: &mut [Option<Vec<u8>>],
) -> Result<(), CodecError> {
    let len = chunks.iter().flatten().map(Vec::len).next().unwrap_or(0);
    let present: Vec<bool> = chunks.iter().map(Option::is_some).collect();
    if present.iter().all(|&p| p) {
        return Ok(());
    }
    let mut buffers: Vec<Vec<u8>> = chunks
        .iter_mut()
        .map(|c| c.take().unwrap_or_else(|| vec![0u8; len]))
        .collect();
    let result = {
        let mut views: Vec<&mut [u8]> = buffers.iter_mut().map(Vec::as_mut_slice).collect();
        codec.reconstruct(&mut views, &present)
    };
    for (slot, (buffer, was_present)) in chunks.iter_mut().zip(buffers.into_iter().zip(&present)) {
        if *was_present || result.is_ok() {
            *slot = Some(buffer);
        }
    }
    result
}

/// Reed-Solomon with SIMD acceleration (reed-solomon-erasure's `simd-accel`).
pub struct ReedSolomon {
    k: u32,
    m: u32,
    /// `None` for m = 0: nothing to encode, and the library refuses zero parity.
    inner: Option<galois_8::ReedSolomon>,
}

impl ReedSolomon {
    pub fn new(k: u32, m: u32) -> Result<Self, CodecError> {
        if k == 0 || k + m > 255 {
            return Err(CodecError::BadProfile { k, m });
        }
        let inner = if m == 0 {
            None
        } else {
            Some(
                galois_8::ReedSolomon::new(k as usize, m as usize)
                    .map_err(|_| CodecError::BadProfile { k, m })?,
            )
        };
        Ok(Self { k, m, inner })
    }
}

impl Codec for ReedSolomon {
    fn id(&self) -> CodecId {
        CodecId::ReedSolomonGf8
    }
    fn data_shards(&self) -> u32 {
        self.k
    }
    fn parity_shards(&self) -> u32 {
        self.m
    }
    fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), CodecError> {
        if data.len() != self.k as usize || parity.len() != self.m as usize {
            return Err(CodecError::Malformed("wrong chunk count"));
        }
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        inner
            .encode_sep(data, parity)
            .map_err(|_| CodecError::Malformed("chunk lengths differ"))
    }
    fn reconstruct(&self, chunks: &mut [&mut [u8]], present: &[bool]) -> Result<(), CodecError> {
        let need = self.k as usize;
        let total = (self.k + self.m) as usize;
        if chunks.len() != total || present.len() != total {
            return Err(CodecError::Malformed("wrong chunk count"));
        }
        let have = present.iter().filter(|&&p| p).count();
        if have < need {
            return Err(CodecError::TooFewShards { have, need });
        }
        if have == total {
            return Ok(());
        }
        let inner = self.inner.as_ref().expect("m > 0 when a chunk is missing");
        let mut slices: Vec<(&mut [u8], bool)> = chunks
            .iter_mut()
            .zip(present)
            .map(|(c, &p)| (&mut **c, p))
            .collect();
        inner.reconstruct(&mut slices).map_err(|e| match e {
            reed_solomon_erasure::Error::TooFewShardsPresent => {
                CodecError::TooFewShards { have, need }
            }
            _ => CodecError::Malformed("chunk lengths differ"),
        })
    }
}

/// The shape of one object (or multipart part) under a k+m profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub k: u32,
    pub m: u32,
    pub chunk_size_bytes: u32,
    pub object_len_bytes: u64,
}

/// A slice of one data shard holding a run of object bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSlice {
    pub shard_index: u32,
    pub stripe: u64,
    pub shard_offset: u64,
    pub len: u64,
    pub object_offset: u64,
}

impl Geometry {
    pub fn new(k: u32, m: u32, chunk_size_bytes: u32, object_len_bytes: u64) -> Self {
        assert!(k >= 1 && chunk_size_bytes >= 1, "degenerate geometry");
        Self {
            k,
            m,
            chunk_size_bytes,
            object_len_bytes,
        }
    }
    pub fn stripe_size_bytes(&self) -> u64 {
        u64::from(self.k) * u64::from(self.chunk_size_bytes)
    }
    pub fn stripe_count(&self) -> u64 {
        self.object_len_bytes.div_ceil(self.stripe_size_bytes())
    }
    /// Object bytes held by `stripe` (the last one may be short).
    pub fn stripe_len(&self, stripe: u64) -> u64 {
        let start = stripe * self.stripe_size_bytes();
        assert!(start < self.object_len_bytes, "stripe out of range");
        (self.object_len_bytes - start).min(self.stripe_size_bytes())
    }
    /// Length of every chunk of `stripe`.
    pub fn chunk_len(&self, stripe: u64) -> u64 {
        self.stripe_len(stripe).div_ceil(u64::from(self.k))
    }
    /// Length of every shard file's data.
    pub fn shard_len(&self) -> u64 {
        match self.stripe_count() {
            0 => 0,
            n => (n - 1) * u64::from(self.chunk_size_bytes) + self.chunk_len(n - 1),
        }
    }
    /// Offset of `stripe`'s chunk inside every shard.
    pub fn shard_offset(&self, stripe: u64) -> u64 {
        stripe * u64::from(self.chunk_size_bytes)
    }

    /// The data-shard slices that hold object bytes `[start, end)`, in object order.
    /// Callers clamp `end` to the object length; an empty range maps to nothing.
    pub fn map_range(&self, start: u64, end: u64) -> Vec<ShardSlice> {
        assert!(
            start <= end && end <= self.object_len_bytes,
            "range out of object"
        );
        let mut slices = Vec::new();
        if start == end {
            return slices;
        }
        let stripe_size = self.stripe_size_bytes();
        for stripe in start / stripe_size..=(end - 1) / stripe_size {
            let base = stripe * stripe_size;
            let chunk = self.chunk_len(stripe);
            let stripe_end = base + self.stripe_len(stripe);
            for index in 0..u64::from(self.k) {
                let chunk_start = base + index * chunk;
                let chunk_end = (chunk_start + chunk).min(stripe_end);
                let lo = start.max(chunk_start);
                let hi = end.min(chunk_end);
                if lo < hi {
                    slices.push(ShardSlice {
                        shard_index: index as u32,
                        stripe,
                        shard_offset: self.shard_offset(stripe) + (lo - chunk_start),
                        len: hi - lo,
                        object_offset: lo,
                    });
                }
            }
        }
        slices
    }

    /// Splits one stripe's bytes into k zero-padded data chunks.
    pub fn split_stripe(&self, stripe: u64, bytes: &[u8]) -> Vec<Vec<u8>> {
        assert_eq!(bytes.len() as u64, self.stripe_len(stripe), "stripe length");
        let chunk = self.chunk_len(stripe) as usize;
        (0..self.k as usize)
            .map(|i| {
                let lo = (i * chunk).min(bytes.len());
                let hi = ((i + 1) * chunk).min(bytes.len());
                let mut c = bytes[lo..hi].to_vec();
                c.resize(chunk, 0);
                c
            })
            .collect()
    }
}

/// Encodes a stripe into its k+m chunks.
pub fn encode_stripe(
    codec: &dyn Codec,
    geometry: &Geometry,
    stripe: u64,
    bytes: &[u8],
) -> Result<Vec<Vec<u8>>, CodecError> {
    let mut chunks = geometry.split_stripe(stripe, bytes);
    let len = chunks[0].len();
    let mut parity = vec![vec![0u8; len]; geometry.m as usize];
    {
        let data: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let mut par: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        codec.encode(&data, &mut par)?;
    }
    chunks.extend(parity);
    Ok(chunks)
}

/// Encodes a whole object into k+m shard bodies (for tests, tools and the simulator;
/// the PUT path streams stripe by stripe instead).
pub fn encode_object(
    codec: &dyn Codec,
    geometry: &Geometry,
    object: &[u8],
) -> Result<Vec<Vec<u8>>, CodecError> {
    assert_eq!(
        object.len() as u64,
        geometry.object_len_bytes,
        "object length"
    );
    let total = (geometry.k + geometry.m) as usize;
    let mut shards = vec![Vec::with_capacity(geometry.shard_len() as usize); total];
    let stripe_size = geometry.stripe_size_bytes() as usize;
    for stripe in 0..geometry.stripe_count() {
        let lo = stripe as usize * stripe_size;
        let hi = lo + geometry.stripe_len(stripe) as usize;
        for (shard, chunk) in
            shards
                .iter_mut()
                .zip(encode_stripe(codec, geometry, stripe, &object[lo..hi])?)
        {
            shard.extend_from_slice(&chunk);
        }
    }
    Ok(shards)
}

/// Rebuilds an object from whole shard bodies; `None` marks a missing shard.
pub fn decode_object(
    codec: &dyn Codec,
    geometry: &Geometry,
    shards: &[Option<Vec<u8>>],
) -> Result<Vec<u8>, CodecError> {
    let total = (geometry.k + geometry.m) as usize;
    if shards.len() != total {
        return Err(CodecError::Malformed("wrong shard count"));
    }
    let shard_len = geometry.shard_len() as usize;
    if shards.iter().flatten().any(|s| s.len() != shard_len) {
        return Err(CodecError::Malformed("shard length"));
    }
    let mut object = Vec::with_capacity(geometry.object_len_bytes as usize);
    for stripe in 0..geometry.stripe_count() {
        let off = geometry.shard_offset(stripe) as usize;
        let chunk = geometry.chunk_len(stripe) as usize;
        let mut chunks: Vec<Option<Vec<u8>>> = shards
            .iter()
            .map(|s| s.as_ref().map(|s| s[off..off + chunk].to_vec()))
            .collect();
        reconstruct_owned(codec, &mut chunks)?;
        let want = geometry.stripe_len(stripe) as usize;
        let start = object.len();
        for c in chunks.into_iter().take(geometry.k as usize) {
            object.extend_from_slice(&c.expect("reconstructed"));
        }
        object.truncate(start + want);
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
        (0u32..(1 << n))
            .filter(|mask| mask.count_ones() as usize == k)
            .map(|mask| (0..n).filter(|i| mask & (1 << i) != 0).collect())
            .collect()
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Reads of a k = 1 blob use whichever replica is nearest (`DataPath::read_blob`):
    /// that needs every parity chunk to be a plain copy of the data.
    #[test]
    fn with_one_data_shard_every_parity_shard_is_a_copy() {
        for m in 1..=4 {
            let codec = ReedSolomon::new(1, m).unwrap();
            let data = pattern(1000, 7);
            let mut parity = vec![vec![0u8; 1000]; m as usize];
            let mut refs: Vec<&mut [u8]> = parity.iter_mut().map(|p| &mut p[..]).collect();
            codec.encode(&[&data], &mut refs).unwrap();
            assert!(parity.iter().all(|p| *p == data), "1+{m}");
        }
    }

    #[test]
    fn every_k_subset_reconstructs() {
        for (k, m) in [
            (1, 0),
            (1, 1),
            (1, 2),
            (2, 1),
            (2, 2),
            (3, 2),
            (4, 2),
            (8, 3),
        ] {
            let codec = ReedSolomon::new(k, m).unwrap();
            for len in [0usize, 1, 7, 64, 100, 1000] {
                let g = Geometry::new(k, m, 16, len as u64);
                let object = pattern(len, k as u8);
                let shards = encode_object(&codec, &g, &object).unwrap();
                assert!(shards.iter().all(|s| s.len() as u64 == g.shard_len()));
                for keep in subsets((k + m) as usize, k as usize) {
                    let partial: Vec<Option<Vec<u8>>> = (0..(k + m) as usize)
                        .map(|i| keep.contains(&i).then(|| shards[i].clone()))
                        .collect();
                    let back = decode_object(&codec, &g, &partial).unwrap();
                    assert_eq!(back, object, "{k}+{m} len {len} keep {keep:?}");
                }
            }
        }
    }

    #[test]
    fn fewer_than_k_is_an_error() {
        let codec = ReedSolomon::new(4, 2).unwrap();
        let g = Geometry::new(4, 2, 8, 100);
        let shards = encode_object(&codec, &g, &pattern(100, 1)).unwrap();
        let partial: Vec<Option<Vec<u8>>> =
            (0..6).map(|i| (i < 3).then(|| shards[i].clone())).collect();
        assert_eq!(
            decode_object(&codec, &g, &partial),
            Err(CodecError::TooFewShards { have: 3, need: 4 })
        );
    }

    #[test]
    fn bad_profiles_are_refused() {
        assert!(ReedSolomon::new(0, 2).is_err());
        assert!(ReedSolomon::new(200, 56).is_err());
    }

    #[test]
    fn geometry_table() {
        // (k, chunk, len) -> (stripes, shard_len)
        let cases = [
            (4, 1024, 0, 0, 0),
            (4, 1024, 1, 1, 1),
            (4, 1024, 4096, 1, 1024),
            (4, 1024, 4097, 2, 1025),
            (4, 1024, 8192, 2, 2048),
            (3, 10, 31, 2, 11),
            (1, 10, 25, 3, 25),
        ];
        for (k, chunk, len, stripes, shard_len) in cases {
            let g = Geometry::new(k, 2, chunk, len);
            assert_eq!(g.stripe_count(), stripes, "{k} {chunk} {len}");
            assert_eq!(g.shard_len(), shard_len, "{k} {chunk} {len}");
        }
    }

    /// Reads `[start, end)` back through the range map from encoded shards.
    fn read_via_map(g: &Geometry, shards: &[Vec<u8>], start: u64, end: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut next = start;
        for s in g.map_range(start, end) {
            assert_eq!(s.object_offset, next, "slices are contiguous and ordered");
            assert!(s.len > 0 && s.shard_index < g.k);
            let lo = s.shard_offset as usize;
            out.extend_from_slice(&shards[s.shard_index as usize][lo..lo + s.len as usize]);
            next += s.len;
        }
        out
    }

    #[test]
    fn range_map_is_exact_at_every_boundary() {
        let codec = ReedSolomon::new(3, 2).unwrap();
        let chunk = 8u32;
        for len in [0u64, 1, 7, 8, 23, 24, 25, 47, 48, 49, 71] {
            let g = Geometry::new(3, 2, chunk, len);
            let object = pattern(len as usize, 9);
            let shards = encode_object(&codec, &g, &object).unwrap();
            for start in 0..=len {
                for end in start..=len {
                    let got = read_via_map(&g, &shards, start, end);
                    assert_eq!(
                        got,
                        &object[start as usize..end as usize],
                        "{len} {start}..{end}"
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip_and_ranges(
            k in 1u32..6, m in 0u32..4, chunk in 1u32..40, len in 0u64..600,
            a in 0u64..600, b in 0u64..600, lost in proptest::collection::vec(0usize..10, 0..4),
        ) {
            let codec = ReedSolomon::new(k, m).unwrap();
            let g = Geometry::new(k, m, chunk, len);
            let object = pattern(len as usize, (k * 7 + m) as u8);
            let shards = encode_object(&codec, &g, &object).unwrap();
            let mut partial: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
            for i in lost.into_iter().take(m as usize) {
                partial[i % (k + m) as usize] = None;
            }
            prop_assert_eq!(decode_object(&codec, &g, &partial).unwrap(), object.clone());
            let (s, e) = (a.min(b).min(len), a.max(b).min(len));
            prop_assert_eq!(read_via_map(&g, &shards, s, e), &object[s as usize..e as usize]);
        }
    }
}
