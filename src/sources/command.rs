//! A command's stdout as a source (`PATH=COMMAND`), stored under `/files/PATH`.
//!
//! The stream fails, and with it the backup, when the command exits non-zero: a dump tool that
//! dies half-way must not leave a snapshot that looks complete.

use std::io::{self, Read};
use std::process::{Child, ChildStdout, Command, Stdio};

use rustic_core::jiff::Timestamp;

use super::{check_rel_path, SourceError, FILES_ROOT};
use crate::snapshot::tree::{stream_meta, VirtualFile};

pub fn file(spec: &str, started: Timestamp) -> Result<VirtualFile, SourceError> {
    let (path, command) = spec
        .split_once('=')
        .filter(|(p, c)| !p.trim().is_empty() && !c.trim().is_empty())
        .ok_or_else(|| SourceError::BadCommandSpec(spec.into()))?;
    let path = path.trim().to_string();
    check_rel_path(&path)?;
    let command = command.to_string();
    let label = path.clone();
    Ok(VirtualFile {
        path: format!("{FILES_ROOT}/{path}"),
        meta: stream_meta(started),
        size: None,
        open: Box::new(move || {
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(&command)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()?;
            let stdout = child.stdout.take().expect("piped stdout");
            Ok(Box::new(CommandReader {
                child,
                stdout,
                label,
            }) as Box<dyn Read + Send>)
        }),
    })
}

struct CommandReader {
    child: Child,
    stdout: ChildStdout,
    label: String,
}

impl Read for CommandReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let status = self.child.wait()?;
            if !status.success() {
                return Err(io::Error::other(format!(
                    "command for `{}` failed: {status}",
                    self.label
                )));
            }
        }
        Ok(n)
    }
}

impl Drop for CommandReader {
    fn drop(&mut self) {
        // The archiver may drop a reader early on error; don't leave the process behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
