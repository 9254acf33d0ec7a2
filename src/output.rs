//! Command results on stdout: one JSON document with `--output json`, or human text.

use serde::Serialize;

/// How a command's result is written on stdout (`--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    /// Markdown, where a command has a document to print (`runbook api`); text elsewhere.
    Markdown,
}

/// Prints a command's result. In JSON mode nothing else is written to stdout.
pub fn emit<T: Serialize>(format: OutputFormat, value: &T, text: impl FnOnce(&T) -> String) {
    match format {
        OutputFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(value).expect("result serialises")
            );
        }
        OutputFormat::Text | OutputFormat::Markdown => {
            let t = text(value);
            if !t.is_empty() {
                println!("{}", t.trim_end());
            }
        }
    }
}

/// Bytes as a short human size in binary units, e.g. `1023 B`, `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn human_bytes_keeps_one_decimal_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536 * 1024), "1.5 MiB");
        assert_eq!(human_bytes(1024 * 1024 - 1), "1024.0 KiB");
        assert_eq!(human_bytes(5 << 40), "5.0 TiB");
    }
}
