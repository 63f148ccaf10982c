//! The `kube` crate (what amlmigrate uses) against the fake: kubeconfig, discovery by kind,
//! DynamicObject list/get/apply/delete, error statuses.

mod common;

use common::*;
use fakekube::FakeKube;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::Discovery;
use serde_json::json;

#[test]
fn kube_client_discovery_and_dynamic_objects() {
    let fk = fake();
    fk.load_yaml("apiVersion: kubeflow.org/v1\nkind: Notebook\nmetadata: {name: nb1, namespace: team-a, labels: {app: x}}\nspec: {image: a}\n");
    let kubeconfig = fk.kubeconfig_yaml(FakeKube::ADMIN_TOKEN);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let kc = Kubeconfig::from_yaml(&kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let discovery = Discovery::new(client.clone()).run().await.unwrap();
        let (ar, caps) = discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .find(|(ar, _)| ar.kind == "Notebook")
            .expect("Notebook discovered");
        assert_eq!(ar.group, "kubeflow.org");
        assert_eq!(ar.plural, "notebooks");
        assert!(caps.supports_operation("patch"));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "team-a", &ar);
        let list = api.list(&ListParams::default().labels("app=x")).await.unwrap();
        assert_eq!(list.items.len(), 1);
        assert_eq!(list.items[0].data["spec"]["image"], "a");
        let err = api.get("missing").await.unwrap_err();
        assert!(err.to_string().contains("notebooks.kubeflow.org \"missing\" not found"), "{err}");
        let applied = api
            .patch(
                "nb2",
                &PatchParams::apply("amlmigrate"),
                &Patch::Apply(json!({"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "metadata": {"name": "nb2"}, "spec": {"image": "b"}})),
            )
            .await
            .unwrap();
        assert_eq!(applied.data["spec"]["image"], "b");
        let dry = api
            .patch("nb1", &PatchParams::default().dry_run(), &Patch::Merge(json!({"spec": {"image": "dry"}})))
            .await
            .unwrap();
        assert_eq!(dry.data["spec"]["image"], "dry");
        assert_eq!(api.get("nb1").await.unwrap().data["spec"]["image"], "a");
        api.delete("nb2", &DeleteParams::default()).await.unwrap();
        assert!(api.get_opt("nb2").await.unwrap().is_none());
        let pvcs: Api<DynamicObject> = Api::all_with(
            client,
            &discovery.groups().flat_map(|g| g.recommended_resources()).find(|(ar, _)| ar.kind == "PersistentVolumeClaim").unwrap().0,
        );
        assert!(pvcs.list(&ListParams::default()).await.unwrap().items.is_empty());
    });
    assert!(
        fk.requests().iter().all(|r| r.user == "admin"),
        "every kube-rs request carried the token"
    );
}
