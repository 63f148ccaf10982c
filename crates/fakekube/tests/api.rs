//! The HTTP API, checked against the shapes the real kube-apiserver produces.

mod common;

use common::*;
use fakekube::FakeKube;
use serde_json::{Value, json};

const NB: &str = "/apis/kubeflow.org/v1/namespaces/team-a/notebooks";

fn nb(name: &str) -> Value {
    json!({"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "metadata": {"name": name, "labels": {"app": "x"}}, "spec": {"image": "a"}})
}

#[test]
fn discovery_documents() {
    let fk = fake();
    let api = get(&fk, "/api").json();
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));

    let core = get(&fk, "/api/v1").json();
    assert_eq!(core["kind"], "APIResourceList");
    assert_eq!(core["groupVersion"], "v1");
    let r = |list: &Value, name: &str| {
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
    };
    let pvc = r(&core, "persistentvolumeclaims").unwrap();
    assert_eq!(pvc["singularName"], "persistentvolumeclaim");
    assert_eq!(pvc["namespaced"], true);
    assert_eq!(pvc["kind"], "PersistentVolumeClaim");
    assert_eq!(pvc["shortNames"], json!(["pvc"]));
    assert_eq!(
        pvc["verbs"],
        json!([
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ])
    );
    assert_eq!(
        r(&core, "persistentvolumeclaims/status").unwrap()["verbs"],
        json!(["get", "patch", "update"])
    );
    assert!(r(&core, "configmaps/status").is_none());
    assert_eq!(r(&core, "namespaces").unwrap()["namespaced"], false);

    let groups = get(&fk, "/apis").json();
    assert_eq!(groups["kind"], "APIGroupList");
    let kf = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "kubeflow.org")
        .unwrap()
        .clone();
    assert_eq!(
        kf["preferredVersion"],
        json!({"groupVersion": "kubeflow.org/v1", "version": "v1"})
    );
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "rbac.authorization.k8s.io")
    );

    let kfv1 = get(&fk, "/apis/kubeflow.org/v1").json();
    let notebooks = r(&kfv1, "notebooks").unwrap();
    assert_eq!(notebooks["kind"], "Notebook");
    assert_eq!(notebooks["singularName"], "notebook");
    assert!(r(&kfv1, "notebooks/status").is_some());
    assert!(r(&kfv1, "profiles").unwrap()["namespaced"] == false);
    let vc = get(&fk, "/apis/batch.volcano.sh/v1alpha1").json();
    assert_eq!(
        r(&vc, "jobs").unwrap()["shortNames"],
        json!(["vcjob", "vj"])
    );

    assert_eq!(get(&fk, "/version").json()["major"], "1");
    assert_eq!(get(&fk, "/apis/nope.io/v1").code, 404);
}

#[test]
fn crud_and_metadata() {
    let fk = fake();
    let created = post(&fk, NB, &nb("nb1"));
    assert_eq!(created.code, 201);
    let o = created.json();
    let md = &o["metadata"];
    assert_eq!(md["namespace"], "team-a");
    assert_eq!(md["generation"], 1);
    assert!(md["uid"].as_str().unwrap().len() == 36);
    assert!(md["creationTimestamp"].as_str().unwrap().ends_with('Z'));
    let rv1: u64 = md["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert_eq!(md["managedFields"][0]["manager"], "fakekube-test");
    assert_eq!(md["managedFields"][0]["operation"], "Update");

    // 409 AlreadyExists, shaped like errors.NewAlreadyExists.
    let dup = post(&fk, NB, &nb("nb1"));
    assert_eq!(dup.code, 409);
    assert_eq!(
        dup.text(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"notebooks.kubeflow.org \"nb1\" already exists","reason":"AlreadyExists","details":{"name":"nb1","group":"kubeflow.org","kind":"notebooks"},"code":409}"#
    );

    // generateName
    let g = post(
        &fk,
        NB,
        &json!({"metadata": {"generateName": "gen-"}, "spec": {}}),
    )
    .json();
    assert!(g["metadata"]["name"].as_str().unwrap().starts_with("gen-"));
    assert_eq!(g["metadata"]["name"].as_str().unwrap().len(), 9);

    // 422 when the name is missing.
    let inv = post(&fk, NB, &json!({"metadata": {}, "spec": {}}));
    assert_eq!(inv.code, 422);
    assert_eq!(
        inv.json()["message"],
        "Notebook.kubeflow.org \"\" is invalid: metadata.name: Required value: name or generateName is required"
    );
    assert_eq!(
        inv.json()["details"]["causes"][0],
        json!({"reason": "FieldValueRequired", "message": "Required value: name or generateName is required", "field": "metadata.name"})
    );

    // 404 for a missing namespace: namespaces "nope" not found.
    let nons = post(
        &fk,
        "/api/v1/namespaces/nope/configmaps",
        &json!({"metadata": {"name": "c"}}),
    );
    assert_eq!(nons.code, 404);
    assert_eq!(nons.json()["message"], "namespaces \"nope\" not found");

    // PUT: spec change bumps generation and resourceVersion.
    let mut upd = get(&fk, &format!("{NB}/nb1")).json();
    upd["spec"]["image"] = json!("b");
    let u = put(&fk, &format!("{NB}/nb1"), &upd);
    assert_eq!(u.code, 200);
    let u = u.json();
    assert_eq!(u["metadata"]["generation"], 2);
    assert!(
        u["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > rv1
    );
    // A label change alone does not bump generation.
    let l = patch(
        &fk,
        &format!("{NB}/nb1"),
        "application/merge-patch+json",
        r#"{"metadata":{"labels":{"b":"1"}}}"#,
    )
    .json();
    assert_eq!(l["metadata"]["generation"], 2);

    // Stale resourceVersion: the registry's Conflict.
    let c = put(&fk, &format!("{NB}/nb1"), &upd);
    assert_eq!(c.code, 409);
    assert_eq!(
        c.text(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on notebooks.kubeflow.org \"nb1\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"nb1","group":"kubeflow.org","kind":"notebooks"},"code":409}"#
    );

    // 404 exactly as the task quotes it.
    let nf = get(&fk, &format!("{NB}/nb9"));
    assert_eq!(
        nf.text(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"notebooks.kubeflow.org \"nb9\" not found","reason":"NotFound","details":{"name":"nb9","group":"kubeflow.org","kind":"notebooks"},"code":404}"#
    );
    // Core group: no ".group" and no details.group.
    let nf = get(&fk, "/api/v1/namespaces/default/configmaps/x").json();
    assert_eq!(nf["message"], "configmaps \"x\" not found");
    assert_eq!(nf["details"], json!({"name": "x", "kind": "configmaps"}));

    // DELETE without finalizers: Success Status with the uid.
    let d = delete(&fk, &format!("{NB}/nb1")).json();
    assert_eq!(d["status"], "Success");
    assert_eq!(d["details"]["name"], "nb1");
    assert_eq!(d["details"]["kind"], "notebooks");
    assert_eq!(d["details"]["uid"], u["metadata"]["uid"]);
    assert_eq!(get(&fk, &format!("{NB}/nb1")).code, 404);
    assert!(
        fk.get("kubeflow.org/v1", "Notebook", Some("team-a"), "nb1")
            .is_none()
    );
}

#[test]
fn lists_selectors_pagination() {
    let fk = fake();
    for (i, (app, tier)) in [
        ("a", "web"),
        ("b", "db"),
        ("a", "db"),
        ("c", ""),
        ("a", "web"),
    ]
    .iter()
    .enumerate()
    {
        let mut labels = json!({"app": app});
        if !tier.is_empty() {
            labels["tier"] = json!(tier);
        }
        post(
            &fk,
            "/api/v1/namespaces/team-a/configmaps",
            &json!({"metadata": {"name": format!("cm{i}"), "labels": labels}}),
        );
    }
    post(
        &fk,
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"name": "other", "labels": {"app": "a"}}}),
    );
    let names = |q: &str| -> Vec<String> {
        let l = get(&fk, &format!("/api/v1/namespaces/team-a/configmaps?{q}")).json();
        l["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let l = get(&fk, "/api/v1/namespaces/team-a/configmaps").json();
    assert_eq!(l["kind"], "ConfigMapList");
    assert_eq!(l["apiVersion"], "v1");
    assert!(l["metadata"]["resourceVersion"].as_str().is_some());
    // Typed lists of built-ins carry no apiVersion/kind on items (custom resources do).
    assert!(l["items"][0].get("kind").is_none());
    assert_eq!(names("labelSelector=app%3Da"), ["cm0", "cm2", "cm4"]);
    assert_eq!(names("labelSelector=app%3D%3Da,tier%21%3Dweb"), ["cm2"]);
    assert_eq!(names("labelSelector=app%20in%20(b,c)"), ["cm1", "cm3"]);
    assert_eq!(names("labelSelector=app%20notin%20(a)"), ["cm1", "cm3"]);
    assert_eq!(names("labelSelector=tier"), ["cm0", "cm1", "cm2", "cm4"]);
    assert_eq!(names("labelSelector=!tier"), ["cm3"]);
    assert_eq!(names("fieldSelector=metadata.name%3Dcm1"), ["cm1"]);
    assert_eq!(
        names("fieldSelector=metadata.name!%3Dcm1&labelSelector=app%3Da").len(),
        3
    );
    let all = get(&fk, "/api/v1/configmaps?labelSelector=app%3Da").json();
    assert_eq!(all["items"].as_array().unwrap().len(), 4);
    assert_eq!(
        get(&fk, "/api/v1/configmaps?fieldSelector=spec.x%3D1").code,
        400
    );

    // limit + continue
    let p1 = get(&fk, "/api/v1/namespaces/team-a/configmaps?limit=2").json();
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    assert_eq!(p1["metadata"]["remainingItemCount"], 3);
    let tok = p1["metadata"]["continue"].as_str().unwrap();
    let p2 = get(
        &fk,
        &format!("/api/v1/namespaces/team-a/configmaps?limit=2&continue={tok}"),
    )
    .json();
    assert_eq!(p2["items"][0]["metadata"]["name"], "cm2");
    let tok = p2["metadata"]["continue"].as_str().unwrap();
    let p3 = get(
        &fk,
        &format!("/api/v1/namespaces/team-a/configmaps?limit=2&continue={tok}"),
    )
    .json();
    assert_eq!(p3["items"].as_array().unwrap().len(), 1);
    assert!(p3["metadata"].get("continue").is_none());
    assert_eq!(
        get(&fk, "/api/v1/namespaces/team-a/configmaps?continue=garbage").code,
        400
    );

    // Custom resource lists carry TypeMeta on items.
    post(&fk, NB, &nb("n1"));
    let l = get(&fk, NB).json();
    assert_eq!(l["kind"], "NotebookList");
    assert_eq!(l["items"][0]["kind"], "Notebook");
    assert_eq!(fk.list("v1", "ConfigMap", None).len(), 6);
    assert_eq!(fk.list("v1", "ConfigMap", Some("default")).len(), 1);
}

#[test]
fn patches() {
    let fk = fake();
    let path = "/api/v1/namespaces/team-a/configmaps/c";
    post(
        &fk,
        "/api/v1/namespaces/team-a/configmaps",
        &json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}),
    );
    let m = patch(
        &fk,
        path,
        "application/merge-patch+json",
        r#"{"data":{"a":null,"c":"3"}}"#,
    )
    .json();
    assert_eq!(m["data"], json!({"b": "2", "c": "3"}));
    let j = patch(
        &fk,
        path,
        "application/json-patch+json",
        r#"[{"op":"replace","path":"/data/b","value":"9"}]"#,
    )
    .json();
    assert_eq!(j["data"]["b"], "9");
    let failed = patch(
        &fk,
        path,
        "application/json-patch+json",
        r#"[{"op":"test","path":"/data/b","value":"0"}]"#,
    );
    assert_eq!(failed.code, 422);
    let s = patch(
        &fk,
        path,
        "application/strategic-merge-patch+json",
        r#"{"data":{"d":"4"}}"#,
    )
    .json();
    assert_eq!(s["data"]["d"], "4");

    // Strategic merge on a Deployment merges containers by name.
    post(
        &fk,
        "/apis/apps/v1/namespaces/team-a/deployments",
        &json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {
        "containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}}),
    );
    let d = patch(
        &fk,
        "/apis/apps/v1/namespaces/team-a/deployments/d",
        "application/strategic-merge-patch+json",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"b","image":"b:2"}]}}}}"#,
    )
    .json();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"],
        json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}])
    );
    assert_eq!(d["metadata"]["generation"], 2);

    // Custom resources refuse strategic merge patch with 415, like the real server.
    post(&fk, NB, &nb("n"));
    let r = patch(
        &fk,
        &format!("{NB}/n"),
        "application/strategic-merge-patch+json",
        "{}",
    );
    assert_eq!(r.code, 415);
    assert_eq!(r.json()["reason"], "UnsupportedMediaType");
    assert_eq!(
        r.json()["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    );
}

#[test]
fn server_side_apply() {
    let fk = fake();
    let path = "/api/v1/namespaces/team-a/configmaps/c";
    let apply = |mgr: &str, force: bool, body: &str| {
        let mut q = format!("?fieldManager={mgr}");
        if force {
            q += "&force=true";
        }
        patch(
            &fk,
            &format!("{path}{q}"),
            "application/apply-patch+yaml",
            body,
        )
    };
    // fieldManager is required.
    assert_eq!(
        patch(&fk, path, "application/apply-patch+yaml", "{}").code,
        400
    );
    // Creates when absent (YAML body).
    let r = apply(
        "alice",
        false,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: '1'\n  b: '2'\n",
    );
    assert_eq!(r.code, 201);
    let o = r.json();
    assert_eq!(o["metadata"]["managedFields"][0]["manager"], "alice");
    assert_eq!(o["metadata"]["managedFields"][0]["operation"], "Apply");
    assert_eq!(
        o["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:data": {".": {}, "f:a": {}, "f:b": {}}})
    );
    // Dropping a field alice owns removes it.
    let o = apply(
        "alice",
        false,
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"1"}}"#,
    )
    .json();
    assert_eq!(o["data"], json!({"a": "1"}));
    // Another manager changing alice's field conflicts.
    let c = apply(
        "bob",
        false,
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"X"}}"#,
    );
    assert_eq!(c.code, 409);
    // k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager: NewConflictError / getConflictMessage
    assert_eq!(
        c.text(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Apply failed with 1 conflict: conflict with \"alice\": .data.a","reason":"Conflict","details":{"causes":[{"reason":"FieldManagerConflict","message":"conflict with \"alice\"","field":".data.a"}]},"code":409}"#
    );
    // Same value: shared ownership, no conflict.
    assert_eq!(apply("bob", false, r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"1","z":"0"}}"#).code, 200);
    // An Update manager's field conflicts too (named with its apiVersion).
    patch(
        &fk,
        &format!("{path}?fieldManager=carol"),
        "application/merge-patch+json",
        r#"{"data":{"y":"c"}}"#,
    );
    let c = apply("alice", false, r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"1","y":"a"}}"#).json();
    assert_eq!(
        c["message"],
        "Apply failed with 1 conflict: conflict with \"carol\" using v1: .data.y"
    );
    // force takes ownership.
    let f = apply("alice", true, r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"2","y":"a"}}"#).json();
    assert_eq!(f["data"], json!({"a": "2", "y": "a", "z": "0"}));
    let managers: Vec<&str> = f["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(
        !managers.contains(&"carol"),
        "carol lost her only field: {managers:?}"
    );
    // bob lost .data.a to alice's force but keeps .data.z
    let bob = f["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == "bob")
        .unwrap()
        .clone();
    assert_eq!(bob["fieldsV1"], json!({"f:data": {".": {}, "f:z": {}}}));
    // Two conflicts: the multi-line message.
    let c = apply("dave", false, r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"3","y":"d"}}"#).json();
    assert_eq!(
        c["message"],
        "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .data.a\n- .data.y"
    );
    // A no-op apply writes nothing.
    let before = get(&fk, path).json()["metadata"]["resourceVersion"].clone();
    apply(
        "alice",
        false,
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"2","y":"a"}}"#,
    );
    assert_eq!(get(&fk, path).json()["metadata"]["resourceVersion"], before);
}

#[test]
fn dry_run_stores_nothing() {
    let fk = fake();
    let c = post(&fk, &format!("{NB}?dryRun=All"), &nb("dry"));
    assert_eq!(c.code, 201);
    assert!(c.json()["metadata"]["uid"].is_string());
    assert!(c.json()["metadata"].get("resourceVersion").is_none());
    assert_eq!(get(&fk, &format!("{NB}/dry")).code, 404);
    post(&fk, NB, &nb("real"));
    let rv = get(&fk, &format!("{NB}/real")).json()["metadata"]["resourceVersion"].clone();
    let p = patch(
        &fk,
        &format!("{NB}/real?dryRun=All"),
        "application/merge-patch+json",
        r#"{"spec":{"image":"zzz"}}"#,
    )
    .json();
    assert_eq!(p["spec"]["image"], "zzz");
    let a = patch(
        &fk,
        &format!("{NB}/new?dryRun=All&fieldManager=m"),
        "application/apply-patch+yaml",
        r#"{"apiVersion":"kubeflow.org/v1","kind":"Notebook","metadata":{"name":"new"}}"#,
    );
    assert_eq!(a.code, 201);
    let d = delete(&fk, &format!("{NB}/real?dryRun=All"));
    assert_eq!(d.code, 200);
    let now = get(&fk, &format!("{NB}/real")).json();
    assert_eq!(now["spec"]["image"], "a");
    assert_eq!(now["metadata"]["resourceVersion"], rv);
    assert_eq!(get(&fk, &format!("{NB}/new")).code, 404);
    assert!(
        fk.requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.query.contains("dryRun=All"))
    );
}

#[test]
fn finalizers_and_namespace_deletion() {
    let fk = fake();
    let mut o = nb("f");
    o["metadata"]["finalizers"] = json!(["kubeflow.org/x"]);
    post(&fk, NB, &o);
    let d = delete(&fk, &format!("{NB}/f"));
    assert_eq!(d.code, 200);
    let d = d.json();
    assert_eq!(d["kind"], "Notebook");
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(d["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(get(&fk, &format!("{NB}/f")).code, 200);
    // No new finalizers while terminating.
    let add = patch(
        &fk,
        &format!("{NB}/f"),
        "application/merge-patch+json",
        r#"{"metadata":{"finalizers":["a","b"]}}"#,
    );
    assert_eq!(add.code, 422);
    // Emptying the finalizers finishes the deletion.
    let r = patch(
        &fk,
        &format!("{NB}/f"),
        "application/merge-patch+json",
        r#"{"metadata":{"finalizers":null}}"#,
    );
    assert_eq!(r.code, 200);
    assert_eq!(get(&fk, &format!("{NB}/f")).code, 404);

    // Deleting a namespace deletes its content; it stays Terminating while a finalizer holds.
    post(&fk, NB, &nb("plain"));
    post(&fk, NB, &o);
    let ns = delete(&fk, "/api/v1/namespaces/team-a").json();
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert_eq!(get(&fk, &format!("{NB}/plain")).code, 404);
    assert_eq!(get(&fk, "/api/v1/namespaces/team-a").code, 200);
    let create = post(
        &fk,
        "/api/v1/namespaces/team-a/configmaps",
        &json!({"metadata": {"name": "late"}}),
    );
    assert_eq!(create.code, 403);
    assert_eq!(
        create.json()["message"],
        "configmaps \"late\" is forbidden: unable to create new content in namespace team-a because it is being terminated"
    );
    assert!(
        fk.update("kubeflow.org/v1", "Notebook", Some("team-a"), "f", |o| o
            ["metadata"]["finalizers"] =
            json!([]))
    );
    assert_eq!(get(&fk, "/api/v1/namespaces/team-a").code, 404);
}

#[test]
fn status_subresource() {
    let fk = fake();
    let mut o = nb("s");
    o["status"] = json!({"phase": "ignored"});
    let c = post(&fk, NB, &o).json();
    assert!(
        c.get("status").is_none(),
        "create drops status when the status subresource is on"
    );
    // The main resource ignores status changes...
    let p = patch(
        &fk,
        &format!("{NB}/s"),
        "application/merge-patch+json",
        r#"{"status":{"phase":"x"},"spec":{"image":"b"}}"#,
    )
    .json();
    assert!(p.get("status").is_none());
    assert_eq!(p["spec"]["image"], "b");
    // ...and /status ignores spec changes.
    let s = patch(
        &fk,
        &format!("{NB}/s/status"),
        "application/merge-patch+json",
        r#"{"status":{"phase":"Ready"},"spec":{"image":"c"}}"#,
    )
    .json();
    assert_eq!(s["status"]["phase"], "Ready");
    assert_eq!(s["spec"]["image"], "b");
    assert_eq!(s["metadata"]["generation"], 2);
    let mut full = get(&fk, &format!("{NB}/s/status")).json();
    full["status"]["phase"] = json!("Done");
    let u = put(&fk, &format!("{NB}/s/status"), &full).json();
    assert_eq!(u["status"]["phase"], "Done");
    let mf = u["metadata"]["managedFields"].as_array().unwrap();
    assert!(mf.iter().any(|m| m["subresource"] == "status"));
    // Kinds without a status subresource have no /status.
    post(
        &fk,
        "/api/v1/namespaces/team-a/configmaps",
        &json!({"metadata": {"name": "c"}}),
    );
    assert_eq!(
        get(&fk, "/api/v1/namespaces/team-a/configmaps/c/status").code,
        404
    );
}

#[test]
fn authentication_and_authorization() {
    let fk = fake();
    // No token and a wrong token: 401, the exact body of a real server.
    for token in [None, Some("wrong")] {
        let r = request(
            &fk,
            "GET",
            "/api/v1/namespaces",
            token,
            "",
            "application/json",
            "",
        );
        assert_eq!(r.code, 401);
        assert_eq!(
            r.text(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
        );
    }
    fk.add_token("alice-token", "alice");
    fk.deny("alice", "list", "kubeflow.org", "notebooks");
    fk.deny("alice", "*", "", "secrets");
    let r = request(
        &fk,
        "GET",
        NB,
        Some("alice-token"),
        "",
        "application/json",
        "",
    );
    assert_eq!(r.code, 403);
    // responsewriters.forbiddenMessage + errors.NewForbidden
    assert_eq!(
        r.text(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"notebooks.kubeflow.org is forbidden: User \"alice\" cannot list resource \"notebooks\" in API group \"kubeflow.org\" in the namespace \"team-a\"","reason":"Forbidden","details":{"group":"kubeflow.org","kind":"notebooks"},"code":403}"#
    );
    let r = request(
        &fk,
        "GET",
        "/apis/kubeflow.org/v1/notebooks",
        Some("alice-token"),
        "",
        "",
        "",
    )
    .json();
    assert_eq!(
        r["message"],
        "notebooks.kubeflow.org is forbidden: User \"alice\" cannot list resource \"notebooks\" in API group \"kubeflow.org\" at the cluster scope"
    );
    let r = request(
        &fk,
        "GET",
        "/api/v1/namespaces/default/secrets/s",
        Some("alice-token"),
        "",
        "",
        "",
    )
    .json();
    assert_eq!(
        r["message"],
        "secrets \"s\" is forbidden: User \"alice\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\""
    );
    assert_eq!(r["details"], json!({"name": "s", "kind": "secrets"}));
    // Allowed verbs still work.
    assert_eq!(
        request(
            &fk,
            "POST",
            NB,
            Some("alice-token"),
            "application/json",
            "",
            &nb("ok").to_string()
        )
        .code,
        201
    );
    let log = fk.requests();
    assert!(
        log.iter().any(|r| r.user == "alice"
            && r.method == "POST"
            && r.content_type == "application/json")
    );
    assert!(
        log.iter()
            .any(|r| r.user.is_empty() && r.path == "/api/v1/namespaces")
    );
}

#[test]
fn table_output() {
    let fk = fake();
    post(&fk, NB, &nb("t1"));
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let t = request(&fk, "GET", NB, Some(FakeKube::ADMIN_TOKEN), "", accept, "").json();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Image", "Age"]);
    assert_eq!(t["rows"][0]["cells"][0], "t1");
    assert_eq!(t["rows"][0]["cells"][1], "a");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[test]
fn watch_streams_events() {
    let fk = fake();
    post(&fk, NB, &nb("w0"));
    let rv = get(&fk, NB).json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let h = fk.handle();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        h.create(json!({"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "metadata": {"name": "w1", "namespace": "team-a"}})).unwrap();
        h.delete("kubeflow.org/v1", "Notebook", Some("team-a"), "w0");
    });
    let r = get(
        &fk,
        &format!("{NB}?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
    );
    let events: Vec<Value> = r
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(types, [("ADDED", "w1"), ("DELETED", "w0")]);
    assert_eq!(events[0]["object"]["kind"], "Notebook");
    // Without a resourceVersion the current state comes first.
    let r = get(
        &fk,
        "/apis/kubeflow.org/v1/watch/namespaces/team-a/notebooks/w1?timeoutSeconds=1",
    );
    let first: Value = serde_json::from_str(r.text().lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["metadata"]["name"], "w1");
}

#[test]
fn crd_through_the_api_and_rust_api() {
    let fk = FakeKube::start();
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster", "names": {"kind": "Widget", "plural": "widgets"},
                 "versions": [{"name": "v1", "served": true, "storage": true}]}});
    let c = post(
        &fk,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &crd,
    )
    .json();
    assert_eq!(c["status"]["conditions"][1]["type"], "Established");
    assert_eq!(c["status"]["acceptedNames"]["singular"], "widget");
    let w = fk
        .create(
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
        )
        .unwrap();
    assert!(w["metadata"].get("namespace").is_none());
    assert_eq!(get(&fk, "/apis/example.com/v1/widgets/w").code, 200);
    // Errors come back as Status values.
    let err = fk
        .create(
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
        )
        .unwrap_err();
    assert_eq!(err["reason"], "AlreadyExists");
    // Deleting the CRD removes the resource and its objects.
    assert!(fk.delete(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        "widgets.example.com"
    ));
    assert_eq!(get(&fk, "/apis/example.com/v1/widgets").code, 404);
    assert!(fk.get("example.com/v1", "Widget", None, "w").is_none());
}

#[test]
fn hooks_fire_without_deadlock() {
    let fk = fake();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let s2 = seen.clone();
    fk.on_change(move |c, h| {
        s2.lock().unwrap().push((c.kind, c.name().to_string()));
        // Writing from inside a hook works (the store lock is not held).
        if c.kind == fakekube::ChangeKind::Added && c.is("", "ConfigMap") {
            h.update("v1", "ConfigMap", c.namespace(), c.name(), |o| {
                o["data"] = json!({"touched": "yes"})
            });
        }
    });
    post(
        &fk,
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"name": "h"}}),
    );
    assert_eq!(
        fk.get("v1", "ConfigMap", Some("default"), "h").unwrap()["data"]["touched"],
        "yes"
    );
    let (tx, rx) = std::sync::mpsc::channel();
    fk.after(std::time::Duration::from_millis(50), move |h| {
        tx.send(h.get("v1", "ConfigMap", Some("default"), "h").is_some())
            .unwrap();
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_secs(300))
            .unwrap()
    );
    let seen = seen.lock().unwrap();
    assert!(seen.contains(&(fakekube::ChangeKind::Added, "h".into())));
    assert!(seen.contains(&(fakekube::ChangeKind::Modified, "h".into())));
}
