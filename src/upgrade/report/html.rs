//! The report as one self-contained HTML page: inline CSS, no script, font, image or link, so it
//! opens anywhere (a phone, an air-gapped laptop, an auditor's archive) and prints. Every value
//! goes through maud's escaping: names come from a cluster or a snapshot and are never trusted.

use std::collections::BTreeMap;

use maud::{DOCTYPE, Markup, PreEscaped, html as page};

use super::{Count, Report, ReportStep};

const CSS: &str = include_str!("report.css");

/// The page for a report.
pub fn html(r: &Report) -> String {
    let title = format!("{}: run {}", r.kind.title(), r.run);
    let (equal, differ) = (
        r.counts.iter().filter(|c| c.equal()).count(),
        r.counts.iter().filter(|c| !c.equal()).count(),
    );
    page! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { (r.kind.title()) }
                    dl.meta {
                        dt { "Run" } dd { code { (r.run) } }
                        @if let Some(t) = r.started { dt { "Started" } dd { (time(t)) } }
                        dt { "Finished" } dd { (time(r.finished)) }
                        @if let Some(t) = r.started {
                            dt { "Took" } dd { (duration((r.finished - t).num_milliseconds() as f64 / 1000.0)) }
                        }
                        dt { "Snapshot" } dd { code { (r.snapshot.as_deref().unwrap_or("none")) } }
                    }
                    @if !r.counts.is_empty() {
                        p.summary {
                            span.badge.eq { (equal) " count(s) equal" }
                            " "
                            @if differ > 0 { span.badge.ne { (differ) " differ" } }
                        }
                    }
                }
                (counts(&r.counts))
                (checklist(&r.checklist))
                (timeline(&r.steps))
                (audit(r))
                (lines(&r.steps))
                footer { "Written by amlmigrate. Counts: before = the snapshot, after = the live system when the run ended." }
            }
        }
    }
    .into_string()
}

fn timeline(steps: &[ReportStep]) -> Markup {
    let longest = steps
        .iter()
        .filter_map(|s| s.seconds)
        .fold(0.0_f64, f64::max);
    let pct = |s: f64| {
        if longest > 0.0 {
            (s / longest * 100.0).clamp(0.5, 100.0)
        } else {
            0.0
        }
    };
    page! {
        section #timeline {
            h2 { "Timeline" }
            ol.steps {
                @for (i, s) in steps.iter().enumerate() {
                    li.step.(outcome_class(&s.outcome)) {
                        div.head {
                            span.n { (i + 1) }
                            span.name { (s.step) }
                            span.outcome { (s.outcome) }
                            span.took {
                                @match s.seconds {
                                    Some(sec) => (duration(sec)),
                                    None => "–",
                                }
                            }
                        }
                        div.title { (s.title) }
                        @if let Some(sec) = s.seconds {
                            div.bar role="presentation" {
                                span.work style=(format!("width:{:.1}%", pct(sec))) {}
                                @if let Some(w) = s.waited_seconds {
                                    span.wait style=(format!("width:{:.1}%", pct(w))) {}
                                }
                            }
                        }
                        @if let Some(w) = s.waited_seconds {
                            p.waited {
                                "Waited " (duration(w)) " for a person"
                                @if let Some(what) = &s.waited_for { ": " (what) }
                            }
                        }
                        @if let Some(d) = s.detail.as_ref().filter(|d| Some(*d) != s.waited_for.as_ref()) {
                            p.detail { (d) }
                        }
                        // A step that ended well failed its first check on purpose (what it then
                        // did or waited for); only an unfinished one shows its failures here.
                        @let fails: Vec<&String> = if outcome_class(&s.outcome) == "bad" {
                            s.checked.iter().filter(|c| c.starts_with("FAIL")).collect()
                        } else {
                            Vec::new()
                        };
                        @if !fails.is_empty() || !s.warnings.is_empty() {
                            ul.lines {
                                @for w in &s.warnings { li.warning { "Warning: " (w) } }
                                @for c in &fails { li.fail { (c) } }
                            }
                        }
                        @if !s.changes.is_empty() || !s.checked.is_empty() {
                            p.more { (lines_note(s)) }
                        }
                    }
                }
            }
        }
    }
}

/// "3 changes, 10 checks (listed at the end)".
fn lines_note(s: &ReportStep) -> String {
    let mut parts = Vec::new();
    if !s.changes.is_empty() {
        parts.push(format!("{} change(s)", s.changes.len()));
    }
    if !s.checked.is_empty() {
        parts.push(format!("{} check(s)", s.checked.len()));
    }
    format!("{} listed under Every change and check", parts.join(", "))
}

/// Every step's changes and checks in full, after the summary, so the page reads at a glance
/// and still prints everything.
fn lines(steps: &[ReportStep]) -> Markup {
    page! {
        @if steps.iter().any(|s| !s.changes.is_empty() || !s.checked.is_empty()) {
            section #lines {
                h2 { "Every change and check" }
                @for (i, s) in steps.iter().enumerate() {
                    @if !s.changes.is_empty() || !s.checked.is_empty() {
                        h3 { (i + 1) ". " (s.step) }
                        ul.lines {
                            @for c in &s.changes { li.change { "changed: " (c) } }
                            @for c in &s.checked {
                                li.(if c.starts_with("FAIL") { "fail" } else { "check" }) { (c) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn outcome_class(outcome: &str) -> &'static str {
    match outcome {
        "applied" | "already done" => "ok",
        "skipped" | "not reached" => "idle",
        _ => "bad",
    }
}

fn counts(counts: &[Count]) -> Markup {
    let totals: Vec<&Count> = counts.iter().filter(|c| c.group.is_none()).collect();
    // Groups in the order they first appear; within one, rows and columns as they come.
    let mut groups: Vec<&str> = Vec::new();
    for g in counts.iter().filter_map(|c| c.group.as_deref()) {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    page! {
        @if !counts.is_empty() {
            section #counts {
                h2 { "Data before and after" }
                @if !totals.is_empty() {
                    h3 { "Totals" }
                    table.counts {
                        thead { tr { th { "what" } th.num { "before" } th.num { "after" } } }
                        tbody {
                            @for c in &totals {
                                tr {
                                    th scope="row" { (c.what) }
                                    td.num { (show(c.before)) }
                                    (cell(c, false))
                                }
                            }
                        }
                    }
                }
                @for g in &groups {
                    (group(g, counts.iter().filter(|c| c.group.as_deref() == Some(g))))
                }
            }
        }
    }
}

fn group<'a>(name: &str, cells: impl Iterator<Item = &'a Count>) -> Markup {
    let mut measures: Vec<&str> = Vec::new();
    let mut rows: Vec<&str> = Vec::new();
    let mut at: BTreeMap<(&str, &str), &Count> = BTreeMap::new();
    for c in cells {
        let (item, measure) = (
            c.item.as_deref().unwrap_or(""),
            c.measure.as_deref().unwrap_or(""),
        );
        if !measures.contains(&measure) {
            measures.push(measure);
        }
        if !rows.contains(&item) {
            rows.push(item);
        }
        at.insert((item, measure), c);
    }
    page! {
        h3 { (name) }
        div.scroll {
            table.counts {
                thead {
                    tr {
                        th { "" }
                        @for m in &measures { th.num { (m) } }
                    }
                }
                tbody {
                    @for item in &rows {
                        tr {
                            th scope="row" { (item) }
                            @for m in &measures {
                                @match at.get(&(*item, *m)) {
                                    Some(c) => (cell(c, true)),
                                    None => td.num { "–" },
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A count's cell: green with the number when before and after are equal, red with both and
/// the difference when not (`with_before`: the table has no column of its own for it).
fn cell(c: &Count, with_before: bool) -> Markup {
    let title = format!("before {}, after {}", show(c.before), show(c.after));
    page! {
        @if c.equal() {
            td.num.eq title=(title) { (show(c.after)) }
        } @else {
            td.num.ne title=(title) {
                @if with_before { (show(c.before)) " → " }
                (show(c.after))
                " "
                span.diff {
                    "("
                    @match c.difference() {
                        Some(d) if d > 0 => { "+" (d) }
                        Some(d) => { "−" (d.unsigned_abs()) }
                        None => "missing",
                    }
                    ")"
                }
            }
        }
    }
}

fn checklist(items: &[String]) -> Markup {
    page! {
        @if !items.is_empty() {
            section #checklist {
                h2 { "For a person to check" }
                p.hint { "The article's checks in the user interface: tick each one off (on screen or on paper)." }
                ul.checklist {
                    @for (i, c) in items.iter().enumerate() {
                        li {
                            input type="checkbox" id=(format!("check-{i}"));
                            " "
                            label for=(format!("check-{i}")) { (c) }
                        }
                    }
                }
            }
        }
    }
}

fn audit(r: &Report) -> Markup {
    page! {
        section #audit {
            h2 { "For the audit" }
            dl.meta {
                dt { "Snapshot" } dd { code { (r.snapshot.as_deref().unwrap_or("none")) } }
                dt { "manifest.json sha256" }
                dd { code.hash { (r.manifest_sha256.as_deref().unwrap_or("not recorded")) } }
            }
            @if !r.tables.is_empty() {
                p.hint {
                    "Each table's sha256 is over its chunks in the snapshot, in order, as the manifest records it; "
                    code { "amlmigrate verify" } " re-reads and checks them."
                }
                div.scroll {
                    table.sums {
                        thead { tr { th { "table" } th.num { "rows" } th { "sha256" } } }
                        tbody {
                            @for t in &r.tables {
                                tr {
                                    th scope="row" {
                                        (t.database) "." (t.table)
                                        @if t.source != t.database { " (source " (t.source) ")" }
                                    }
                                    td.num { (t.rows) }
                                    td { code.hash { (t.sha256) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn show(v: Option<u64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "–".into())
}

/// `0.4 s`, `12 s`, `3 min 20 s`, `1 h 5 min`.
pub(super) fn duration(s: f64) -> String {
    if s < 10.0 {
        return format!("{s:.1} s");
    }
    let s = s.round() as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec} s"),
        (0, m, 0) => format!("{m} min"),
        (0, m, sec) => format!("{m} min {sec} s"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ReportKind, TableSum};
    use super::*;

    fn report() -> Report {
        Report {
            kind: ReportKind::Upgrade,
            run: "20260101T000000Z-000aaa".into(),
            snapshot: Some("20260101T000001Z-000bbb".into()),
            manifest_sha256: Some("ab".repeat(32)),
            started: None,
            finished: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            steps: Vec::new(),
            counts: vec![
                Count::cell(
                    "User namespaces",
                    "<script>alert(1)</script>",
                    "PVCs Bound",
                    Some(2),
                    Some(2),
                ),
                Count::cell("Database tables", "aml.jobs", "rows", Some(10), Some(7)),
                Count::total("Profiles", Some(3), None),
            ],
            tables: vec![TableSum {
                source: "aml".into(),
                database: "aml".into(),
                table: "t\"><img src=x>".into(),
                rows: 1,
                sha256: "00".into(),
            }],
            checklist: vec!["a & b".into()],
        }
    }

    #[test]
    fn values_from_the_cluster_are_escaped() {
        let h = html(&report());
        assert!(
            !h.contains("<script>alert") && h.contains("&lt;script&gt;alert(1)"),
            "{h}"
        );
        assert!(
            !h.contains("<img") && h.contains("t&quot;&gt;&lt;img src=x&gt;"),
            "{h}"
        );
        assert!(h.contains("a &amp; b"));
    }

    #[test]
    fn markdown_cells_and_items_mean_only_their_text() {
        let mut r = report();
        r.counts.push(Count::cell(
            "Database tables",
            "a|b\n| forged | 1 | 1 | = |",
            "rows",
            Some(1),
            Some(1),
        ));
        r.tables[0].table = "t|x`y\x1b[2J".into();
        r.tables[0].sha256 = "`<b>`".into();
        r.checklist
            .push("done](javascript:x) <script>\n# Fake heading".into());
        r.steps
            .push(super::super::step_of("snapshot", "Snapshot", &[]));
        r.steps[0].checked = vec!["\x1b]0;all signed\x07 ok\n- checked: all signed".into()];
        let m = super::super::markdown(&r);
        assert!(!m.chars().any(|c| c.is_control() && c != '\n'), "{m:?}");
        assert!(!m.contains("<script") && !m.contains("<b>"), "{m}");
        for line in m.lines() {
            assert!(
                !line.starts_with("# Fake") && !line.starts_with("| forged"),
                "{m}"
            );
            assert!(!line.trim_start().starts_with("- checked: all"), "{m}");
            if line.starts_with('|') && !line.starts_with("|---") {
                // Only the cell separators are bare pipes: every other one is escaped.
                let bare = line
                    .match_indices('|')
                    .filter(|(i, _)| !line[..*i].ends_with('\\'));
                assert!(bare.count() <= 5, "{line}");
            }
        }
    }

    #[test]
    fn equal_counts_are_green_and_others_red_with_the_difference() {
        let h = html(&report());
        assert!(
            h.contains(r#"<td class="num eq" title="before 2, after 2">2</td>"#),
            "{h}"
        );
        assert!(
            h.contains(r#"10 → 7 <span class="diff">(−3)</span>"#),
            "{h}"
        );
        assert!(h.contains(r#"<span class="diff">(missing)</span>"#), "{h}");
    }

    #[test]
    fn durations_read_as_a_person_says_them() {
        assert_eq!(duration(0.42), "0.4 s");
        assert_eq!(duration(12.4), "12 s");
        assert_eq!(duration(200.0), "3 min 20 s");
        assert_eq!(duration(120.0), "2 min");
        assert_eq!(duration(3900.0), "1 h 5 min");
    }
}
