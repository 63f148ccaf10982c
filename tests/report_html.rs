//! The HTML report in a real headless Chromium: equal counts green, differing ones red with the
//! difference, names from a cluster shown as text (never run), nothing fetched, and a phone's
//! 390 pixels wide enough for everything.

mod common;

use amlmigrate::upgrade::report::{self, Count, Report, ReportKind, ReportStep, TableSum};
use chrono::{DateTime, Utc};
use common::chromium;

fn at(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000 + s, 0).unwrap()
}

fn step(name: &str, outcome: &str, seconds: Option<f64>, waited: Option<f64>) -> ReportStep {
    ReportStep {
        step: name.into(),
        title: format!("what {name} does"),
        outcome: outcome.into(),
        detail: None,
        changes: Vec::new(),
        checked: Vec::new(),
        warnings: Vec::new(),
        started: seconds.map(|_| at(0)),
        ended: Some(at(10)),
        seconds,
        waited_seconds: waited,
        waited_for: waited.map(|_| "upgrade the AML operator to 1.4 in OperatorHub".into()),
    }
}

const HOSTILE: &str = "<script>document.title='pwned'</script>";

/// A report as a run would hold it, with hostile names where a cluster or snapshot supplies them.
fn sample() -> Report {
    let ns = "team-a-with-a-rather-long-namespace-name-that-must-wrap";
    let mut steps = vec![
        step("preflight", "applied", Some(1.2), None),
        step("snapshot", "applied", Some(84.0), None),
        step("wait-operator", "applied", Some(1260.0), Some(1200.0)),
        step("verify", "failed", Some(12.0), None),
        step("images", "already done", None, None),
    ];
    steps[3].checked = vec![
        "ok   aml.finetune_jobs: 250 rows, as in the snapshot".into(),
        "FAIL plugin mlflow v3.1.1: Pending".into(),
    ];
    steps[1].changes = vec![format!(
        "snapshot: (none) → 20260101T000000Z-000abc {HOSTILE}"
    )];
    Report {
        kind: ReportKind::Upgrade,
        run: "20260101T000000Z-000aaa".into(),
        snapshot: Some("20260101T000100Z-000bbb".into()),
        manifest_sha256: Some("0123456789abcdef".repeat(4)),
        started: Some(at(0)),
        finished: at(1400),
        steps,
        counts: vec![
            Count::cell(
                "Database tables",
                "aml.finetune_jobs",
                "rows",
                Some(250),
                Some(250),
            ),
            Count::cell(
                "Database tables",
                format!("aml.{HOSTILE}"),
                "rows",
                Some(40),
                Some(37),
            ),
            Count::total(
                "MLflow metric points (2.6 MySQL → 3.1.1 PostgreSQL)",
                Some(300),
                Some(300),
            ),
            Count::cell(
                "MLflow experiments",
                "Default (id 0)",
                "runs",
                Some(2),
                Some(2),
            ),
            Count::cell(
                "MLflow experiments",
                "Default (id 0)",
                "metric points",
                Some(100),
                Some(100),
            ),
            Count::cell("User namespaces", ns, "Profile", Some(1), Some(1)),
            Count::cell("User namespaces", ns, "PVCs Bound", Some(3), Some(1)),
            Count::cell("User namespaces", ns, "Notebooks", Some(2), None),
            Count::cell("User namespaces", HOSTILE, "Profile", Some(1), Some(1)),
        ],
        tables: vec![TableSum {
            source: "aml".into(),
            database: "aml".into(),
            table: HOSTILE.into(),
            rows: 40,
            sha256: "f".repeat(64),
        }],
        checklist: vec!["A simple fine-tune job runs to the end".into()],
    }
}

#[test]
fn chromium_shows_equal_counts_green_and_differences_red_and_runs_nothing_from_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let html = report::html(&sample());
    std::fs::write(&page, &html).unwrap();

    // Self-contained: nothing in the file could load anything.
    for never in [
        "http:", "https:", "src=", "href=", "url(", "@import", "<link", "<img", "<iframe",
    ] {
        assert!(!html.contains(never), "the page holds {never:?}");
    }
    assert!(!html.contains("<script"), "the page holds a script element");

    let dom = chromium::dump_dom(&page, 390);
    // The hostile names are text; their script never ran.
    assert!(
        dom.contains("<title>amlmigrate upgrade 1.3 → 1.4: run 20260101T000000Z-000aaa</title>"),
        "{dom}"
    );
    assert!(
        !dom.contains("pwned</title>") && !dom.contains("<script"),
        "{dom}"
    );
    assert_eq!(
        dom.matches("&lt;script&gt;document.title='pwned'&lt;/script&gt;")
            .count(),
        4,
        "{dom}"
    );
    // Green: the number. Red: before → after and the difference.
    for want in [
        r#"<td class="num eq" title="before 250, after 250">250</td>"#,
        r#"<td class="num eq" title="before 300, after 300">300</td>"#,
        r#"<td class="num eq" title="before 100, after 100">100</td>"#,
        r#"<td class="num ne" title="before 40, after 37">40 → 37 <span class="diff">(−3)</span></td>"#,
        r#"<td class="num ne" title="before 3, after 1">3 → 1 <span class="diff">(−2)</span></td>"#,
        r#"<td class="num ne" title="before 2, after –">2 → – <span class="diff">(missing)</span></td>"#,
    ] {
        assert!(dom.contains(want), "no {want} in {dom}");
    }
    assert_eq!(dom.matches(r#"class="num ne""#).count(), 3, "{dom}");
    assert_eq!(dom.matches(r#"class="num eq""#).count(), 6, "{dom}");
    assert!(
        dom.contains(r#"<span class="badge ne">3 differ</span>"#),
        "{dom}"
    );
    // The timeline: durations, and the wait for a person named.
    assert!(dom.contains(r#"<span class="took">21 min</span>"#), "{dom}");
    assert!(
        dom.contains("Waited 20 min for a person: upgrade the AML operator to 1.4 in OperatorHub"),
        "{dom}"
    );
    assert!(
        dom.contains(r#"<li class="fail">FAIL plugin mlflow v3.1.1: Pending</li>"#),
        "{dom}"
    );
    // The person's checklist and the auditor's figures.
    assert!(dom.contains(r#"<input type="checkbox" id="check-0"> <label for="check-0">A simple fine-tune job runs to the end</label>"#), "{dom}");
    assert!(
        dom.contains(&"0123456789abcdef".repeat(4)) && dom.contains(&"f".repeat(64)),
        "{dom}"
    );
}

#[test]
fn the_report_fits_a_phone_390_pixels_wide_prints_and_a_screenshot_is_that_wide() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, report::html(&sample())).unwrap();
    let l = chromium::layout(&page, 390);
    assert_eq!(l.viewport, 390, "chromium did not lay out at 390 pixels");
    assert!(
        l.document_width <= 390,
        "the page is {} pixels wide at 390",
        l.document_width
    );
    assert_eq!(
        l.overflowing_boxes, 0,
        "a table scrolls sideways at 390 pixels"
    );
    // Wide enough to read on a desktop too, and nothing cut off there either.
    let wide = chromium::layout(&page, 1280);
    assert!(wide.document_width <= 1280);
    // Printable: Chromium prints it to PDF pages.
    let pdf = chromium::print_pdf(&page, &dir.path().join("report.pdf"));
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    assert!(
        pdf.windows(10)
            .any(|w| w == b"/Type /Pag" || w == b"/Type/Page"),
        "a PDF without pages"
    );
    let png = dir.path().join("report.png");
    let (w, h) = chromium::screenshot(&page, &png, 390, l.document_height);
    assert_eq!((w, h), (390, l.document_height));
}

/// Writes the sample page and its screenshots where AMLMIGRATE_REPORT_SAMPLE points (for the
/// picture in docs/upgrade.md); does nothing otherwise.
#[test]
fn sample_page_for_the_readme() {
    let Ok(out) = std::env::var("AMLMIGRATE_REPORT_SAMPLE") else {
        return;
    };
    let out = std::path::Path::new(&out);
    std::fs::create_dir_all(out).unwrap();
    let page = out.join("report.html");
    std::fs::write(&page, report::html(&sample())).unwrap();
    for w in [390, 900] {
        let l = chromium::layout(&page, w);
        chromium::screenshot(
            &page,
            &out.join(format!("report-{w}.png")),
            w,
            l.document_height,
        );
    }
}
