//! The catalog: which kinds a Kubernetes backup fetches, from which cluster and namespaces, and
//! in which order a restore applies them. Kinds are resolved through discovery by name, with the
//! group as a hint, so the defaults also work where a group differs. Operators can replace the
//! catalog with a TOML file (`amlmigrate kube catalog` prints the defaults to start from).

use serde::{Deserialize, Serialize};

use super::Role;
use crate::error::{Error, Result};

/// Which objects of a kind to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Every object, in every namespace (or the cluster-scoped ones).
    All,
    /// Objects in user namespaces only (profile namespaces, or those given with --namespaces).
    UserNamespaces,
    /// Cluster-scoped objects named after a user namespace (the Namespace itself, its Profile).
    UserNamespaceObjects,
    /// PersistentVolumes bound to the PVCs of user namespaces.
    BoundVolumes,
    /// Objects in the namespaces the entry names, and nowhere else (the global cluster's
    /// `cpaas-system` settings an upgrade edits).
    Namespaces,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub kind: String,
    /// The expected API group ("" for core); a kind served under one other group is accepted.
    #[serde(default)]
    pub group: String,
    #[serde(default = "workload")]
    pub cluster: Role,
    #[serde(default = "all")]
    pub scope: Scope,
    /// Only objects with these names (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Namespaces besides the user namespaces that objects of a `user-namespaces` kind are read
    /// from and restored into (`kubeflow` for the image-builder settings); for a `namespaces`
    /// kind, the only ones. A restore writes a namespaced object only into a user namespace
    /// (never for a `namespaces` kind) or one named here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// A label selector (`cpaas.io/module-type=plugin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Restored by `restore --only kubernetes`; false keeps the objects as records only.
    #[serde(default = "yes")]
    pub restore: bool,
    /// Keep `status` (records: whether a job succeeded matters; restored objects drop it).
    #[serde(default)]
    pub keep_status: bool,
    /// Restore order: lower first (namespaces 10 … custom resources 80).
    #[serde(default = "order")]
    pub order: u32,
    /// When set, a restore creates objects of this kind only under these names, and brings
    /// back others only when the cluster has them already: for singletons such as AmlCluster,
    /// where a snapshot's new instance would be a second installation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_names: Option<Vec<String>>,
}

impl Entry {
    /// The group to resolve the kind with: the entry's, or none (any one group serving the
    /// kind) when it names none and the kind is not a core one.
    pub fn group_hint(&self) -> Option<&str> {
        let core = matches!(
            self.kind.as_str(),
            "Namespace"
                | "PersistentVolume"
                | "PersistentVolumeClaim"
                | "ConfigMap"
                | "Secret"
                | "ServiceAccount"
                | "Pod"
                | "Service"
        );
        (!self.group.is_empty() || core).then_some(self.group.as_str())
    }
}

fn workload() -> Role {
    Role::Workload
}
fn all() -> Scope {
    Scope::All
}
fn yes() -> bool {
    true
}
fn order() -> u32 {
    80
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(rename = "kind")]
    pub entries: Vec<Entry>,
}

#[allow(clippy::too_many_arguments)]
fn e(
    kind: &str,
    group: &str,
    cluster: Role,
    scope: Scope,
    names: &[&str],
    selector: Option<&str>,
    restore: bool,
    order: u32,
) -> Entry {
    Entry {
        kind: kind.into(),
        group: group.into(),
        cluster,
        scope,
        names: names.iter().map(|s| s.to_string()).collect(),
        namespaces: Vec::new(),
        selector: selector.map(str::to_string),
        restore,
        keep_status: !restore,
        order,
        new_names: None,
    }
}

/// The group the `Aml` kind is expected in. Not public; discovery by kind finds the real one.
pub const AML_GROUP: &str = "amls.aml.dev";

impl Default for Catalog {
    fn default() -> Self {
        use Role::{Global, Workload};
        use Scope::*;
        let mut entries = vec![
            e(
                "Namespace",
                "",
                Workload,
                UserNamespaceObjects,
                &[],
                None,
                true,
                10,
            ),
            e(
                "Profile",
                "kubeflow.org",
                Workload,
                UserNamespaceObjects,
                &[],
                None,
                true,
                20,
            ),
            e(
                "PersistentVolume",
                "",
                Workload,
                BoundVolumes,
                &[],
                None,
                true,
                30,
            ),
            e(
                "PersistentVolumeClaim",
                "",
                Workload,
                UserNamespaces,
                &[],
                None,
                true,
                31,
            ),
            e(
                "ConfigMap",
                "",
                Workload,
                UserNamespaces,
                &["aml-image-builder-config"],
                None,
                true,
                40,
            ),
            e(
                "Secret",
                "",
                Workload,
                UserNamespaces,
                &["aml-image-builder-secret"],
                None,
                true,
                41,
            ),
            e(
                "RoleBinding",
                "rbac.authorization.k8s.io",
                Workload,
                UserNamespaces,
                &[],
                None,
                true,
                50,
            ),
            e(
                "AuthorizationPolicy",
                "security.istio.io",
                Workload,
                UserNamespaces,
                &[],
                None,
                true,
                60,
            ),
            e(
                "AmlCluster",
                "amlclusters.aml.dev",
                Workload,
                All,
                &[],
                None,
                true,
                70,
            ),
            e("Aml", AML_GROUP, Workload, All, &[], None, true, 71),
            e(
                "Notebook",
                "kubeflow.org",
                Workload,
                UserNamespaces,
                &[],
                None,
                true,
                80,
            ),
            e(
                "Tensorboard",
                "tensorboard.kubeflow.org",
                Workload,
                UserNamespaces,
                &[],
                None,
                true,
                81,
            ),
            e(
                "ModuleInfo",
                "cluster.alauda.io",
                Global,
                All,
                &[],
                Some("cpaas.io/module-type=plugin"),
                false,
                90,
            ),
        ];
        // The instances the AML operator's documentation names.
        for en in entries.iter_mut() {
            match en.kind.as_str() {
                "AmlCluster" => en.new_names = Some(vec!["default".into()]),
                "Aml" => en.new_names = Some(vec!["default-aml".into()]),
                _ => {}
            }
        }
        // The image-builder settings also live in the AML system namespace.
        for en in entries.iter_mut().filter(|en| !en.names.is_empty()) {
            en.namespaces = vec!["kubeflow".into()];
        }
        for kind in ["PyTorchJob", "TFJob", "MPIJob", "XGBoostJob", "PaddleJob"] {
            entries.push(e(
                kind,
                "kubeflow.org",
                Workload,
                UserNamespaces,
                &[],
                None,
                false,
                95,
            ));
        }
        entries.push(e(
            "Job",
            "batch.volcano.sh",
            Workload,
            UserNamespaces,
            &[],
            None,
            false,
            96,
        ));
        Catalog { entries }
    }
}

impl Catalog {
    pub fn from_toml(text: &str, origin: &str) -> Result<Catalog> {
        let c: Catalog = toml::from_str(text)
            .map_err(|e| Error::input(format!("kube catalog {origin}: {e}")))?;
        if c.entries.is_empty() {
            return Err(Error::input(format!(
                "kube catalog {origin} lists no kinds; add [[kind]] tables (see `amlmigrate kube catalog`)"
            )));
        }
        for en in &c.entries {
            if en.scope == Scope::BoundVolumes && en.kind != "PersistentVolume" {
                return Err(Error::input(format!(
                    "kube catalog {origin}: scope bound-volumes is for kind PersistentVolume, not {}",
                    en.kind
                )));
            }
            if !en.namespaces.is_empty()
                && !matches!(en.scope, Scope::UserNamespaces | Scope::Namespaces)
            {
                return Err(Error::input(format!(
                    "kube catalog {origin}: kind {}: namespaces is for scopes user-namespaces and namespaces",
                    en.kind
                )));
            }
            if en.namespaces.is_empty() && en.scope == Scope::Namespaces {
                return Err(Error::input(format!(
                    "kube catalog {origin}: kind {}: scope namespaces needs the namespaces it reads",
                    en.kind
                )));
            }
        }
        Ok(c)
    }

    pub fn load(path: &std::path::Path) -> Result<Catalog> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading kube catalog {}", path.display()), e))?;
        Catalog::from_toml(&text, &path.display().to_string())
    }

    /// The entry a stored object belongs to: same cluster and kind, and the same group (or,
    /// for custom resources, another custom group, as discovery accepts at backup).
    pub fn entry_for(&self, cluster: Role, kind: &str, group: &str) -> Option<&Entry> {
        self.entries.iter().find(|en| {
            en.cluster == cluster
                && en.kind == kind
                && (en.group == group
                    || (!super::is_builtin_group(&en.group) && !super::is_builtin_group(group)))
        })
    }

    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# amlmigrate Kubernetes catalog: what `backup --kube` fetches and `restore --only kubernetes` applies.\n\
             # Give an edited copy with --kube-catalog FILE. Fields of each [[kind]]:\n\
             #   kind, group      resolved through discovery; a kind served by one other custom group is accepted\n\
             #   cluster          workload | global (the ACP global cluster, --global-context)\n\
             #   scope            all | user-namespaces | user-namespace-objects (cluster-scoped, named after a user\n\
             #                    namespace: Namespace, Profile) | bound-volumes (PersistentVolume) |\n\
             #                    namespaces (only the namespaces listed in `namespaces`)\n\
             #   names, selector  only objects with these names / matching this label selector\n\
             #   namespaces       user-namespaces kinds: other namespaces to read and restore too (kubeflow);\n\
             #                    namespaces kinds: the only ones\n\
             #   restore          false keeps the objects as records only\n\
             #   keep_status      keep .status (records)\n\
             #   order            restore order, lower first\n\n",
        );
        out.push_str(&toml::to_string_pretty(self).expect("catalog serializes"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_catalog_round_trips_through_toml() {
        let c = Catalog::default();
        let back = Catalog::from_toml(&c.to_toml(), "test").unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn catalog_file_rejects_unknown_fields_and_empty_lists() {
        let err =
            Catalog::from_toml("[[kind]]\nkind = \"Notebook\"\ngroupp = \"x\"\n", "f").unwrap_err();
        assert!(err.to_string().contains("groupp"), "{err}");
        let err = Catalog::from_toml("", "f").unwrap_err();
        assert!(err.to_string().contains("lists no kinds") || err.to_string().contains("kind"));
    }

    #[test]
    fn minimal_entry_gets_defaults() {
        let c = Catalog::from_toml(
            "[[kind]]\nkind = \"Notebook\"\ngroup = \"kubeflow.org\"\n",
            "f",
        )
        .unwrap();
        let en = &c.entries[0];
        assert_eq!(en.cluster, Role::Workload);
        assert_eq!(en.scope, Scope::All);
        assert!(en.restore);
        assert_eq!(en.order, 80);
    }

    #[test]
    fn a_namespaces_kind_names_its_namespaces_and_only_it_may() {
        let err = Catalog::from_toml(
            "[[kind]]\nkind = \"ConfigMap\"\ncluster = \"global\"\nscope = \"namespaces\"\n",
            "f",
        )
        .unwrap_err();
        assert!(err.to_string().contains("needs the namespaces"), "{err}");
        let c = Catalog::from_toml(
            "[[kind]]\nkind = \"ConfigMap\"\ncluster = \"global\"\nscope = \"namespaces\"\nnamespaces = [\"cpaas-system\"]\n",
            "f",
        )
        .unwrap();
        assert_eq!(c.entries[0].scope, Scope::Namespaces);
        let err = Catalog::from_toml(
            "[[kind]]\nkind = \"ConfigMap\"\nnamespaces = [\"cpaas-system\"]\n",
            "f",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("namespaces is for scopes"),
            "{err}"
        );
    }
}
