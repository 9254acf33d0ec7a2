//! Asking a person on the terminal: what the step will change, then a yes-or-no question.

use std::io::{self, BufRead, Write};

/// Writes each planned change as a `  will: ...` line, then `question [y/N] `, and reads one
/// line of answer: `y` or `yes` in any case is yes; anything else, an empty line too, is no.
pub(super) fn ask(
    planned: &[String],
    question: &str,
    mut input: impl BufRead,
    mut output: impl Write,
) -> io::Result<bool> {
    for change in planned {
        writeln!(output, "  will: {change}")?;
    }
    write!(output, "{question} [y/N] ")?;
    output.flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

#[cfg(test)]
mod tests {
    use super::ask;

    fn asked(planned: &[&str], answer: &str) -> (bool, String) {
        let planned: Vec<String> = planned.iter().map(|p| (*p).to_string()).collect();
        let mut shown = Vec::new();
        let yes = ask(&planned, "apply?", answer.as_bytes(), &mut shown).unwrap();
        (yes, String::from_utf8(shown).unwrap())
    }

    #[test]
    fn the_planned_changes_come_before_the_question() {
        let (yes, shown) = asked(
            &[
                "apply CRD notebooks.kubeflow.org",
                "scale kubeflow/ml-pipeline to 0",
            ],
            "y\n",
        );
        assert!(yes);
        assert_eq!(
            shown,
            "  will: apply CRD notebooks.kubeflow.org\n  will: scale kubeflow/ml-pipeline to 0\napply? [y/N] "
        );
    }

    #[test]
    fn only_y_or_yes_is_yes() {
        for answer in ["y\n", "Y\r\n", "yes\n", " YES \n"] {
            assert!(asked(&[], answer).0, "{answer:?}");
        }
        for answer in ["\n", "", "n\n", "no\n", "sure\n", "yy\n"] {
            assert!(!asked(&[], answer).0, "{answer:?}");
        }
        assert_eq!(asked(&[], "n\n").1, "apply? [y/N] ");
    }
}
