//! `kfguard import`: an archive written by `export`, from a file or stdin, as a new snapshot.

use std::io::BufReader;
use std::path::Path;

use anyhow::Context as _;

use super::Context;
use crate::cli::ImportArgs;
use crate::output::{emit, human_bytes};
use crate::snapshot::archive::{self, ArchiveError};
use crate::{Outcome, Usage};

const READ_BUFFER: usize = 1024 * 1024;

pub(super) fn run(ctx: &Context, args: &ImportArgs) -> anyhow::Result<Outcome> {
    let (repo, location) = ctx.open()?;
    let imported = if args.archive == Path::new("-") {
        let input = BufReader::with_capacity(READ_BUFFER, std::io::stdin());
        archive::import(repo, &location.display, input)
    } else {
        let file = std::fs::File::open(&args.archive)
            .with_context(|| format!("cannot open {}", args.archive.display()))
            .map_err(Usage::new)?;
        archive::import(
            repo,
            &location.display,
            BufReader::with_capacity(READ_BUFFER, file),
        )
    }
    .map_err(|e| {
        let usage = e.is_usage();
        Usage::mark_if(NoSnapshot(e), |_| usage)
    })?;
    emit(ctx.global.output, &imported, |i| {
        format!(
            "imported snapshot {} of cluster {} as {}: {} files, {} ({} added)",
            i.source.id,
            i.source.hostname,
            i.id,
            i.files,
            human_bytes(i.bytes),
            human_bytes(i.bytes_added)
        )
    });
    Ok(Outcome::Ok)
}

/// Every failed import says that nothing was saved. The cause is part of the message, not a
/// `#[source]`: the error chain would print it twice.
#[derive(Debug, thiserror::Error)]
#[error("{0}; no snapshot was created")]
struct NoSnapshot(ArchiveError);
