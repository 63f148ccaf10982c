//! The terminal is untrusted output's target: whoever can write the bucket can put escape
//! sequences into a snapshot's tags, host name, names and notices (clear the screen, retitle the
//! window, print a fake "all signed" line). Every command that shows a snapshot shows them
//! escaped, on stdout and stderr, in listings, details, errors and logs; `--json` keeps the
//! values exactly (JSON escapes).

mod common;

use std::path::Path;

use common::{Run, TestDb, amlmigrate, backup, sql};
use serde_json::Value;

const CLEAR: &str = "\x1b[2J\x1b[H";
const TITLE: &str = "\x1b]0;pwned\x07";
/// A tag value that, shown raw, ends the line and prints a line of its own.
const FAKE_LINE: &str = "ok\nFAKE: every snapshot is signed\u{9b}32m";

/// A character that must never reach a terminal raw (newlines and tabs are the output's own).
fn raw_control(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn assert_clean(what: &str, r: &Run) {
    for (stream, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
        assert!(
            !text.chars().any(raw_control),
            "{what}: a raw control character reached {stream}: {text:?}"
        );
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("FAKE")),
            "{what}: a forged value printed a line of its own on {stream}: {text}"
        );
    }
}

/// Puts escape sequences into every string field of snapshot `id`'s manifest a listing shows.
fn forge_manifest(repo: &Path, id: &str) {
    let path = repo.join("snapshots").join(id).join("manifest.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["hostname"] = format!("host{CLEAR}").into();
    m["tags"]["env"] = format!("prod{TITLE}").into();
    m["tags"]["note"] = FAKE_LINE.into();
    m["tags"][format!("k{CLEAR}")] = "v".into();
    m["notices"] = serde_json::json!([format!("note{CLEAR}\nFAKE: verified")]);
    m["sources"][0]["location"] = format!("mysql://h{TITLE}:3306").into();
    m["sources"][0]["server_version"] = "10.11\u{202E}cba".into();
    let table = m["mysql"][0]["tables"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    m["mysql"][0]["tables"][0]["name"] = format!("{table}{CLEAR}").into();
    m["mysql"][0]["collation"] = format!("utf8mb4_bin\r{TITLE}").into();
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

#[test]
fn a_forged_snapshot_cannot_drive_the_terminal() {
    let db = TestDb::create("term");
    sql(
        Some(&db.name),
        "CREATE TABLE jobs (id INT PRIMARY KEY, name TEXT); INSERT INTO jobs VALUES (1, 'a')",
    );
    let (_tmp, repo) = common::temp_repo();
    let id = backup(&repo, &db.name);
    forge_manifest(&repo, &id);
    let r = repo.to_str().unwrap();

    for args in [
        vec!["snapshots", "--repo", r],
        vec!["show", "--repo", r, &id],
        vec!["show", "--repo", r, &id, "-vv"],
        // The forged table name no longer matches the part: the error names it, escaped.
        vec!["verify", "--repo", r, &id],
        vec!["verify", "--repo", r, &id, "-vv"],
        vec![
            "restore",
            "--repo",
            r,
            &id,
            "--mysql",
            common::MYSQL,
            "--dry-run",
        ],
    ] {
        let run = amlmigrate(&args);
        assert_clean(&args.join(" "), &run);
    }
    // Shown escaped, still visible: the reader sees that something is odd.
    let shown = amlmigrate(&["show", "--repo", r, &id]);
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(
        shown.stdout.contains("host       host\\u001b[2J\\u001b[H")
            && shown
                .stdout
                .contains("tag        note=ok\\nFAKE: every snapshot is signed\\u009b32m")
            && shown
                .stdout
                .contains("note: note\\u001b[2J\\u001b[H\\nFAKE: verified"),
        "{shown:?}"
    );
    let listed = amlmigrate(&["snapshots", "--repo", r]);
    assert_eq!(listed.code, 0, "{listed:?}");
    assert_eq!(
        listed.stdout.lines().count(),
        2,
        "one snapshot, one line: {listed:?}"
    );

    // --json keeps every value as it is: JSON's own escapes, parsed back to the same text.
    for args in [
        vec!["snapshots", "--repo", r, "--json"],
        vec!["show", "--repo", r, &id, "--json"],
    ] {
        let run = amlmigrate(&args);
        assert_clean(&args.join(" "), &run);
        let v: Value = serde_json::from_str(&run.stdout).unwrap();
        let tags = if args[0] == "show" {
            &v["tags"]
        } else {
            &v["snapshots"][0]["tags"]
        };
        assert_eq!(tags["note"], FAKE_LINE, "{}", run.stdout);
        assert_eq!(tags["env"], format!("prod{TITLE}"), "{}", run.stdout);
    }
}

#[test]
fn a_tag_given_to_backup_is_kept_exactly_and_shown_escaped() {
    let db = TestDb::create("termtag");
    sql(Some(&db.name), "CREATE TABLE t (id INT PRIMARY KEY)");
    let (_tmp, repo) = common::temp_repo();
    let r = repo.to_str().unwrap();
    let tag = format!("note={TITLE}{FAKE_LINE}");
    let b = amlmigrate(&[
        "backup",
        "--init",
        "--repo",
        r,
        "--mysql",
        common::MYSQL,
        "--databases",
        &db.name,
        "--tag",
        &tag,
    ]);
    assert_eq!(b.code, 0, "{b:?}");
    assert_clean("backup", &b);
    let listed = amlmigrate(&["snapshots", "--repo", r]);
    assert_clean("snapshots", &listed);
    assert!(
        listed
            .stdout
            .contains("note=\\u001b]0;pwned\\u0007ok\\nFAKE"),
        "{listed:?}"
    );
}
