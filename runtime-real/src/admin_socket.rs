//! `hamster server`'s admin socket: a Unix socket `admin.sock` in its data directory
//! (mode 0600, so only the user that runs the server can use it). A request is one
//! frame: a u32 length (little-endian), then the bincode of an
//! `engine::node::ClientRequest`; the answer is one frame of a `ClientResponse`. It
//! carries the same requests cluster nodes answer over mTLS, so `hamster admin` speaks
//! to both alike (`crate::admin`), key admin included (the admin HTTP API signed by the
//! root key, `crate::admin_api`, is the other way in).

use std::path::Path;

use anyhow::{Context, anyhow, bail};
use engine::node::ClientRequest;
use engine::raft::node::RaftHandle;
use engine::repair::Repair;
use engine::s3::S3;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::RealEnv;

/// The admin socket's file name in a server's data directory.
pub const ADMIN_SOCKET: &str = "admin.sock";
/// Largest admin frame either side accepts.
const FRAME_BYTES_MAX: u32 = 16 << 20;

/// Serves the admin socket of `hamster server` until the process ends.
pub fn serve_socket(
    data: &Path,
    env: RealEnv,
    raft: RaftHandle,
    repair: std::sync::Arc<Repair<RealEnv>>,
    s3: std::sync::Arc<S3<RealEnv>>,
) -> anyhow::Result<()> {
    let path = data.join(ADMIN_SOCKET);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    let listener =
        UnixListener::bind(&path).with_context(|| format!("listening on {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (env, raft, repair, s3) = (env.clone(), raft.clone(), repair.clone(), s3.clone());
            tokio::spawn(async move {
                if let Err(error) = answer(stream, &env, &raft, &repair, &s3).await {
                    tracing::warn!(%error, "admin socket request failed");
                }
            });
        }
    });
    Ok(())
}

async fn answer(
    mut stream: UnixStream,
    env: &RealEnv,
    raft: &RaftHandle,
    repair: &Repair<RealEnv>,
    s3: &S3<RealEnv>,
) -> anyhow::Result<()> {
    let request: ClientRequest = engine::wire::decode(&read_frame(&mut stream).await?)
        .ok_or_else(|| anyhow!("the request does not decode"))?;
    let response = engine::node::client_request(env, raft, Some(repair), Some(s3), request).await;
    write_frame(&mut stream, &engine::wire::encode(&response)).await
}

pub(crate) async fn read_frame(stream: &mut UnixStream) -> anyhow::Result<Vec<u8>> {
    let len = stream.read_u32_le().await?;
    if len > FRAME_BYTES_MAX {
        bail!("admin frame of {len} bytes is over the limit");
    }
    let mut buf = vec![0; len as usize];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

pub(crate) async fn write_frame(stream: &mut UnixStream, bytes: &[u8]) -> anyhow::Result<()> {
    stream.write_u32_le(bytes.len() as u32).await?;
    stream.write_all(bytes).await?;
    stream.flush().await?;
    Ok(())
}
