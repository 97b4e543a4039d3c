//! Server-side encryption of requests: which encryption a write gets (SSE-C when it
//! gives a key; SSE-S3 when it asks for it or its bucket's default does), and the key
//! that opens a stored version's bytes. `s3::sse` has the keys and the block format;
//! `meta::encryption` what is recorded.

use crate::env::{Env, Rng};
use crate::meta::access::Setting;
use crate::meta::encryption::{self, BUCKET_ENCRYPTION, ObjectEncryption};
use crate::meta::store::MetaReader;
use crate::s3::api::Request;
use crate::s3::sse::{self, Key};
use crate::s3::types::{SseArgs, SseInfo};
use crate::s3::{S3, S3Error};

/// A write's encryption: what is recorded with its version, and the data key that
/// seals its bytes.
pub(crate) struct Sealing {
    pub record: ObjectEncryption,
    pub key: Key,
}

/// What the response headers say of bytes encrypted as `record`.
pub(crate) fn info(record: &ObjectEncryption) -> SseInfo {
    match record {
        ObjectEncryption::Managed { .. } => SseInfo::Managed,
        ObjectEncryption::Customer { key_md5, .. } => SseInfo::Customer {
            key_md5: key_md5.clone(),
        },
    }
}

fn no_master_key() -> S3Error {
    S3Error::InvalidRequest(
        "SSE-S3 needs a master key, and this server has none: start it with \
         --sse-master-key-file or HAMSTER_SSE_MASTER_KEY"
            .into(),
    )
}

fn kms() -> S3Error {
    S3Error::NotImplemented("SSE-KMS is not supported: use AES256 (SSE-S3) or SSE-C".into())
}

/// Checks a bucket default's algorithm: AES256 (SSE-S3), which needs a master key.
pub fn default_algorithm(algorithm: &str, master_key: bool) -> Result<(), S3Error> {
    match algorithm {
        sse::ALGORITHM if master_key => Ok(()),
        sse::ALGORITHM => Err(no_master_key()),
        "aws:kms" | "aws:kms:dsse" => Err(kms()),
        other => Err(S3Error::MalformedXml(format!(
            "SSEAlgorithm {other:?} is not one S3 knows"
        ))),
    }
}

/// The customer's key and its MD5 (base64) that SSE-C headers give, if they give one.
fn customer(args: &SseArgs) -> Result<Option<(Key, String)>, S3Error> {
    match (
        &args.customer_algorithm,
        &args.customer_key,
        &args.customer_key_md5,
    ) {
        (None, None, None) => Ok(None),
        (Some(alg), Some(key), Some(md5)) => sse::customer_key(alg, key, md5).map(Some),
        (None, ..) => Err(S3Error::InvalidArgument(
            "Requests specifying Server Side Encryption with Customer provided keys must \
             provide a valid encryption algorithm."
                .into(),
        )),
        (_, None, _) => Err(S3Error::InvalidArgument(
            "Requests specifying Server Side Encryption with Customer provided keys must \
             provide an appropriate secret key."
                .into(),
        )),
        (.., None) => Err(S3Error::InvalidArgument(
            "Requests specifying Server Side Encryption with Customer provided keys must \
             provide the client calculated MD5 of the secret key."
                .into(),
        )),
    }
}

/// Whether any of a request's SSE-C headers (its own or its copy source's) are given:
/// those are refused over plain HTTP, as S3 refuses them.
pub fn gives_customer_key(request: &Request) -> bool {
    let given = |a: &SseArgs| {
        a.customer_algorithm.is_some() || a.customer_key.is_some() || a.customer_key_md5.is_some()
    };
    match request {
        Request::PutObject(a) => given(&a.sse),
        Request::GetObject(a) => given(&a.sse),
        Request::HeadObject { sse, .. } | Request::GetObjectAttributes { sse, .. } => given(sse),
        Request::CopyObject(a) => given(&a.sse) || given(&a.source.sse),
        Request::CreateMultipartUpload(a) => given(&a.sse),
        Request::UploadPart(a) => given(&a.sse),
        Request::UploadPartCopy(a) => given(&a.sse) || given(&a.source.sse),
        _ => false,
    }
}

/// The refusal of SSE-C over plain HTTP.
pub fn insecure_customer_key() -> S3Error {
    S3Error::InvalidRequest(
        "Requests specifying Server Side Encryption with Customer provided keys must be made \
         over a secure connection."
            .into(),
    )
}

fn internal(e: impl std::fmt::Display) -> S3Error {
    S3Error::Internal(e.to_string())
}

/// The encryption recorded in `bucket`'s settings row `row`.
fn recorded(r: &MetaReader, bucket: &str, row: &str) -> Result<Option<ObjectEncryption>, S3Error> {
    Ok(match r.setting(bucket, row).map_err(internal)? {
        Some(Setting::Encryption(e)) => Some(e),
        _ => None,
    })
}

impl<E: Env> S3<E> {
    /// The encryption a write to `bucket` gets from its request's headers, or else the
    /// bucket's default; `None`: stored as given.
    pub(crate) fn write_sealing(
        &self,
        r: &MetaReader,
        bucket: &str,
        args: &SseArgs,
    ) -> Result<Option<Sealing>, S3Error> {
        let managed = match args.server.as_deref() {
            None => false,
            Some(sse::ALGORITHM) => true,
            Some("aws:kms" | "aws:kms:dsse") => return Err(kms()),
            Some(other) => {
                return Err(S3Error::InvalidArgument(format!(
                    "The encryption method specified is not supported: {other}"
                )));
            }
        };
        if let Some((key, key_md5)) = customer(args)? {
            if managed {
                return Err(S3Error::InvalidArgument(
                    "Server Side Encryption with Customer provided key is incompatible with \
                     the encryption method specified"
                        .into(),
                ));
            }
            let mut salt = [0u8; 32];
            self.env.rng().fill(&mut salt);
            return Ok(Some(Sealing {
                key: sse::derive(&key, &salt),
                record: ObjectEncryption::Customer { salt, key_md5 },
            }));
        }
        let by_default = || -> Result<bool, S3Error> {
            let row = r.setting(bucket, BUCKET_ENCRYPTION).map_err(internal)?;
            Ok(matches!(row, Some(Setting::BucketEncryption(_))))
        };
        if !managed && !by_default()? {
            return Ok(None);
        }
        let master = self.config.master_key.as_ref().ok_or_else(no_master_key)?;
        let (mut data, mut nonce) = ([0u8; 32], [0u8; 12]);
        self.env.rng().fill(&mut data);
        self.env.rng().fill(&mut nonce);
        Ok(Some(Sealing {
            record: ObjectEncryption::Managed {
                wrapped: sse::wrap(master, &Key(data), nonce),
            },
            key: Key(data),
        }))
    }

    /// How `bucket`'s version written at `version` is encrypted.
    pub(crate) fn version_encryption(
        &self,
        r: &MetaReader,
        bucket: &str,
        version: u64,
    ) -> Result<Option<ObjectEncryption>, S3Error> {
        recorded(r, bucket, &encryption::object_encryption(version))
    }

    /// How the parts of `bucket`'s upload `upload_id` are encrypted.
    pub(crate) fn upload_encryption(
        &self,
        r: &MetaReader,
        bucket: &str,
        upload_id: &str,
    ) -> Result<Option<ObjectEncryption>, S3Error> {
        recorded(r, bucket, &encryption::upload_encryption(upload_id))
    }

    /// Whether a request that only reads about an object (HEAD, GetObjectAttributes)
    /// gives what its encryption asks: the right SSE-C key for an SSE-C object, none
    /// for others. An SSE-S3 object's key is not unwrapped: nothing is decrypted.
    pub(crate) fn key_fits(
        &self,
        record: Option<&ObjectEncryption>,
        args: &SseArgs,
    ) -> Result<(), S3Error> {
        match record {
            Some(ObjectEncryption::Managed { .. }) if customer(args)?.is_none() => Ok(()),
            _ => self.opening_key(record, args).map(|_| ()),
        }
    }

    /// The data key of bytes encrypted as `record`, from the master key (SSE-S3) or the
    /// customer's key the request gives (SSE-C); `None` for bytes stored as given.
    pub(crate) fn opening_key(
        &self,
        record: Option<&ObjectEncryption>,
        args: &SseArgs,
    ) -> Result<Option<Key>, S3Error> {
        let given = customer(args)?;
        match (record, given) {
            (None, None) => Ok(None),
            (None | Some(ObjectEncryption::Managed { .. }), Some(_)) => {
                Err(S3Error::InvalidRequest(
                    "The encryption parameters are not applicable to this object.".into(),
                ))
            }
            (Some(ObjectEncryption::Managed { wrapped }), None) => {
                let master = self.config.master_key.as_ref().ok_or_else(|| {
                    S3Error::Internal(
                        "this object is encrypted with SSE-S3 and this server has no master \
                         key (--sse-master-key-file or HAMSTER_SSE_MASTER_KEY)"
                            .into(),
                    )
                })?;
                sse::unwrap(master, wrapped).map(Some).map_err(|e| {
                    S3Error::Internal(format!("{e}: was the server started with another one?"))
                })
            }
            (Some(ObjectEncryption::Customer { .. }), None) => Err(S3Error::InvalidRequest(
                "The object was stored using a form of Server Side Encryption. The correct \
                 parameters must be provided to retrieve the object."
                    .into(),
            )),
            (Some(ObjectEncryption::Customer { salt, key_md5 }), Some((key, md5))) => {
                if &md5 != key_md5 {
                    return Err(S3Error::AccessDenied);
                }
                Ok(Some(sse::derive(&key, salt)))
            }
        }
    }
}
