//! Waiting that knows when to stop: a plugin whose ModuleInfo stays `Failed` with one message
//! fails the install step at once with that message, instead of waiting out the install
//! timeout; and `upgrade status` shows the running step, what it waits for, since when and its
//! deadline.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::upgrade::*;
use common::*;
use serde_json::Value;

const BROKEN: &str = "Back-off pulling image kfp-api:v2.4.1: not found";

fn time_of(e: &Value) -> chrono::DateTime<chrono::Utc> {
    e["time"].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_plugin_failed_with_one_message_fails_the_step_at_once_and_status_shows_the_wait() {
    let lab = Lab::new(LabOptions {
        world: World::Plugins,
        ..Default::default()
    });
    // The kfp 1.4 package is broken: its install fails, and keeps failing the same way.
    lab.g().update(
        "cluster.alauda.io/v1alpha1",
        "ModuleConfig",
        None,
        "kfp-v2.4.1",
        |o| {
            o["metadata"]["annotations"][fakekube::plugins::FAILS_ANNOTATION] =
                serde_json::json!(BROKEN);
        },
    );
    lab.edit_config(|s| {
        s.replace(
            "[install]\ntimeout = \"20s\"",
            "[install]\ntimeout = \"10m\"\nfailed_grace = \"3s\"",
        )
    });
    // While the run waits for kfp, a person asks where it stands.
    let seen = Arc::new(Mutex::new(None::<Run>));
    {
        let (seen, runs, cfg, env) = (
            seen.clone(),
            lab.dir.path().join("repo/runs"),
            lab.cfg().to_string(),
            lab.env(),
        );
        std::thread::spawn(move || {
            let needle = r#""event":"polling","detail":"plugin kfp v2.4.1"#;
            while runs.parent().unwrap().parent().unwrap().exists() {
                let now = walk_if_exists(&runs).iter().any(|p| {
                    std::fs::read_to_string(p)
                        .unwrap_or_default()
                        .contains(needle)
                });
                if now {
                    let env: Vec<(&str, &str)> =
                        env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    let r = amlmigrate_env(&["upgrade", "status", "--config", &cfg], &env);
                    *seen.lock().unwrap() = Some(r);
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
    }
    let started = Instant::now();
    let r = lab.upgrade(&["run", "--yes"]);
    let took = started.elapsed();
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("plugin kfp v2.4.1 (ModuleInfo business-2-")
            && r.stderr.contains(&format!(
                "failed: plugin kfp v2.4.1: {BROKEN} (unchanged for 3s"
            )),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("then run the same command to resume"),
        "{r:?}"
    );
    assert!(took < Duration::from_secs(300), "the run took {took:?}");

    // The journal: the wait with its deadline (the install timeout), then the failure within
    // seconds of it, not ten minutes.
    let journal = lab.journal();
    let polling = journal
        .iter()
        .find(|e| {
            e["event"] == "polling"
                && e["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("plugin kfp v2.4.1"))
        })
        .expect("the kfp wait is journaled");
    let deadline: chrono::DateTime<chrono::Utc> =
        polling["deadline"].as_str().unwrap().parse().unwrap();
    assert_eq!((deadline - time_of(polling)).num_seconds(), 600);
    let failed = journal
        .iter()
        .find(|e| e["step"] == "install-plugins" && e["event"] == "failed")
        .expect("the step failed");
    let waited = time_of(failed) - time_of(polling);
    assert!(
        waited >= chrono::Duration::seconds(3) && waited < chrono::Duration::seconds(30),
        "failed after {waited}"
    );

    // Watching a run that has stopped shows it once and ends.
    let watched = lab.upgrade(&["status", "--watch", "1"]);
    assert_eq!(watched.code, 0, "{watched:?}");
    assert_eq!(
        watched.stdout.matches("\nrun ").count() + usize::from(watched.stdout.starts_with("run ")),
        1,
        "{watched:?}"
    );
    assert!(!watched.stdout.contains("running:"), "{watched:?}");

    let status = seen
        .lock()
        .unwrap()
        .take()
        .expect("status ran during the wait");
    assert_eq!(status.code, 0, "{status:?}");
    for want in [
        "running: install-plugins since ",
        "waiting for the system: plugin kfp v2.4.1 (ModuleInfo business-2-",
        ") to be Running",
        ", deadline ",
        "(in 9m",
    ] {
        assert!(status.stdout.contains(want), "{want}: {status:?}");
    }
}
