//! Metrics pushed to a real Prometheus Pushgateway (Debian's, started by
//! scripts/pushgateway.sh), read back from its /metrics; the PrometheusRule `schedule install
//! --print --prometheus-rule` emits, checked and unit-tested with the real promtool.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::Value;

fn pushgateway() -> String {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap();
    let cache = std::env::var_os("AMLMIGRATE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/amlmigrate"));
    let env_file = cache.join("pushgateway/pushgateway.env");
    let out = Command::new("scripts/pushgateway.sh")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/pushgateway.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(env_file)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("AMLMIGRATE_TEST_PUSHGATEWAY_URL="))
        .unwrap()
        .to_string()
}

/// The Pushgateway's samples of one schedule: `name` → value (the other labels are the
/// group's: job, repository, schedule, instance).
fn samples(url: &str, schedule: &str) -> BTreeMap<String, f64> {
    let out = Command::new("curl")
        .args(["-sf", &format!("{url}/metrics")])
        .output()
        .unwrap();
    assert!(out.status.success());
    let label = format!("schedule=\"{schedule}\"");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("amlmigrate_") && l.contains(&label))
        .map(|l| {
            let (name, rest) = l.split_once('{').unwrap();
            let value = rest.rsplit_once(' ').unwrap().1.parse().unwrap();
            (name.to_string(), value)
        })
        .collect()
}

fn labels_of(url: &str, schedule: &str) -> String {
    let out = Command::new("curl")
        .args(["-sf", &format!("{url}/metrics")])
        .output()
        .unwrap();
    let label = format!("schedule=\"{schedule}\"");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("amlmigrate_backup_success{") && l.contains(&label))
        .unwrap()
        .to_string()
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn backup_verify_and_prune_push_their_results_and_a_failure_keeps_the_last_success() {
    let url = pushgateway();
    let db = TestDb::with_fixture("metrics");
    let (_dir, repo) = temp_repo();
    let repo_s = repo.to_str().unwrap();
    let schedule = format!("t{}", std::process::id());
    let push = ["--metrics-push", &url, "--metrics-schedule", &schedule];

    let before = now();
    let mut args = vec![
        "backup",
        "--init",
        "--repo",
        repo_s,
        "--mysql",
        MYSQL,
        "--databases",
        &db.name,
        "--quiet",
    ];
    args.extend(push);
    let id = ok(&args);
    // The environment variable does what the flag does (the CronJob sets it).
    let r = amlmigrate_env(
        &["verify", "--repo", repo_s, "latest", "--quiet"],
        &[
            ("AMLMIGRATE_METRICS_PUSH", url.as_str()),
            ("AMLMIGRATE_METRICS_SCHEDULE", schedule.as_str()),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    // Two more; prune keeps the newest and the verified one, and removes the one between.
    for _ in 0..2 {
        let mut args = vec![
            "backup",
            "--init",
            "--repo",
            repo_s,
            "--mysql",
            MYSQL,
            "--databases",
            &db.name,
            "--quiet",
        ];
        args.extend(push);
        ok(&args);
    }
    let mut args = vec!["prune", "--repo", repo_s, "--keep-last", "1", "--quiet"];
    args.extend(push);
    ok(&args);

    let m = samples(&url, &schedule);
    let manifest: Value =
        serde_json::from_str(&ok(&["show", "--repo", repo_s, "latest", "--json"])).unwrap();
    let rows: u64 = manifest["mysql"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["rows"].as_u64().unwrap())
        .sum();
    let stored: u64 = manifest["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["size"].as_u64().unwrap())
        .sum();
    let last = m["amlmigrate_backup_last_success_timestamp_seconds"];
    assert!(last >= before && last <= now(), "{m:?}");
    assert_eq!(m["amlmigrate_backup_success"], 1.0, "{m:?}");
    assert_eq!(m["amlmigrate_backup_rows"], rows as f64, "{m:?}");
    assert_eq!(m["amlmigrate_backup_stored_bytes"], stored as f64, "{m:?}");
    assert!(m["amlmigrate_backup_raw_bytes"] > 0.0, "{m:?}");
    assert_eq!(m["amlmigrate_backup_objects"], 0.0, "{m:?}");
    assert!(m["amlmigrate_backup_duration_seconds"] > 0.0, "{m:?}");
    assert_eq!(m["amlmigrate_verify_success"], 1.0, "{m:?}");
    assert!(m.contains_key("amlmigrate_verify_last_success_timestamp_seconds"));
    assert_eq!(m["amlmigrate_verify_rows"], rows as f64, "{m:?}");
    assert_eq!(m["amlmigrate_snapshots_kept"], 2.0, "{m:?}");
    assert_eq!(m["amlmigrate_snapshots_removed"], 1.0, "{m:?}");
    assert!(!m.contains_key("amlmigrate_backup_last_failure_timestamp_seconds"));
    // The group's labels: job, repository (slashes and all), schedule.
    let l = labels_of(&url, &schedule);
    assert!(
        l.contains("job=\"amlmigrate\"") && l.contains(&format!("repository=\"{repo_s}\"")),
        "{l}"
    );
    assert_ne!(id, "");

    // A failed backup (MySQL unreachable) pushes its failure; the last success stays.
    let before_failure = now();
    let mut args = vec![
        "backup",
        "--init",
        "--repo",
        repo_s,
        "--mysql",
        "mysql://root@127.0.0.1:1",
        "--quiet",
    ];
    args.extend(push);
    let r = amlmigrate(&args);
    assert_eq!(r.code, 5, "{r:?}");
    let after = samples(&url, &schedule);
    assert_eq!(after["amlmigrate_backup_success"], 0.0, "{after:?}");
    let failed = after["amlmigrate_backup_last_failure_timestamp_seconds"];
    assert!(failed >= before_failure && failed <= now(), "{after:?}");
    assert_eq!(
        after["amlmigrate_backup_last_success_timestamp_seconds"], last,
        "{after:?}"
    );
    // Verify's and prune's metrics are untouched by backup's push.
    assert_eq!(after["amlmigrate_verify_success"], 1.0);
    assert_eq!(after["amlmigrate_snapshots_kept"], 2.0);

    // A damaged snapshot: verify exits 3 and pushes its failure.
    let latest = ok(&["snapshots", "--repo", repo_s, "--json"]);
    let latest: Value = serde_json::from_str(&latest).unwrap();
    let latest = latest["snapshots"].as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let part = part_file(&repo, &latest);
    let mut bytes = std::fs::read(&part).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&part, bytes).unwrap();
    let mut args = vec!["verify", "--repo", repo_s, &latest, "--quiet"];
    args.extend(push);
    let r = amlmigrate(&args);
    assert_eq!(r.code, 3, "{r:?}");
    let damaged = samples(&url, &schedule);
    assert_eq!(damaged["amlmigrate_verify_success"], 0.0, "{damaged:?}");
    assert!(damaged.contains_key("amlmigrate_verify_last_failure_timestamp_seconds"));

    // The test's group goes, so the shared Pushgateway does not fill up.
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let out = Command::new("curl")
        .args(["-sf", "-X", "DELETE"])
        .arg(format!(
            "{url}/metrics/job/amlmigrate/repository@base64/{}/schedule@base64/{}",
            b64(repo_s),
            b64(&schedule)
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(samples(&url, &schedule).is_empty());
}

#[test]
fn verify_of_a_deduplicated_snapshot_reports_and_pushes_the_bytes_it_read_with_each_tables_time() {
    let url = pushgateway();
    let db = TestDb::create("metrics_read");
    big_table(&db.name, 20_000);
    let (_dir, repo) = temp_repo();
    let repo_s = repo.to_str().unwrap();
    let schedule = format!("r{}", std::process::id());
    let (first, _) = backup_stored(&repo, &db.name);
    let (second, added) = backup_stored(&repo, &db.name);
    let verify = |id: &str| {
        let r = amlmigrate(&[
            "verify",
            "--repo",
            repo_s,
            id,
            "--json",
            "--metrics-push",
            &url,
            "--metrics-schedule",
            &schedule,
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        let j: Value = serde_json::from_str(&r.stdout).unwrap();
        j["verify"]["bytes_read"].as_u64().unwrap()
    };
    let read_first = verify(&first);
    let read_second = verify(&second);
    // The second snapshot added almost nothing, but verify read all of its chunks: about as
    // much as for the first, nearly every byte of the packs (headers, trailers and the few
    // chunks only the other snapshot uses aside).
    let packs = pack_bytes(&repo);
    assert!(
        added * 100 < packs,
        "the second snapshot added {added} of {packs} bytes"
    );
    for read in [read_first, read_second] {
        assert!(
            read <= packs && read * 10 >= packs * 9,
            "verify read {read} bytes of {packs} in packs"
        );
    }
    let m = samples(&url, &schedule);
    assert_eq!(
        m["amlmigrate_verify_bytes_read"], read_second as f64,
        "{m:?}"
    );

    // Each table's line says the time it took, not a constant zero.
    let r = amlmigrate(&["verify", "--repo", repo_s, &second]);
    assert_eq!(r.code, 0, "{r:?}");
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains(&format!("{}.big: 20,000 rows in ", db.name)))
        .unwrap_or_else(|| panic!("no line for table big: {r:?}"));
    let time = line.rsplit_once(" in ").unwrap().1;
    let digits: String = time
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let unit = &time[digits.len()..];
    assert!(["µs", "ms", "s"].contains(&unit), "{line}");
    assert!(digits.parse::<f64>().unwrap() > 0.0, "{line}");
}

#[test]
fn an_unreachable_pushgateway_is_a_warning_and_the_backup_still_succeeds() {
    let db = TestDb::with_fixture("metrics_down");
    let (_dir, repo) = temp_repo();
    let r = amlmigrate(&[
        "backup",
        "--init",
        "--repo",
        repo.to_str().unwrap(),
        "--mysql",
        MYSQL,
        "--databases",
        &db.name,
        "--quiet",
        "--metrics-push",
        "http://amlpush:Push-S3cret-x9@127.0.0.1:1",
        "-v",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains(
            "warning: pushing the backup metrics to the Pushgateway http://amlpush:(hidden)@127.0.0.1:1"
        ) && r.stderr.contains("--metrics-push"),
        "{r:?}"
    );
    assert!(!r.all().contains("Push-S3cret-x9"), "{r:?}");
}

#[test]
fn the_prometheus_rule_passes_promtool_and_fires_only_after_the_period_and_margin() {
    let r = amlmigrate_env(
        &[
            "schedule",
            "install",
            "-n",
            "aml-backup",
            "--name",
            "nightly",
            "--repo",
            "s3://aml-backups/prod",
            "--cron",
            "0 2 * * *",
            "--keep-daily",
            "7",
            "--mysql",
            "mysql://backup@mysql.kubeflow:3306",
            "--mysql-secret",
            "aml-mysql",
            "--s3-secret",
            "aml-s3",
            "--metrics-push",
            "http://pushgateway.monitoring:9091",
            "--print",
            "--prometheus-rule",
        ],
        &[("KUBECONFIG", "/nonexistent")],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let docs: Vec<Value> = serde_saphyr::from_multiple::<Value>(&r.stdout)
        .unwrap()
        .into_iter()
        .filter(|d| d.is_object())
        .collect();
    // The CronJob pushes every step's metrics under the schedule's name.
    let cj = docs.iter().find(|d| d["kind"] == "CronJob").unwrap();
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    for c in [
        &pod["initContainers"][0],
        &pod["initContainers"][1],
        &pod["containers"][0],
    ] {
        let env = c["env"].as_array().unwrap();
        for (k, v) in [
            (
                "AMLMIGRATE_METRICS_PUSH",
                "http://pushgateway.monitoring:9091",
            ),
            ("AMLMIGRATE_METRICS_SCHEDULE", "nightly"),
        ] {
            assert!(env.iter().any(|e| e["name"] == k && e["value"] == v), "{c}");
        }
    }
    let rule = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("a PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], "aml-backup");

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, serde_json::to_string(&rule["spec"]).unwrap()).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A daily schedule with the default 1h margin: a backup that succeeded at time 0 is missed
    // after 25h, not at 24h; a failed verify alerts at once.
    let test = dir.path().join("test.yml");
    std::fs::write(
        &test,
        r#"rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 10m
    input_series:
      - series: 'amlmigrate_backup_last_success_timestamp_seconds{job="amlmigrate",repository="s3://aml-backups/prod",schedule="nightly"}'
        values: '0x200'
      - series: 'amlmigrate_verify_success{job="amlmigrate",repository="s3://aml-backups/prod",schedule="nightly"}'
        values: '1x100 0x100'
    alert_rule_test:
      - eval_time: 24h50m
        alertname: AmlmigrateBackupMissing
        exp_alerts: []
      - eval_time: 25h10m
        alertname: AmlmigrateBackupMissing
        exp_alerts:
          - exp_labels: {severity: critical, repository: "s3://aml-backups/prod", schedule: nightly}
            exp_annotations:
              summary: "No amlmigrate backup of schedule nightly succeeded for 1day 1h"
              description: "The last successful backup of schedule nightly into s3://aml-backups/prod is older than the schedule's period (1day) plus 1h. See the CronJob's Jobs: kubectl -n aml-backup get jobs -l amlmigrate.alauda.io/schedule=nightly and their logs."
      - eval_time: 16h
        alertname: AmlmigrateVerifyFailed
        exp_alerts: []
      - eval_time: 17h
        alertname: AmlmigrateVerifyFailed
        exp_alerts:
          - exp_labels: {severity: critical, job: amlmigrate, repository: "s3://aml-backups/prod", schedule: nightly}
            exp_annotations:
              summary: "The newest snapshot of schedule nightly did not verify"
              description: "A snapshot in s3://aml-backups/prod does not match its manifest; run amlmigrate verify --repo … latest and read kubectl -n aml-backup logs job/<job> -c verify"
"#,
    )
    .unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules", "test.yml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
