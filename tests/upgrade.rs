//! The guided upgrade end to end, the real binary in the strict world of tests/common/upgrade.rs:
//! a full run in the article's order and its report, resuming after kill -9 and Ctrl-C,
//! confirmation on a terminal, one run at a time, --until/--only, an S3 repository, a separate
//! global cluster, a plugin the platform refuses, preflight failures, `profile create`.

mod common;

use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{WORKLOAD, wait_until};
use common::pg::PG;
use common::s3::{Moto, SECRET};
use common::upgrade::*;
use common::*;
use fakekube::{ChangeKind, FakeKube};
use serde_json::{Value, json};

fn lab() -> Lab {
    Lab::new(LabOptions::default())
}

#[test]
fn a_full_run_follows_the_articles_order_and_its_report_proves_the_result() {
    let lab = Lab::new(LabOptions {
        mlflow_server: true,
        ..Default::default()
    });
    full_run(&lab, true);
    html_report_shows_what_the_json_holds(&lab);
}

/// report.html, opened in a real headless Chromium, shows every number of report.json, each
/// per-experiment and per-namespace count, the waits for a person and the audit figures.
fn html_report_shows_what_the_json_holds(lab: &Lab) {
    use sha2::Digest;
    // The run that did the work (a second run, finding everything done, came after it).
    let mut runs: Vec<_> = std::fs::read_dir(lab.dir.path().join("repo/runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("report.json").exists())
        .collect();
    runs.sort();
    let report: Value =
        serde_json::from_slice(&std::fs::read(runs[0].join("report.json")).unwrap()).unwrap();
    let run = report["run"].as_str().unwrap();
    let page = lab.dir.path().join(format!("repo/runs/{run}/report.html"));
    let html = std::fs::read_to_string(&page).unwrap();
    for never in ["src=", "href=", "url(", "@import", "<link", "<script"] {
        assert!(!html.contains(never), "report.html holds {never:?}");
    }
    let counts = report["counts"].as_array().unwrap();
    let group = |g: &str| -> Vec<&Value> { counts.iter().filter(|c| c["group"] == g).collect() };
    // Per experiment: the lab's 3 experiments, their 6 runs and 300 metric points.
    let exp = group("MLflow experiments");
    let sum = |cells: &[&Value], m: &str| -> u64 {
        cells
            .iter()
            .filter(|c| c["measure"] == m)
            .map(|c| c["after"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(exp.len(), 6, "{exp:?}");
    assert_eq!((sum(&exp, "runs"), sum(&exp, "metric points")), (6, 300));
    // Per namespace: a Profile each, the 8 PVCs Bound.
    let ns = group("User namespaces");
    assert_eq!(sum(&ns, "Profile"), 3, "{ns:?}");
    assert_eq!(sum(&ns, "PVCs Bound"), 8, "{ns:?}");
    assert!(group("Database tables").len() >= 2);
    // The operator upgrade is a wait for a person, timed.
    let op = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "wait-operator")
        .unwrap();
    assert!(op["waited_seconds"].as_f64().unwrap() > 0.0, "{op}");
    assert!(op["seconds"].as_f64().unwrap() >= op["waited_seconds"].as_f64().unwrap());
    // The auditor's figures tie the report to the snapshot's manifest.
    let snapshot = report["snapshot"].as_str().unwrap();
    let manifest = std::fs::read(
        lab.dir
            .path()
            .join(format!("repo/snapshots/{snapshot}/manifest.json")),
    )
    .unwrap();
    assert_eq!(
        report["manifest_sha256"].as_str().unwrap(),
        hex::encode(sha2::Sha256::digest(&manifest))
    );

    let dom = common::chromium::dump_dom(&page, 390);
    for c in counts {
        let show = |v: &Value| v.as_u64().map(|n| n.to_string()).unwrap_or("–".into());
        let want = format!(
            r#"<td class="num eq" title="before {}, after {}">"#,
            show(&c["before"]),
            show(&c["after"])
        );
        assert!(dom.contains(&want), "no green {want} for {c} in {dom}");
    }
    assert!(!dom.contains(r#"class="num ne""#), "{dom}");
    assert!(dom.contains(snapshot) && dom.contains(report["manifest_sha256"].as_str().unwrap()));
    for t in report["tables"].as_array().unwrap() {
        assert!(dom.contains(t["sha256"].as_str().unwrap()), "{t}");
    }
    assert!(dom.contains("for a person: "), "{dom}");
    assert!(dom.contains(r#"type="checkbox""#));
    if let Ok(out) = std::env::var("AMLMIGRATE_REPORT_SAMPLE") {
        std::fs::create_dir_all(&out).unwrap();
        std::fs::copy(
            &page,
            std::path::Path::new(&out).join("upgrade-report.html"),
        )
        .unwrap();
    }

    // `upgrade report --html` renders the same page again from the stored report.
    let again = lab.dir.path().join("again.html");
    let r = lab.upgrade(&["report", "--run", run, "--html", again.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read_to_string(&again).unwrap(), html);
    let md = lab.upgrade(&["report"]);
    // Without --run: the latest run that has a report.
    let latest = lab.report()["run"].as_str().unwrap().to_string();
    assert!(md.stdout.contains(&format!("run {latest}")), "{md:?}");
    assert!(md.stdout.contains("Manifest sha256"), "{md:?}");
}

#[test]
fn with_a_separate_global_cluster_plugins_dex_and_mesh_change_there_and_nowhere_else() {
    let lab = Lab::new(LabOptions {
        split: true,
        ..Default::default()
    });
    full_run(&lab, false);
    let global = lab.global.as_ref().unwrap();
    let touched = |fk: &FakeKube, what: &str| {
        fk.requests()
            .iter()
            .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
            .any(|r| r.path.contains(what))
    };
    for plural in [
        "/moduleinfoes",
        "/servicemeshes",
        "/configmaps/dex-configmap",
    ] {
        assert!(
            touched(global, plural),
            "{plural} not written in the global cluster"
        );
        assert!(
            !touched(&lab.fk, plural),
            "{plural} written in the workload cluster"
        );
    }
    for plural in [
        "/profiles",
        "/amlclusters",
        "/persistentvolumes",
        "/notebooks",
    ] {
        assert!(
            !touched(global, plural),
            "{plural} written in the global cluster"
        );
    }
}

/// What the person saw when the run asked for the operator upgrade.
#[derive(Default, Debug)]
struct AtOperatorUpgrade {
    chart: bool,
    plugins_13: usize,
    plugins_14: usize,
}

/// A full run on a fresh 1.3 lab, with everything the plan, the journal and the report must say.
fn full_run(lab: &Lab, mlflow_server: bool) {
    // A fine-tune still running by the AML database's records (drain.running_sql); it
    // finishes with the job, while the drain step waits.
    sql(
        Some(&lab.aml.name),
        "UPDATE finetune_jobs SET status = 'Running' WHERE id = 250",
    );
    // What people still have to do: one image and one 1.4 plugin package are not pushed yet.
    let gitlfs = lab.image("mlops/buildkit-gitlfs:v0.13-rootless-aml");
    lab.registry.delete(&gitlfs);
    let mlflow_package = lab
        .g()
        .get(
            "cluster.alauda.io/v1alpha1",
            "ModuleConfig",
            None,
            "mlflow-v3.1.1",
        )
        .unwrap();
    lab.g().delete(
        "cluster.alauda.io/v1alpha1",
        "ModuleConfig",
        None,
        "mlflow-v3.1.1",
    );
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    for want in [
        "images             manual",
        "mlops/buildkit-gitlfs:v0.13-rootless-aml",
        "install-plugins    manual",
        "no ModuleConfig mlflow-v3.1.1",
        "change: ConfigMap cpaas-system/dex-configmap (global): config.yaml staticClients[alauda-auth].redirectURIs: (none) → + https://192.168.139.133:30665/oauth2/callback (kfbase oidcRedirectURL)",
        "1 fine-tune record(s) running (drain.running_sql)",
        "PyTorchJob team-a/late-finetune",
        // The 1.3 installation the snapshot will record, and how it was found.
        "ok   1.3 installation: HelmRequest kubeflow/kubeflow",
        "(plugin kfbase v1.8.0) (recorded; the uninstall deletes it)",
        "assumes: 1.3 plugins: ModuleInfos labelled cpaas.io/cluster-name=business-1",
        // Where the run deliberately differs from the article, and why.
        "differs from the article: the article checks the features first and creates Profiles after",
        "retag-llm-trainer  to do    waits for the operator upgrade",
        "uninstall-plugins  to do    waits for the snapshot, which records the 1.3 installation",
    ] {
        assert!(plan.stdout.contains(want), "plan lacks {want:?}: {plan:?}");
    }
    // The order of the plan is the article's: the operator upgrade before the uninstall.
    let pos = |s: &str| plan.stdout.find(&format!(" {s} ")).unwrap();
    assert!(pos("wait-operator") < pos("retag-llm-trainer"));
    assert!(pos("retag-llm-trainer") < pos("uninstall-plugins"));
    assert!(pos("uninstall-plugins") < pos("install-plugins"));

    // The person pushes the image once the run asks for it, and the plugin package while the
    // first plugins install; the operator upgrade (tests/common/upgrade.rs) happens when the run
    // waits for it — and at that moment nothing of 1.3 may have been deleted yet.
    let g = lab.g().handle();
    let (registry, image) = (lab.registry.clone(), gitlfs.clone());
    when_journal_shows(&lab.dir, "images", "waiting", move || {
        registry.push_image(&image);
    });
    let h = g.clone();
    when_journal_shows(&lab.dir, "install-plugins", "waiting", move || {
        let mut pkg = mlflow_package;
        let m = pkg["metadata"].as_object_mut().unwrap();
        m.remove("resourceVersion");
        m.remove("uid");
        h.create(pkg).unwrap();
    });
    let seen = Arc::new(Mutex::new(None::<AtOperatorUpgrade>));
    let (s, w, g2) = (seen.clone(), lab.fk.handle(), g.clone());
    lab.before_operator_upgrade
        .lock()
        .unwrap()
        .push(Box::new(move || {
            let mine = |v: &str| {
                g2.list("cluster.alauda.io/v1alpha1", "ModuleInfo", None)
                    .iter()
                    .filter(|o| o["metadata"]["labels"]["cpaas.io/cluster-name"] == "business-1")
                    .filter(|o| o["spec"]["version"].as_str().unwrap().starts_with(v))
                    .count()
            };
            *s.lock().unwrap() = Some(AtOperatorUpgrade {
                chart: w
                    .get(
                        "app.alauda.io/v1",
                        "HelmRequest",
                        Some("kubeflow"),
                        "kubeflow",
                    )
                    .is_some(),
                plugins_13: ["v1.8.0", "v2.0.5", "v1.7.0", "v2.6.0"]
                    .iter()
                    .map(|v| mine(v))
                    .sum(),
                plugins_14: ["v1.10.1", "v2.4.1", "v1.9.2", "v3.1.1"]
                    .iter()
                    .map(|v| mine(v))
                    .sum(),
            });
        }));

    // No terminal and no --yes: nothing that changes the cluster runs. The steps that only
    // read or wait go as far as the first that writes (after the snapshot): the person is
    // asked for the missing image on the way.
    let before = lab.writes();
    let r = lab.upgrade(&["run"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("--yes"), "{r:?}");
    assert!(
        r.stderr.contains("ACTION NEEDED: push the missing images"),
        "{r:?}"
    );
    assert_eq!(lab.writes(), before, "a declined run wrote to the cluster");

    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("## Data before and after"), "{r:?}");
    for want in [
        "ACTION NEEDED: push the mlflow v3.1.1 plugin package",
        "ACTION NEEDED: upgrade the Alauda AI operator",
    ] {
        assert!(r.stderr.contains(want), "{want}: {r:?}");
    }
    // Item 1: when the person upgraded the operator, the 1.3 installation was all there.
    let at = seen
        .lock()
        .unwrap()
        .take()
        .expect("the run never asked for the operator upgrade");
    assert!(
        at.chart && at.plugins_13 == 4 && at.plugins_14 == 0,
        "at the operator upgrade: {at:?}"
    );
    assert_eq!(lab.operator.upgrades(), 1);
    let journal = lab.journal();
    let at_event = |step: &str, event: &str| {
        journal
            .iter()
            .position(|e| e["step"] == step && e["event"] == event)
            .unwrap_or_else(|| panic!("no {step} {event} in {journal:?}"))
    };
    assert!(at_event("wait-operator", "done") < at_event("retag-llm-trainer", "started"));
    assert!(at_event("retag-llm-trainer", "done") < at_event("uninstall-plugins", "started"));
    assert!(at_event("uninstall-plugins", "done") < at_event("install-plugins", "started"));
    assert_upgraded(lab);

    let report = lab.report();
    let steps: Vec<(&str, &str)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(steps.len(), 15);
    for (s, outcome) in &steps {
        assert!(
            *outcome == "applied" || *outcome == "already done",
            "{s}: {outcome}"
        );
    }
    let counts = report["counts"].as_array().unwrap();
    for c in counts {
        assert_eq!(c["before"], c["after"], "count differs: {c}");
    }
    let find = |what: &str| {
        counts
            .iter()
            .find(|c| c["what"].as_str().unwrap().contains(what))
            .unwrap_or_else(|| panic!("no count {what}: {counts:?}"))["after"]
            .clone()
    };
    assert_eq!(find("finetune_jobs"), 250);
    assert_eq!(find("MLflow metric points"), 300);
    assert_eq!(find("PVCs Bound"), 8);
    assert_eq!(find("Profiles"), 3);
    // Item 10: the checks prove something live.
    let verify = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "verify")
        .unwrap()["checked"]
        .to_string();
    if mlflow_server {
        assert!(
            verify.contains("lists 3 experiments and 6 runs, as the 2.6 source"),
            "{verify}"
        );
    }
    for want in [
        "8 PVC(s) Bound",
        "Deployment kubeflow/aml-api-deploy restarted, rolled out (1 replica(s) updated) and Available",
        "plugin mlflow v3.1.1 Running",
        "llm-trainer",
        "resolves in the registry",
    ] {
        assert!(verify.contains(want), "verify lacks {want:?}: {verify}");
    }
    let md = std::fs::read_to_string(lab.dir.path().join(format!(
        "repo/runs/{}/report.md",
        report["run"].as_str().unwrap()
    )))
    .unwrap();
    assert!(
        md.contains("## For a person to check")
            && md.contains("- [ ] A simple fine-tune job runs to the end")
            && md.contains("- [ ] The MLflow web UI opens"),
        "{md}"
    );
    // Item 3: the password went into the form and nowhere else.
    let journal_text: String = lab
        .run_files()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect();
    assert!(
        journal_text.contains("spec.config.pgPassword: (none) → (hidden)"),
        "the journal does not show the hidden pgPassword"
    );
    for s in secrets(lab) {
        assert!(
            !journal_text.contains(&s),
            "a secret in the journal or report"
        );
        assert!(!r.all().contains(&s), "a secret in the run's output");
    }

    // Afterwards: every step done, status finished, and another run changes nothing.
    let plan = lab.upgrade(&["plan", "--json"]);
    let v: Value = serde_json::from_str(&plan.stdout).unwrap();
    for s in v["steps"].as_array().unwrap() {
        assert_eq!(s["state"], "done", "{s}");
    }
    for s in secrets(lab) {
        assert!(!plan.all().contains(&s), "a secret in plan --json");
    }
    let st = lab.upgrade(&["status"]);
    assert!(st.stdout.contains("finished"), "{st:?}");
    let before = lab.writes();
    let again = lab.upgrade(&["run", "--yes", "--json"]);
    assert_eq!(again.code, 0, "{again:?}");
    let out: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(out["outcome"]["applied"], json!([]), "{out}");
    assert_eq!(
        lab.writes(),
        before,
        "a run on a finished system wrote to the cluster"
    );
}

#[test]
fn a_run_killed_at_several_steps_resumes_to_the_same_end_state_applying_nothing_twice() {
    let lab = lab();
    for step in [
        "snapshot",
        "uninstall-plugins",
        "install-plugins",
        "migrate-mlflow",
        "enable-features",
    ] {
        let mut child = lab.spawn_run();
        let deadline = std::time::Instant::now() + common::gate::PATIENCE;
        loop {
            let started = lab
                .journal()
                .iter()
                .any(|e| e["step"] == step && e["event"] == "started");
            if started {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the run ended ({status}) before step {step} started: {:?}",
                    lab.journal()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "step {step} never started"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);
    let journal = lab.journal();
    assert!(
        journal
            .iter()
            .filter(|e| e["step"] == "run" && e["event"] == "resumed")
            .count()
            >= 4,
        "{journal:?}"
    );
    // Nothing destructive twice, and nothing but the recorded 1.3 installation deleted: each
    // 1.3 plugin deleted once, each 1.4 plugin created once, one snapshot.
    let reqs = lab.g().requests();
    let mi_posts = reqs
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/moduleinfoes"))
        .count();
    let deleted: Vec<String> = reqs
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/moduleinfoes/"))
        .map(|r| r.path.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(
        mi_posts, 4,
        "ModuleInfos created: 4 new plugins (volcano is upgraded in place)"
    );
    let recorded_13: Vec<String> = ["kfbase", "kfp", "kftraining", "mlflow"]
        .iter()
        .map(|m| {
            common::cluster::docs(common::cluster::GLOBAL)
                .into_iter()
                .find(|d| {
                    d["kind"] == "ModuleInfo"
                        && d["metadata"]["labels"]["cpaas.io/module-name"] == *m
                })
                .unwrap()["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut sorted = deleted.clone();
    sorted.sort();
    let mut want = recorded_13.clone();
    want.sort();
    assert_eq!(
        sorted, want,
        "ModuleInfos deleted: exactly the four 1.3 plugins, once each"
    );
    let committed = std::fs::read_dir(lab.dir.path().join("repo/snapshots"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("manifest.json").exists())
        .count();
    assert!(committed <= 2, "{committed} snapshots committed");
    assert_eq!(
        lab.events("snapshot")
            .iter()
            .filter(|e| *e == "done")
            .count(),
        1,
        "the snapshot step completed twice: {journal:?}"
    );
    for e in lab.run_files() {
        let text = std::fs::read_to_string(&e).unwrap_or_default();
        for s in secrets(&lab) {
            assert!(!text.contains(&s), "secret in {}", e.display());
        }
    }
}

#[test]
fn ctrl_c_stops_the_run_cleanly_and_the_same_command_resumes_it() {
    let lab = Lab::new(LabOptions {
        hold_finetune: true,
        ..Default::default()
    });
    let child = lab.spawn_run();
    // The drain step waits for the running fine-tune job (held until the test finishes it):
    // interrupt it there.
    wait_until("the drain step started", || {
        lab.journal()
            .iter()
            .any(|e| e["step"] == "drain" && e["event"] == "started")
    });
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("run the same command to resume"),
        "{stderr}"
    );
    let journal = lab.journal();
    let last = journal.last().unwrap();
    assert_eq!(
        (&last["step"], &last["event"]),
        (&json!("run"), &json!("stopped")),
        "{journal:?}"
    );
    finish_late_finetune(&lab.fk.handle());
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);
}

/// Runs `upgrade run` on a pseudo-terminal (util-linux `script`), typing `answers`.
fn run_on_a_terminal(lab: &Lab, answers: &str) -> (Option<i32>, String) {
    let cmd = format!("{} upgrade run --config {}", bin(), lab.cfg());
    let mut c = Command::new("script");
    c.args(["-qefc", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in lab.env() {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answers.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn on_a_terminal_every_step_that_writes_is_confirmed_first() {
    let lab = lab();
    let before = lab.writes();
    let (code, screen) = run_on_a_terminal(&lab, "n\n");
    assert_eq!(code, Some(4), "{screen}");
    assert!(screen.contains("apply this step? [y/N]"), "{screen}");
    // The first step that writes comes after the snapshot: preflight only reads.
    assert!(screen.contains("protect-pvcs"), "{screen}");
    assert!(screen.contains("declined at the prompt"), "{screen}");
    assert_eq!(lab.writes(), before, "a declined step wrote to the cluster");
    let (code, screen) = run_on_a_terminal(&lab, &"y\n".repeat(12));
    assert_eq!(code, Some(0), "{screen}");
    // Every step that writes asked, by name; none that only reads or waits for a person. The
    // header a prompt belongs to is the last "step N name:" before it that is not a note; it
    // is searched in the text, not at line starts, because a progress bar redrawn on the
    // terminal can share its line.
    let asked: Vec<&str> = screen
        .split("apply this step? [y/N]")
        .filter_map(|before| {
            before
                .match_indices("step ")
                .filter(|(i, _)| !before[..*i].ends_with("note: "))
                .filter_map(|(i, _)| {
                    let mut w = before[i + 5..].split_whitespace();
                    let n = w.next()?;
                    let name = w.next()?.strip_suffix(':')?;
                    n.chars().all(|c| c.is_ascii_digit()).then_some(name)
                })
                .last()
        })
        .collect();
    assert_eq!(
        asked,
        [
            "protect-pvcs",
            "delete-notebooks",
            "retag-llm-trainer",
            "uninstall-plugins",
            "global-settings",
            "install-plugins",
            "migrate-mlflow",
            "restore-profiles",
            "enable-features",
        ],
        "asked {asked:?}: {screen}"
    );
    assert_upgraded(&lab);
}

#[test]
fn a_second_run_at_the_same_time_is_refused_naming_the_first() {
    let lab = Lab::new(LabOptions {
        hold_finetune: true,
        ..Default::default()
    });
    let first = lab.spawn_run();
    // The first run waits in the drain step for the running job, held until the test lets it
    // finish.
    wait_until("the first run drains", || {
        lab.journal()
            .iter()
            .any(|e| e["step"] == "drain" && e["event"] == "started")
    });
    let writes = lab.writes();
    let second = lab.upgrade(&["run", "--yes"]);
    // A recovery would undo the run's writes under it: the same lock refuses it.
    let recovery = lab.recover(&["--yes"]);
    for refused in [&second, &recovery] {
        assert_eq!(refused.code, 4, "{refused:?}");
        assert!(
            refused.stderr.contains(&format!(
                "`amlmigrate upgrade run` on {} (pid {}) holds the exclusive lock runs/.lock/cluster/",
                hostname(),
                first.id()
            )),
            "{refused:?}"
        );
    }
    assert!(
        files_under(&lab.dir.path().join("repo/runs"))
            .iter()
            .all(|f| !f.ends_with("recover.jsonl")),
        "the refused recovery started"
    );
    assert_eq!(
        lab.writes(),
        writes,
        "a refused command wrote to the cluster"
    );
    finish_late_finetune(&lab.fk.handle());
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_upgraded(&lab);
    let left = files_under(&lab.dir.path().join("repo/runs/.lock"));
    assert!(left.is_empty(), "the run left its lock: {left:?}");
}

#[test]
fn an_upgrade_run_during_a_recovery_is_refused_naming_the_recovery() {
    let lab = lab();
    // The recovery is held by this test process at a known point: its lock taken, as
    // `amlmigrate recover` takes it (the lock object a live recovery of this host writes).
    let dir = lab.dir.path().join("repo/runs/.lock/cluster");
    let me = std::process::id();
    plant_lock(
        &dir,
        "held.json",
        "exclusive",
        "`amlmigrate recover`",
        &hostname(),
        me,
    );
    let writes = lab.writes();
    let run = lab.upgrade(&["run", "--yes"]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "`amlmigrate recover` on {} (pid {}) holds the exclusive lock runs/.lock/cluster/held.json",
            hostname(),
            me
        )),
        "{run:?}"
    );
    assert!(
        lab.journal().is_empty(),
        "the refused run started a journal"
    );
    assert_eq!(lab.writes(), writes, "a refused run wrote to the cluster");
    // The recovery ends (its lock goes): the run goes ahead.
    std::fs::remove_file(dir.join("held.json")).unwrap();
    let run = lab.upgrade(&["run", "--yes"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_upgraded(&lab);
}

#[test]
fn until_stops_after_a_step_and_only_runs_one() {
    let lab = lab();
    let r = lab.upgrade(&["run", "--yes", "--until", "snapshot"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(lab.events("snapshot"), ["started", "done"]);
    assert!(lab.events("protect-pvcs").is_empty());
    let retained = |fk: &FakeKube| {
        fk.list("v1", "PersistentVolume", None)
            .iter()
            .filter(|p| p["spec"]["persistentVolumeReclaimPolicy"] == "Retain")
            .count()
    };
    assert_eq!(retained(&lab.fk), 1, "a step after --until ran");
    let st = lab.upgrade(&["status"]);
    assert!(
        st.stdout.contains("not finished") && st.stdout.contains("snapshot           done"),
        "{st:?}"
    );
    // The unfinished run pins its snapshot; prune names the pin among the reasons to keep it.
    let repo = lab.dir.path().join("repo");
    let pinned: Vec<String> = std::fs::read_dir(repo.join("pins"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(pinned.len(), 1, "pins: {pinned:?}");
    let dry = ok(&[
        "prune",
        "--repo",
        repo.to_str().unwrap(),
        "--keep-within",
        "1h",
        "--dry-run",
    ]);
    assert!(
        dry.contains(&pinned[0]) && dry.contains("snapshot of upgrade run"),
        "{dry}"
    );
    // --only: that step, nothing after it; the same run goes on.
    let r = lab.upgrade(&["run", "--yes", "--only", "protect-pvcs"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(retained(&lab.fk), 8);
    assert!(lab.events("delete-notebooks").is_empty());
    let r = lab.upgrade(&["run", "--yes", "--until", "no-such-step"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("possible values"), "{r:?}");
    // --only uninstall-plugins before the operator upgrade: refused, the article's order.
    let r = lab.upgrade(&["run", "--yes", "--only", "uninstall-plugins"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr
            .contains("the article upgrades the operator before"),
        "{r:?}"
    );
    assert!(!lab.plugin("kfbase").is_empty());
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);
    let runs: Vec<Value> = lab
        .journal()
        .into_iter()
        .filter(|e| e["step"] == "run")
        .collect();
    assert_eq!(runs.first().unwrap()["event"], "started");
    assert_eq!(runs.last().unwrap()["event"], "finished");
    assert!(
        std::fs::read_dir(repo.join("pins").join(&pinned[0]))
            .map(|mut rd| rd.next().is_none())
            .unwrap_or(true),
        "the finished run still pins its snapshot"
    );
    assert_eq!(
        lab.events("snapshot")
            .iter()
            .filter(|e| *e == "done")
            .count(),
        1
    );
}

#[test]
fn an_upgrade_keeps_its_journal_lock_and_report_in_an_s3_repository() {
    let moto = Moto::start();
    moto.bucket("upgrade");
    let lab = lab();
    let local = format!("repository = \"{}\"", lab.dir.path().join("repo").display());
    lab.edit_config(|cfg| {
        assert!(cfg.contains(&local));
        cfg.replace(&local, "repository = \"s3://upgrade/aml\"")
    });
    // Nothing watches an S3 journal here: the fine-tune job is done already, and the person
    // upgraded the operator before the run reached it.
    finish_late_finetune(&lab.fk.handle());
    lab.operator.upgrade("v1.4.0");
    let mut env = moto.env();
    env.extend(lab.env());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let upgrade = |args: &[&str]| {
        let mut all = vec!["upgrade"];
        all.extend_from_slice(args);
        all.extend(["--config", lab.cfg()]);
        let r = amlmigrate_env(&all, &env);
        assert!(!r.all().contains(SECRET), "the S3 secret leaked: {r:?}");
        r
    };
    // An upgrade never creates a repository: a missing one is refused, naming it.
    let r = upgrade(&["plan"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("s3://upgrade/aml"), "{r:?}");
    let r = amlmigrate_env(&["repo", "init", "--repo", "s3://upgrade/aml"], &env);
    assert_eq!(r.code, 0, "{r:?}");
    let r = upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);
    let st = upgrade(&["status"]);
    assert!(
        st.stdout.contains(": finished") && st.stdout.contains("## Data before and after"),
        "{st:?}"
    );
    let listing = Command::new("curl")
        .args([
            "-sf",
            &format!("{}/upgrade?list-type=2&prefix=aml/", moto.endpoint()),
        ])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for want in [
        "/journal.jsonl",
        "/report.json",
        "/report.md",
        "/report.html",
        "/manifest.json",
        "/refs",
        "<Key>aml/data/",
    ] {
        assert!(
            listing.contains(want),
            "{want} not in the bucket: {listing}"
        );
    }
    assert!(
        !listing.contains("aml/pins/"),
        "the finished run still pins its snapshot: {listing}"
    );
    assert!(
        !listing.contains("runs/.lock/"),
        "the run lock was left: {listing}"
    );
    // The lab's local repository (made by `repo init`) got nothing of the run.
    for written in ["snapshots", "runs", "data"] {
        assert!(
            !lab.dir.path().join("repo").join(written).exists(),
            "the local repository was written: {written}"
        );
    }
}

#[test]
fn a_form_value_of_the_wrong_type_is_refused_before_anything_and_the_fixed_form_runs() {
    let lab = lab();
    // A form value of the wrong type: the published form says pgPort is a number, so the run
    // refuses it before it writes anything (the platform would fail the install after 1.3 is
    // gone).
    lab.edit_config(|s| s.replace("pgPort = 5432", "pgPort = \"5432\""));
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 4, "{r:?}");
    for want in [
        "step preflight is blocked",
        "[[install.plugins]] mlflow config: pgPort must be integer, not string (the published mlflow-v3.1.1 form)",
    ] {
        assert!(r.stderr.contains(want), "{want}: {r:?}");
    }
    assert_eq!(lab.writes(), 0, "{r:?}");
    // The operator fixes the configuration; the run goes on.
    lab.edit_config(|s| s.replace("pgPort = \"5432\"", "pgPort = 5432"));
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);
    assert_eq!(lab.plugin("mlflow")[0]["spec"]["config"]["pgPort"], 5432);
}

#[test]
fn preflight_failures_are_each_reported_with_the_fix_and_nothing_changes() {
    let lab = lab();
    lab.fk.create(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "arm-1", "labels": {"kubernetes.io/arch": "arm64"}}, "status": {"nodeInfo": {"architecture": "arm64"}}})).unwrap();
    lab.fk
        .delete("storage.k8s.io/v1", "StorageClass", None, "sc-topolvm");
    lab.registry
        .delete(&lab.image("mlops/buildkit:v0.15.2-aml"));
    lab.g().update(
        "asm.alauda.io/v1alpha1",
        "ServiceMesh",
        Some("cpaas-system"),
        "business-1",
        |o| {
            o["spec"]["istioVersion"] = json!("1.20.3");
        },
    );
    // Istio in CNI mode: istio-cni's node agent runs.
    lab.fk
        .create(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}),
        )
        .ok();
    lab.fk.create(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "istio-cni-node-x1", "namespace": "kube-system", "labels": {"k8s-app": "istio-cni-node"}},
        "spec": {"containers": [{"name": "install-cni", "image": "istio/install-cni:1.22"}]}})).ok();
    // An external Kubeflow Pipelines MySQL that is not 5.7 (the local MariaDB 10.11), a
    // database that is not there, and a PostgreSQL database that does not exist.
    let pg = lab.pg.name.clone();
    lab.edit_config(|s| {
        s.replace(&format!("{PG}/{pg}"), &format!("{PG}/no_such_db_{pg}"))
            .replace(
                "[postgres]",
                "[mysql.kfp]\nurl = \"mysql://amlupgrade@127.0.0.1:3306\"\ndatabases = [\"no_such_kfp_db\"]\nexternal = true\n[postgres]",
            )
    });
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(plan.stdout.contains("BLOCKED"), "{plan:?}");
    assert!(
        plan.stdout.contains("FAIL nodes: arm-1 is arm64"),
        "{plan:?}"
    );
    assert!(
        plan.stdout.contains("not in the registry")
            && plan.stdout.contains("mlops/buildkit:v0.15.2-aml"),
        "{plan:?}"
    );
    let before = lab.writes();
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 4, "{r:?}");
    for want in [
        "arm-1 is arm64",
        "remove or cordon those nodes",
        "Istio 1.20.3",
        "upgrade the service mesh first",
        "Istio runs in CNI mode (Pod kube-system/istio-cni-node-x1",
        "the article requires non-CNI mode",
        "storage class sc-topolvm does not exist",
        "FAIL MLflow PostgreSQL",
        "MySQL source kfp",
        "database(s) no_such_kfp_db not found",
        "Kubeflow Pipelines needs MySQL 5.7",
    ] {
        assert!(r.stderr.contains(want), "missing {want:?}: {r:?}");
    }
    for s in secrets(&lab) {
        assert!(!r.all().contains(&s));
    }
    assert_eq!(
        lab.writes(),
        before,
        "a blocked preflight wrote to the cluster"
    );
}

#[test]
fn servicemesh_v2_stops_the_run_asking_for_help_as_the_article_says() {
    let lab = lab();
    // Alauda Service Mesh v2 runs Istio through the Sail operator.
    lab.fk.create(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "istios.sailoperator.io"},
        "spec": {"group": "sailoperator.io", "scope": "Cluster",
            "names": {"plural": "istios", "singular": "istio", "kind": "Istio", "listKind": "IstioList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}))
        .unwrap();
    wait_until("the Istio kind is served", || {
        lab.fk
            .create(json!({"apiVersion": "sailoperator.io/v1", "kind": "Istio", "metadata": {"name": "default"}, "spec": {"version": "v1.24.3"}}))
            .is_ok()
    });
    let before = lab.writes();
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("ServiceMesh v2")
            && r.stderr
                .contains("Istio default (sailoperator.io/v1) is managed by the Sail operator")
            && r.stderr.contains("ask for help"),
        "{r:?}"
    );
    assert_eq!(lab.writes(), before);
}

#[test]
fn profile_create_makes_the_articles_three_objects_once() {
    let fk = common::cluster::load(&[WORKLOAD]);
    // Kubeflow's Profile controller: a Profile gets its namespace.
    fk.on_change(|c, h| {
        if c.is("kubeflow.org", "Profile") && c.kind == ChangeKind::Added {
            let name = c.object["metadata"]["name"].as_str().unwrap().to_string();
            h.after(Duration::from_millis(300), move |h| {
                let _ = h.create(
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
                );
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let kc = fk.write_kubeconfig(dir.path(), FakeKube::ADMIN_TOKEN);
    let args = [
        "profile",
        "create",
        "--user",
        "carol@example.com",
        "--kubeconfig",
        kc.to_str().unwrap(),
    ];
    let out = ok(&args);
    assert_eq!(out.matches("created").count(), 3, "{out}");
    let p = fk
        .get(
            "kubeflow.org/v1",
            "Profile",
            None,
            "kubeflow-carol-example-com",
        )
        .unwrap();
    assert_eq!(p["spec"]["owner"]["name"], "carol@example.com");
    let rb = fk
        .get(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            Some("kubeflow-carol-example-com"),
            "user-carol-example-com-clusterrole-admin",
        )
        .unwrap();
    assert_eq!(rb["roleRef"]["name"], "kubeflow-admin");
    let ap = fk
        .get(
            "security.istio.io/v1beta1",
            "AuthorizationPolicy",
            Some("kubeflow-carol-example-com"),
            "user-carol-example-com-clusterrole-admin",
        )
        .unwrap();
    assert!(ap["spec"].to_string().contains("ml-pipeline-ui"), "{ap}");
    let out = ok(&args);
    assert_eq!(out.matches("unchanged").count(), 3, "{out}");
}

#[test]
fn the_mlflow_copy_is_blocked_while_the_3_1_1_server_is_not_found() {
    let lab = lab();
    lab.edit_config(|s| {
        s.replacen(
            "[mlflow]\n",
            "[mlflow]\ndeployment_name = \"mlflow-3\"\n",
            1,
        )
    });
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("step migrate-mlflow is blocked: Deployment kubeflow/mlflow-3 (the MLflow 3.1.1 server the mlflow 1.4 plugin runs) not found: the copy runs only with that server scaled to 0; set mlflow.deployment_namespace and mlflow.deployment_name"),
        "{r:?}"
    );
    // Nothing was copied.
    assert_eq!(
        common::pg::psql(
            &lab.pg.name,
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'"
        )
        .trim(),
        "0"
    );
}
