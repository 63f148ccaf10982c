//! How long a step took and how long it waited for a person, from its journal entries.
//!
//! An attempt runs from `started` to the step's next end (`done`, `failed`, `blocked`,
//! `declined`); an attempt cut off by kill -9 has no end in the journal and counts nothing, as
//! nobody knows when it stopped. A wait runs from `waiting` to the step's next entry.

use chrono::{DateTime, Utc};

use crate::upgrade::journal::{Entry, Event};

#[derive(Debug, Default, PartialEq)]
pub(super) struct Timeline {
    pub started: Option<DateTime<Utc>>,
    pub seconds: Option<f64>,
    pub waited_seconds: Option<f64>,
    pub waited_for: Option<String>,
}

fn ends(e: Event) -> bool {
    matches!(
        e,
        Event::Done | Event::Failed | Event::Blocked | Event::Declined
    )
}

fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds().max(0) as f64 / 1000.0
}

pub(super) fn of(entries: &[&Entry]) -> Timeline {
    let mut t = Timeline::default();
    let mut open: Option<DateTime<Utc>> = None;
    let mut waiting: Option<DateTime<Utc>> = None;
    let add = |sum: &mut Option<f64>, s: f64| *sum = Some(sum.unwrap_or(0.0) + s);
    for e in entries {
        if let Some(w) = waiting.take() {
            add(&mut t.waited_seconds, seconds(w, e.time));
        }
        match e.event {
            Event::Started => {
                t.started.get_or_insert(e.time);
                open = Some(e.time);
            }
            Event::Waiting => {
                waiting = Some(e.time);
                t.waited_for = e.detail.clone();
            }
            ev if ends(ev) => {
                if let Some(from) = open.take() {
                    add(&mut t.seconds, seconds(from, e.time));
                }
            }
            _ => {}
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upgrade::journal::Facts;

    fn at(s: i64, event: Event) -> Entry {
        Entry {
            time: DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap(),
            step: "wait-operator".into(),
            event,
            detail: (event == Event::Waiting).then(|| "upgrade the operator".into()),
            changes: Vec::new(),
            facts: Facts::default(),
            deadline: None,
        }
    }

    #[test]
    fn attempts_that_ended_are_summed_and_the_wait_for_a_person_is_its_own_figure() {
        // The first attempt was killed (no end); the second waited 100 s of its 130 s.
        let e = [
            at(0, Event::Started),
            at(50, Event::Started),
            at(60, Event::Waiting),
            at(160, Event::Done),
            at(180, Event::Started),
            at(200, Event::Failed),
        ];
        let refs: Vec<&Entry> = e.iter().collect();
        let t = of(&refs);
        assert_eq!(t.started, Some(e[0].time));
        assert_eq!(t.seconds, Some(110.0 + 20.0));
        assert_eq!(t.waited_seconds, Some(100.0));
        assert_eq!(t.waited_for.as_deref(), Some("upgrade the operator"));
    }

    #[test]
    fn a_step_found_done_has_no_duration() {
        let e = [at(0, Event::Done)];
        let refs: Vec<&Entry> = e.iter().collect();
        assert_eq!(of(&refs), Timeline::default());
    }
}
