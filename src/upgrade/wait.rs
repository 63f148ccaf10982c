//! One way to wait: poll something until it is ready, sleeping between polls, giving up after
//! a timeout, and stopping at once on Ctrl-C (the run's cancellation token).

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// What a probe saw.
pub enum Poll<T> {
    Ready(T),
    /// Not yet; says what is still awaited (used in the timeout message).
    Pending(String),
}

/// How long to wait, and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub timeout: Duration,
    pub every: Duration,
}

impl Patience {
    pub fn new(timeout: Duration, every: Duration) -> Self {
        Patience { timeout, every }
    }
}

/// How long what a probe saw has stayed the same: a state that stops changing (a plugin
/// `Failed` with one message) is a verdict, not a moment of an install still going on.
pub struct Unchanged<T> {
    seen: Option<(T, Instant)>,
}

impl<T> Default for Unchanged<T> {
    fn default() -> Self {
        Unchanged { seen: None }
    }
}

impl<T: PartialEq> Unchanged<T> {
    /// Records what is seen now (`None`: nothing worth timing); how long the same value has been
    /// seen, zero when it is new.
    pub fn observe(&mut self, now: Option<T>) -> Duration {
        match (now, &self.seen) {
            (None, _) => {
                self.seen = None;
                Duration::ZERO
            }
            (Some(v), Some((old, since))) if *old == v => since.elapsed(),
            (Some(v), _) => {
                self.seen = Some((v, Instant::now()));
                Duration::ZERO
            }
        }
    }
}

/// Sleeps, or fails with `Interrupted` as soon as the run is cancelled.
pub async fn sleep(cancel: &CancellationToken, d: Duration) -> Result<()> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = cancel.cancelled() => Err(interrupted()),
    }
}

pub fn interrupted() -> Error {
    Error::Interrupted(
        "the upgrade was stopped while waiting; run the same command to resume".into(),
    )
}

/// Polls `probe` until it is ready. After `patience.timeout` the error `timed_out` makes from
/// the last pending description is returned. The probe runs at least once, even with a zero
/// timeout.
pub async fn until<T>(
    cancel: &CancellationToken,
    patience: Patience,
    mut probe: impl AsyncFnMut() -> Result<Poll<T>>,
    timed_out: impl FnOnce(String) -> Error,
) -> Result<T> {
    let started = Instant::now();
    loop {
        if cancel.is_cancelled() {
            return Err(interrupted());
        }
        match probe().await? {
            Poll::Ready(t) => {
                tracing::debug!(
                    waited_ms = started.elapsed().as_millis() as u64,
                    "wait: ready after {:.1}s",
                    started.elapsed().as_secs_f64()
                );
                return Ok(t);
            }
            Poll::Pending(what) => {
                tracing::debug!("wait: still waiting for {what}");
                if started.elapsed() >= patience.timeout {
                    return Err(timed_out(what));
                }
            }
        }
        sleep(cancel, patience.every).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn until_returns_when_ready_and_times_out_naming_what_was_missing() {
        let cancel = CancellationToken::new();
        let mut n = 0;
        let got = until(
            &cancel,
            Patience::new(Duration::from_secs(5), Duration::from_millis(1)),
            async || {
                n += 1;
                Ok(if n == 3 {
                    Poll::Ready(n)
                } else {
                    Poll::Pending("n".into())
                })
            },
            Error::other,
        )
        .await
        .unwrap();
        assert_eq!(got, 3);
        let e = until(
            &cancel,
            Patience::new(Duration::from_millis(5), Duration::from_millis(1)),
            async || Ok(Poll::<()>::Pending("the thing".into())),
            |w| Error::other(format!("gave up on {w}")),
        )
        .await
        .unwrap_err();
        assert_eq!(e.to_string(), "gave up on the thing");
    }

    #[test]
    fn unchanged_times_one_value_and_starts_again_when_it_changes_or_goes() {
        let mut u = Unchanged::default();
        assert_eq!(u.observe(Some("a")), Duration::ZERO);
        std::thread::sleep(Duration::from_millis(15));
        assert!(u.observe(Some("a")) >= Duration::from_millis(15));
        assert_eq!(u.observe(Some("b")), Duration::ZERO);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(u.observe(None), Duration::ZERO);
        assert_eq!(u.observe(Some("b")), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_cancelled_wait_stops_at_once_as_interrupted() {
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            c.cancel();
        });
        let started = Instant::now();
        let e = until(
            &cancel,
            Patience::new(Duration::from_secs(60), Duration::from_secs(30)),
            async || Ok(Poll::<()>::Pending("x".into())),
            Error::other,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Interrupted(_)), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
