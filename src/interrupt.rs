//! Graceful stop on SIGINT and SIGTERM (what Kubernetes sends at `activeDeadlineSeconds` or on
//! pod deletion).
//!
//! The first signal only raises a process-wide flag: commands that write (backup, restore,
//! forget, init) check it between steps, and the snapshot tree's readers check it between
//! reads, so the current write is finished or abandoned, a partial snapshot is never
//! published, and the command reports what was and was not saved. Commands that only read
//! stop at once. A second signal stops at once in every case. The exit code is 128 + the
//! signal's number: 130 for SIGINT, 143 for SIGTERM.

use std::sync::atomic::{AtomicU8, Ordering};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

/// A stop request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int = 2,
    Term = 15,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }

    /// 128 + the signal number, as a shell reports a process killed by it.
    pub fn exit_code(self) -> i32 {
        128 + self as i32
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A command stopped by a signal; `summary` says what was and was not saved.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by {signal}: {summary}")]
pub struct Interrupted {
    pub signal: Signal,
    pub summary: String,
}

static RECEIVED: AtomicU8 = AtomicU8::new(0);
static NOTIFY: Notify = Notify::const_new();

/// The signal received, if any.
pub fn requested() -> Option<Signal> {
    match RECEIVED.load(Ordering::SeqCst) {
        2 => Some(Signal::Int),
        15 => Some(Signal::Term),
        _ => None,
    }
}

/// `Err` once a signal was received; `summary` says what is saved at this point.
pub fn check(summary: impl FnOnce() -> String) -> Result<(), Interrupted> {
    match requested() {
        Some(signal) => Err(Interrupted {
            signal,
            summary: summary(),
        }),
        None => Ok(()),
    }
}

/// Resolves when a signal is received (at once if one already was): race a cancellable
/// future against it with `tokio::select!`.
pub async fn wait() -> Signal {
    loop {
        // Created before the check: `notify_waiters` reaches it even before its first poll.
        let notified = NOTIFY.notified();
        if let Some(s) = requested() {
            return s;
        }
        notified.await;
    }
}

/// An I/O error for a read cut short by a signal (not `ErrorKind::Interrupted`, which
/// readers retry).
pub fn io_error(signal: Signal) -> std::io::Error {
    std::io::Error::other(format!("interrupted by {signal}"))
}

/// Listens for SIGINT and SIGTERM from now on. `graceful`: the command checks [`requested`]
/// and stops by itself; otherwise the first signal ends the process at once.
pub fn install(rt: &tokio::runtime::Handle, graceful: bool) -> std::io::Result<()> {
    let _guard = rt.enter();
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    rt.spawn(async move {
        loop {
            let sig = tokio::select! {
                _ = int.recv() => Signal::Int,
                _ = term.recv() => Signal::Term,
            };
            let first = RECEIVED
                .compare_exchange(0, sig as u8, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            if !graceful {
                eprintln!("kfguard: interrupted by {sig}; nothing was changed");
                std::process::exit(sig.exit_code());
            }
            if !first {
                eprintln!("kfguard: {sig} again: stopping at once, without cleaning up");
                std::process::exit(sig.exit_code());
            }
            eprintln!(
                "kfguard: {sig} received: stopping after the current write (send it again to stop at once)"
            );
            NOTIFY.notify_waiters();
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_128_plus_the_signal_number() {
        assert_eq!(Signal::Int.exit_code(), 130);
        assert_eq!(Signal::Term.exit_code(), 143);
    }
}
