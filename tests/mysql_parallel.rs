//! `restore --jobs N` loads several tables at once, each on its own connection and in its own
//! transaction, and the result is the snapshot bit for bit (triggers created after the data
//! never fire on restored rows, foreign keys between tables loaded in any order).

mod common;

use std::process::{Command, Stdio};

use common::gate::{TableGate, wait_for, wait_until_blocked};
use common::{MYSQL, TestDb, amlmigrate, backup, checksums, sql};

/// Five tables of 100,000 rows (about 20 MiB each, so several chunks), a foreign key between two
/// of them, a trigger that would write to `audit` if it fired during the restore, and `a_gate`,
/// a small table that streams first (the tests hold its load at a lock).
fn many_tables(db: &str) {
    for i in 0..5 {
        sql(
            Some(db),
            &format!(
                "CREATE TABLE t{i} (id BIGINT PRIMARY KEY, v VARCHAR(255), d DOUBLE, KEY (d)) ENGINE=InnoDB; \
                 INSERT INTO t{i} SELECT seq, REPEAT(CONCAT('row-{i}-', seq), 15), seq / 7 FROM seq_1_to_100000"
            ),
        );
    }
    sql(
        Some(db),
        "CREATE TABLE a_gate (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB; \
         INSERT INTO a_gate SELECT seq, CONCAT('g', seq) FROM seq_1_to_1000; \
         CREATE TABLE child (id INT PRIMARY KEY, t0_id BIGINT, FOREIGN KEY (t0_id) REFERENCES t0(id)) ENGINE=InnoDB; \
         INSERT INTO child SELECT seq, seq FROM seq_1_to_1000; \
         CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(50)) ENGINE=InnoDB; \
         CREATE TRIGGER t1_ai AFTER INSERT ON t1 FOR EACH ROW INSERT INTO audit (what) VALUES ('fired')",
    );
}

/// Rows each table of [`many_tables`] holds.
fn rows_of(table: &str) -> u64 {
    match table {
        "a_gate" | "child" => 1000,
        "audit" => 0,
        _ => 100_000,
    }
}

fn count(db: &str, table: &str) -> u64 {
    sql(Some(db), &format!("SELECT COUNT(*) FROM `{table}`"))
        .trim()
        .parse()
        .unwrap()
}

fn restore_cmd(repo: &std::path::Path, id: &str, src: &str, dst: &str, jobs: &str) -> Command {
    let mut cmd = Command::new(common::bin());
    cmd.args([
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        id,
        "--mysql",
        MYSQL,
        "--rename",
        &format!("{src}={dst}"),
        "--jobs",
        jobs,
        "--trust-unsigned-code",
        "--quiet",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

/// What restore left: the snapshot's rows, the trigger created after them and never fired.
fn assert_restored(src: &str, dst: &str, what: &str) {
    assert_eq!(checksums(dst), checksums(src), "{what}");
    assert_eq!(
        sql(Some(dst), "SELECT COUNT(*) FROM audit").trim(),
        "0",
        "{what}: a trigger fired on restored rows"
    );
    assert_eq!(
        sql(
            None,
            &format!(
                "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{dst}'"
            )
        )
        .trim(),
        "1",
        "{what}: the trigger was not created after the data"
    );
}

/// Concurrency by construction: the test holds a lock on `a_gate` (which streams first), so
/// its loader waits; every other table must then be loaded and committed by the other loaders
/// while that load still waits. With one loader this state is never reached.
#[test]
fn jobs_load_several_tables_at_once_and_the_result_is_the_snapshot() {
    let (_dir, repo) = common::temp_repo();
    let src = TestDb::create("par_src");
    many_tables(&src.name);
    let id = backup(&repo, &src.name);

    let dst = TestDb::create("par_dst");
    sql(
        None,
        &format!(
            "CREATE TABLE `{0}`.a_gate LIKE `{1}`.a_gate",
            dst.name, src.name
        ),
    );
    let gate = TableGate::read(&dst.name, "a_gate");
    let child = restore_cmd(&repo, &id, &src.name, &dst.name, "3")
        .spawn()
        .unwrap();
    let waiting = wait_until_blocked(&format!("LOAD DATA%`{}`.`a_gate`%", dst.name));
    let others = ["t0", "t1", "t2", "t3", "t4", "child"];
    wait_for(
        "every other table committed while a_gate's load waits",
        || {
            others
                .iter()
                .all(|t| count(&dst.name, t) == rows_of(t))
                .then_some(())
        },
    );
    assert_eq!(count(&dst.name, "a_gate"), 0);
    assert_eq!(
        wait_until_blocked(&format!("LOAD DATA%`{}`.`a_gate`%", dst.name)),
        waiting,
        "a_gate's load stopped waiting while the gate was held"
    );
    gate.open();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_restored(&src.name, &dst.name, "--jobs 3");

    // One loader: never two loads at once (a sampled upper bound cannot fail by chance).
    let dst1 = TestDb::new("par_dst1");
    let query = format!(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
         WHERE INFO LIKE 'LOAD DATA LOCAL INFILE%' AND INFO LIKE '%INTO TABLE `{}`.%'",
        dst1.name
    );
    let mut child = restore_cmd(&repo, &id, &src.name, &dst1.name, "1")
        .spawn()
        .unwrap();
    let mut most = 0;
    while child.try_wait().unwrap().is_none() {
        most = most.max(sql(None, &query).trim().parse::<usize>().unwrap());
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(most <= 1, "--jobs 1 loaded {most} tables at once");
    assert_restored(&src.name, &dst1.name, "--jobs 1");
}

#[test]
fn a_failing_table_rolls_back_while_the_others_stop_whole_and_the_error_names_it() {
    let (_dir, repo) = common::temp_repo();
    let src = TestDb::create("par_fail");
    many_tables(&src.name);
    let id = backup(&repo, &src.name);
    // A forged row with a field too many in t3's last chunk: the server warns, so t3 must roll
    // back, and every other table is either whole or empty.
    common::forge_part(&repo, &id, |files| {
        let last = files
            .keys()
            .filter(|p| p.contains("/t3/") && p.ends_with(".tsv"))
            .max()
            .unwrap()
            .clone();
        let chunk = files.get_mut(&last).unwrap();
        let at = chunk.iter().position(|b| *b == b'\n').unwrap();
        chunk.splice(at..at, b"\textra".iter().copied());
    });
    let dst = TestDb::new("par_fail_dst");
    let r = amlmigrate(&[
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        &id,
        "--mysql",
        MYSQL,
        "--rename",
        &format!("{}={}", src.name, dst.name),
        "--jobs",
        "3",
    ]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("`.`t3`"),
        "the error does not name t3: {r:?}"
    );
    assert!(r.stderr.contains("rolled back"), "{r:?}");
    let counts = sql(
        None,
        &format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}'",
            dst.name
        ),
    );
    for t in counts.lines() {
        let n = count(&dst.name, t);
        let want = rows_of(t);
        assert!(n == 0 || n == want, "{t} holds {n} rows: a partial table");
        if t == "t3" {
            assert_eq!(n, 0, "t3 committed despite the warning");
        }
    }
}
