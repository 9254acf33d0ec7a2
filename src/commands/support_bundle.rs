//! `kfguard support-bundle`: one tar.gz of what a support ticket needs, secrets redacted.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::Context;
use crate::cli::SupportBundleArgs;
use crate::output::{emit, human_bytes};
use crate::support::{self, Plan, Report};
use crate::Outcome;

pub(super) fn run(ctx: &Context, args: &SupportBundleArgs) -> anyhow::Result<Outcome> {
    let plan = Plan {
        config: ctx.config.clone(),
        log_lines: args.log_lines,
        since: args.since,
        runs: args.runs,
        secrets: ctx.config.secret_values(),
        cluster: !args.no_cluster,
        quiet: ctx.global.quiet,
    };
    let to_stdout = args.out == Path::new("-");
    let report = if to_stdout {
        let stdout = std::io::stdout().lock();
        let report = support::run(&plan, ctx.rt.handle(), BufWriter::new(stdout))?;
        // stdout holds the bundle: the summary goes to stderr.
        if !ctx.global.quiet {
            eprintln!("{}", summary(&report, "stdout").trim_end());
        }
        report
    } else {
        write_file(&plan, ctx, &args.out)?
    };
    if !to_stdout {
        emit(ctx.global.output, &report, |r| {
            summary(r, &args.out.display().to_string())
        });
    }
    if report.not_collected.is_empty() {
        Ok(Outcome::Ok)
    } else {
        Ok(Outcome::Warnings(vec![format!(
            "support bundle: {} part(s) not collected; index.json says which and why",
            report.not_collected.len()
        )]))
    }
}

/// Writes beside the target and renames at the end: a bundle cut short never takes its name.
fn write_file(plan: &Plan, ctx: &Context, out: &Path) -> anyhow::Result<Report> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let fail = |e: std::io::Error| {
        anyhow::anyhow!(
            "cannot write the support bundle {}: {e}; check that its folder exists and is writable",
            out.display()
        )
    };
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    let mut writer = BufWriter::new(tmp);
    let report = support::run(plan, ctx.rt.handle(), &mut writer)?;
    writer.flush().map_err(fail)?;
    let tmp = writer.into_inner().map_err(|e| fail(e.into_error()))?;
    tmp.persist(out).map_err(|e| fail(e.error))?;
    Ok(report)
}

fn summary(r: &Report, to: &str) -> String {
    let mut s = format!(
        "support bundle {to}: {} files, {}, {} namespace(s), {} secret value(s) hidden wherever they appear\n",
        r.files.len(),
        human_bytes(r.bytes),
        r.namespaces.len(),
        r.secret_values_known
    );
    for m in &r.not_collected {
        s.push_str(&format!("  not collected: {}: {}\n", m.what, m.error));
    }
    s
}
