//! `amlmigrate schedule` end to end: the real binary against the fake API server (real HTTP,
//! discovery, server-side apply): what install creates, what show reports, that remove deletes
//! exactly what install made, --print, and the input errors.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use fakekube::FakeKube;
use serde_json::{Value, json};

const NS: &str = "aml-backup";
const MYSQL_URL: &str = "mysql://backup@mysql.kubeflow:3306";

struct Env {
    fk: FakeKube,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Env {
    fn new() -> Env {
        let fk = FakeKube::start();
        fk.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = fk.write_kubeconfig(dir.path(), FakeKube::ADMIN_TOKEN);
        Env {
            fk,
            _dir: dir,
            kubeconfig,
        }
    }
    fn run(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--kubeconfig", self.kubeconfig.to_str().unwrap()]);
        amlmigrate(&all)
    }
    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, 0, "amlmigrate {args:?} failed: {r:?}");
        r.stdout.trim().to_string()
    }
    fn install(&self, name: &str, repo: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "schedule",
            "install",
            "-n",
            NS,
            "--name",
            name,
            "--repo",
            repo,
            "--cron",
            "0 2 * * *",
            "--keep-daily",
            "7",
            "--keep-weekly",
            "4",
        ];
        args.extend(extra);
        self.ok(&args)
    }
}

fn s3_install_flags() -> Vec<&'static str> {
    vec![
        "--mysql",
        MYSQL_URL,
        "--mysql-secret",
        "aml-mysql",
        "--s3-secret",
        "aml-s3",
        "--kube",
        "--databases",
        "aml,mlpipeline",
        "--image",
        "registry.example.com/amlmigrate:0.1.0",
    ]
}

/// `schedule install` of a repository at `cron`, without rules or sources.
fn install_args(cron: &str) -> Vec<&str> {
    vec![
        "schedule",
        "install",
        "-n",
        NS,
        "--repo",
        "s3://aml-backups/prod",
        "--cron",
        cron,
    ]
}

/// A container's arguments.
fn args_of(c: &Value) -> Vec<String> {
    c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn labels(o: &Value) -> &Value {
    &o["metadata"]["labels"]
}

#[test]
fn install_creates_a_service_account_read_only_rbac_and_a_cronjob_using_secret_references() {
    let env = Env::new();
    env.install("nightly", "s3://aml-backups/prod", &s3_install_flags());
    let fk = &env.fk;

    let sa = fk
        .get("v1", "ServiceAccount", Some(NS), "amlmigrate-nightly")
        .expect("service account");
    assert_eq!(labels(&sa)["app.kubernetes.io/managed-by"], "amlmigrate");
    assert_eq!(labels(&sa)["amlmigrate.alauda.io/schedule"], "nightly");

    let cname = format!("amlmigrate-{NS}-nightly");
    let role = fk
        .get("rbac.authorization.k8s.io/v1", "ClusterRole", None, &cname)
        .expect("cluster role");
    let rules = role["rules"].as_array().unwrap();
    let resources: Vec<&str> = rules
        .iter()
        .flat_map(|r| r["resources"].as_array().unwrap())
        .map(|v| v.as_str().unwrap())
        .collect();
    for r in [
        "notebooks",
        "profiles",
        "persistentvolumeclaims",
        "persistentvolumes",
        "namespaces",
        "rolebindings",
    ] {
        assert!(resources.contains(&r), "{r} missing from {resources:?}");
    }
    assert!(
        !resources.contains(&"secrets"),
        "Secrets readable without --encrypt-to"
    );
    assert!(
        !resources.contains(&"pods"),
        "every Pod readable: {rules:?}"
    );
    let cm = rules
        .iter()
        .find(|r| r["resources"] == json!(["configmaps"]))
        .expect("a rule of its own for the ConfigMaps");
    assert_eq!(cm["resourceNames"], json!(["aml-image-builder-config"]));
    for r in rules {
        assert_eq!(r["verbs"], json!(["get", "list"]), "{r}");
    }
    let binding = fk
        .get(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            None,
            &cname,
        )
        .expect("binding");
    assert_eq!(binding["roleRef"]["name"], cname.as_str());
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "amlmigrate-nightly", "namespace": NS}])
    );

    let cj = fk
        .get("batch/v1", "CronJob", Some(NS), "amlmigrate-nightly")
        .expect("cronjob");
    let spec = &cj["spec"];
    assert_eq!(spec["schedule"], "0 2 * * *");
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    assert!(spec["startingDeadlineSeconds"].as_u64().unwrap() > 0);
    assert!(spec["successfulJobsHistoryLimit"].is_u64() && spec["failedJobsHistoryLimit"].is_u64());
    let job = &spec["jobTemplate"]["spec"];
    assert_eq!(job["backoffLimit"], 1);
    let pod = &job["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["serviceAccountName"], "amlmigrate-nightly");
    let backup = &pod["initContainers"][0];
    let prune = &pod["containers"][0];
    assert_eq!(backup["image"], "registry.example.com/amlmigrate:0.1.0");
    let args = args_of;
    let b = args(backup).join(" ");
    assert!(
        b.starts_with("backup --repo s3://aml-backups/prod")
            && b.contains("--mysql mysql://backup@mysql.kubeflow:3306")
            && b.contains("--databases aml,mlpipeline")
            && b.contains("--kube"),
        "{b}"
    );
    assert_eq!(
        args(prune).join(" "),
        "prune --repo s3://aml-backups/prod -v --log-format json --keep-daily 7 --keep-weekly 4"
    );
    // The snapshot just taken is verified before prune runs; every step logs JSON lines.
    let verify = &pod["initContainers"][1];
    assert_eq!(
        args(verify).join(" "),
        "verify --repo s3://aml-backups/prod latest --progress never -v --log-format json"
    );
    assert!(b.contains("--log-format json"), "{b}");
    assert_eq!(
        backup["env"],
        json!([{"name": "AMLMIGRATE_MYSQL_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "aml-mysql", "key": "password"}}}])
    );
    // Verify and prune read the repository only: no database password reaches them.
    for c in [verify, prune] {
        assert_eq!(c["env"], Value::Null, "{c}");
    }
    for c in [backup, verify, prune] {
        assert_eq!(c["envFrom"], json!([{"secretRef": {"name": "aml-s3"}}]));
    }
    // Applied server-side by our field manager.
    let managers: Vec<&str> = cj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, vec!["amlmigrate"]);

    // Installing again changes nothing and succeeds (apply is idempotent).
    env.install("nightly", "s3://aml-backups/prod", &s3_install_flags());

    // With --encrypt-to, the job may read Secrets (to store them encrypted).
    let mut flags = s3_install_flags();
    flags.extend([
        "--encrypt-to",
        "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
    ]);
    env.install("nightly", "s3://aml-backups/prod", &flags);
    let role = fk
        .get("rbac.authorization.k8s.io/v1", "ClusterRole", None, &cname)
        .unwrap();
    assert!(role["rules"].to_string().contains("\"secrets\""), "{role}");

    // The real kubectl reads the CronJob back from the same API.
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok()
    {
        let out = Command::new("kubectl")
            .args([
                "--kubeconfig",
                env.kubeconfig.to_str().unwrap(),
                "get",
                "cronjob",
                "-n",
                NS,
                "-o",
                "json",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(list["items"][0]["metadata"]["name"], "amlmigrate-nightly");
    }
}

#[test]
fn the_articles_three_servers_are_scheduled_each_with_its_own_password_for_the_backup_only() {
    let env = Env::new();
    env.install(
        "three",
        "s3://aml-backups/prod",
        &[
            "--mysql",
            "aml=mysql://root@10.4.158.198:3306",
            "--mysql",
            "kfp=mysql://root@mysql.kubeflow:3306",
            "--mysql",
            "mlflow=mysql://mlflow@10.4.158.198:3306",
            "--mysql-secret",
            "aml=aml-mysql",
            "--mysql-secret",
            "kfp=kfp-mysql",
            "--mysql-secret",
            "mlflow=mlflow-mysql",
            "--databases",
            "aml=aml",
            "--databases",
            "kfp=mlpipeline,cachedb,metadb",
            "--databases",
            "mlflow=mlflow",
            "--s3-secret",
            "aml-s3",
            "--metrics-push",
            "http://pushgateway.monitoring:9091",
        ],
    );
    // Read back by the real kubectl from the fake API server.
    let (ok, out) = kubectl_as(
        &env.kubeconfig,
        &["get", "cronjob", "-n", NS, "amlmigrate-three", "-o", "json"],
    );
    assert!(ok, "{out}");
    let cj: Value = serde_json::from_str(&out).unwrap();
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let (backup, verify, prune) = (
        &pod["initContainers"][0],
        &pod["initContainers"][1],
        &pod["containers"][0],
    );
    let b = args_of(backup).join(" ");
    for want in [
        "--mysql aml=mysql://root@10.4.158.198:3306 --databases aml=aml",
        "--mysql kfp=mysql://root@mysql.kubeflow:3306 --databases kfp=mlpipeline,cachedb,metadb",
        "--mysql mlflow=mysql://mlflow@10.4.158.198:3306 --databases mlflow=mlflow",
    ] {
        assert!(b.contains(want), "{want} not in {b}");
    }
    let secret_of = |c: &Value, var: &str| -> Option<String> {
        c["env"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == var)
            .map(|e| {
                assert_eq!(e["valueFrom"]["secretKeyRef"]["key"], "password", "{e}");
                e["valueFrom"]["secretKeyRef"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
    };
    // Each server's password under the variable `backup` reads for that source, and none under
    // the general one (which would be every source's fallback).
    for (var, secret) in [
        ("AMLMIGRATE_MYSQL_PASSWORD_AML", "aml-mysql"),
        ("AMLMIGRATE_MYSQL_PASSWORD_KFP", "kfp-mysql"),
        ("AMLMIGRATE_MYSQL_PASSWORD_MLFLOW", "mlflow-mysql"),
    ] {
        assert_eq!(secret_of(backup, var).as_deref(), Some(secret), "{backup}");
    }
    assert_eq!(secret_of(backup, "AMLMIGRATE_MYSQL_PASSWORD"), None);
    // Verify and prune get the metrics settings and the S3 Secret, but no MySQL password.
    for c in [verify, prune] {
        let names: Vec<&str> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["AMLMIGRATE_METRICS_PUSH", "AMLMIGRATE_METRICS_SCHEDULE"],
            "{c}"
        );
        assert!(!c.to_string().contains("mysql"), "{c}");
    }
    assert_eq!(prune["envFrom"], json!([{"secretRef": {"name": "aml-s3"}}]));
}

#[test]
fn several_mysql_sources_need_each_secret_and_database_list_named() {
    let env = Env::new();
    let mut a = install_args("@daily");
    a.extend([
        "--keep-last",
        "3",
        "--mysql",
        "aml=mysql://root@a:3306",
        "--mysql",
        "kfp=mysql://root@k:3306",
    ]);
    for (flag, value) in [("--mysql-secret", "aml-mysql"), ("--databases", "aml")] {
        let mut args = a.clone();
        args.extend([flag, value]);
        let r = env.run(&args);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(
            r.stderr
                .contains(&format!("{flag} {value}: with several --mysql sources write NAME={value} (sources: aml, kfp)")),
            "{r:?}"
        );
    }
    a.extend(["--mysql-secret", "kfp=one", "--mysql-secret", "kfp=two"]);
    let r = env.run(&a);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("two Secrets for source kfp"), "{r:?}");
    assert!(
        env.fk.list("batch/v1", "CronJob", Some(NS)).is_empty(),
        "a refused install made a CronJob"
    );
}

#[test]
fn show_lists_the_schedule_its_jobs_and_the_newest_snapshot_of_its_repository() {
    let env = Env::new();
    let db = TestDb::create("sched");
    sql(
        Some(&db.name),
        "CREATE TABLE t (a INT); INSERT INTO t VALUES (1)",
    );
    let (_tmp, repo) = temp_repo();
    let id = backup(&repo, &db.name);
    let repo_s = repo.to_str().unwrap();
    env.install(
        "nightly",
        repo_s,
        &["--mysql", MYSQL_URL, "--repo-pvc", "aml-backups"],
    );

    // The CronJob controller would create these; the fake has none, so the test does.
    for (name, start, done) in [
        ("amlmigrate-nightly-29000000", "2026-11-27T02:00:00Z", true),
        ("amlmigrate-nightly-29001440", "2026-11-28T02:00:00Z", false),
    ] {
        env.fk
            .create(json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "namespace": NS, "labels": {
                    "app.kubernetes.io/managed-by": "amlmigrate",
                    "amlmigrate.alauda.io/schedule": "nightly"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "prune", "image": "x"}]}}},
            }))
            .unwrap();
        env.fk.update("batch/v1", "Job", Some(NS), name, |j| {
            j["status"] = if done {
                json!({"startTime": start, "completionTime": "2026-11-27T02:01:00Z", "succeeded": 1,
                       "conditions": [{"type": "Complete", "status": "True"}]})
            } else {
                json!({"startTime": start, "active": 1})
            };
        });
    }
    env.fk
        .update("batch/v1", "CronJob", Some(NS), "amlmigrate-nightly", |c| {
            c["status"] = json!({"lastScheduleTime": "2026-11-28T02:00:00Z",
                             "lastSuccessfulTime": "2026-11-27T02:01:00Z"});
        });

    let j: Value =
        serde_json::from_str(&env.ok(&["schedule", "show", "-n", NS, "--json"])).unwrap();
    let s = &j["schedules"][0];
    assert_eq!(s["name"], "nightly");
    assert_eq!(s["cron"], "0 2 * * *");
    assert_eq!(s["repository"], repo_s);
    assert_eq!(s["last_schedule_time"], "2026-11-28T02:00:00Z");
    assert_eq!(s["snapshot"]["newest"], id.as_str());
    let jobs: Vec<(&str, &str)> = s["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["name"].as_str().unwrap(), j["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        jobs,
        vec![
            ("amlmigrate-nightly-29001440", "Running"),
            ("amlmigrate-nightly-29000000", "Succeeded")
        ]
    );
    let text = env.ok(&["schedule", "show", "-n", NS]);
    assert!(
        text.contains(&id) && text.contains("Succeeded") && text.contains("0 2 * * *"),
        "{text}"
    );

    // An unreachable repository is reported, not fatal.
    env.install("other", "s3://aml-backups/x", &["--mysql", MYSQL_URL]);
    let j: Value = serde_json::from_str(
        &env.run(&["schedule", "show", "-n", NS, "--name", "other", "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(j["schedules"][0]["snapshot"]["reachable"], false, "{j}");
}

#[test]
fn remove_deletes_exactly_what_install_created_and_nothing_else() {
    let env = Env::new();
    let fk = &env.fk;
    env.install("nightly", "s3://b-1/x", &s3_install_flags());
    env.install("weekly", "s3://b-1/y", &s3_install_flags());
    // Someone else's objects, some even labelled like ours in another namespace.
    fk.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}))
        .unwrap();
    fk.create(json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "amlmigrate-nightly", "namespace": "other", "labels": {
            "app.kubernetes.io/managed-by": "amlmigrate", "amlmigrate.alauda.io/schedule": "nightly"}}})).unwrap();
    fk.create(json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "unrelated", "namespace": NS}}))
        .unwrap();
    fk.create(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "amlmigrate-other-nightly", "labels": {
            "app.kubernetes.io/managed-by": "amlmigrate", "amlmigrate.alauda.io/schedule": "nightly",
            "amlmigrate.alauda.io/namespace": "other"}}, "rules": []})).unwrap();

    let out = env.ok(&[
        "schedule", "remove", "-n", NS, "--name", "nightly", "--json",
    ]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["removed"].as_array().unwrap().len(), 4, "{j}");

    let cname = format!("amlmigrate-{NS}-nightly");
    assert!(
        fk.get("batch/v1", "CronJob", Some(NS), "amlmigrate-nightly")
            .is_none()
    );
    assert!(
        fk.get("v1", "ServiceAccount", Some(NS), "amlmigrate-nightly")
            .is_none()
    );
    assert!(
        fk.get("rbac.authorization.k8s.io/v1", "ClusterRole", None, &cname)
            .is_none()
    );
    assert!(
        fk.get(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            None,
            &cname
        )
        .is_none()
    );
    // Everything else stays.
    assert!(
        fk.get("batch/v1", "CronJob", Some(NS), "amlmigrate-weekly")
            .is_some()
    );
    assert!(
        fk.get("v1", "ServiceAccount", Some(NS), "amlmigrate-weekly")
            .is_some()
    );
    assert!(
        fk.get(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            None,
            &format!("amlmigrate-{NS}-weekly")
        )
        .is_some()
    );
    assert!(
        fk.get("v1", "ServiceAccount", Some("other"), "amlmigrate-nightly")
            .is_some()
    );
    assert!(
        fk.get("v1", "ServiceAccount", Some(NS), "unrelated")
            .is_some()
    );
    assert!(
        fk.get(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            None,
            "amlmigrate-other-nightly"
        )
        .is_some()
    );

    // Removing again: nothing of that name is left, which is bad input.
    let r = env.run(&["schedule", "remove", "-n", NS, "--name", "nightly"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no schedule nightly"), "{r:?}");
}

#[test]
fn print_writes_yaml_documents_and_touches_no_cluster() {
    let mut args = install_args("@daily");
    args.extend(["--keep-last", "14", "--print"]);
    args.extend(s3_install_flags());
    // No kubeconfig at all: --print must not need a cluster.
    let r = amlmigrate_env(&args, &[("KUBECONFIG", "/nonexistent")]);
    assert_eq!(r.code, 0, "{r:?}");
    let docs: Vec<Value> = serde_saphyr::from_multiple::<Value>(&r.stdout)
        .unwrap()
        .into_iter()
        .filter(|d| d.is_object())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        vec![
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "CronJob"
        ]
    );
    for d in &docs {
        assert!(
            d["apiVersion"].is_string() && d["metadata"]["name"].is_string(),
            "{d}"
        );
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "amlmigrate"
        );
    }
    assert_eq!(docs[3]["spec"]["schedule"], "@daily");
}

#[test]
fn invalid_cron_inline_passwords_and_missing_rules_exit_2_before_any_change() {
    let env = Env::new();
    let base = install_args;
    let mut a = base("0 25 * * *");
    a.extend(["--keep-last", "3", "--mysql", MYSQL_URL]);
    let r = env.run(&a);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("cron expression") && r.stderr.contains("hour"),
        "{r:?}"
    );

    let mut a = base("0 2 * * *");
    a.extend([
        "--keep-last",
        "3",
        "--mysql",
        "mysql://root:hunter2@mysql:3306",
    ]);
    let r = env.run(&a);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("--mysql-secret") && !r.all().contains("hunter2"),
        "{r:?}"
    );

    let mut a = base("0 2 * * *");
    a.extend(["--mysql", MYSQL_URL]);
    let r = env.run(&a);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--keep-last"), "{r:?}");

    let mut a = vec![
        "schedule",
        "install",
        "-n",
        NS,
        "--repo",
        "/backups/aml",
        "--cron",
        "0 2 * * *",
    ];
    a.extend(["--keep-last", "3", "--mysql", MYSQL_URL]);
    let r = env.run(&a);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--repo-pvc"), "{r:?}");

    assert!(env.fk.list("batch/v1", "CronJob", Some(NS)).is_empty());
    assert!(env.fk.list("v1", "ServiceAccount", Some(NS)).is_empty());
}

/// Runs `kubectl` with `kubeconfig`; returns whether it succeeded and what it said.
fn kubectl_as(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl is installed (scripts/test.sh says so when it is not)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_jobs_service_account_reads_what_backup_needs_and_nothing_else() {
    // The AML fixtures, with the fake authorizing service accounts by RBAC like a real server.
    let fk = common::cluster::load(&[common::cluster::WORKLOAD]);
    fk.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let admin = fk.write_kubeconfig(dir.path(), FakeKube::ADMIN_TOKEN);
    fk.add_token(
        "sa-token",
        &format!("system:serviceaccount:{NS}:amlmigrate-nightly"),
    );
    let sa = fk.write_kubeconfig(&dir.path().join("sa"), "sa-token");
    let recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    let install = |extra: &[&str]| {
        let mut args = vec![
            "schedule",
            "install",
            "-n",
            NS,
            "--name",
            "nightly",
            "--repo",
            "s3://aml-backups/x",
            "--cron",
            "@daily",
            "--keep-last",
            "3",
            "--kube",
            "--encrypt-to",
            recipient,
            "--kubeconfig",
            admin.to_str().unwrap(),
        ];
        args.extend(extra);
        let r = amlmigrate(&args);
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout
    };
    // What the CronJob's pod runs, here as the ServiceAccount.
    let backup_as_sa = |extra: &[&str]| {
        let repo = dir.path().join(format!("repo-{}", extra.len()));
        let mut args = vec![
            "backup",
            "--init",
            "--json",
            "--repo",
            repo.to_str().unwrap(),
            "--kube",
            "--encrypt-to",
            recipient,
            "--unencrypted-repo",
            "--kubeconfig",
            sa.to_str().unwrap(),
        ];
        args.extend(extra);
        let r = amlmigrate(&args);
        assert_eq!(r.code, 0, "the ServiceAccount cannot back up: {r:?}");
        let out: Value = serde_json::from_str(&r.stdout).unwrap();
        out["kubernetes"].clone()
    };
    let allowed = |args: &[&str]| kubectl_as(&sa, args).0;

    // With --namespaces: Roles in those namespaces (and kubeflow), nothing namespaced cluster-wide.
    install(&["--namespaces", "team-a,team-b"]);
    let rbac = "rbac.authorization.k8s.io/v1";
    let role = format!("amlmigrate-{NS}-nightly");
    for ns in ["team-a", "team-b", "kubeflow"] {
        assert!(fk.get(rbac, "Role", Some(ns), &role).is_some(), "{ns}");
        assert!(
            fk.get(rbac, "RoleBinding", Some(ns), &role).is_some(),
            "{ns}"
        );
    }
    let k = backup_as_sa(&["--namespaces", "team-a,team-b"]);
    assert_eq!(k["encrypted"], 3, "{k}");
    assert_eq!(k["pvcs"], 6, "{k}");
    let notebooks = k["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "Notebook");
    assert_eq!(notebooks.unwrap()["objects"], 3, "{k}");
    assert!(allowed(&[
        "get",
        "secret",
        "aml-image-builder-secret",
        "-n",
        "team-a"
    ]));
    assert!(allowed(&["get", "pods", "-n", "team-a"]));
    for denied in [
        &[
            "get",
            "secret",
            "aml-mysql-root-token",
            "-n",
            "cpaas-system",
        ][..],
        &["get", "secrets", "-n", "team-a"],
        &["get", "secrets", "-A"],
        &["get", "configmaps", "-A"],
        &["get", "pods", "-A"],
        &["get", "pods", "-n", "kube-system"],
        &[
            "get",
            "notebooks.kubeflow.org",
            "-n",
            "kubeflow-admin-cpaas-io",
        ],
        &["get", "namespace", "kubeflow-admin-cpaas-io"],
    ] {
        let (ok, out) = kubectl_as(&sa, denied);
        assert!(
            !ok && out.contains("Forbidden"),
            "kubectl {denied:?} was allowed: {out}"
        );
    }

    // Without: user namespaces are found at each run, so the ClusterRole grants the catalog's
    // kinds, the named ones by name, and no Pods; the Roles of before are gone.
    let out = install(&[]);
    assert!(out.contains("deleted Role"), "{out}");
    for ns in ["team-a", "team-b", "kubeflow"] {
        assert!(fk.get(rbac, "Role", Some(ns), &role).is_none(), "{ns}");
        assert!(
            fk.get(rbac, "RoleBinding", Some(ns), &role).is_none(),
            "{ns}"
        );
    }
    let k = backup_as_sa(&[]);
    assert_eq!(
        k["namespaces"],
        json!(["kubeflow-admin-cpaas-io", "team-a", "team-b"]),
        "{k}"
    );
    assert_eq!(k["pvcs"], 8, "{k}");
    assert!(allowed(&[
        "get",
        "secret",
        "aml-image-builder-secret",
        "-n",
        "team-b"
    ]));
    for denied in [
        &[
            "get",
            "secret",
            "aml-mysql-root-token",
            "-n",
            "cpaas-system",
        ][..],
        &["get", "secrets", "-A"],
        &["get", "configmaps", "-A"],
        &["get", "pods", "-A"],
        &["get", "pods", "-n", "team-a"],
    ] {
        let (ok, out) = kubectl_as(&sa, denied);
        assert!(
            !ok && out.contains("Forbidden"),
            "kubectl {denied:?} was allowed: {out}"
        );
    }
}
