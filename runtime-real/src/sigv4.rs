//! SigV4 header signing for Hamster's own clients (`hamster bench`, `hamster admin
//! key`): the canonical request, the scope and the derived signing key, as AWS
//! specifies them.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The payload hash of a request whose body is not signed.
pub const UNSIGNED: &str = "UNSIGNED-PAYLOAD";

pub struct Signer {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The hex sha256 of a body, as `x-amz-content-sha256` carries it.
pub fn payload_hash(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("hmac takes any key");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

impl Signer {
    /// The headers that sign a request for `path` (already URI-safe) with `query`
    /// (already canonical) and the body whose hash is `payload` (or [`UNSIGNED`]).
    pub fn sign(
        &self,
        method: &str,
        host: &str,
        path: &str,
        query: &str,
        extra: &[(&str, String)],
        payload: &str,
    ) -> Vec<(String, String)> {
        let now = time::OffsetDateTime::now_utc();
        let date = format!(
            "{:04}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day()
        );
        let amz_date = format!(
            "{date}T{:02}{:02}{:02}Z",
            now.hour(),
            now.minute(),
            now.second()
        );
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), host.into()),
            ("x-amz-content-sha256".into(), payload.into()),
            ("x-amz-date".into(), amz_date.clone()),
        ];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        headers.sort();
        let canonical_headers: String = headers
            .iter()
            .map(|(k, v)| format!("{k}:{}\n", v.trim()))
            .collect();
        let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let signed = signed.join(";");
        let canonical =
            format!("{method}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{payload}");
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let mut key = hmac(
            format!("AWS4{}", self.secret_key).as_bytes(),
            date.as_bytes(),
        );
        for part in [self.region.as_str(), "s3", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let signature = hex(&hmac(&key, to_sign.as_bytes()));
        headers.push((
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
                self.access_key
            ),
        ));
        headers.retain(|(k, _)| k != "host");
        headers
    }
}
