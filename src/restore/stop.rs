//! What a restore has done so far, and the summary a stop request leaves.

use super::kubernetes::RestoreError;
use crate::engines::DbError;
use crate::interrupt::{self, Interrupted};

/// What a restore has done so far, for the summary of an interrupted one.
#[derive(Default)]
pub(crate) struct Progress {
    pub(crate) done: Vec<String>,
    pub(crate) pending: Vec<String>,
}

impl Progress {
    pub(crate) fn finish(&mut self, what: String) {
        self.pending.retain(|p| p != &what);
        self.done.push(what);
    }

    /// The stop, as an error; `err` is what the stop cut short, if anything, and `partly`
    /// what that step leaves behind.
    fn stopped(&self, err: Option<anyhow::Error>, partly: Option<&str>) -> anyhow::Error {
        let list = |v: &[String]| {
            if v.is_empty() {
                "nothing".to_string()
            } else {
                v.join(", ")
            }
        };
        let mut summary = format!(
            "restore stopped; restored: {}; not restored: {}",
            list(&self.done),
            list(&self.pending)
        );
        // What the engine did with the database it was filling.
        let kube_stop = err
            .as_ref()
            .and_then(|e| e.downcast_ref::<RestoreError>())
            .filter(|e| matches!(e, RestoreError::Stopped { .. }));
        if let Some(RestoreError::Stopped {
            at,
            applied,
            pending,
            ..
        }) = kube_stop
        {
            summary.push_str(&format!(
                "; Kubernetes objects: {applied} applied, {pending} not yet (stopped {at})"
            ));
        }
        if let Some(DbError::Abandoned { left, .. }) =
            err.as_ref().and_then(|e| e.downcast_ref::<DbError>())
        {
            summary.push_str(&format!("; {left}"));
        } else {
            if let Some(e) = &err {
                tracing::debug!(error = %format!("{e:#}"), "restore step stopped");
            }
            if let (Some(_), Some(p)) = (&err, partly) {
                summary.push_str(&format!("; {p}"));
            }
        }
        let signal = interrupt::requested().unwrap_or(interrupt::Signal::Term);
        Interrupted { signal, summary }.into()
    }

    /// An error of a step, explained by the stop request when there is one.
    pub(crate) fn step<T>(&self, r: anyhow::Result<T>, partly: Option<&str>) -> anyhow::Result<T> {
        r.map_err(|e| match interrupt::requested() {
            Some(_) => self.stopped(Some(e), partly),
            None => e,
        })
    }

    /// Between steps: stop here when asked to.
    pub(crate) fn checkpoint(&self) -> anyhow::Result<()> {
        match interrupt::requested() {
            Some(_) => Err(self.stopped(None, None)),
            None => Ok(()),
        }
    }
}
