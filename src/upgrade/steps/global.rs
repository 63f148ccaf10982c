//! Step global-settings: the global cluster's settings the article asks for before the 1.4
//! plugins (the ServiceMesh's IstioOperator overlay: dex's CA and the `oauth2-proxy-kubeflow`
//! extension provider; dex's redirect URI equal to kfbase's `oidcRedirectURL`). They are written
//! only after the snapshot, which holds both objects as they were (`catalog`), so `recover` can
//! put them back (`restore_check` / `restore_apply`).

use serde_json::{Value, json};

use super::mesh::{mesh_fix, servicemesh};
use super::{Applied, Change, Env, Journal, State, StepCheck, dex, snapshot_of};
use crate::error::{Error, Result};
use crate::kube::Role;
use crate::kube::catalog::{Catalog, Entry, Scope};
use crate::kube::restore::{KubeRestoreOptions, KubeRestoreReport, OnConflict, restore_kube};
use crate::upgrade::UpgradeConfig;

/// The snapshot's catalog: the default one, and the global cluster's objects this run edits,
/// by namespace and name (restored only by `recover`'s restore-global step).
pub(in crate::upgrade) fn catalog(cfg: &UpgradeConfig) -> Catalog {
    let p = &cfg.preflight;
    let mut c = Catalog::default();
    let entry = |kind: &str, group: &str, ns: &str, name: &str| Entry {
        kind: kind.into(),
        group: group.into(),
        cluster: Role::Global,
        scope: Scope::Namespaces,
        names: vec![name.into()],
        namespaces: vec![ns.into()],
        selector: None,
        restore: true,
        keep_status: false,
        order: 15,
        new_names: None,
    };
    c.entries
        .push(entry("ConfigMap", "", &p.dex_namespace, &p.dex_configmap));
    if !p.servicemesh_name.is_empty() {
        c.entries.push(entry(
            "ServiceMesh",
            MESH_GROUP,
            &p.servicemesh_namespace,
            &p.servicemesh_name,
        ));
    }
    c
}

const MESH_GROUP: &str = "asm.alauda.io";

/// The kinds `catalog` adds, restored by restore-global.
const GLOBAL_KINDS: [&str; 2] = ["ConfigMap", "ServiceMesh"];

pub(super) fn dex_object(env: &Env) -> String {
    let p = &env.cfg.preflight;
    format!("ConfigMap {}/{} (global)", p.dex_namespace, p.dex_configmap)
}

fn mesh_object(env: &Env) -> String {
    let p = &env.cfg.preflight;
    format!(
        "ServiceMesh {}/{} (global)",
        p.servicemesh_namespace, p.servicemesh_name
    )
}

pub(super) struct Fixes {
    pub dex: Option<DexFix>,
    pub mesh: Option<MeshFix>,
}

/// dex's new config.yaml, the URI it adds, and the resourceVersion it was made from.
pub(super) struct DexFix {
    version: String,
    text: String,
    uri: String,
}

/// The ServiceMesh's merge patch, per overlay path what it adds, and the resourceVersion it
/// was made from.
pub(super) struct MeshFix {
    version: String,
    patch: Value,
    added: Vec<(String, String)>,
}

fn ok(c: &mut StepCheck, s: String) {
    c.checked.push(format!("ok   {s}"));
}

fn fail(c: &mut StepCheck, s: String) {
    c.checked.push(format!("FAIL {s}"));
}

fn version(o: &Value) -> String {
    o["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// What the global cluster lacks of the article's settings (checked lines go into `c`).
pub(super) async fn fixes(env: &Env, c: &mut StepCheck) -> Result<Fixes> {
    let p = &env.cfg.preflight;
    let mut out = Fixes {
        dex: None,
        mesh: None,
    };
    match env.cfg.oidc_redirect_url() {
        None => fail(
            c,
            "the kfbase plugin's config has no oidcRedirectURL: set it in [[install.plugins]] kfbase (the Kubeflow gateway's …/oauth2/callback); dex gets the same URI".into(),
        ),
        Some(uri) => {
            let cm = env.global.need("ConfigMap", "")?;
            let Some(obj) = env
                .global
                .get(&cm, Some(&p.dex_namespace), &p.dex_configmap)
                .await?
            else {
                fail(
                    c,
                    format!(
                        "ConfigMap {}/{} not found in the global cluster: check --global-context (kubernetes.global_context); a recovery's restore-global puts a lost one back from the snapshot",
                        p.dex_namespace, p.dex_configmap
                    ),
                );
                return Ok(out);
            };
            let text = obj["data"]["config.yaml"].as_str().unwrap_or_default();
            match dex::add_redirect_uri(text, uri) {
                // A layout the edit cannot keep byte for byte: the line says what to do by hand.
                Err(e) => fail(c, e.to_string()),
                Ok(Some(text)) => {
                    out.dex = Some(DexFix {
                        version: version(&obj),
                        text,
                        uri: uri.to_string(),
                    })
                }
                Ok(None) => ok(
                    c,
                    format!("dex lists the redirect URI {uri}, which is kfbase's oidcRedirectURL"),
                ),
            }
        }
    }
    match servicemesh(env).await? {
        Some((_, mesh)) => {
            out.mesh = mesh_fix(env, &mesh, &mut c.warnings)
                .await?
                .map(|(patch, added)| MeshFix {
                    version: version(&mesh),
                    patch,
                    added,
                });
            if out.mesh.is_none() {
                ok(
                    c,
                    format!(
                        "ServiceMesh carries the {} extension provider and a jwks root CA",
                        p.extension_provider
                    ),
                );
            }
        }
        None if !p.servicemesh_name.is_empty() => c.warnings.push(format!(
            "ServiceMesh {}/{} not found in the global cluster: add the oauth2-proxy-kubeflow extension provider to your mesh by hand, as the article shows",
            p.servicemesh_namespace, p.servicemesh_name
        )),
        None => {}
    }
    Ok(out)
}

/// The changes `fixes` stands for, as the plan shows them.
pub(super) fn changes(env: &Env, fixes: &Fixes) -> Vec<Change> {
    let mut out = Vec::new();
    if let Some(DexFix { uri, .. }) = &fixes.dex {
        out.push(Change::new(
            dex_object(env),
            format!("config.yaml staticClients[{}].redirectURIs", dex::CLIENT),
            None,
            Some(format!("+ {uri} (kfbase oidcRedirectURL)")),
        ));
    }
    if let Some(MeshFix { added, .. }) = &fixes.mesh {
        for (path, what) in added {
            out.push(Change::new(
                mesh_object(env),
                format!("spec.overlays[IstioOperator] {path}"),
                None,
                Some(what.clone()),
            ));
        }
    }
    out
}

pub(super) async fn check(env: &Env, c: &mut StepCheck) -> Result<()> {
    let fixes = fixes(env, c).await?;
    c.changes = changes(env, &fixes);
    let fails = c.failures().count();
    if fails > 0 {
        c.state = State::Blocked;
        c.why = format!("{fails} check(s) fail; fix each as its line says");
    } else if !c.changes.is_empty() {
        c.state = State::ToDo;
        c.why = format!(
            "{} setting(s) of the global cluster to add (the snapshot holds both objects as they are)",
            c.changes.len()
        );
    } else {
        c.why = "the global cluster has the article's settings".into();
    }
    Ok(())
}

/// Writes what `check` showed. Each write carries the resourceVersion it was computed from, so
/// an object someone edits meanwhile is not overwritten (the API server answers Conflict; the
/// same command then starts again from the new object).
pub(super) async fn apply(env: &Env, journal: &Journal) -> Result<Applied> {
    super::require_snapshot(env, journal).await?;
    let mut c = super::new_check(super::StepId::GlobalSettings);
    let fixes = fixes(env, &mut c).await?;
    if c.failures().count() > 0 {
        return Err(Error::Refused(format!(
            "global-settings: {}",
            c.failures().cloned().collect::<Vec<_>>().join("; ")
        )));
    }
    let done = changes(env, &fixes);
    let p = &env.cfg.preflight;
    if let Some(DexFix {
        version: rv, text, ..
    }) = fixes.dex
    {
        let cm = env.global.need("ConfigMap", "")?;
        env.global
            .merge_patch(
                &cm,
                Some(&p.dex_namespace),
                &p.dex_configmap,
                &json!({"metadata": {"resourceVersion": rv}, "data": {"config.yaml": text}}),
                false,
            )
            .await?;
    }
    if let Some(MeshFix {
        version: rv,
        mut patch,
        ..
    }) = fixes.mesh
    {
        let (r, _) = servicemesh(env).await?.ok_or_else(|| {
            Error::other("the ServiceMesh disappeared while global-settings patched it; run again")
        })?;
        patch["metadata"] = json!({"resourceVersion": rv});
        env.global
            .merge_patch(
                &r,
                Some(&p.servicemesh_namespace),
                &p.servicemesh_name,
                &patch,
                false,
            )
            .await?;
    }
    Ok(Applied::changes(done))
}

/// The title of recover's restore-global step.
pub(in crate::upgrade) const RESTORE_TITLE: &str = "Put back the global cluster's dex ConfigMap and ServiceMesh if they are gone, as the snapshot holds them (step global-settings then adds the article's settings again)";

/// What restore-global would do: each of the snapshot's global objects that the cluster lacks
/// is created as the snapshot holds it; one that exists is left as it is (after an upgrade it
/// differs by the article's settings, which global-settings keeps), its differences shown.
/// Every object is checked as every restored object is (catalog kinds, names, namespaces).
pub(in crate::upgrade) async fn restore_check(
    env: &Env,
    journal: &Journal,
    c: &mut StepCheck,
) -> Result<()> {
    let Some(id) = snapshot_of(env, Some(journal)).await? else {
        c.state = State::Blocked;
        c.why = "the recovery's snapshot is not in the repository".into();
        return Ok(());
    };
    // A dry run that would update shows how an existing object differs; only what would be
    // created is a change of this step.
    let rep = restore(env, &id, true, OnConflict::Update).await?;
    let refused: Vec<String> = rep
        .refused()
        .iter()
        .map(|o| format!("{}: {}", shown(o), o.error.as_deref().unwrap_or("refused")))
        .collect();
    if !refused.is_empty() {
        c.state = State::Blocked;
        c.why = format!(
            "{} global object(s) of snapshot {id} may not be restored, so nothing would be written: {}",
            refused.len(),
            refused.join("; ")
        );
        return Ok(());
    }
    for o in &rep.objects {
        match o.action.as_str() {
            "would create" => c.changes.push(restored(o, &id)),
            "would update" => ok(
                c,
                format!(
                    "{} exists and is left as it is (differs from snapshot {id} in {})",
                    shown(o),
                    fields(o)
                ),
            ),
            "failed" => c.warnings.push(format!(
                "{}: {}",
                shown(o),
                o.error.as_deref().unwrap_or("failed")
            )),
            _ => ok(c, format!("{} is as snapshot {id} holds it", shown(o))),
        }
    }
    if rep.objects.is_empty() {
        c.why =
            format!("snapshot {id} holds no dex ConfigMap or ServiceMesh of the global cluster");
    } else if c.changes.is_empty() {
        c.why = "the global cluster has its dex ConfigMap and ServiceMesh".into();
    } else {
        c.state = State::ToDo;
        c.why = format!(
            "{} global object(s) gone, to create from snapshot {id}",
            c.changes.len()
        );
    }
    Ok(())
}

pub(in crate::upgrade) async fn restore_apply(env: &Env, journal: &Journal) -> Result<Vec<Change>> {
    let id = super::require_snapshot(env, journal).await?;
    let rep = restore(env, &id, false, OnConflict::Skip).await?;
    let failed: Vec<String> = rep
        .failed()
        .iter()
        .map(|o| format!("{}: {}", shown(o), o.error.clone().unwrap_or_default()))
        .collect();
    if !failed.is_empty() {
        return Err(Error::Other(format!(
            "{} global object(s) could not be put back: {}",
            failed.len(),
            failed.join("; ")
        )));
    }
    Ok(rep
        .objects
        .iter()
        .filter(|o| o.action == "created")
        .map(|o| restored(o, &id))
        .collect())
}

fn fields(o: &crate::kube::restore::ObjectResult) -> String {
    o.changes
        .iter()
        .map(|c| c.path.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn shown(o: &crate::kube::restore::ObjectResult) -> String {
    format!(
        "{} {}{} (global)",
        o.kind,
        o.namespace
            .as_deref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default(),
        o.name
    )
}

fn restored(o: &crate::kube::restore::ObjectResult, id: &str) -> Change {
    Change::new(
        shown(o),
        "",
        None,
        Some(format!("created from snapshot {id}")),
    )
}

async fn restore(
    env: &Env,
    id: &str,
    dry_run: bool,
    on_conflict: OnConflict,
) -> Result<KubeRestoreReport> {
    let opts = KubeRestoreOptions {
        access: env.cfg.kube_options(),
        catalog: catalog(&env.cfg),
        dry_run,
        on_conflict,
        kinds: GLOBAL_KINDS.iter().map(|k| k.to_string()).collect(),
        cluster: Some(Role::Global),
        ..Default::default()
    };
    restore_kube(&env.repo, id, &opts, &env.progress, &env.cancel).await
}
