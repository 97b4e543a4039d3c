//! Cross-origin resource sharing: S3's rules for a bucket's CORS configuration, the
//! answer to a browser's preflight (`OPTIONS`), and the `Access-Control-*` headers of a
//! request that carries an `Origin`.
//!
//! The configuration is a bucket setting (`meta::access::CORS`), cached with the
//! bucket's other settings (`s3::cache`). A request is matched against the rules in
//! order, as S3 does: the first rule whose origins match the `Origin`, whose methods
//! hold the method, and (for a preflight) whose headers cover every header asked for,
//! decides; with none, a preflight is refused and other requests get no CORS headers.

use crate::env::Env;
use crate::meta::access::CorsRule;
use crate::s3::policy::wildcard;
use crate::s3::{S3, S3Error};

/// Most rules a configuration may have.
pub const CORS_RULES_MAX: usize = 100;
/// The methods a rule may allow.
pub const CORS_METHODS: &[&str] = &["GET", "PUT", "HEAD", "POST", "DELETE"];

/// What a matching rule lets the browser do: the `Access-Control-*` headers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CorsAnswer {
    /// `*` for a rule that allows any origin, else the request's origin.
    pub allow_origin: String,
    /// Whether to send `Access-Control-Allow-Credentials: true` (not with `*`).
    pub allow_credentials: bool,
    pub allow_methods: Vec<String>,
    /// The headers a preflight asked for (all allowed), lower case.
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<i32>,
}

impl CorsAnswer {
    /// The response headers, in the order they are sent.
    pub fn headers(&self, preflight: bool) -> Vec<(&'static str, String)> {
        let mut out = vec![("access-control-allow-origin", self.allow_origin.clone())];
        if self.allow_credentials {
            out.push(("access-control-allow-credentials", "true".into()));
        }
        if preflight {
            out.push((
                "access-control-allow-methods",
                self.allow_methods.join(", "),
            ));
            if !self.allow_headers.is_empty() {
                out.push((
                    "access-control-allow-headers",
                    self.allow_headers.join(", "),
                ));
            }
            if let Some(age) = self.max_age_seconds {
                out.push(("access-control-max-age", age.to_string()));
            }
        }
        if !self.expose_headers.is_empty() {
            out.push((
                "access-control-expose-headers",
                self.expose_headers.join(", "),
            ));
        }
        out.push((
            "vary",
            "Origin, Access-Control-Request-Headers, Access-Control-Request-Method".into(),
        ));
        out
    }
}

fn malformed(why: &str) -> S3Error {
    S3Error::MalformedXml(format!("the CORS configuration: {why}"))
}

/// Checks a configuration against S3's rules.
pub fn validate(rules: &[CorsRule]) -> Result<(), S3Error> {
    if rules.is_empty() || rules.len() > CORS_RULES_MAX {
        return Err(malformed(&format!("1 to {CORS_RULES_MAX} rules")));
    }
    for rule in rules {
        if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
            return Err(malformed(
                "every rule names an AllowedOrigin and an AllowedMethod",
            ));
        }
        if let Some(m) = rule
            .allowed_methods
            .iter()
            .find(|m| !CORS_METHODS.contains(&m.as_str()))
        {
            return Err(S3Error::InvalidRequest(format!(
                "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
            )));
        }
        let stars = |v: &[String]| v.iter().any(|s| s.matches('*').count() > 1);
        if stars(&rule.allowed_origins) || stars(&rule.allowed_headers) {
            return Err(S3Error::InvalidRequest(
                "an AllowedOrigin or AllowedHeader can have at most one * wildcard".into(),
            ));
        }
        if rule.max_age_seconds.is_some_and(|a| a < 0) {
            return Err(malformed("MaxAgeSeconds is not negative"));
        }
    }
    Ok(())
}

/// The first rule that lets `origin` make a `method` request with `headers` (the
/// names a preflight's `Access-Control-Request-Headers` lists), and what it allows.
pub fn decide(
    rules: &[CorsRule],
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<CorsAnswer> {
    let headers: Vec<String> = headers.iter().map(|h| h.to_ascii_lowercase()).collect();
    rules.iter().find_map(|rule| {
        let origin_ok = rule.allowed_origins.iter().any(|o| wildcard(o, origin));
        let method_ok = rule.allowed_methods.iter().any(|m| m == method);
        let headers_ok = headers.iter().all(|h| {
            rule.allowed_headers
                .iter()
                .any(|a| wildcard(&a.to_ascii_lowercase(), h))
        });
        (origin_ok && method_ok && headers_ok).then(|| {
            let any = rule.allowed_origins.iter().any(|o| o == "*");
            CorsAnswer {
                allow_origin: if any { "*".into() } else { origin.into() },
                allow_credentials: !any,
                allow_methods: rule.allowed_methods.clone(),
                allow_headers: headers.clone(),
                expose_headers: rule.expose_headers.clone(),
                max_age_seconds: rule.max_age_seconds,
            }
        })
    })
}

impl<E: Env> S3<E> {
    /// A preflight of a `method` request from `origin` with `headers` to `bucket`:
    /// what the bucket's CORS configuration allows, or 403 when no rule does.
    pub(crate) async fn preflight(
        &self,
        bucket: &str,
        origin: &str,
        method: &str,
        headers: &[String],
    ) -> Result<CorsAnswer, S3Error> {
        let reader = self.reader().await?;
        let access = self.bucket_access(&reader, bucket)?;
        if access.owner.is_none() {
            return Err(S3Error::NoSuchBucket);
        }
        let refused = || S3Error::CorsForbidden;
        let rules = access.cors.as_deref().ok_or_else(refused)?;
        decide(rules, origin, method, headers).ok_or_else(refused)
    }

    /// The CORS headers of a `method` request from `origin` to `bucket`, as this
    /// node's replica knows the bucket's configuration (no round to the leader: a
    /// browser's view of a configuration change is never more than eventual).
    pub fn cors_headers(&self, bucket: &str, origin: &str, method: &str) -> Option<CorsAnswer> {
        let reader = self.raft.reader().ok()?;
        let access = self.bucket_access(&reader, bucket).ok()?;
        decide(access.cors.as_deref()?, origin, method, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        CorsRule {
            allowed_origins: v(origins),
            allowed_methods: v(methods),
            allowed_headers: v(headers),
            expose_headers: v(&["ETag"]),
            max_age_seconds: Some(600),
            ..CorsRule::default()
        }
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let rules = vec![
            rule(
                &["https://*.example.com"],
                &["GET", "PUT"],
                &["x-amz-*", "content-type"],
            ),
            rule(&["*"], &["GET"], &[]),
        ];
        let h = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let app = decide(
            &rules,
            "https://app.example.com",
            "PUT",
            &h(&["X-Amz-Date", "Content-Type"]),
        )
        .unwrap();
        assert_eq!(app.allow_origin, "https://app.example.com");
        assert!(app.allow_credentials);
        assert_eq!(app.allow_headers, h(&["x-amz-date", "content-type"]));
        assert_eq!(app.max_age_seconds, Some(600));
        // A header no rule allows: refused.
        assert_eq!(
            decide(
                &rules,
                "https://app.example.com",
                "PUT",
                &h(&["authorization"])
            ),
            None
        );
        // Another origin falls through to the public GET rule.
        let any = decide(&rules, "https://other.org", "GET", &[]).unwrap();
        assert_eq!(
            (any.allow_origin.as_str(), any.allow_credentials),
            ("*", false)
        );
        assert_eq!(decide(&rules, "https://other.org", "PUT", &[]), None);
        assert_eq!(
            decide(&rules, "https://other.org", "GET", &h(&["x-amz-date"])),
            None
        );
        let sent = app.headers(true);
        assert!(sent.contains(&("access-control-allow-methods", "GET, PUT".into())));
        assert!(sent.contains(&("access-control-max-age", "600".into())));
        assert!(
            !any.headers(false)
                .iter()
                .any(|(n, _)| *n == "access-control-allow-methods")
        );
    }

    #[test]
    fn configurations_follow_s3_rules() {
        assert!(validate(&[rule(&["*"], &["GET"], &[])]).is_ok());
        let code = |rules: &[CorsRule]| validate(rules).unwrap_err().code();
        assert_eq!(code(&[]), "MalformedXML");
        assert_eq!(code(&[rule(&[], &["GET"], &[])]), "MalformedXML");
        assert_eq!(code(&[rule(&["*"], &["PATCH"], &[])]), "InvalidRequest");
        assert_eq!(
            code(&[rule(&["https://*.*.com"], &["GET"], &[])]),
            "InvalidRequest"
        );
        let many: Vec<CorsRule> = (0..101).map(|_| rule(&["*"], &["GET"], &[])).collect();
        assert_eq!(code(&many), "MalformedXML");
    }
}
