//! `hamster admin key ...`: keys and their bucket rights, through the admin HTTP API
//! (`crate::admin_api`) of any node, signed with the root key from
//! `HAMSTER_ACCESS_KEY` / `HAMSTER_SECRET_KEY`; or, like every other admin command,
//! through a cluster's admin certificate (`--config admin.toml`) or a `hamster server`'s
//! admin socket (`--data DIR`).

use anyhow::Context as _;
use clap::{Args, Subcommand};

use engine::meta::keys::Perms;
use engine::s3::keys::KeyResponse;

use crate::admin_api::{self, AdminCall, Rights};
use crate::keys::Credentials;

/// Where the admin API is and whose key signs, or the admin certificate or socket.
#[derive(Args, Debug, Clone)]
pub struct ApiTarget {
    /// The S3 endpoint of any node, e.g. http://127.0.0.1:9000 (the admin HTTP API).
    #[arg(long, env = "HAMSTER_ENDPOINT", conflicts_with_all = ["config", "data"])]
    pub endpoint: Option<String>,
    /// A cluster's admin.toml (its admin certificate) instead of the HTTP API.
    #[arg(long, conflicts_with = "data")]
    pub config: Option<std::path::PathBuf>,
    /// A `hamster server`'s data directory (its admin socket) instead of the HTTP API.
    #[arg(long)]
    pub data: Option<std::path::PathBuf>,
    /// The region signatures name (the node's --region).
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// The root access key (for the HTTP API).
    #[arg(long, env = "HAMSTER_ACCESS_KEY", hide_env_values = true)]
    pub access_key: Option<String>,
    /// The root secret key (for the HTTP API).
    #[arg(long, env = "HAMSTER_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
}

/// Rights to give or take away.
#[derive(Args, Debug, Clone, Copy)]
pub struct RightArgs {
    /// Read objects and list the bucket.
    #[arg(long)]
    pub read: bool,
    /// Write and delete objects, multipart uploads.
    #[arg(long)]
    pub write: bool,
    /// Own the bucket: delete it (and, later, configure it).
    #[arg(long)]
    pub owner: bool,
}

impl From<RightArgs> for Rights {
    fn from(r: RightArgs) -> Rights {
        Rights {
            read: r.read,
            write: r.write,
            owner: r.owner,
        }
    }
}

/// A key, a bucket and the rights to give or take.
#[derive(Args, Debug)]
pub struct GrantArgs {
    /// The access key id (HK...).
    key: String,
    /// The bucket.
    bucket: String,
    #[command(flatten)]
    rights: RightArgs,
    #[command(flatten)]
    target: ApiTarget,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create a key; prints `access key: AK` and `secret key: SK` (the secret is shown
    /// only now).
    Create {
        /// A name to know the key by (1 to 128 bytes).
        name: String,
        /// The key may not create buckets.
        #[arg(long)]
        no_create_bucket: bool,
        #[command(flatten)]
        target: ApiTarget,
    },
    /// Every key: id, number of buckets, name.
    List {
        #[command(flatten)]
        target: ApiTarget,
    },
    /// One key: name, when made, whether it may create buckets, its rights per bucket.
    Info {
        /// The access key id (HK...).
        key: String,
        #[command(flatten)]
        target: ApiTarget,
    },
    /// Delete a key: its requests are refused from now on.
    Delete {
        /// The access key id (HK...).
        key: String,
        #[command(flatten)]
        target: ApiTarget,
    },
    /// Give a key rights on a bucket.
    Allow(GrantArgs),
    /// Take rights on a bucket away from a key.
    Deny(GrantArgs),
}

impl KeyCommand {
    fn split(self) -> (AdminCall, ApiTarget) {
        match self {
            KeyCommand::Create {
                name,
                no_create_bucket,
                target,
            } => (
                AdminCall::KeyCreate {
                    name,
                    create_bucket: !no_create_bucket,
                },
                target,
            ),
            KeyCommand::List { target } => (AdminCall::KeyList, target),
            KeyCommand::Info { key, target } => (AdminCall::KeyInfo { key }, target),
            KeyCommand::Delete { key, target } => (AdminCall::KeyDelete { key }, target),
            KeyCommand::Allow(g) => (
                AdminCall::KeyAllow {
                    key: g.key,
                    bucket: g.bucket,
                    rights: g.rights.into(),
                },
                g.target,
            ),
            KeyCommand::Deny(g) => (
                AdminCall::KeyDeny {
                    key: g.key,
                    bucket: g.bucket,
                    rights: g.rights.into(),
                },
                g.target,
            ),
        }
    }

    /// Sends the command and returns what to print.
    pub async fn run(self) -> anyhow::Result<String> {
        let (call, target) = self.split();
        if target.config.is_some() || target.data.is_some() {
            let admin =
                crate::admin::Target::open(target.config.as_deref(), target.data.as_deref())
                    .await?;
            return Ok(render(&admin.keys(&call.into_request()).await?));
        }
        let Some(endpoint) = target.endpoint else {
            anyhow::bail!(
                "give --endpoint URL (or HAMSTER_ENDPOINT) with the root key, --config \
                 admin.toml or --data DIR"
            );
        };
        let (Some(access_key), Some(secret_key)) = (target.access_key, target.secret_key) else {
            anyhow::bail!(
                "the admin HTTP API is signed by the root key: set HAMSTER_ACCESS_KEY and \
                 HAMSTER_SECRET_KEY (or --access-key and --secret-key)"
            );
        };
        let root = Credentials {
            access_key,
            secret_key,
        };
        let answer = admin_api::call(&endpoint, &root, &target.region, &call)
            .await
            .with_context(|| format!("admin API at {endpoint}"))?;
        Ok(render(&answer))
    }
}

/// `hamster admin key ...`'s output for an answer.
pub fn render(answer: &KeyResponse) -> String {
    let rights = |p: &Perms| {
        let names = [(p.read, "read"), (p.write, "write"), (p.owner, "owner")];
        let on: Vec<&str> = names.iter().filter(|(b, _)| *b).map(|(_, n)| *n).collect();
        on.join(", ")
    };
    match answer {
        KeyResponse::Created {
            access_key,
            secret_key,
        } => format!("access key: {access_key}\nsecret key: {secret_key}\n"),
        KeyResponse::Keys(keys) => {
            let mut out = format!("{:<22} {:<7} {}\n", "ACCESS KEY", "BUCKETS", "NAME");
            for k in keys {
                out += &format!("{:<22} {:<7} {}\n", k.access_key, k.grants.len(), k.name);
            }
            out
        }
        KeyResponse::Info(k) => {
            let mut out = format!(
                "access key: {}\nname: {}\ncreated: {}\ncan create buckets: {}\n",
                k.access_key,
                k.name,
                crate::admin::ago(k.created_ms),
                if k.create_bucket { "yes" } else { "no" }
            );
            if k.grants.is_empty() {
                out += "buckets: none\n";
            } else {
                out += "buckets:\n";
                for (bucket, p) in &k.grants {
                    out += &format!("  {bucket}: {}\n", rights(p));
                }
            }
            out
        }
        KeyResponse::Done => "done\n".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_prints_exactly_two_lines() {
        let out = render(&KeyResponse::Created {
            access_key: "HKA".into(),
            secret_key: "S".into(),
        });
        assert_eq!(out, "access key: HKA\nsecret key: S\n");
    }
}
