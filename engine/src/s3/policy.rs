//! Bucket policies: the JSON subset clients use, parsed once when put (a malformed one
//! is `MalformedPolicy`) and evaluated per request.
//!
//! A statement applies when its principal, action and resource match the request and
//! every condition holds. Any applying Deny refuses the request whatever else allows it;
//! otherwise an applying Allow admits it; otherwise the policy says nothing (and grants
//! or ACLs decide). Supported: `Effect` Allow/Deny; `Principal`/`NotPrincipal` `*`,
//! `{"AWS": ...}` or `{"CanonicalUser": ...}` naming access key ids (or IAM user ARNs
//! ending in one); `Action`/`NotAction` and `Resource`/`NotResource` with `*` and `?`
//! wildcards (actions case-insensitive); conditions with the String, Numeric, Bool,
//! IpAddress and Null operators (and their `IfExists` forms) on `aws:SourceIp`,
//! `aws:SecureTransport`, `aws:Referer`, `aws:UserAgent`, `s3:prefix`, `s3:delimiter`,
//! `s3:max-keys`, `s3:x-amz-acl` and `s3:ExistingObjectTag/<tag>`.

use core::net::IpAddr;

use serde_json::Value;

use crate::meta::access::Tag;
use crate::s3::S3Error;

/// A parsed policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq)]
struct Statement {
    deny: bool,
    /// `None`: any principal (`*`).
    principals: Option<Vec<String>>,
    not_principal: bool,
    actions: Vec<String>,
    not_action: bool,
    resources: Vec<String>,
    not_resource: bool,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
struct Condition {
    op: Op,
    negated: bool,
    if_exists: bool,
    /// Lower case.
    key: String,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    Bool,
    IpAddress,
    Null,
}

/// What a policy says of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Deny,
    Allow,
    Silent,
}

/// One request as the policy sees it.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    /// The access key id; `None` for an anonymous caller.
    pub principal: Option<&'a str>,
    /// `s3:GetObject` etc.
    pub action: &'a str,
    /// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`.
    pub resource: &'a str,
    pub source_ip: Option<IpAddr>,
    pub secure: bool,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub prefix: Option<&'a str>,
    pub delimiter: Option<&'a str>,
    pub max_keys: Option<String>,
    pub acl: Option<&'a str>,
    /// The tags of the object the request names, for `s3:ExistingObjectTag/<key>`
    /// (read only when the policy has such a condition: [`Policy::uses_object_tags`]).
    pub tags: &'a [Tag],
}

impl Context<'_> {
    /// The value of condition key `key` (lower case), if the request has one.
    fn value(&self, key: &str) -> Option<String> {
        let s = |v: Option<&str>| v.map(str::to_string);
        match key {
            "aws:sourceip" => self.source_ip.map(|ip| ip.to_string()),
            "aws:securetransport" => Some(self.secure.to_string()),
            "aws:referer" => s(self.referer),
            "aws:useragent" => s(self.user_agent),
            "s3:prefix" => s(self.prefix),
            "s3:delimiter" => s(self.delimiter),
            "s3:max-keys" => self.max_keys.clone(),
            "s3:x-amz-acl" => s(self.acl),
            _ => {
                // Condition keys are lower case; tag keys are matched regardless of case.
                let tag = key.strip_prefix(EXISTING_OBJECT_TAG)?;
                self.tags
                    .iter()
                    .find(|t| t.key.eq_ignore_ascii_case(tag))
                    .map(|t| t.value.clone())
            }
        }
    }
}

/// S3's error for a policy it cannot take.
fn malformed(why: &str) -> S3Error {
    S3Error::MalformedPolicy(why.to_string())
}

/// The S3 actions a policy may name (patterns must match one of them).
const ACTIONS: &[&str] = &[
    "s3:AbortMultipartUpload",
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:GetBucketCORS",
    "s3:PutBucketCORS",
    "s3:DeleteBucketOwnershipControls",
    "s3:DeleteBucketPolicy",
    "s3:DeleteObject",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersion",
    "s3:DeleteObjectVersionTagging",
    "s3:GetBucketAcl",
    "s3:GetBucketLocation",
    "s3:GetBucketOwnershipControls",
    "s3:GetBucketPolicy",
    "s3:GetBucketPolicyStatus",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketTagging",
    "s3:GetBucketVersioning",
    "s3:GetObject",
    "s3:GetObjectAcl",
    "s3:GetObjectTagging",
    "s3:GetObjectVersion",
    "s3:GetObjectVersionAcl",
    "s3:GetObjectVersionTagging",
    "s3:ListAllMyBuckets",
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
    "s3:ListBucketVersions",
    "s3:ListMultipartUploadParts",
    "s3:PutBucketAcl",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketTagging",
    "s3:PutObject",
    "s3:PutObjectAcl",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionAcl",
    "s3:PutObjectVersionTagging",
    "s3:PutBucketVersioning",
    "s3:GetBucketObjectLockConfiguration",
    "s3:PutBucketObjectLockConfiguration",
    "s3:GetObjectRetention",
    "s3:PutObjectRetention",
    "s3:GetObjectLegalHold",
    "s3:PutObjectLegalHold",
    "s3:BypassGovernanceRetention",
    "s3:GetObjectAttributes",
    "s3:GetObjectVersionAttributes",
];

/// The prefix of `s3:ExistingObjectTag/<key>` condition keys, lower case.
const EXISTING_OBJECT_TAG: &str = "s3:existingobjecttag/";

const CONDITION_KEYS: &[&str] = &[
    "aws:sourceip",
    "aws:securetransport",
    "aws:referer",
    "aws:useragent",
    "s3:prefix",
    "s3:delimiter",
    "s3:max-keys",
    "s3:x-amz-acl",
];

/// `*` matches any run of characters, `?` any one.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return pattern == text;
    }
    if let Some(prefix) = pattern.strip_suffix('*')
        && !prefix.contains(['*', '?'])
    {
        return text.starts_with(prefix);
    }
    if pattern.is_ascii() && text.is_ascii() {
        return matches(pattern.as_bytes(), text.as_bytes());
    }
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    matches(&p, &t)
}

/// Wildcard matching over symbols (bytes of ASCII text, else chars), backtracking to
/// the last `*` only: linear for one star, at worst O(len(p) * len(t)).
fn matches<C: Copy + PartialEq + From<u8>>(p: &[C], t: &[C]) -> bool {
    let (star_c, any_c) = (C::from(b'*'), C::from(b'?'));
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == any_c || p[pi] == t[ti]) && p[pi] != star_c {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == star_c {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == star_c)
}

/// A string or an array of strings.
fn strings(v: &Value, what: &str) -> Result<Vec<String>, S3Error> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| malformed(&format!("{what} values must be strings")))
            })
            .collect(),
        _ => Err(malformed(&format!("{what} must be a string or a list"))),
    }
}

impl Policy {
    /// Parses and checks the policy of `bucket`.
    pub fn parse(text: &str, bucket: &str) -> Result<Policy, S3Error> {
        let doc: Value =
            serde_json::from_str(text).map_err(|_| malformed("Policies must be valid JSON"))?;
        let Value::Object(doc) = doc else {
            return Err(malformed("a policy is a JSON object"));
        };
        let mut statements = Vec::new();
        for (field, v) in &doc {
            match field.as_str() {
                "Version" => match v.as_str() {
                    Some("2012-10-17" | "2008-10-17") => {}
                    _ => return Err(malformed("The policy must contain a valid version string")),
                },
                "Id" => {}
                "Statement" => {
                    let list = match v {
                        Value::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    for s in list {
                        statements.push(Statement::parse(s, bucket)?);
                    }
                }
                other => return Err(malformed(&format!("Unknown field {other}"))),
            }
        }
        if statements.is_empty() {
            return Err(malformed("Missing required field Statement"));
        }
        Ok(Policy { statements })
    }

    /// What the policy says of `cx`: an applying Deny wins over any Allow.
    pub fn evaluate(&self, cx: &Context) -> Decision {
        let action = cx.action.to_ascii_lowercase();
        let mut decision = Decision::Silent;
        for s in &self.statements {
            if s.applies(cx, &action) {
                if s.deny {
                    return Decision::Deny;
                }
                decision = Decision::Allow;
            }
        }
        decision
    }

    /// Whether it allows anyone at all (an Allow for any principal that no source IP
    /// condition narrows), as S3's policy status and public access block judge it.
    /// Whether a condition reads the object's tags (`s3:ExistingObjectTag/<key>`).
    pub fn uses_object_tags(&self) -> bool {
        self.statements
            .iter()
            .flat_map(|s| &s.conditions)
            .any(|c| c.key.starts_with(EXISTING_OBJECT_TAG))
    }

    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            !s.deny
                && (s.principals.is_none() || s.not_principal)
                && !s.conditions.iter().any(|c| c.key == "aws:sourceip")
        })
    }
}

impl Statement {
    fn parse(v: &Value, bucket: &str) -> Result<Statement, S3Error> {
        let Value::Object(fields) = v else {
            return Err(malformed("a statement is a JSON object"));
        };
        let mut s = Statement {
            deny: false,
            principals: Some(Vec::new()),
            not_principal: false,
            actions: Vec::new(),
            not_action: false,
            resources: Vec::new(),
            not_resource: false,
            conditions: Vec::new(),
        };
        let (mut effect, mut principal, mut action, mut resource) = (false, false, false, false);
        for (field, v) in fields {
            match field.as_str() {
                "Sid" => {}
                "Effect" => {
                    effect = true;
                    s.deny = match v.as_str() {
                        Some("Allow") => false,
                        Some("Deny") => true,
                        _ => return Err(malformed("Invalid effect")),
                    };
                }
                "Principal" | "NotPrincipal" => {
                    principal = true;
                    s.not_principal = field == "NotPrincipal";
                    s.principals = principals(v)?;
                }
                "Action" | "NotAction" => {
                    action = true;
                    s.not_action = field == "NotAction";
                    // Kept in lower case: actions match case-insensitively.
                    s.actions = strings(v, "Action")?
                        .iter()
                        .map(|a| a.to_ascii_lowercase())
                        .collect();
                    for a in &s.actions {
                        let known = a == "*"
                            || ACTIONS.iter().any(|k| wildcard(a, &k.to_ascii_lowercase()));
                        if !known {
                            return Err(malformed("Policy has invalid action"));
                        }
                    }
                }
                "Resource" | "NotResource" => {
                    resource = true;
                    s.not_resource = field == "NotResource";
                    s.resources = strings(v, "Resource")?;
                    for r in &s.resources {
                        let named = r
                            .strip_prefix("arn:aws:s3:::")
                            .map(|rest| rest.split('/').next().unwrap_or(""));
                        if !named.is_some_and(|b| wildcard(b, bucket)) {
                            return Err(malformed("Policy has invalid resource"));
                        }
                    }
                }
                "Condition" => s.conditions = conditions(v)?,
                other => return Err(malformed(&format!("Unknown field {other}"))),
            }
        }
        if !(effect && principal && action && resource) {
            return Err(malformed(
                "Missing required field Effect, Principal, Action or Resource",
            ));
        }
        Ok(s)
    }

    /// Whether it applies to `cx`, whose action is `action` in lower case.
    fn applies(&self, cx: &Context, action: &str) -> bool {
        let named = match (&self.principals, cx.principal) {
            (None, _) => true,
            (Some(ids), Some(me)) => ids
                .iter()
                .any(|p| p == me || p.strip_suffix(me).is_some_and(|a| a.ends_with(":user/"))),
            (Some(_), None) => false,
        };
        let acts = self.actions.iter().any(|a| wildcard(a, action));
        let on = self.resources.iter().any(|r| wildcard(r, cx.resource));
        named != self.not_principal
            && acts != self.not_action
            && on != self.not_resource
            && self.conditions.iter().all(|c| c.holds(cx))
    }
}

/// `*`, or `{"AWS": ...}` / `{"CanonicalUser": ...}`; `None` means anyone.
fn principals(v: &Value) -> Result<Option<Vec<String>>, S3Error> {
    match v {
        Value::String(s) if s == "*" => Ok(None),
        Value::Object(m) if !m.is_empty() => {
            let mut ids = Vec::new();
            for (kind, v) in m {
                if kind != "AWS" && kind != "CanonicalUser" {
                    return Err(malformed("Invalid principal in policy"));
                }
                ids.extend(strings(v, "Principal")?);
            }
            Ok((!ids.iter().any(|i| i == "*")).then_some(ids))
        }
        _ => Err(malformed("Invalid principal in policy")),
    }
}

/// `{"Operator": {"key": value or [values]}, ...}`.
fn conditions(v: &Value) -> Result<Vec<Condition>, S3Error> {
    let Value::Object(ops) = v else {
        return Err(malformed("Condition must be an object"));
    };
    let mut out = Vec::new();
    for (name, keys) in ops {
        let bare = name
            .strip_prefix("ForAnyValue:")
            .or_else(|| name.strip_prefix("ForAllValues:"))
            .unwrap_or(name);
        let (bare, if_exists) = match bare.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (bare, false),
        };
        let (op, negated) = match bare {
            "StringEquals" => (Op::StringEquals, false),
            "StringNotEquals" => (Op::StringEquals, true),
            "StringEqualsIgnoreCase" => (Op::StringEqualsIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => (Op::StringEqualsIgnoreCase, true),
            "StringLike" => (Op::StringLike, false),
            "StringNotLike" => (Op::StringLike, true),
            "NumericEquals" => (Op::NumericEquals, false),
            "NumericNotEquals" => (Op::NumericEquals, true),
            "NumericLessThan" => (Op::NumericLessThan, false),
            "NumericLessThanEquals" => (Op::NumericLessThanEquals, false),
            "NumericGreaterThan" => (Op::NumericGreaterThan, false),
            "NumericGreaterThanEquals" => (Op::NumericGreaterThanEquals, false),
            "Bool" => (Op::Bool, false),
            "IpAddress" => (Op::IpAddress, false),
            "NotIpAddress" => (Op::IpAddress, true),
            "Null" => (Op::Null, false),
            _ => return Err(malformed(&format!("Invalid Condition type : {name}"))),
        };
        let Value::Object(keys) = keys else {
            return Err(malformed("a condition maps keys to values"));
        };
        for (key, values) in keys {
            let key = key.to_ascii_lowercase();
            if !CONDITION_KEYS.contains(&key.as_str()) && !key.starts_with(EXISTING_OBJECT_TAG) {
                return Err(malformed(&format!(
                    "Policy has an invalid condition key {key}"
                )));
            }
            let values = match values {
                Value::Bool(b) => vec![b.to_string()],
                Value::Number(n) => vec![n.to_string()],
                Value::Array(a) => a
                    .iter()
                    .map(|x| match x {
                        Value::String(s) => Ok(s.clone()),
                        Value::Bool(b) => Ok(b.to_string()),
                        Value::Number(n) => Ok(n.to_string()),
                        _ => Err(malformed("condition values are strings")),
                    })
                    .collect::<Result<_, _>>()?,
                other => strings(other, "Condition")?,
            };
            if op == Op::IpAddress && values.iter().any(|v| cidr(v).is_none()) {
                return Err(malformed("Invalid IP address or CIDR in condition"));
            }
            out.push(Condition {
                op,
                negated,
                if_exists,
                key,
                values,
            });
        }
    }
    Ok(out)
}

/// `a.b.c.d/n` or an IPv6 CIDR, or a bare address (all of its bits).
fn cidr(s: &str) -> Option<(IpAddr, u32)> {
    let (ip, bits) = match s.split_once('/') {
        Some((ip, n)) => (ip.parse::<IpAddr>().ok()?, n.parse::<u32>().ok()?),
        None => {
            let ip = s.parse::<IpAddr>().ok()?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

fn in_cidr(ip: IpAddr, net: &str) -> bool {
    let Some((net, bits)) = cidr(net) else {
        return false;
    };
    let (a, b, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let shift = width - bits;
    shift >= width || (a >> shift) == (b >> shift)
}

impl Condition {
    fn holds(&self, cx: &Context) -> bool {
        if self.op == Op::IpAddress && self.key == "aws:sourceip" {
            let Some(ip) = cx.source_ip else {
                return self.if_exists || self.negated;
            };
            return self.values.iter().any(|net| in_cidr(ip, net)) != self.negated;
        }
        let value = cx.value(&self.key);
        if self.op == Op::Null {
            // `Null: true` holds when the key is absent.
            return self.values.iter().any(|v| (v == "true") == value.is_none());
        }
        let Some(value) = value else {
            // An absent key: IfExists and negated operators hold, the rest do not.
            return self.if_exists || self.negated;
        };
        let num = |s: &str| s.parse::<f64>().ok();
        let matched = self.values.iter().any(|want| match self.op {
            Op::StringEquals => *want == value,
            Op::StringEqualsIgnoreCase => want.eq_ignore_ascii_case(&value),
            Op::StringLike => wildcard(want, &value),
            Op::Bool => want.eq_ignore_ascii_case(&value),
            Op::IpAddress => value.parse().is_ok_and(|ip| in_cidr(ip, want)),
            Op::NumericEquals
            | Op::NumericLessThan
            | Op::NumericLessThanEquals
            | Op::NumericGreaterThan
            | Op::NumericGreaterThanEquals => match (num(&value), num(want)) {
                (Some(v), Some(w)) => match self.op {
                    Op::NumericEquals => v == w,
                    Op::NumericLessThan => v < w,
                    Op::NumericLessThanEquals => v <= w,
                    Op::NumericGreaterThan => v > w,
                    _ => v >= w,
                },
                _ => false,
            },
            Op::Null => false,
        });
        matched != self.negated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx<'a>(principal: Option<&'a str>, action: &'a str, resource: &'a str) -> Context<'a> {
        Context {
            principal,
            action,
            resource,
            ..Context::default()
        }
    }

    const PUBLIC_READ: &str = r#"{
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PublicRead",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:GetObject"],
            "Resource": ["arn:aws:s3:::site/*"]
        }]
    }"#;

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(wildcard("s3:Get*", "s3:GetObject"));
        assert!(wildcard("*", ""));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "ac"));
        assert!(wildcard("arn:aws:s3:::b/*/x", "arn:aws:s3:::b/p/q/x"));
        assert!(!wildcard("arn:aws:s3:::b/*", "arn:aws:s3:::bb/k"));
        assert!(!wildcard("s3:GetObject", "s3:GetObjectAcl"));
    }

    #[test]
    fn a_public_read_policy_admits_anyone_to_get_and_nothing_else() {
        let p = Policy::parse(PUBLIC_READ, "site").unwrap();
        assert!(p.is_public());
        let obj = "arn:aws:s3:::site/img/a.png";
        assert_eq!(p.evaluate(&cx(None, "s3:GetObject", obj)), Decision::Allow);
        assert_eq!(
            p.evaluate(&cx(Some("AK"), "s3:GetObject", obj)),
            Decision::Allow
        );
        assert_eq!(p.evaluate(&cx(None, "s3:PutObject", obj)), Decision::Silent);
        let bucket = "arn:aws:s3:::site";
        assert_eq!(
            p.evaluate(&cx(None, "s3:ListBucket", bucket)),
            Decision::Silent
        );
    }

    #[test]
    fn an_explicit_deny_wins_over_any_allow() {
        let text = r#"{"Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ["AK1", "AK2"]}, "Action": "s3:*",
             "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]},
            {"Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::000000000000:user/AK2"},
             "Action": "s3:Delete*", "Resource": "arn:aws:s3:::b/*"}
        ]}"#;
        let p = Policy::parse(text, "b").unwrap();
        assert!(!p.is_public());
        let k = "arn:aws:s3:::b/k";
        assert_eq!(
            p.evaluate(&cx(Some("AK1"), "s3:DeleteObject", k)),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(&cx(Some("AK2"), "s3:DeleteObject", k)),
            Decision::Deny
        );
        assert_eq!(
            p.evaluate(&cx(Some("AK2"), "s3:getobject", k)),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(&cx(Some("AK3"), "s3:GetObject", k)),
            Decision::Silent
        );
        assert_eq!(p.evaluate(&cx(None, "s3:GetObject", k)), Decision::Silent);
    }

    #[test]
    fn conditions_hold_as_s3_evaluates_them() {
        let text = r#"{"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket",
             "Resource": "arn:aws:s3:::b",
             "Condition": {"StringLike": {"s3:prefix": ["public/*"]},
                           "NumericLessThanEquals": {"s3:max-keys": "100"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": "arn:aws:s3:::b/*",
             "Condition": {"NotIpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1"]}}},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
             "Resource": "arn:aws:s3:::b/*",
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
        ]}"#;
        let p = Policy::parse(text, "b").unwrap();
        let mut list = cx(None, "s3:ListBucket", "arn:aws:s3:::b");
        assert_eq!(p.evaluate(&list), Decision::Silent, "no prefix given");
        list.prefix = Some("public/x");
        assert_eq!(
            p.evaluate(&list),
            Decision::Silent,
            "max-keys absent: the Numeric condition fails"
        );
        list.max_keys = Some("50".into());
        assert_eq!(p.evaluate(&list), Decision::Allow);
        list.max_keys = Some("500".into());
        assert_eq!(p.evaluate(&list), Decision::Silent);

        let mut get = cx(Some("AK"), "s3:GetObject", "arn:aws:s3:::b/k");
        get.source_ip = Some("127.0.0.1".parse().unwrap());
        assert_eq!(p.evaluate(&get), Decision::Silent);
        get.source_ip = Some("10.1.2.3".parse().unwrap());
        assert_eq!(p.evaluate(&get), Decision::Deny);
        get.source_ip = Some("::1".parse().unwrap());
        assert_eq!(p.evaluate(&get), Decision::Silent);

        let mut put = cx(Some("AK"), "s3:PutObject", "arn:aws:s3:::b/k");
        put.source_ip = Some("127.0.0.1".parse().unwrap());
        assert_eq!(p.evaluate(&put), Decision::Deny, "plain HTTP");
        put.secure = true;
        assert_eq!(p.evaluate(&put), Decision::Silent);
    }

    #[test]
    fn absent_keys_fail_positive_conditions_and_pass_negated_ones() {
        let text = r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::b/*",
            "Condition": {"StringNotEquals": {"aws:Referer": "https://evil.example/"},
                          "StringEqualsIfExists": {"s3:ExistingObjectTag/class": "public"},
                          "Null": {"aws:UserAgent": "true"}}}]}"#;
        let p = Policy::parse(text, "b").unwrap();
        let mut get = cx(None, "s3:GetObject", "arn:aws:s3:::b/k");
        assert_eq!(p.evaluate(&get), Decision::Allow);
        get.referer = Some("https://evil.example/");
        assert_eq!(p.evaluate(&get), Decision::Silent);
        get.referer = None;
        get.user_agent = Some("curl");
        assert_eq!(p.evaluate(&get), Decision::Silent);
    }

    #[test]
    fn existing_object_tags_are_read_by_their_key() {
        let text = r#"{"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::b/*",
             "Condition": {"StringEquals": {"s3:ExistingObjectTag/Class": "public"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::b/*",
             "Condition": {"StringEquals": {"s3:ExistingObjectTag/hold": "yes"}}}]}"#;
        let p = Policy::parse(text, "b").unwrap();
        assert!(p.uses_object_tags());
        let tag = |k: &str, v: &str| Tag {
            key: k.into(),
            value: v.into(),
        };
        let mut get = cx(None, "s3:GetObject", "arn:aws:s3:::b/k");
        assert_eq!(p.evaluate(&get), Decision::Silent, "no tags");
        let public = [tag("other", "x"), tag("class", "public")];
        get.tags = &public;
        assert_eq!(p.evaluate(&get), Decision::Allow);
        let held = [tag("class", "public"), tag("hold", "yes")];
        get.tags = &held;
        assert_eq!(p.evaluate(&get), Decision::Deny);
        let private = [tag("class", "private")];
        get.tags = &private;
        assert_eq!(p.evaluate(&get), Decision::Silent);
        let plain = r#"{"Statement": [{"Effect": "Allow", "Principal": "*",
            "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}"#;
        assert!(!Policy::parse(plain, "b").unwrap().uses_object_tags());
    }

    #[test]
    fn malformed_policies_are_refused_with_a_reason() {
        let bad = [
            ("not json", "valid JSON"),
            ("[]", "JSON object"),
            (r#"{"Version": "2012-10-17"}"#, "Statement"),
            (r#"{"Version": "1999", "Statement": []}"#, "version"),
            (
                r#"{"Statement": {"Effect": "Maybe", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}}"#,
                "effect",
            ),
            (
                r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:Fly", "Resource": "arn:aws:s3:::b/*"}}"#,
                "action",
            ),
            (
                r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "ec2:*", "Resource": "arn:aws:s3:::b/*"}}"#,
                "action",
            ),
            (
                r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::other/*"}}"#,
                "resource",
            ),
            (
                r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}}"#,
                "Missing",
            ),
            (
                r#"{"Statement": {"Effect": "Allow", "Principal": "me", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}}"#,
                "principal",
            ),
            (
                r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*", "Condition": {"StringWeird": {"s3:prefix": "a"}}}}"#,
                "Condition type",
            ),
            (
                r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*", "Condition": {"StringEquals": {"aws:Moon": "a"}}}}"#,
                "condition key",
            ),
            (
                r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*", "Condition": {"IpAddress": {"aws:SourceIp": "300.1.1.1/8"}}}}"#,
                "IP",
            ),
            (r#"{"Statement": [], "Extra": 1}"#, "Unknown field"),
        ];
        for (text, why) in bad {
            match Policy::parse(text, "b") {
                Err(S3Error::MalformedPolicy(m)) => assert!(m.contains(why), "{text}: {m}"),
                other => panic!("{text} parsed as {other:?}"),
            }
        }
    }
}
