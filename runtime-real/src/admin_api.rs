//! The admin HTTP API, on every node's S3 port (as MinIO serves its own): `POST
//! /hamster-admin/v1/keys` with the header `x-hamster-admin: v1` and a JSON body naming
//! the operation (`AdminCall`), SigV4-signed by the root key with the body's sha256 as
//! its payload hash. The answer is the engine's `KeyResponse` as JSON, or an S3 error
//! document (403 AccessDenied for any key but the root). The header keeps the route
//! from ever taking an S3 request for an object named like the path.
//!
//! This module only translates: the engine decides (`S3::keys`). The client half is
//! what `hamster admin key ...` sends (`crate::key_cli` prints the answers).

use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use engine::meta::keys::Perms;
use engine::s3::S3;
use engine::s3::keys::{KeyRequest, KeyResponse};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result};
use serde::{Deserialize, Serialize};

use crate::RealEnv;
use crate::keys::{Credentials, random_key};
use crate::s3_http::{caller_of, s3s_error};
use crate::sigv4::{Signer, payload_hash};

/// The admin API's one path.
pub const KEYS_PATH: &str = "/hamster-admin/v1/keys";
/// The header every admin request carries.
pub const ADMIN_HEADER: &str = "x-hamster-admin";
/// Largest admin request body.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// An admin request as JSON: `{"op": "key-create", "name": "app"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum AdminCall {
    KeyCreate {
        name: String,
        #[serde(default = "yes")]
        create_bucket: bool,
    },
    KeyList,
    KeyInfo {
        key: String,
    },
    KeyDelete {
        key: String,
    },
    KeyAllow {
        key: String,
        bucket: String,
        #[serde(flatten)]
        rights: Rights,
    },
    KeyDeny {
        key: String,
        bucket: String,
        #[serde(flatten)]
        rights: Rights,
    },
}

fn yes() -> bool {
    true
}

/// The rights an allow or deny names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rights {
    #[serde(default)]
    pub read: bool,
    #[serde(default)]
    pub write: bool,
    #[serde(default)]
    pub owner: bool,
}

impl From<Rights> for Perms {
    fn from(r: Rights) -> Perms {
        Perms {
            read: r.read,
            write: r.write,
            owner: r.owner,
        }
    }
}

fn grant(key: String, bucket: String, rights: Rights, allow: bool) -> KeyRequest {
    KeyRequest::Grant {
        key,
        bucket,
        perms: rights.into(),
        allow,
    }
}

/// A new key's id and secret, from the OS's randomness.
fn new_key_pair() -> (String, String) {
    let upper = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let any = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (format!("HK{}", random_key(18, upper)), random_key(40, any))
}

impl AdminCall {
    /// The engine's request (a new key's id and secret are made here).
    pub(crate) fn into_request(self) -> KeyRequest {
        match self {
            AdminCall::KeyCreate {
                name,
                create_bucket,
            } => {
                let (access_key, secret_key) = new_key_pair();
                KeyRequest::Create {
                    name,
                    create_bucket,
                    access_key,
                    secret_key,
                }
            }
            AdminCall::KeyList => KeyRequest::List,
            AdminCall::KeyInfo { key } => KeyRequest::Info { key },
            AdminCall::KeyDelete { key } => KeyRequest::Delete { key },
            AdminCall::KeyAllow {
                key,
                bucket,
                rights,
            } => grant(key, bucket, rights, true),
            AdminCall::KeyDeny {
                key,
                bucket,
                rights,
            } => grant(key, bucket, rights, false),
        }
    }
}

/// The server half: s3s checks the signature, the engine decides.
pub struct AdminRoute {
    s3: Arc<S3<RealEnv>>,
}

impl AdminRoute {
    pub fn new(s3: Arc<S3<RealEnv>>) -> Self {
        Self { s3 }
    }
}

fn malformed(why: impl std::fmt::Display) -> s3s::S3Error {
    s3s::s3_error!(InvalidRequest, "malformed admin request: {why}")
}

#[async_trait::async_trait]
impl S3Route for AdminRoute {
    fn is_match(
        &self,
        _method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        _extensions: &mut http::Extensions,
    ) -> bool {
        uri.path() == KEYS_PATH && headers.contains_key(ADMIN_HEADER)
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        if req.method != Method::POST {
            return Err(s3s::s3_error!(MethodNotAllowed, "the admin API takes POST"));
        }
        let body = req
            .input
            .store_all_limited(BODY_BYTES_MAX)
            .await
            .map_err(|e| malformed(format!("the body: {e}")))?;
        // The body is part of what the root key signs: never take an unsigned one.
        let claimed = req
            .headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok());
        if claimed != Some(payload_hash(&body).as_str()) {
            return Err(s3s::s3_error!(
                BadDigest,
                "an admin request signs its body: x-amz-content-sha256 must be its sha256"
            ));
        }
        let call: AdminCall = serde_json::from_slice(&body).map_err(malformed)?;
        let caller = caller_of(&self.s3, &req.credentials);
        let answer = self
            .s3
            .keys(&caller, call.into_request())
            .await
            .map_err(s3s_error)?;
        let json = serde_json::to_vec(&answer).map_err(|e| malformed(e.to_string()))?;
        let mut resp = S3Response::new(Body::from(Bytes::from(json)));
        resp.headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Ok(resp)
    }
}

/// The client half: sends `call` to the node at `endpoint` (http://host:port) signed
/// with the root key, and returns the engine's answer or the S3 error as an error.
pub async fn call(
    endpoint: &str,
    root: &Credentials,
    region: &str,
    call: &AdminCall,
) -> anyhow::Result<KeyResponse> {
    let uri: Uri = endpoint
        .parse()
        .with_context(|| format!("the endpoint {endpoint}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("the admin client speaks plain http (the endpoint {endpoint} is not)");
    }
    let host = uri
        .authority()
        .ok_or_else(|| anyhow!("the endpoint {endpoint} has no host"))?
        .to_string();
    let body = serde_json::to_vec(call)?;
    let signer = Signer {
        access_key: root.access_key.clone(),
        secret_key: root.secret_key.clone(),
        region: region.into(),
    };
    let extra = [(ADMIN_HEADER, "v1".to_string())];
    let headers = signer.sign("POST", &host, KEYS_PATH, "", &extra, &payload_hash(&body));
    let url = format!("{}{KEYS_PATH}", endpoint.trim_end_matches('/'));
    let mut req = http::Request::builder()
        .method("POST")
        .uri(url)
        .header(http::header::CONTENT_LENGTH, body.len());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let resp = client
        .request(req.body(Full::new(Bytes::from(body)))?)
        .await
        .with_context(|| format!("sending to {endpoint}"))?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes);
        let field = |name: &str| {
            let open = format!("<{name}>");
            let from = text.find(&open)? + open.len();
            let to = text[from..].find(&format!("</{name}>"))? + from;
            Some(text[from..to].to_string())
        };
        bail!(
            "{} ({}): {}",
            field("Code").unwrap_or_else(|| status.to_string()),
            status.as_u16(),
            field("Message").unwrap_or_default()
        );
    }
    serde_json::from_slice(&bytes).context("the answer is not the admin API's JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_plain_json() {
        let call: AdminCall = serde_json::from_str(
            r#"{"op":"key-allow","key":"HK1","bucket":"b","read":true,"owner":true}"#,
        )
        .unwrap();
        assert_eq!(
            call.into_request(),
            KeyRequest::Grant {
                key: "HK1".into(),
                bucket: "b".into(),
                perms: Perms {
                    read: true,
                    write: false,
                    owner: true
                },
                allow: true,
            }
        );
        let create: AdminCall = serde_json::from_str(r#"{"op":"key-create","name":"a"}"#).unwrap();
        assert_eq!(
            create,
            AdminCall::KeyCreate {
                name: "a".into(),
                create_bucket: true
            }
        );
        assert!(serde_json::from_str::<AdminCall>(r#"{"op":"key-drop","key":"x"}"#).is_err());
        let KeyRequest::Create {
            access_key,
            secret_key,
            ..
        } = create.into_request()
        else {
            panic!("not a create")
        };
        assert!(access_key.starts_with("HK") && access_key.len() == 20);
        assert_eq!(secret_key.len(), 40);
    }
}
