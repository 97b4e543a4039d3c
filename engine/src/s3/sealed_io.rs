//! Encryption on the data path: a body source that seals what it reads, and a piece
//! sink that opens what it is given (`s3::sse` has the block format).

use bytes::Bytes;

use crate::data_path::{ByteSource, PieceSink, SourceError};
use crate::s3::sse::{Key, Opener, Sealer, SseError};

/// A body read through [`Sealer`]: its sealed blocks, in order.
pub(crate) struct SealingSource<'a, S> {
    inner: &'a mut S,
    /// `None` once the last block went out.
    sealer: Option<Sealer>,
    plain_len: u64,
}

impl<'a, S: ByteSource> SealingSource<'a, S> {
    pub(crate) fn new(inner: &'a mut S, key: Key, plain_len: u64) -> Self {
        Self {
            inner,
            sealer: Some(Sealer::new(key, plain_len)),
            plain_len,
        }
    }
}

impl<S: ByteSource> ByteSource for SealingSource<'_, S> {
    async fn next_bytes(&mut self) -> Result<Option<Bytes>, SourceError> {
        loop {
            let Some(sealer) = self.sealer.as_mut() else {
                return Ok(None);
            };
            match self.inner.next_bytes().await? {
                Some(piece) => {
                    let sealed = sealer.push(&piece);
                    if !sealed.is_empty() {
                        return Ok(Some(Bytes::from(sealed)));
                    }
                }
                None => {
                    let sealer = self.sealer.take().expect("checked above");
                    // A body that ends early or runs on does not seal: the plaintext
                    // length is what the body announced, or nothing is stored.
                    return match sealer.finish() {
                        Some(last) => Ok(Some(Bytes::from(last))),
                        None => Err(SourceError::Failed(format!(
                            "the body was not its announced {} bytes",
                            self.plain_len
                        ))),
                    };
                }
            }
        }
    }
}

/// A sink that opens sealed pieces before it hands them on. A block that does not
/// open stops the read (`put` answers false) and is kept in `failed`.
pub(crate) struct OpeningSink<'a, P> {
    inner: &'a mut P,
    opener: Opener,
    pub(crate) failed: Option<SseError>,
}

impl<'a, P: PieceSink> OpeningSink<'a, P> {
    pub(crate) fn new(inner: &'a mut P, opener: Opener) -> Self {
        Self {
            inner,
            opener,
            failed: None,
        }
    }

    /// Whether every byte of the range was opened and handed on.
    pub(crate) fn done(&self) -> bool {
        self.opener.done()
    }
}

impl<P: PieceSink> PieceSink for OpeningSink<'_, P> {
    async fn put(&mut self, piece: Bytes) -> bool {
        match self.opener.push(piece) {
            Ok(plain) if plain.is_empty() => true,
            Ok(plain) => self.inner.put(plain).await,
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }
}
