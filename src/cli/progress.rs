//! Drawing progress events: bars on a terminal, plain lines otherwise, nothing when quiet.
//! Notices are always shown (on stderr) and kept for the summary.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use amlmigrate::progress::{Event, Progress};
use amlmigrate::text::{Safe, escape_controls};

use super::{human_bytes, thousands};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Lines,
    Quiet,
}

pub struct Ui {
    mode: Mode,
    mp: MultiProgress,
    state: Mutex<State>,
}

/// In plain-line mode a long table still shows signs of life, at most this often.
const LINE_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Default)]
struct State {
    last_line: Option<std::time::Instant>,
    overall: Option<ProgressBar>,
    tables: HashMap<(String, String), (ProgressBar, u64)>,
}

impl Ui {
    pub fn new(mode: Mode) -> Self {
        let target = if mode == Mode::Bars {
            ProgressDrawTarget::stderr_with_hz(8)
        } else {
            ProgressDrawTarget::hidden()
        };
        Ui {
            mode,
            mp: MultiProgress::with_draw_target(target),
            state: Mutex::new(State::default()),
        }
    }

    /// Runs `f` with the bars hidden, for output that must not be drawn over (a prompt).
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.mp.suspend(f)
    }

    pub fn finish(&self) {
        let mut st = self.state.lock().expect("progress lock");
        if let Some(o) = st.overall.take() {
            o.finish_and_clear();
        }
        for (_, (bar, _)) in st.tables.drain() {
            bar.finish_and_clear();
        }
    }

    fn line(&self, s: &str) {
        match self.mode {
            Mode::Bars => {
                // The bars write to the terminal themselves, past `eprintln!`'s escaping.
                let _ = self.mp.println(escape_controls(s));
            }
            Mode::Lines => eprintln!("{s}"),
            Mode::Quiet => {}
        }
    }
}

/// A table's time, readable at any size: a small table's milliseconds are not "0.0s".
fn short_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 10.0 {
        format!("{secs:.0}s")
    } else if secs >= 1.0 {
        format!("{secs:.1}s")
    } else if secs >= 0.001 {
        format!("{:.1}ms", secs * 1e3)
    } else {
        format!("{}µs", d.as_micros())
    }
}

impl Progress for Ui {
    fn event(&self, event: Event) {
        let mut st = self.state.lock().expect("progress lock");
        match event {
            Event::Plan {
                what,
                tables,
                est_rows,
                ..
            } => {
                if self.mode == Mode::Bars {
                    let bar = self.mp.add(ProgressBar::new(est_rows.max(1)));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix:>8} [{bar:30.cyan/blue}] {human_pos}/~{human_len} rows  {rate}  ETA {eta}",
                        )
                        .expect("template")
                        .with_key("rate", |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{} rows/s", thousands(s.per_sec() as u64));
                        })
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(what);
                    bar.enable_steady_tick(Duration::from_millis(250));
                    st.overall = Some(bar);
                } else if self.mode == Mode::Lines {
                    eprintln!(
                        "{what}: {tables} tables, about {} rows",
                        thousands(est_rows)
                    );
                }
            }
            Event::TableStarted {
                db,
                table,
                est_rows,
            } => {
                if self.mode == Mode::Bars {
                    let bar = self.mp.add(ProgressBar::new(est_rows.max(1)));
                    bar.set_style(
                        ProgressStyle::with_template("  {prefix} {human_pos} rows  {msg}")
                            .expect("template"),
                    );
                    bar.set_prefix(format!("{}.{}", Safe(&db), Safe(&table)));
                    st.tables.insert((db, table), (bar, 0));
                }
            }
            Event::TableProgress {
                db,
                table,
                rows,
                bytes,
            } => {
                if self.mode == Mode::Lines {
                    let now = std::time::Instant::now();
                    match st.last_line {
                        Some(t) if now.duration_since(t) < LINE_INTERVAL => {}
                        Some(_) => {
                            st.last_line = Some(now);
                            let size = if bytes > 0 {
                                format!(", {}", human_bytes(bytes))
                            } else {
                                String::new()
                            };
                            eprintln!("  {db}.{table}: {} rows{size} so far…", thousands(rows));
                        }
                        None => st.last_line = Some(now),
                    }
                }
                let mut delta = 0;
                if let Some((bar, seen)) = st.tables.get_mut(&(db, table)) {
                    bar.set_position(rows);
                    if bytes > 0 {
                        bar.set_message(human_bytes(bytes));
                    }
                    delta = rows.saturating_sub(*seen);
                    *seen = rows;
                }
                if let Some(o) = &st.overall {
                    o.inc(delta);
                }
            }
            Event::TableFinished {
                db,
                table,
                rows,
                bytes,
                elapsed,
            } => {
                let seen = match st.tables.remove(&(db.clone(), table.clone())) {
                    Some((bar, seen)) => {
                        bar.finish_and_clear();
                        self.mp.remove(&bar);
                        seen
                    }
                    None => 0,
                };
                if let Some(o) = &st.overall {
                    o.inc(rows.saturating_sub(seen));
                }
                let size = if bytes > 0 {
                    format!(", {}", human_bytes(bytes))
                } else {
                    String::new()
                };
                self.line(&format!(
                    "  {db}.{table}: {} rows{size} in {}",
                    thousands(rows),
                    short_duration(elapsed)
                ));
            }
            Event::Notice(msg) => {
                if self.mode == Mode::Bars {
                    let _ = self.mp.println(format!("note: {}", escape_controls(&msg)));
                } else {
                    eprintln!("note: {msg}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_times_keep_their_precision_below_a_second() {
        let ms = Duration::from_millis;
        assert_eq!(short_duration(Duration::from_micros(40)), "40µs");
        assert_eq!(short_duration(ms(3)), "3.0ms");
        assert_eq!(short_duration(ms(1400)), "1.4s");
        assert_eq!(short_duration(ms(72_400)), "72s");
    }
}
