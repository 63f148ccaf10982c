//! The article's checks and settings as the run makes them: dex and the mesh (comments kept, the
//! URI kfbase's), no new job before the uninstall, steps left out shown as skipped and missing
//! things as warnings or blocks, final checks that fail naming what is wrong, and the registry's
//! answers (wrong credentials, an untrusted certificate, a missing tag).

mod common;

use common::upgrade::*;
use common::*;
use serde_json::json;

fn chart_lab() -> Lab {
    Lab::new(LabOptions {
        world: World::Chart,
        ..Default::default()
    })
}

#[test]
fn dex_gets_kfbases_redirect_uri_and_keeps_every_other_byte_comments_included() {
    let lab = chart_lab();
    let dex = |lab: &Lab| {
        lab.g()
            .get("v1", "ConfigMap", Some("cpaas-system"), "dex-configmap")
            .unwrap()["data"]["config.yaml"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let original = dex(&lab);
    let last = "  - https://192.168.171.123/console-platform/*\n";
    assert!(original.contains(last), "{original}");
    let commented = format!(
        "# dex for ACP: edited by hand, keep this note\n{}",
        original.replace("  redirectURIs:\n", "  redirectURIs:\n  # ACP's consoles\n")
    );
    lab.g().update(
        "v1",
        "ConfigMap",
        Some("cpaas-system"),
        "dex-configmap",
        |o| o["data"]["config.yaml"] = json!(commented),
    );
    let plan = lab.upgrade(&["plan"]);
    assert!(
        plan.stdout.contains(&format!(
            "redirectURIs: (none) → + {OIDC_REDIRECT} (kfbase oidcRedirectURL)"
        )),
        "{plan:?}"
    );
    let r = lab.upgrade(&["run", "--yes", "--until", "snapshot"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(dex(&lab), commented, "dex changed before the snapshot");
    let r = lab.upgrade(&["run", "--yes", "--only", "global-settings"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        dex(&lab),
        commented.replace(last, &format!("{last}  - {OIDC_REDIRECT}\n")),
        "dex's config.yaml changed beyond the one URI"
    );
    let mesh = lab
        .g()
        .get(
            "asm.alauda.io/v1alpha1",
            "ServiceMesh",
            Some("cpaas-system"),
            "business-3",
        )
        .unwrap()
        .to_string();
    assert!(
        mesh.contains("oauth2-proxy-kubeflow") && mesh.contains("jwksResolverExtraRootCA"),
        "{mesh}"
    );
    // Done is done: the plan now finds dex listing kfbase's URI.
    let plan = lab.upgrade(&["plan"]);
    assert!(
        plan.stdout.contains(&format!(
            "ok   dex lists the redirect URI {OIDC_REDIRECT}, which is kfbase's oidcRedirectURL"
        )),
        "{plan:?}"
    );
}

#[test]
fn a_job_started_during_the_upgrade_stops_the_uninstall_before_anything_is_deleted() {
    let lab = chart_lab();
    // While the run waits for the operator upgrade, someone starts a fine-tune job.
    let h = lab.fk.handle();
    lab.before_operator_upgrade.lock().unwrap().push(Box::new(move || {
        h.create(json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
            "metadata": {"name": "new-finetune", "namespace": "team-c"},
            "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": {"spec": {"containers": [{"name": "pytorch", "image": "x"}]}}}}}}))
            .unwrap();
    }));
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("step uninstall-plugins is blocked: new job(s) started since the drain: PyTorchJob team-c/new-finetune")
            && r.stderr.contains("create no new jobs during the upgrade"),
        "{r:?}"
    );
    assert!(
        lab.fk
            .get(
                "app.alauda.io/v1",
                "HelmRequest",
                Some("kubeflow"),
                "kubeflow"
            )
            .is_some(),
        "the chart was deleted under a running job"
    );
    finish_job(&lab.fk.handle(), "team-c", "new-finetune");
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);
}

fn finish_job(h: &fakekube::Handle, ns: &str, name: &str) {
    h.update("kubeflow.org/v1", "PyTorchJob", Some(ns), name, |o| {
        o["status"]["conditions"] = json!([{"type": "Succeeded", "status": "True"}]);
    });
}

#[test]
fn steps_left_out_show_skipped_and_missing_objects_are_warnings_or_blocks() {
    let lab = chart_lab();
    let registry = lab.registry.url.clone();
    lab.edit_config(|s| s.replace(&format!("registry = \"{registry}\""), "registry = \"\""));
    lab.g()
        .delete("v1", "Secret", Some("cpaas-system"), "dex.tls");
    let aml_api = lab
        .fk
        .get("apps/v1", "Deployment", Some("kubeflow"), "aml-api-deploy")
        .unwrap();
    lab.fk
        .delete("apps/v1", "Deployment", Some("kubeflow"), "aml-api-deploy");
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    for want in [
        "images             skipped  no registry configured (images.registry)",
        "retag-llm-trainer  skipped  no registry configured",
        "delete-notebooks   skipped  not asked (notebooks.delete = false)",
        "migrate-mlflow     skipped  not asked (mlflow.migrate = false)",
        "WARNING: Secret cpaas-system/dex.tls not found in the global cluster: jwksResolverExtraRootCA cannot be added",
        "enable-features    BLOCKED  Deployment kubeflow/aml-api-deploy not found",
    ] {
        assert!(plan.stdout.contains(want), "plan lacks {want:?}: {plan:?}");
    }
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains(
            "step enable-features is blocked: Deployment kubeflow/aml-api-deploy not found"
        ),
        "{r:?}"
    );
    // The AML 1.4 API server comes up; the run goes on.
    let mut d = aml_api;
    let m = d["metadata"].as_object_mut().unwrap();
    m.remove("resourceVersion");
    m.remove("uid");
    lab.fk.create(d).unwrap();
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let report = lab.report();
    let step = |name: &str| {
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == name)
            .unwrap()
            .clone()
    };
    for s in [
        "images",
        "retag-llm-trainer",
        "delete-notebooks",
        "migrate-mlflow",
    ] {
        assert_eq!(step(s)["outcome"], "skipped", "{s}: {}", step(s));
    }
    assert!(
        step("preflight")["warnings"]
            .to_string()
            .contains("dex.tls not found"),
        "{}",
        step("preflight")
    );
    assert!(
        step("verify")["checked"]
            .to_string()
            .contains("skip llm-trainer image: no registry configured"),
        "{}",
        step("verify")
    );
}

#[test]
fn a_missing_mlflow_server_deployment_is_a_warning_in_the_plan() {
    let lab = chart_lab();
    let mlf = TestDb::create("upg_mlf_empty");
    lab.edit_config(|s| {
        s.replace(
            "[postgres]",
            &format!(
                "[mysql.mlflow]\nurl = \"mysql://amlupgrade@127.0.0.1:3306\"\ndatabases = [\"{}\"]\n[postgres]",
                mlf.name
            ),
        )
        .replace("[mlflow]\nmigrate = false\n", "[mlflow]\ncheck_server = false\n")
    });
    lab.fk
        .delete("apps/v1", "Deployment", Some("kubeflow"), "mlflow");
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout.contains("WARNING: Deployment kubeflow/mlflow (the MLflow 3.1.1 server the mlflow 1.4 plugin runs) not found: the copy waits for it"),
        "{plan:?}"
    );
}

#[test]
fn the_final_checks_fail_naming_what_is_wrong_and_pass_once_it_is_fixed() {
    let lab = chart_lab();
    lab.edit_config(|s| s.replace("rollout_timeout = \"20s\"", "rollout_timeout = \"2s\""));
    // aml-api-deploy never becomes Available, and the 1.4 llm-trainer tag disappears after the
    // retag (someone cleaned the registry).
    lab.stuck
        .lock()
        .unwrap()
        .insert("kubeflow/aml-api-deploy".into());
    let tag14 = lab.image(&format!(
        "mlops/llm-trainer:{}",
        fakekube::operator::LLM_TRAINER_TAG_14
    ));
    let (registry, t) = (lab.registry.clone(), tag14.clone());
    when_journal_shows(&lab.dir, "install-plugins", "started", move || {
        registry.delete(&t);
    });
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    for want in [
        "verification failed",
        "FAIL Deployment kubeflow/aml-api-deploy is not rolled out",
        "kubectl -n kubeflow rollout status deploy aml-api-deploy",
        &format!(
            "FAIL llm-trainer {tag14} (referenced by aml-image-builder-config) is not in the registry: run step retag-llm-trainer"
        ),
    ] {
        assert!(r.stderr.contains(want), "{want}: {r:?}");
    }
    // Fixed: the Deployment rolls out; llm-trainer is pushed again (deleting the tag's
    // manifest took the pushed tag too) and tagged again.
    lab.stuck.lock().unwrap().clear();
    lab.fk.update(
        "apps/v1",
        "Deployment",
        Some("kubeflow"),
        "aml-api-deploy",
        |o| o["metadata"]["annotations"]["fixed"] = json!("yes"),
    );
    let r = lab.upgrade(&["run", "--yes", "--only", "retag-llm-trainer"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("push llm-trainer (step images)"), "{r:?}");
    lab.registry
        .push_image(&lab.image("mlops/llm-trainer:v1.4.3"));
    let r = lab.upgrade(&["run", "--yes", "--only", "retag-llm-trainer"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);
}

/// `upgrade plan` with other registry settings or credentials.
fn plan_with(lab: &Lab, password: &str) -> Run {
    let mut env = lab.env();
    env.retain(|(k, _)| *k != "AMLMIGRATE_REGISTRY_PASSWORD");
    env.push(("AMLMIGRATE_REGISTRY_PASSWORD", password.to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    amlmigrate_env(&["upgrade", "plan", "--config", lab.cfg()], &env)
}

#[test]
fn the_registry_step_names_wrong_credentials_an_untrusted_certificate_and_a_missing_tag() {
    let lab = chart_lab();
    let r = plan_with(&lab, "not-the-password");
    assert!(
        r.stdout
            .contains("images             BLOCKED  cannot check:")
            && r.stdout.contains(&format!(
                "the registry {} refused the credentials of user {}",
                lab.registry.url, lab.registry.user
            ))
            && r.stdout.contains("check images.username and the password"),
        "{r:?}"
    );
    assert!(!r.all().contains("not-the-password"));
    // A CA that did not sign the registry's certificate.
    let ca = lab.registry.ca_file.display().to_string();
    let other = lab.registry.other_ca_file.display().to_string();
    lab.edit_config(|s| s.replace(&ca, &other));
    let r = plan_with(&lab, &lab.registry.password);
    assert!(
        r.stdout
            .contains("presented a certificate this machine does not trust")
            && r.stdout
                .contains("set images.ca_file to the CA that signed it"),
        "{r:?}"
    );
    lab.edit_config(|s| s.replace(&other, &ca));
    // A tag that is not there.
    lab.registry
        .delete(&lab.image("mlops/buildkit:v0.15.2-aml"));
    let r = plan_with(&lab, &lab.registry.password);
    assert!(
        r.stdout.contains("images             manual")
            && r.stdout.contains(&format!(
                "FAIL {}/mlops/buildkit:v0.15.2-aml not in the registry",
                lab.prefix
            )),
        "{r:?}"
    );
    // And a run with the wrong password stops there, exit 5, before anything is deleted.
    let mut env = lab.env();
    env.retain(|(k, _)| *k != "AMLMIGRATE_REGISTRY_PASSWORD");
    env.push(("AMLMIGRATE_REGISTRY_PASSWORD", "nope".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = amlmigrate_env(&["upgrade", "run", "--yes", "--config", lab.cfg()], &env);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("refused the credentials"), "{r:?}");
    assert!(
        lab.fk
            .get(
                "app.alauda.io/v1",
                "HelmRequest",
                Some("kubeflow"),
                "kubeflow"
            )
            .is_some()
    );
}
