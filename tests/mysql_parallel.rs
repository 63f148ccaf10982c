//! `restore --jobs N` loads several tables at once, each on its own connection and in its own
//! transaction, and the result is the snapshot bit for bit (triggers created after the data
//! never fire on restored rows, foreign keys between tables loaded in any order).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{MYSQL, TestDb, amlmigrate, backup, checksums, sql};

/// Five tables of 100,000 rows (about 20 MiB each, so several chunks), a foreign key between two
/// of them, and a trigger that would write to `audit` if it fired during the restore.
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
        "CREATE TABLE child (id INT PRIMARY KEY, t0_id BIGINT, FOREIGN KEY (t0_id) REFERENCES t0(id)) ENGINE=InnoDB; \
         INSERT INTO child SELECT seq, seq FROM seq_1_to_1000; \
         CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(50)) ENGINE=InnoDB; \
         CREATE TRIGGER t1_ai AFTER INSERT ON t1 FOR EACH ROW INSERT INTO audit (what) VALUES ('fired')",
    );
}

/// The most `LOAD DATA` statements into database `db` the server ran at the same moment while
/// `f` ran.
fn most_loads_at_once(db: &str, f: impl FnOnce()) -> usize {
    let query = format!(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
         WHERE INFO LIKE 'LOAD DATA LOCAL INFILE%' AND INFO LIKE '%INTO TABLE `{db}`.%'"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (stop, most) = (stop.clone(), most.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let n: usize = sql(None, &query).trim().parse().unwrap();
                most.fetch_max(n, Ordering::SeqCst);
            }
        })
    };
    f();
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    most.load(Ordering::SeqCst)
}

#[test]
fn jobs_load_several_tables_at_once_and_the_result_is_the_snapshot() {
    let (_dir, repo) = common::temp_repo();
    let src = TestDb::create("par_src");
    many_tables(&src.name);
    let id = backup(&repo, &src.name);
    for jobs in ["3", "1"] {
        let dst = TestDb::new("par_dst");
        let most = most_loads_at_once(&dst.name, || {
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
                jobs,
            ]);
            assert_eq!(r.code, 0, "--jobs {jobs}: {r:?}");
        });
        if jobs == "1" {
            assert_eq!(most, 1, "--jobs 1 loaded {most} tables at once");
        } else {
            assert!(most >= 2, "--jobs {jobs} never loaded two tables at once");
        }
        assert_eq!(checksums(&dst.name), checksums(&src.name), "--jobs {jobs}");
        assert_eq!(
            sql(Some(&dst.name), "SELECT COUNT(*) FROM audit").trim(),
            "0",
            "a trigger fired on restored rows"
        );
        assert_eq!(
            sql(
                None,
                &format!(
                    "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{}'",
                    dst.name
                )
            )
            .trim(),
            "1",
            "the trigger was not created after the data"
        );
    }
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
        let n: u64 = sql(Some(&dst.name), &format!("SELECT COUNT(*) FROM `{t}`"))
            .trim()
            .parse()
            .unwrap();
        let want = match t {
            "child" => 1000,
            "audit" => 0,
            _ => 100_000,
        };
        assert!(n == 0 || n == want, "{t} holds {n} rows: a partial table");
        if t == "t3" {
            assert_eq!(n, 0, "t3 committed despite the warning");
        }
    }
}
