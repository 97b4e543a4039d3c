//! Blobs under objects and parts: storing a body (digests checked, removed on any
//! failure), committing it under a key, and opening an object's bytes for reading.

use futures::channel::mpsc;
use std::collections::BTreeMap;

use futures::{SinkExt, StreamExt};

use crate::data_path::{ByteSource, SourceError, WriteError, WriteSpec};
use crate::env::{Env, Rng};
use crate::meta::encryption::ObjectEncryption;
use crate::meta::store::MetaReader;
use crate::meta::{
    Applied, ChecksumAlgorithm, CommandV1, ContentHeaders, DataLayout, ObjectData, ObjectMeta,
    PutCondition, Stored,
};
use crate::placement;
use crate::s3::checksum::{self, HashingSource};
use crate::s3::encryption;
use crate::s3::sealed_io::{OpeningSink, SealingSource};
use crate::s3::sse::{self, Key};
use crate::s3::types::Given;
use crate::s3::types::{ObjectBody, Pieces, PutBody, PutOutput, Trailer};
use crate::s3::{
    GET_WINDOW_PIECES, PUT_BYTES_MAX, S3, S3Error, applied_error, read_error, unsealed, write_error,
};

impl<E: Env> S3<E> {
    /// Streams a body into a new blob (sealed with a key of its own from `seal`, the
    /// object's data key, when given) and checks its digests, which are of the
    /// plaintext; on any failure nothing stays. `None` for an empty body (no shards).
    pub(crate) async fn store_body<S: ByteSource, T: Trailer>(
        &self,
        body: PutBody<S>,
        trailer: &T,
        seal: Option<&Key>,
    ) -> Result<(Option<DataLayout>, checksum::Digests), S3Error> {
        if body.size > PUT_BYTES_MAX {
            return Err(S3Error::EntityTooLarge);
        }
        let expected_md5 = body
            .content_md5
            .as_deref()
            .map(checksum::decode_content_md5)
            .transpose()?;
        let algorithm = body.checksum.as_ref().map(|(a, _)| *a);
        if let Some((alg, Some(value))) = &body.checksum {
            checksum::decode_digest(*alg, value)?;
        }
        let mut source = HashingSource::new(body.source, algorithm);
        let layout = if body.size == 0 {
            match source.next_bytes().await {
                Ok(None) => None,
                Ok(Some(b)) if b.is_empty() => None,
                Ok(Some(_)) => {
                    return Err(write_error(WriteError::Body(SourceError::TooLong {
                        expected: 0,
                    })));
                }
                Err(e) => return Err(write_error(WriteError::Body(e))),
            }
        } else {
            let data_id =
                u128::from(self.env.rng().next_u64()) << 64 | u128::from(self.env.rng().next_u64());
            let size = match seal {
                Some(_) => sse::sealed_len(body.size),
                None => body.size,
            };
            let members = self.members();
            let profile =
                placement::profile_for(members.len(), size, self.config.small_blob_bytes_max);
            let holders = placement::place(&members, data_id, profile.shards())
                .expect("the ladder never asks for more shards than members");
            let spec = WriteSpec {
                data_id,
                size,
                profile,
                holders,
            };
            let written = match seal {
                Some(key) => {
                    let key = sse::blob_key(key, data_id);
                    let mut sealed = SealingSource::new(&mut source, key, body.size);
                    self.data.write_blob(&mut sealed, &spec).await
                }
                None => self.data.write_blob(&mut source, &spec).await,
            };
            Some(written.map_err(write_error)?)
        };
        let digests = source.finish();
        let verdict = self.check_digests(&digests, expected_md5, &body.checksum, trailer);
        if let Err(e) = verdict {
            if let Some(layout) = &layout {
                self.data.remove_blob(layout).await;
            }
            return Err(e);
        }
        Ok((layout, digests))
    }

    pub(crate) fn check_digests<T: Trailer>(
        &self,
        digests: &checksum::Digests,
        md5: Option<[u8; 16]>,
        asked: &Option<(ChecksumAlgorithm, Option<String>)>,
        trailer: &T,
    ) -> Result<(), S3Error> {
        if md5.is_some_and(|m| m != digests.md5) {
            return Err(S3Error::BadDigest("Content-MD5".into()));
        }
        if let Some((alg, upfront)) = asked {
            let expected = upfront.clone().or_else(|| trailer.checksum(*alg));
            let got = digests.checksum.as_ref().map(|c| c.value.as_str());
            if let Some(expected) = expected
                && Some(expected.trim()) != got
            {
                let name = checksum::algorithm_name(*alg);
                return Err(S3Error::BadDigest(format!("x-amz-checksum-{name}")));
            }
        }
        Ok(())
    }

    /// Proposes an object version for a stored blob; when the commit refuses, the blob
    /// goes (its outcome is known). A timeout leaves it to the sweep.
    pub(crate) async fn commit_object(
        &self,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        (condition, (settings, lock)): (PutCondition, Given),
        (layout, encryption): (Option<&DataLayout>, Option<ObjectEncryption>),
    ) -> Result<(u64, Option<String>), S3Error> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        let command = match (lock, encryption) {
            (lock, Some(encryption)) => CommandV1::PutObjectSealed {
                bucket,
                key,
                meta,
                condition,
                settings,
                lock,
                encryption,
            },
            (Some(lock), None) => CommandV1::PutObjectLocked {
                bucket,
                key,
                meta,
                condition,
                settings,
                lock,
            },
            (None, None) if settings.is_empty() => CommandV1::PutObject {
                bucket,
                key,
                meta,
                condition,
            },
            (None, None) => CommandV1::PutObjectWith {
                bucket,
                key,
                meta,
                condition,
                settings,
            },
        };
        match self.propose(command).await {
            Ok(applied @ (Applied::Version(_) | Applied::Versioned { .. })) => {
                if let Some(layout) = layout {
                    self.data.report_unsealed(layout);
                }
                Ok(written(&applied))
            }
            Ok(other) => {
                if let Some(layout) = layout {
                    self.data.remove_blob(layout).await;
                }
                Err(applied_error(other))
            }
            Err(e) => {
                // Refused before it was proposed: the blob can go now. When the outcome
                // is unknown it stays; the orphan sweep judges it once the log settles.
                if let Some(layout) = layout.filter(|_| !e.outcome_unknown()) {
                    self.data.remove_blob(layout).await;
                }
                Err(e)
            }
        }
    }

    /// Commits a stored body as the new version of `key` (a PUT or a copy), with the
    /// settings and lock its request gave and how it was sealed; the ETag, checksum and
    /// size come from its digests.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn commit_stored(
        &self,
        (bucket, key, condition): (&str, &str, PutCondition),
        settings: Given,
        headers: ContentHeaders,
        user_meta: BTreeMap<String, String>,
        layout: Option<DataLayout>,
        digests: checksum::Digests,
        encryption: Option<ObjectEncryption>,
    ) -> Result<PutOutput, S3Error> {
        let etag = checksum::hex(&digests.md5);
        let meta = ObjectMeta {
            size: digests.len,
            etag: etag.clone(),
            created_ms: self.now_ms(),
            headers,
            user_meta,
            checksum: digests.checksum.clone(),
            data: match &layout {
                Some(l) => ObjectData::Blob(l.clone()),
                None => ObjectData::Empty,
            },
        };
        let sse = encryption.as_ref().map(encryption::info);
        let (version, version_id) = self
            .commit_object(
                bucket,
                key,
                meta,
                (condition, settings),
                (layout.as_ref(), encryption),
            )
            .await?;
        Ok(PutOutput {
            etag,
            version,
            version_id,
            checksum: digests.checksum,
            unsealed: unsealed(layout.as_ref()),
            sse,
        })
    }

    /// `ObjectLost` when repair recorded a blob of `stored` as lost.
    pub(crate) fn must_not_be_lost(&self, r: &MetaReader, stored: &Stored) -> Result<(), S3Error> {
        for (_, layout) in self.blobs(r, stored)? {
            let lost = r
                .data_ref(layout.data_id)
                .map_err(|e| S3Error::Internal(e.to_string()))?
                .and_then(|d| d.lost);
            if let Some(mark) = lost {
                return Err(S3Error::ObjectLost(format!(
                    "only {} of the {} shards this object needs are readable; it stays lost \
                     unless the nodes holding the others come back (hamster admin lost)",
                    mark.good, mark.needed
                )));
            }
        }
        Ok(())
    }

    /// The blobs of `stored` with the object offset each starts at.
    pub(crate) fn blobs(
        &self,
        r: &MetaReader,
        stored: &Stored,
    ) -> Result<Vec<(u64, DataLayout)>, S3Error> {
        let blobs = self.plain_blobs(r, stored)?;
        Ok(blobs.into_iter().map(|(at, _, l)| (at, l)).collect())
    }

    /// The blobs of `stored` with the object offset each starts at and the plaintext
    /// bytes it holds (fewer than its own size when it is sealed).
    fn plain_blobs(
        &self,
        r: &MetaReader,
        stored: &Stored,
    ) -> Result<Vec<(u64, u64, DataLayout)>, S3Error> {
        Ok(match &stored.meta.data {
            ObjectData::Empty => Vec::new(),
            ObjectData::Blob(l) => vec![(0, stored.meta.size, l.clone())],
            ObjectData::Parts { .. } => r
                .object_parts(stored.version)
                .map_err(|e| S3Error::Internal(e.to_string()))?
                .into_iter()
                .filter_map(|p| p.info.data.map(|l| (p.offset, p.info.size, l)))
                .collect(),
        })
    }

    /// Starts streaming bytes `[start, end)` of `stored`, opened with its data key
    /// `key` when it is sealed; waits for the first piece, so that an object that
    /// cannot be read fails before any byte goes out.
    pub(crate) async fn open_body(
        &self,
        r: &MetaReader,
        stored: &Stored,
        (start, end): (u64, u64),
        key: Option<&Key>,
    ) -> Result<ObjectBody, S3Error> {
        let blobs = self.plain_blobs(r, stored)?;
        let (tx, mut rx) = mpsc::channel(GET_WINDOW_PIECES);
        let data = self.data.clone();
        let key = key.cloned();
        self.env.spawn(async move {
            let mut sink = Pieces(tx);
            for (offset, plain_len, layout) in blobs {
                let (lo, hi) = (start.max(offset), end.min(offset + plain_len));
                if lo >= hi {
                    continue;
                }
                let (lo, hi) = (lo - offset, hi - offset);
                let read = match &key {
                    None => data.read_blob(&layout, lo, hi, &mut sink).await,
                    Some(key) => {
                        let key = sse::blob_key(key, layout.data_id);
                        let (_, at) = sse::cover(lo..hi, plain_len);
                        let opener = sse::Opener::new(&key, lo..hi, plain_len);
                        let mut opening = OpeningSink::new(&mut sink, opener);
                        let read = data
                            .read_blob(&layout, at.start, at.end, &mut opening)
                            .await;
                        match (read, opening.failed.take()) {
                            (_, Some(e)) => {
                                let e = S3Error::Internal(format!("{e}: {}", layout.data_id));
                                let _ = sink.0.send(Err(e)).await;
                                return;
                            }
                            (Ok(()), None) if !opening.done() => {
                                let e = S3Error::Internal("a sealed read ended early".into());
                                let _ = sink.0.send(Err(e)).await;
                                return;
                            }
                            (read, None) => read,
                        }
                    }
                };
                if let Err(e) = read {
                    let _ = sink.0.send(Err(read_error(e))).await;
                    return;
                }
            }
        });
        let first = if start < end {
            match rx.next().await {
                Some(Ok(piece)) => Some(piece),
                Some(Err(e)) => return Err(e),
                None => return Err(S3Error::Internal("object read ended early".into())),
            }
        } else {
            None
        };
        Ok(ObjectBody { first, rx })
    }
}

/// The log index and S3 version id of a committed write.
pub(crate) fn written(applied: &Applied) -> (u64, Option<String>) {
    match applied {
        Applied::Versioned { version, null } => (
            *version,
            Some(crate::meta::versions::version_id(*version, *null)),
        ),
        Applied::Version(v) => (*v, None),
        _ => (0, None),
    }
}
