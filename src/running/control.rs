//! The control socket of a running `jina flow`: how a command on this machine (`jina flow
//! scale`) asks the Flow to change while it serves.
//!
//! The socket is a Unix socket beside the Flow's record in the per-user runtime folder
//! (`<pid>.sock`, see `local_flows`). Only this user can use it: the folder is 0700, the
//! socket 0600, and a peer of another uid is turned away before it is read. A connection
//! carries one [`Command`] as a JSON line (at most [`MAX_LINE`] bytes, within
//! [`READ_LIMIT`]) and gets one [`Answer`] back as a JSON line.
//!
//! This module owns the socket and its messages. It must not touch the Flow: the command loop
//! of `jina flow` applies each command and answers it.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// The longest command line read.
const MAX_LINE: u64 = 4096;
/// How long a peer gets to send its command.
const READ_LIMIT: Duration = Duration::from_secs(5);

/// What a command asks of the running Flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub(crate) enum Command {
    /// Give `executor` this many replicas per shard.
    Scale { executor: String, replicas: u32 },
}

/// What the Flow says it did: a line for the user, or why it did nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Answer {
    Done(String),
    Refused(String),
}

/// Why a command did not reach the Flow or got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ControlError {
    #[error(
        "the Flow (pid {pid}) takes no commands: {path} is missing (only `jina flow` has a control socket)"
    )]
    NoSocket { pid: u32, path: PathBuf },
    #[error("the Flow's control socket {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the Flow answered something unreadable on {path}: {why}")]
    BadAnswer { path: PathBuf, why: String },
}

/// The control socket of the Flow with this pid.
pub(crate) fn socket_path(pid: u32) -> PathBuf {
    crate::local_flows::runtime_dir().join(format!("{pid}.sock"))
}

/// A bound control socket; dropping it removes the file.
pub(crate) struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

/// One command received, to be answered once.
pub(crate) struct Received {
    pub(crate) command: Command,
    stream: UnixStream,
}

impl ControlSocket {
    /// Binds this process's control socket, for this user only.
    pub(crate) fn bind() -> std::io::Result<ControlSocket> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let path = socket_path(std::process::id());
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        // A socket file left by an earlier process with this pid.
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(ControlSocket { listener, path })
    }

    /// The next well-formed command from this user. A peer of another uid, a line too long
    /// or too slow, or one that is no command is answered (or dropped) here and not returned.
    pub(crate) async fn next(&self) -> Received {
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, say: wait rather than spin; the Flow serves on.
                    tracing::warn!("control socket: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // SAFETY: getuid cannot fail.
            let own = unsafe { libc::getuid() };
            match stream.peer_cred() {
                Ok(cred) if cred.uid() == own => {}
                _ => {
                    tracing::warn!("control socket: refused a connection from another user");
                    continue;
                }
            }
            let mut stream = stream;
            match tokio::time::timeout(READ_LIMIT, read_line(&mut stream)).await {
                Ok(Ok(line)) => match serde_json::from_str::<Command>(&line) {
                    Ok(command) => return Received { command, stream },
                    Err(e) => {
                        let refused = Answer::Refused(format!("not a command: {e}"));
                        let _ = write_answer(&mut stream, &refused).await;
                    }
                },
                Ok(Err(e)) => {
                    let _ = write_answer(&mut stream, &Answer::Refused(e.to_string())).await;
                }
                Err(_) => {} // too slow: dropped
            }
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Received {
    /// Sends the answer and closes the connection.
    pub(crate) async fn answer(mut self, answer: Answer) {
        let _ = write_answer(&mut self.stream, &answer).await;
    }
}

/// One line, at most [`MAX_LINE`] bytes.
async fn read_line(stream: &mut UnixStream) -> std::io::Result<String> {
    let mut line = String::new();
    let mut reader = BufReader::new(stream.take(MAX_LINE + 1));
    reader.read_line(&mut line).await?;
    if line.len() as u64 > MAX_LINE || !line.ends_with('\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a command is one line of at most {MAX_LINE} bytes"),
        ));
    }
    Ok(line)
}

async fn write_answer(stream: &mut UnixStream, answer: &Answer) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(answer).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    stream.shutdown().await
}

/// Sends `command` to the Flow with this pid and waits for its answer (a scale waits for its
/// new copies to be ready: as long as they take).
pub(crate) async fn send(pid: u32, command: &Command) -> Result<Answer, ControlError> {
    let path = socket_path(pid);
    if !path.exists() {
        return Err(ControlError::NoSocket { pid, path });
    }
    let io = |error| ControlError::Io {
        path: path.clone(),
        error,
    };
    let mut stream = UnixStream::connect(&path).await.map_err(io)?;
    let mut line = serde_json::to_vec(command).expect("a command serializes");
    line.push(b'\n');
    stream.write_all(&line).await.map_err(io)?;
    let mut answer = String::new();
    BufReader::new(stream.take(1 << 20))
        .read_line(&mut answer)
        .await
        .map_err(io)?;
    serde_json::from_str(&answer).map_err(|e| ControlError::BadAnswer {
        path: path.clone(),
        why: match answer.is_empty() {
            true => "the Flow closed the connection without answering".into(),
            false => e.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_one_json_line_with_its_name() {
        let scale = Command::Scale {
            executor: "enc".into(),
            replicas: 3,
        };
        let text = serde_json::to_string(&scale).unwrap();
        assert_eq!(text, r#"{"command":"scale","executor":"enc","replicas":3}"#);
        assert_eq!(serde_json::from_str::<Command>(&text).unwrap(), scale);
    }
}
