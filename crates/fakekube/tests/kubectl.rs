//! Fidelity: the real `kubectl` drives the fake. Skipped (passing) when kubectl is not on PATH.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use fakekube::FakeKube;
use serde_json::{Value, json};

struct Kubectl {
    fk: FakeKube,
    dir: PathBuf,
    kubeconfig: PathBuf,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn setup() -> Option<Kubectl> {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("kubectl not on PATH: skipping");
        return None;
    }
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "fakekube-kubectl-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let fk = fake();
    let kubeconfig = fk.write_kubeconfig(&dir, FakeKube::ADMIN_TOKEN);
    Some(Kubectl {
        fk,
        dir,
        kubeconfig,
    })
}

impl Kubectl {
    fn run_with(&self, kubeconfig: &PathBuf, args: &[&str], stdin: &str) -> Out {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        Out {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    fn run(&self, args: &[&str]) -> Out {
        self.run_with(&self.kubeconfig, args, "")
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.ok, "kubectl {args:?} failed: {}", o.stderr);
        o.stdout
    }
    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }
    fn apply(&self, extra: &[&str], manifest: &str) -> Out {
        let mut args = vec!["apply", "-f", "-"];
        args.extend(extra);
        self.run_with(&self.kubeconfig, &args, manifest)
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

const NB: &str = "apiVersion: kubeflow.org/v1\nkind: Notebook\nmetadata:\n  name: nb1\n  namespace: team-a\n  labels: {app: x}\nspec:\n  image: jupyter:1\n";
const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\n  namespace: team-a\ndata:\n  a: \"1\"\n";

#[test]
fn get_yaml_json_and_tables() {
    let Some(k) = setup() else { return };
    k.fk.load_yaml(NB);
    k.fk.load_yaml(CM);
    // -o yaml of a CR and a built-in: the fields a real server returns.
    let y = k.ok(&["get", "notebook", "nb1", "-n", "team-a", "-o", "yaml"]);
    for line in [
        "apiVersion: kubeflow.org/v1",
        "kind: Notebook",
        "  creationTimestamp: ",
        "  generation: 1",
        "  name: nb1",
        "  namespace: team-a",
        "  resourceVersion: ",
        "  uid: ",
        "  image: jupyter:1",
    ] {
        assert!(y.contains(line), "{line:?} missing in:\n{y}");
    }
    assert!(
        !y.contains("managedFields"),
        "kubectl hides managedFields by default"
    );
    let cm = k.json(&["get", "cm", "cm1", "-n", "team-a"]);
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["apiVersion"], "v1");
    assert!(
        cm["metadata"].get("generation").is_none(),
        "configmaps have no generation"
    );
    // Several objects: kubectl wraps them in `kind: List`.
    let l = k.json(&["get", "cm,notebooks", "-n", "team-a"]);
    assert_eq!(l["kind"], "List");
    assert_eq!(l["apiVersion"], "v1");
    assert_eq!(l["items"].as_array().unwrap().len(), 2);
    assert_eq!(l["items"][0]["kind"], "ConfigMap");
    // Table output with the CRD's printer columns.
    let t = k.ok(&["get", "notebooks", "-n", "team-a"]);
    let mut lines = t.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "IMAGE", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["nb1", "jupyter:1"]);
    let t = k.ok(&["get", "ns"]);
    assert!(t.starts_with("NAME"), "{t}");
    assert!(
        t.lines()
            .any(|l| l.starts_with("team-a") && l.contains("Active")),
        "{t}"
    );
    let t = k.ok(&["get", "cm", "-A", "--show-labels"]);
    assert!(t.lines().next().unwrap().starts_with("NAMESPACE"), "{t}");
    // Label selectors pass through.
    assert!(
        k.ok(&["get", "notebooks", "-A", "-l", "app=x", "-o", "name"])
            .contains("notebook.kubeflow.org/nb1")
    );
    assert_eq!(
        k.ok(&["get", "notebooks", "-A", "-l", "app!=x", "-o", "name"]),
        ""
    );
    // Missing objects: kubectl's NotFound text from our Status.
    let o = k.run(&["get", "notebook", "x", "-n", "team-a"]);
    assert!(!o.ok);
    assert_eq!(
        o.stderr.trim(),
        r#"Error from server (NotFound): notebooks.kubeflow.org "x" not found"#
    );
    // Discovery: api-resources lists the CRDs.
    let r = k.ok(&["api-resources", "--api-group", "kubeflow.org"]);
    assert!(
        r.lines().any(|l| l.starts_with("notebooks")
            && l.contains("kubeflow.org/v1")
            && l.contains("Notebook")),
        "{r}"
    );
    let r = k.ok(&["api-resources"]);
    assert!(
        r.lines()
            .any(|l| l.starts_with("persistentvolumeclaims") && l.contains("pvc")),
        "{r}"
    );
}

#[test]
fn apply_client_and_server_side() {
    let Some(k) = setup() else { return };
    // Client-side apply: create, then change -> PATCH (merge patch for CRs, strategic for built-ins).
    let o = k.apply(&[], NB);
    assert!(
        o.ok && o.stdout.contains("notebook.kubeflow.org/nb1 created"),
        "{}",
        o.stderr
    );
    let o = k.apply(&[], &NB.replace("jupyter:1", "jupyter:2"));
    assert!(o.ok && o.stdout.contains("configured"), "{}", o.stderr);
    assert_eq!(
        k.fk.get("kubeflow.org/v1", "Notebook", Some("team-a"), "nb1")
            .unwrap()["spec"]["image"],
        "jupyter:2"
    );
    let o = k.apply(&[], CM);
    assert!(o.ok, "{}", o.stderr);
    let o = k.apply(&[], &CM.replace("\"1\"", "\"2\""));
    assert!(o.ok, "{}", o.stderr);
    let reqs = k.fk.requests();
    // kubectl 1.32 apply: GET the object, then POST (create) or PATCH, with its own fieldManager
    // and server-side field validation (learned from /openapi/v3).
    assert!(reqs.iter().any(|r| r.method == "POST"
        && r.query.contains("fieldManager=kubectl-client-side-apply")
        && r.query.contains("fieldValidation=Strict")));
    assert!(reqs.iter().any(|r| r.method == "PATCH"
        && r.content_type == "application/merge-patch+json"
        && r.path.ends_with("/notebooks/nb1")));
    assert!(reqs.iter().any(|r| r.method == "PATCH"
        && r.content_type == "application/strategic-merge-patch+json"
        && r.path.ends_with("/configmaps/cm1")));
    let cm = k.fk.get("v1", "ConfigMap", Some("team-a"), "cm1").unwrap();
    assert_eq!(cm["data"]["a"], "2");
    assert!(
        cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    // Server-side apply of a changed field still owned by the client-side apply manager
    // conflicts, as on a real cluster ("conflict with \"kubectl-client-side-apply\" using ...").
    let o = k.apply(&["--server-side"], &NB.replace("jupyter:1", "jupyter:3"));
    assert!(!o.ok);
    assert!(
        o.stderr.contains(
            r#"conflict with "kubectl-client-side-apply" using kubeflow.org/v1: .spec.image"#
        ),
        "{}",
        o.stderr
    );
    // Same values: kubectl migrates the ownership from client-side apply, then applies.
    let o = k.apply(&["--server-side"], &NB.replace("jupyter:1", "jupyter:2"));
    assert!(
        o.ok && o.stdout.contains("serverside-applied"),
        "{}",
        o.stderr
    );
    let o = k.apply(&["--server-side"], &NB.replace("jupyter:1", "jupyter:3"));
    assert!(
        o.ok && o.stdout.contains("serverside-applied"),
        "{}",
        o.stderr
    );
    let nb =
        k.fk.get("kubeflow.org/v1", "Notebook", Some("team-a"), "nb1")
            .unwrap();
    assert_eq!(nb["spec"]["image"], "jupyter:3");
    let managers: Vec<(&str, &str)> = nb["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap(),
                m["operation"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(managers.contains(&("kubectl", "Apply")), "{managers:?}");
    // A conflicting server-side apply by another manager fails, --force-conflicts wins.
    let o = k.apply(
        &["--server-side", "--field-manager", "other"],
        &NB.replace("jupyter:1", "jupyter:4"),
    );
    assert!(!o.ok);
    assert!(
        o.stderr.contains("conflict with \"kubectl\"") && o.stderr.contains(".spec.image"),
        "{}",
        o.stderr
    );
    let o = k.apply(
        &[
            "--server-side",
            "--field-manager",
            "other",
            "--force-conflicts",
        ],
        &NB.replace("jupyter:1", "jupyter:4"),
    );
    assert!(o.ok, "{}", o.stderr);
    // Server-side apply creating an object; dry-run=server stores nothing.
    let o = k.apply(
        &["--server-side", "--dry-run=server"],
        &CM.replace("cm1", "cm2"),
    );
    assert!(o.ok, "{}", o.stderr);
    assert!(k.fk.get("v1", "ConfigMap", Some("team-a"), "cm2").is_none());
    assert!(
        k.fk.requests()
            .iter()
            .any(|r| r.query.contains("dryRun=All"))
    );
    let o = k.apply(&["--server-side"], &CM.replace("cm1", "cm2"));
    assert!(o.ok, "{}", o.stderr);
    assert!(k.fk.get("v1", "ConfigMap", Some("team-a"), "cm2").is_some());
}

#[test]
fn patch_label_delete() {
    let Some(k) = setup() else { return };
    k.fk.load_yaml(NB);
    k.fk.load_yaml(CM);
    k.ok(&[
        "patch",
        "notebook",
        "nb1",
        "-n",
        "team-a",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"image":"m"}}"#,
    ]);
    k.ok(&[
        "patch",
        "notebook",
        "nb1",
        "-n",
        "team-a",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/spec/x","value":1}]"#,
    ]);
    k.ok(&[
        "patch",
        "cm",
        "cm1",
        "-n",
        "team-a",
        "--type",
        "strategic",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ]);
    let nb =
        k.fk.get("kubeflow.org/v1", "Notebook", Some("team-a"), "nb1")
            .unwrap();
    assert_eq!(nb["spec"], json!({"image": "m", "x": 1}));
    assert_eq!(
        k.fk.get("v1", "ConfigMap", Some("team-a"), "cm1").unwrap()["data"],
        json!({"a": "1", "b": "2"})
    );
    // Strategic merge on a CR: kubectl prints the server's 415.
    let o = k.run(&[
        "patch",
        "notebook",
        "nb1",
        "-n",
        "team-a",
        "-p",
        r#"{"spec":{"image":"s"}}"#,
    ]);
    assert!(!o.ok);
    assert!(o.stderr.contains("application/strategic-merge-patch+json is not supported by kubeflow.org/v1, Kind=Notebook"), "{}", o.stderr);
    k.ok(&["label", "notebook", "nb1", "-n", "team-a", "tier=gpu"]);
    k.ok(&["annotate", "cm", "cm1", "-n", "team-a", "note=hi"]);
    assert_eq!(
        k.fk.get("kubeflow.org/v1", "Notebook", Some("team-a"), "nb1")
            .unwrap()["metadata"]["labels"]["tier"],
        "gpu"
    );
    // Plain delete (kubectl waits for it to be gone through a watch).
    let o = k.ok(&["delete", "cm", "cm1", "-n", "team-a"]);
    assert_eq!(o.trim(), r#"configmap "cm1" deleted"#);
    assert!(k.fk.get("v1", "ConfigMap", Some("team-a"), "cm1").is_none());
    // A finalizer keeps it Terminating until removed.
    k.fk.update("kubeflow.org/v1", "Notebook", Some("team-a"), "nb1", |o| {
        o["metadata"]["finalizers"] = json!(["kubeflow.org/hold"])
    });
    let o = k.ok(&["delete", "notebook", "nb1", "-n", "team-a", "--wait=false"]);
    assert_eq!(o.trim(), r#"notebook.kubeflow.org "nb1" deleted"#);
    let nb = k.json(&["get", "notebook", "nb1", "-n", "team-a"]);
    assert!(nb["metadata"]["deletionTimestamp"].is_string());
    // `kubectl delete` (waiting) returns once the finalizer is removed: the finalizer goes only
    // after kubectl started watching for it (if it went earlier, kubectl could see the object
    // gone on its first look and never watch: that was a race), and kubectl must return after
    // that, not before. The watch resumes from the listed resourceVersion, so the removal is
    // delivered however soon after the watch request it happens.
    let h = k.fk.handle();
    let watches = |h: &fakekube::Handle| {
        h.requests()
            .iter()
            .filter(|r| {
                r.query.contains("watch=true")
                    && r.query.contains("fieldSelector=metadata.name%3Dnb1")
            })
            .count()
    };
    let before = watches(&h);
    let removed = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while watches(&h) == before {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(300),
                "kubectl never watched for the delete"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        h.update("kubeflow.org/v1", "Notebook", Some("team-a"), "nb1", |o| {
            o["metadata"]["finalizers"] = json!([])
        });
        std::time::Instant::now()
    });
    k.ok(&[
        "delete",
        "notebook",
        "nb1",
        "-n",
        "team-a",
        "--timeout=300s",
    ]);
    let returned = std::time::Instant::now();
    let removed = removed.join().unwrap();
    assert!(
        returned >= removed,
        "kubectl returned before the finalizer went"
    );
    assert!(
        k.fk.get("kubeflow.org/v1", "Notebook", Some("team-a"), "nb1")
            .is_none()
    );
    let watched = k.fk.requests().into_iter().any(|r| {
        r.query.contains("watch=true") && r.query.contains("fieldSelector=metadata.name%3Dnb1")
    });
    assert!(
        watched,
        "kubectl delete waits with a watch on metadata.name"
    );
}

#[test]
fn forbidden_and_unauthorized() {
    let Some(k) = setup() else { return };
    k.fk.add_token("alice-token", "alice");
    k.fk.deny("alice", "list", "kubeflow.org", "notebooks");
    let alice_dir = k.dir.join("alice");
    std::fs::create_dir_all(&alice_dir).unwrap();
    let alice = k.fk.write_kubeconfig(&alice_dir, "alice-token");
    let o = k.run_with(&alice, &["get", "notebooks", "-n", "team-a"], "");
    assert!(!o.ok);
    assert_eq!(
        o.stderr.trim(),
        r#"Error from server (Forbidden): notebooks.kubeflow.org is forbidden: User "alice" cannot list resource "notebooks" in API group "kubeflow.org" in the namespace "team-a""#
    );
    assert!(k.run_with(&alice, &["get", "cm", "-n", "team-a"], "").ok);
    let bad_dir = k.dir.join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    let bad = k.fk.write_kubeconfig(&bad_dir, "wrong-token");
    let o = k.run_with(&bad, &["get", "ns"], "");
    assert!(!o.ok);
    assert!(
        o.stderr
            .trim_end()
            .ends_with("error: You must be logged in to the server (Unauthorized)"),
        "{}",
        o.stderr
    );
}

#[test]
fn watch_with_kubectl_get_w() {
    let Some(k) = setup() else { return };
    let h = k.fk.handle();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(700));
        h.load_yaml(NB);
    });
    let o = k.run(&[
        "get",
        "notebooks",
        "-n",
        "team-a",
        "-w",
        "--request-timeout=3s",
    ]);
    assert!(
        o.stdout.lines().any(|l| l.starts_with("nb1")),
        "stdout: {} stderr: {}",
        o.stdout,
        o.stderr
    );
}

/// The AmlCluster CRD of testdata/kube/crds.yaml (with its structural schema).
fn amlcluster_crd() -> Value {
    serde_saphyr::from_multiple::<Value>(include_str!("../../../testdata/kube/crds.yaml"))
        .unwrap()
        .into_iter()
        .find(|d| d["metadata"]["name"] == "amlclusters.amlclusters.aml.dev")
        .unwrap()
}

fn amlcluster_yaml(name: &str, misspelled: &str) -> String {
    format!(
        "apiVersion: amlclusters.aml.dev/v1alpha1\nkind: AmlCluster\nmetadata:\n  name: {name}\nspec:\n  values:\n    {misspelled}:\n      datasets: true\n    global:\n      mysql: {{host: 10.4.158.198, port: 3306}}\n"
    )
}

#[test]
fn apply_of_a_misspelled_field_prunes_it_and_strict_validation_refuses_it() {
    let Some(k) = setup() else { return };
    k.fk.create(amlcluster_crd()).unwrap();
    // kubectl's default (--validate=strict) refuses, with the server's message.
    let o = k.apply(&[], &amlcluster_yaml("a", "experimentalFeaturs"));
    assert!(!o.ok);
    assert_eq!(
        o.stderr.trim(),
        r#"Error from server (BadRequest): error when creating "STDIN": AmlCluster in version "v1alpha1" cannot be handled as a AmlCluster: strict decoding error: unknown field "spec.values.experimentalFeaturs""#
    );
    let o = k.apply(
        &["--validate=strict"],
        &amlcluster_yaml("a", "experimentalFeaturs"),
    );
    assert!(
        !o.ok && o.stderr.contains("strict decoding error"),
        "{}",
        o.stderr
    );
    assert!(
        !k.run(&["get", "amlcluster", "a"]).ok,
        "nothing was created"
    );
    // --validate=warn: created, the field pruned, kubectl prints the server's warning.
    let o = k.apply(
        &["--validate=warn"],
        &amlcluster_yaml("a", "experimentalFeaturs"),
    );
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stderr
            .contains(r#"Warning: unknown field "spec.values.experimentalFeaturs""#),
        "{}",
        o.stderr
    );
    let live = k.json(&["get", "amlcluster", "a"]);
    assert!(
        live["spec"]["values"].get("experimentalFeaturs").is_none(),
        "{live}"
    );
    assert_eq!(live["spec"]["values"]["global"]["mysql"]["port"], 3306);
    // --validate=false (Ignore), changing an existing object: a merge patch, pruned silently.
    let o = k.apply(
        &["--validate=false"],
        &amlcluster_yaml("a", "experimentalFeatures"),
    );
    assert!(o.ok && !o.stderr.contains("Warning"), "{}", o.stderr);
    let mut fixed = k.json(&["get", "amlcluster", "a"]);
    assert_eq!(
        fixed["spec"]["values"]["experimentalFeatures"]["datasets"],
        true
    );
    // Server-side apply with a misspelling inside a known object: refused, then pruned.
    let o = k.apply(
        &["--server-side", "--validate=strict"],
        &amlcluster_yaml("a", "experimentalFeatures").replace("datasets", "dataset"),
    );
    assert!(!o.ok, "{}", o.stdout);
    assert!(
        o.stderr
            .contains(".spec.values.experimentalFeatures.dataset: field not declared in schema"),
        "{}",
        o.stderr
    );
    // A type error is 422, shown the way kubectl shows Invalid.
    let o = k.apply(
        &["--validate=false"],
        &amlcluster_yaml("a", "experimentalFeatures").replace("port: 3306", "port: '3306'"),
    );
    assert!(!o.ok);
    assert!(
        o.stderr.contains(r#"spec.values.global.mysql.port: Invalid value: "string": spec.values.global.mysql.port in body must be of type integer: "string""#),
        "{}",
        o.stderr
    );
    fixed = k.json(&["get", "amlcluster", "a"]);
    assert_eq!(fixed["spec"]["values"]["global"]["mysql"]["port"], 3306);
}
