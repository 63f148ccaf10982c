//! Waiting that knows when to stop: a plugin whose ModuleInfo stays `Failed` with one message
//! fails the install step at once with that message, instead of waiting out the install
//! timeout; and `upgrade status` shows the running step, what it waits for, since when and its
//! deadline.

mod common;

use std::time::{Duration, Instant};

use common::gate::{Tail, wait_for};
use common::upgrade::*;
use serde_json::{Value, json};

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
    // The kfp 1.4 package installs (Processing) until the test has looked at the run; then it
    // turns out broken: its install fails, and keeps failing the same way.
    let kfp_package = |f: &dyn Fn(&mut Value)| {
        lab.g().update(
            "cluster.alauda.io/v1alpha1",
            "ModuleConfig",
            None,
            "kfp-v2.4.1",
            |o| f(&mut o["metadata"]["annotations"]),
        )
    };
    kfp_package(&|a| a[fakekube::plugins::HOLDS_ANNOTATION] = json!("held"));
    lab.edit_config(|s| {
        s.replace(
            "[install]\ntimeout = \"20s\"",
            "[install]\ntimeout = \"10m\"\nfailed_grace = \"3s\"",
        )
    });
    // While the run waits for kfp, a person asks where it stands.
    let started = Instant::now();
    let mut child = lab.spawn_run();
    let stderr = Tail::new(child.stderr.take().unwrap());
    wait_for("the run to poll for kfp", || {
        lab.journal()
            .iter()
            .any(|e| {
                e["event"] == "polling"
                    && e["detail"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("plugin kfp v2.4.1"))
            })
            .then_some(())
    });
    let status = lab.upgrade(&["status"]);
    kfp_package(&|a| {
        a.as_object_mut()
            .unwrap()
            .remove(fakekube::plugins::HOLDS_ANNOTATION);
        a[fakekube::plugins::FAILS_ANNOTATION] = json!(BROKEN);
    });
    let code = child.wait().unwrap().code();
    let took = started.elapsed();
    let stderr = stderr.finish();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("plugin kfp v2.4.1 (ModuleInfo business-2-")
            && stderr.contains(&format!(
                "failed: plugin kfp v2.4.1: {BROKEN} (unchanged for 3s"
            )),
        "{stderr}"
    );
    assert!(
        stderr.contains("then run the same command to resume"),
        "{stderr}"
    );
    // Far below the 10-minute install timeout it would otherwise have waited out.
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
        waited >= chrono::Duration::seconds(3) && waited < chrono::Duration::seconds(300),
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

    assert_eq!(status.code, 0, "{status:?}");
    for want in [
        "running: install-plugins since ",
        // What it waits for: the version, the platform's readiness, found by labels.
        "waiting for the system: plugin kfp v2.4.1 to be ready (ModuleInfo labelled cpaas.io/module-name=kfp: status.phase Running, status.version v2.4.1, every appRelease ready and synced)",
        ", deadline ",
        "(in ",
    ] {
        assert!(status.stdout.contains(want), "{want}: {status:?}");
    }
}
