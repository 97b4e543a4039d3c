//! Bucket policies, ACLs, the public access block and ownership controls: s3s's inputs
//! as the engine's `AccessRequest`s, and its answers back. ACL documents and
//! `x-amz-grant-*` headers become grants here; what they mean is the engine's.

use engine::meta::access::{Acl, Grant, Grantee, Ownership, Permission, PublicAccessBlock};
use engine::s3::api::{AccessRequest, AclInput, Request, Response};
use engine::s3::{self as es3};
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result};

use super::{Asker, Edge, s3s_error, unexpected};

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

fn malformed(why: &str) -> s3s::S3Error {
    s3s_error(es3::S3Error::MalformedAcl(why.into()))
}

fn permission(p: &str) -> S3Result<Permission> {
    Ok(match p {
        dto::Permission::READ => Permission::Read,
        dto::Permission::WRITE => Permission::Write,
        dto::Permission::READ_ACP => Permission::ReadAcp,
        dto::Permission::WRITE_ACP => Permission::WriteAcp,
        dto::Permission::FULL_CONTROL => Permission::FullControl,
        other => return Err(malformed(&format!("unknown permission {other}"))),
    })
}

fn permission_name(p: Permission) -> &'static str {
    match p {
        Permission::Read => dto::Permission::READ,
        Permission::Write => dto::Permission::WRITE,
        Permission::ReadAcp => dto::Permission::READ_ACP,
        Permission::WriteAcp => dto::Permission::WRITE_ACP,
        Permission::FullControl => dto::Permission::FULL_CONTROL,
    }
}

fn group(uri: &str) -> S3Result<Grantee> {
    match uri {
        ALL_USERS => Ok(Grantee::AllUsers),
        AUTHENTICATED_USERS => Ok(Grantee::AuthenticatedUsers),
        other => Err(malformed(&format!("unknown group {other}"))),
    }
}

/// The grantees of one `x-amz-grant-*` header: `id="..."`, `uri="..."`, comma-separated.
fn header_grantees(value: &str) -> S3Result<Vec<Grantee>> {
    value
        .split(',')
        .map(|part| {
            let (kind, v) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| malformed("a grant is id=\"...\" or uri=\"...\""))?;
            let v = v.trim().trim_matches('"');
            match kind.trim() {
                "id" => Ok(Grantee::Id(v.to_string())),
                "uri" => group(v),
                _ => Err(s3s_error(es3::S3Error::InvalidArgument(
                    "grants name an id or a group uri (email addresses are not supported)".into(),
                ))),
            }
        })
        .collect()
}

/// The grant headers of a request, in the order S3 lists them.
pub(super) struct GrantHeaders {
    pub full_control: Option<String>,
    pub read: Option<String>,
    pub read_acp: Option<String>,
    pub write: Option<String>,
    pub write_acp: Option<String>,
}

/// The ACL a request gives: a canned one, a document, or grant headers (only one kind).
pub(super) fn acl_input(
    canned: Option<&str>,
    document: Option<dto::AccessControlPolicy>,
    headers: GrantHeaders,
) -> S3Result<Option<AclInput>> {
    let mut grants = Vec::new();
    for (value, p) in [
        (headers.full_control, Permission::FullControl),
        (headers.read, Permission::Read),
        (headers.read_acp, Permission::ReadAcp),
        (headers.write, Permission::Write),
        (headers.write_acp, Permission::WriteAcp),
    ] {
        if let Some(value) = value {
            for grantee in header_grantees(&value)? {
                grants.push(Grant {
                    grantee,
                    permission: p,
                });
            }
        }
    }
    let kinds = [canned.is_some(), document.is_some(), !grants.is_empty()];
    if kinds.iter().filter(|k| **k).count() > 1 {
        return Err(s3s_error(es3::S3Error::InvalidRequest(
            "give a canned ACL, an ACL document or grant headers, not more than one".into(),
        )));
    }
    if let Some(name) = canned {
        return Ok(Some(AclInput::Canned(name.to_string())));
    }
    if let Some(doc) = document {
        for g in doc.grants.unwrap_or_default() {
            let (Some(who), Some(p)) = (g.grantee, g.permission) else {
                return Err(malformed("a grant needs a grantee and a permission"));
            };
            let grantee = match (who.type_.as_str(), who.id, who.uri) {
                (dto::Type::CANONICAL_USER, Some(id), _) => Grantee::Id(id),
                (dto::Type::GROUP, _, Some(uri)) => group(&uri)?,
                _ => return Err(malformed("a grantee is a CanonicalUser id or a Group uri")),
            };
            grants.push(Grant {
                grantee,
                permission: permission(p.as_str())?,
            });
        }
        let owner = doc.owner.and_then(|o| o.id);
        return Ok(Some(AclInput::Grants { owner, grants }));
    }
    Ok((!grants.is_empty()).then_some(AclInput::Grants {
        owner: None,
        grants,
    }))
}

impl Edge {
    /// An owner or grantee id as S3 shows it, with its display name (a key's name).
    fn named(&self, id: &str) -> (Option<String>, Option<String>) {
        let name = self.s3.key_name(id).unwrap_or_else(|| id.to_string());
        (Some(id.to_string()), Some(name))
    }

    fn acl_dto(&self, acl: &Acl) -> (dto::Owner, dto::Grants) {
        let (id, display_name) = self.named(&acl.owner);
        let owner = dto::Owner { display_name, id };
        let grants = acl
            .grants
            .iter()
            .map(|g| {
                let grantee = match &g.grantee {
                    Grantee::Id(who) => {
                        let (id, display_name) = self.named(who);
                        dto::Grantee {
                            display_name,
                            email_address: None,
                            id,
                            type_: dto::Type::from_static(dto::Type::CANONICAL_USER),
                            uri: None,
                        }
                    }
                    Grantee::AllUsers | Grantee::AuthenticatedUsers => dto::Grantee {
                        display_name: None,
                        email_address: None,
                        id: None,
                        type_: dto::Type::from_static(dto::Type::GROUP),
                        uri: Some(
                            if g.grantee == Grantee::AllUsers {
                                ALL_USERS
                            } else {
                                AUTHENTICATED_USERS
                            }
                            .into(),
                        ),
                    },
                };
                dto::Grant {
                    grantee: Some(grantee),
                    permission: Some(dto::Permission::from_static(permission_name(g.permission))),
                }
            })
            .collect();
        (owner, grants)
    }

    async fn access(
        &self,
        who: &Asker,
        bucket: String,
        request: AccessRequest,
    ) -> S3Result<Response> {
        self.respond(who, Request::Access { bucket, request }).await
    }

    pub(super) async fn bucket_policy(
        &self,
        req: S3Request<dto::GetBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::GetBucketPolicyOutput>> {
        let bucket = req.input.bucket;
        match self
            .access(asker!(req), bucket, AccessRequest::GetBucketPolicy)
            .await?
        {
            Response::Policy(policy) => Ok(S3Response::new(dto::GetBucketPolicyOutput {
                policy: Some(policy),
            })),
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn set_bucket_policy(
        &self,
        req: S3Request<dto::PutBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::PutBucketPolicyOutput>> {
        let i = req.input;
        let request = AccessRequest::PutBucketPolicy(i.policy);
        self.access(asker!(req), i.bucket, request).await?;
        Ok(S3Response::new(dto::PutBucketPolicyOutput::default()))
    }

    pub(super) async fn drop_bucket_policy(
        &self,
        req: S3Request<dto::DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketPolicyOutput>> {
        let bucket = req.input.bucket;
        self.access(asker!(req), bucket, AccessRequest::DeleteBucketPolicy)
            .await?;
        Ok(S3Response::new(dto::DeleteBucketPolicyOutput::default()))
    }

    pub(super) async fn bucket_policy_status(
        &self,
        req: S3Request<dto::GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<dto::GetBucketPolicyStatusOutput>> {
        let bucket = req.input.bucket;
        match self
            .access(asker!(req), bucket, AccessRequest::GetBucketPolicyStatus)
            .await?
        {
            Response::PolicyStatus(public) => {
                Ok(S3Response::new(dto::GetBucketPolicyStatusOutput {
                    policy_status: Some(dto::PolicyStatus {
                        is_public: Some(public),
                    }),
                }))
            }
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn bucket_acl(
        &self,
        req: S3Request<dto::GetBucketAclInput>,
    ) -> S3Result<S3Response<dto::GetBucketAclOutput>> {
        let bucket = req.input.bucket;
        match self
            .access(asker!(req), bucket, AccessRequest::GetBucketAcl)
            .await?
        {
            Response::Acl(acl) => {
                let (owner, grants) = self.acl_dto(&acl);
                Ok(S3Response::new(dto::GetBucketAclOutput {
                    grants: Some(grants),
                    owner: Some(owner),
                }))
            }
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn set_bucket_acl(
        &self,
        req: S3Request<dto::PutBucketAclInput>,
    ) -> S3Result<S3Response<dto::PutBucketAclOutput>> {
        let i = req.input;
        let headers = grant_headers!(i);
        let acl = acl_input(
            i.acl.as_ref().map(|a| a.as_str()),
            i.access_control_policy,
            headers,
        )?
        .ok_or_else(|| malformed("PutBucketAcl needs an ACL"))?;
        self.access(asker!(req), i.bucket, AccessRequest::PutBucketAcl(acl))
            .await?;
        Ok(S3Response::new(dto::PutBucketAclOutput::default()))
    }

    pub(super) async fn object_acl(
        &self,
        req: S3Request<dto::GetObjectAclInput>,
    ) -> S3Result<S3Response<dto::GetObjectAclOutput>> {
        let i = req.input;
        let request = AccessRequest::GetObjectAcl {
            key: i.key,
            version_id: i.version_id,
        };
        match self.access(asker!(req), i.bucket, request).await? {
            Response::Acl(acl) => {
                let (owner, grants) = self.acl_dto(&acl);
                Ok(S3Response::new(dto::GetObjectAclOutput {
                    grants: Some(grants),
                    owner: Some(owner),
                    request_charged: None,
                }))
            }
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn set_object_acl(
        &self,
        req: S3Request<dto::PutObjectAclInput>,
    ) -> S3Result<S3Response<dto::PutObjectAclOutput>> {
        let i = req.input;
        let headers = grant_headers!(i);
        let acl = acl_input(
            i.acl.as_ref().map(|a| a.as_str()),
            i.access_control_policy,
            headers,
        )?
        .ok_or_else(|| malformed("PutObjectAcl needs an ACL"))?;
        let request = AccessRequest::PutObjectAcl {
            key: i.key,
            version_id: i.version_id,
            acl,
        };
        self.access(asker!(req), i.bucket, request).await?;
        Ok(S3Response::new(dto::PutObjectAclOutput::default()))
    }

    pub(super) async fn public_access_block(
        &self,
        req: S3Request<dto::GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<dto::GetPublicAccessBlockOutput>> {
        let bucket = req.input.bucket;
        match self
            .access(asker!(req), bucket, AccessRequest::GetPublicAccessBlock)
            .await?
        {
            Response::PublicAccessBlock(b) => {
                Ok(S3Response::new(dto::GetPublicAccessBlockOutput {
                    public_access_block_configuration: Some(dto::PublicAccessBlockConfiguration {
                        block_public_acls: Some(b.block_public_acls),
                        block_public_policy: Some(b.block_public_policy),
                        ignore_public_acls: Some(b.ignore_public_acls),
                        restrict_public_buckets: Some(b.restrict_public_buckets),
                    }),
                }))
            }
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn set_public_access_block(
        &self,
        req: S3Request<dto::PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<dto::PutPublicAccessBlockOutput>> {
        let i = req.input;
        let c = i.public_access_block_configuration;
        let block = PublicAccessBlock {
            block_public_acls: c.block_public_acls.unwrap_or(false),
            ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
            block_public_policy: c.block_public_policy.unwrap_or(false),
            restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
        };
        let request = AccessRequest::PutPublicAccessBlock(block);
        self.access(asker!(req), i.bucket, request).await?;
        Ok(S3Response::new(dto::PutPublicAccessBlockOutput::default()))
    }

    pub(super) async fn drop_public_access_block(
        &self,
        req: S3Request<dto::DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<dto::DeletePublicAccessBlockOutput>> {
        let bucket = req.input.bucket;
        self.access(asker!(req), bucket, AccessRequest::DeletePublicAccessBlock)
            .await?;
        Ok(S3Response::new(
            dto::DeletePublicAccessBlockOutput::default(),
        ))
    }

    pub(super) async fn ownership_controls(
        &self,
        req: S3Request<dto::GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<dto::GetBucketOwnershipControlsOutput>> {
        let bucket = req.input.bucket;
        let request = AccessRequest::GetBucketOwnershipControls;
        match self.access(asker!(req), bucket, request).await? {
            Response::Ownership(o) => Ok(S3Response::new(dto::GetBucketOwnershipControlsOutput {
                ownership_controls: Some(dto::OwnershipControls {
                    rules: vec![dto::OwnershipControlsRule {
                        object_ownership: dto::ObjectOwnership::from(o.as_str().to_string()),
                    }],
                }),
            })),
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn set_ownership_controls(
        &self,
        req: S3Request<dto::PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<dto::PutBucketOwnershipControlsOutput>> {
        let i = req.input;
        let [rule] = i.ownership_controls.rules.as_slice() else {
            return Err(malformed("ownership controls have exactly one rule"));
        };
        let o = ownership(&rule.object_ownership)?;
        let request = AccessRequest::PutBucketOwnershipControls(o);
        self.access(asker!(req), i.bucket, request).await?;
        Ok(S3Response::new(
            dto::PutBucketOwnershipControlsOutput::default(),
        ))
    }

    pub(super) async fn drop_ownership_controls(
        &self,
        req: S3Request<dto::DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOwnershipControlsOutput>> {
        let bucket = req.input.bucket;
        let request = AccessRequest::DeleteBucketOwnershipControls;
        self.access(asker!(req), bucket, request).await?;
        Ok(S3Response::new(
            dto::DeleteBucketOwnershipControlsOutput::default(),
        ))
    }
}

/// An `x-amz-object-ownership` value.
pub(super) fn ownership(o: &dto::ObjectOwnership) -> S3Result<Ownership> {
    Ownership::parse(o.as_str()).ok_or_else(|| {
        s3s_error(es3::S3Error::InvalidArgument(format!(
            "{} is not an object ownership",
            o.as_str()
        )))
    })
}
