//! `kfguard export`: one snapshot as a tar archive, to a file or stdout.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context as _;
use rustic_core::{ProgressBars, ProgressType};

use super::Context;
use crate::cli::ExportArgs;
use crate::output::{emit, human_bytes};
use crate::snapshot::archive::{self, Exported};
use crate::Outcome;

/// Buffered writes: tar headers are 512 bytes each.
const WRITE_BUFFER: usize = 1024 * 1024;

pub(super) fn run(ctx: &Context, args: &ExportArgs) -> anyhow::Result<Outcome> {
    let (repo, snap, location) = ctx.open_snapshot(&args.snapshot, &[])?;
    let progress =
        crate::progress::Bars::new(ctx.global.quiet).progress(ProgressType::Bytes, "exporting");
    let to_stdout = args.out == Path::new("-");
    let exported = if to_stdout {
        let stdout = std::io::stdout();
        let out = BufWriter::with_capacity(WRITE_BUFFER, stdout.lock());
        archive::export(&repo, &snap, &location.display, out, &progress)?
    } else {
        // Written beside its destination and renamed when whole: a failed export leaves no tar
        // that looks complete.
        let dir = args
            .out
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, tmp.as_file());
        let exported = archive::export(&repo, &snap, &location.display, &mut out, &progress)?;
        out.flush()?;
        drop(out);
        tmp.persist(&args.out)
            .with_context(|| format!("cannot write {}", args.out.display()))?;
        exported
    };
    let text = |e: &Exported| {
        format!(
            "exported snapshot {} to {}: {} files, {}",
            e.snapshot,
            if to_stdout {
                "stdout".into()
            } else {
                args.out.display().to_string()
            },
            e.files,
            human_bytes(e.bytes)
        )
    };
    if to_stdout {
        // stdout carries the archive.
        eprintln!("{}", text(&exported));
    } else {
        emit(ctx.global.output, &exported, text);
    }
    Ok(Outcome::Ok)
}
