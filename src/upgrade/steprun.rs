//! The journaling an upgrade and a recovery share around each step, so that both leave the
//! same trail and a resumed run of either repeats nothing.

use super::journal::{Event, Facts, Journal, RUN};
use super::{Change, State};
use crate::error::{Error, Result};

/// What the journal needs of a step's check, whichever run checked it.
pub(super) struct Checked<'a> {
    pub name: &'a str,
    pub state: State,
    pub why: &'a str,
    pub checked: &'a [String],
    pub warnings: &'a [String],
    pub changes: &'a [Change],
}

/// Journals a step found done or skipped, unless the journal already ends so for it: a resumed
/// run would otherwise add the same entry each time it passes the step.
pub(super) async fn record_settled(journal: &mut Journal, c: &Checked<'_>) -> Result<()> {
    let event = if c.state == State::Done {
        Event::Done
    } else {
        Event::Skipped
    };
    if journal.last(c.name).map(|e| e.event) != Some(event) {
        journal
            .record_full(
                c.name,
                event,
                Some(c.why.to_string()),
                Vec::new(),
                Facts {
                    checked: c.checked.to_vec(),
                    warnings: c.warnings.to_vec(),
                    ..Default::default()
                },
            )
            .await?;
    }
    Ok(())
}

/// Where a run noticed Ctrl-C: between steps, so the same command picks it up there.
pub(super) fn interrupted(run: &str, step: &str) -> Error {
    Error::Interrupted(format!(
        "the {run} stopped before step {step}; run the same command to resume"
    ))
}

pub(super) async fn record_blocked(journal: &mut Journal, step: &str, why: &str) -> Result<()> {
    journal
        .record(step, Event::Blocked, Some(why.to_string()))
        .await
}

/// Journals a step the person declined and gives the refusal that ends the run; `kind` is how
/// the run names its steps.
pub(super) async fn declined(
    journal: &mut Journal,
    kind: &str,
    step: &str,
    why: String,
) -> Result<Error> {
    journal
        .record(step, Event::Declined, Some(why.clone()))
        .await?;
    Ok(Error::Refused(format!(
        "{kind} {step} was not confirmed: {why}"
    )))
}

/// Journals `started` with the changes the step is about to make, before it makes any.
pub(super) async fn record_started(journal: &mut Journal, c: &Checked<'_>) -> Result<()> {
    journal
        .record_full(
            c.name,
            Event::Started,
            Some(c.why.to_string()),
            c.changes.iter().map(|x| x.to_string()).collect(),
            Facts::default(),
        )
        .await
}

/// Facts an applied step left empty are the check's, so the report still says what was seen.
pub(super) fn fill_facts(facts: &mut Facts, c: &Checked<'_>) {
    if facts.checked.is_empty() {
        facts.checked = c.checked.to_vec();
    }
    if facts.warnings.is_empty() {
        facts.warnings = c.warnings.to_vec();
    }
}

/// Journals how applying a step ended; the error, if any, is passed on.
pub(super) async fn record_applied(
    journal: &mut Journal,
    name: &str,
    applied: Result<(Vec<String>, Facts)>,
) -> Result<Vec<String>> {
    match applied {
        Ok((changes, facts)) => {
            journal
                .record_full(name, Event::Done, None, changes.clone(), facts)
                .await?;
            Ok(changes)
        }
        Err(e) => {
            journal
                .record(name, Event::Failed, Some(e.to_string()))
                .await?;
            Err(e)
        }
    }
}

/// Journals the run as stopped by `e` and passes `e` on; a journal that cannot be written
/// then must not hide why the run stopped.
pub(super) async fn stopped(journal: &mut Journal, e: Error) -> Error {
    let _ = journal
        .record(RUN, Event::Stopped, Some(e.to_string()))
        .await;
    e
}
