//! The Alauda AI (AML) operator, as a person upgrades it: it does nothing on its own. A test
//! calls [`AmlOperator::upgrade`] at a moment of its choosing (a person clicking Upgrade in
//! OperatorHub), and the new operator then reconciles what it owns (see README.md, "Operator").
//! Nothing the tool does (deleting the chart application, plugins, ...) makes it act.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{FakeKube, Handle};

const AMLCLUSTER: (&str, &str) = ("amlclusters.aml.dev/v1alpha1", "AmlCluster");
const AML: (&str, &str) = ("amls.aml.dev/v1alpha1", "Aml");
/// The llm-trainer tag the article's 1.4 `aml-image-builder-config` references.
pub const LLM_TRAINER_TAG_14: &str = "v1.4.2-rc.1.ge47ab59d";

/// The simulated AML operator of one workload cluster.
#[derive(Clone)]
pub struct AmlOperator {
    h: Handle,
    llm_trainer_tag: String,
    config_namespaces: Vec<String>,
    resets_features: bool,
    upgrades: Arc<AtomicUsize>,
}

impl AmlOperator {
    /// The operator installed on `fk` (the workload cluster), at whatever version its objects
    /// report. Defaults: the 1.4 llm-trainer tag [`LLM_TRAINER_TAG_14`], the image-builder
    /// ConfigMap of namespace `kubeflow`, experimental features kept.
    pub fn new(fk: &FakeKube) -> AmlOperator {
        AmlOperator {
            h: fk.handle(),
            llm_trainer_tag: LLM_TRAINER_TAG_14.into(),
            config_namespaces: vec!["kubeflow".into()],
            resets_features: false,
            upgrades: Arc::default(),
        }
    }

    /// The llm-trainer tag the new operator writes into `aml-image-builder-config`.
    pub fn llm_trainer_tag(mut self, tag: &str) -> AmlOperator {
        self.llm_trainer_tag = tag.into();
        self
    }

    /// Namespaces whose `aml-image-builder-config` the operator owns (default `kubeflow`).
    pub fn config_namespaces(mut self, namespaces: &[&str]) -> AmlOperator {
        self.config_namespaces = namespaces.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The new operator drops `spec.values.experimentalFeatures` of AmlCluster `default`
    /// (so the article's "check the features after the upgrade" has something to find).
    pub fn resets_features(mut self, yes: bool) -> AmlOperator {
        self.resets_features = yes;
        self
    }

    /// How many times a person upgraded this operator.
    pub fn upgrades(&self) -> usize {
        self.upgrades.load(Ordering::SeqCst)
    }

    /// AmlCluster `default`'s `status.version` (what the tool polls to detect the upgrade).
    pub fn version(&self) -> Option<String> {
        self.h
            .get(AMLCLUSTER.0, AMLCLUSTER.1, None, "default")
            .and_then(|o| o["status"]["version"].as_str().map(String::from))
    }

    /// A person upgrades the operator to `version` (e.g. `v1.4.0`), now. The new operator:
    /// - sets AmlCluster `default` and Aml `default-aml` `status.version` (phase `Ready`);
    /// - rewrites every `llm-trainer` image reference in `aml-image-builder-config` of its
    ///   namespaces to the 1.4 tag (the repository part is kept);
    /// - rolls `kubeflow/aml-api-deploy` to the `aml-api:<version>` image;
    /// - drops the experimental features if [`AmlOperator::resets_features`].
    pub fn upgrade(&self, version: &str) {
        self.upgrades.fetch_add(1, Ordering::SeqCst);
        let reset = self.resets_features;
        self.h
            .update(AMLCLUSTER.0, AMLCLUSTER.1, None, "default", |o| {
                o["status"]["version"] = json!(version);
                o["status"]["phase"] = json!("Ready");
                if reset && let Some(v) = o["spec"]["values"].as_object_mut() {
                    v.remove("experimentalFeatures");
                }
            });
        self.h.update(AML.0, AML.1, None, "default-aml", |o| {
            o["status"]["version"] = json!(version);
            o["status"]["phase"] = json!("Ready");
        });
        for ns in &self.config_namespaces {
            self.h.update(
                "v1",
                "ConfigMap",
                Some(ns),
                "aml-image-builder-config",
                |o| {
                    if let Some(data) = o["data"].as_object_mut() {
                        for v in data.values_mut() {
                            if let Some(s) =
                                v.as_str().and_then(|s| retag(s, &self.llm_trainer_tag))
                            {
                                *v = json!(s);
                            }
                        }
                    }
                },
            );
        }
        self.h.update(
            "apps/v1",
            "Deployment",
            Some("kubeflow"),
            "aml-api-deploy",
            |o| {
                for c in o["spec"]["template"]["spec"]["containers"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    if let Some(s) = c["image"]
                        .as_str()
                        .and_then(|s| with_tag(s, "aml-api", version))
                    {
                        c["image"] = json!(s);
                    }
                }
            },
        );
    }

    /// [`AmlOperator::upgrade`] `delay` from now, on the server's runtime.
    pub fn upgrade_after(&self, delay: Duration, version: &str) {
        let me = self.clone();
        let version = version.to_string();
        self.h.after(delay, move |_| me.upgrade(&version));
    }
}

/// `registry/path/llm-trainer:<old>` → the same with `tag`; None for other images.
pub fn retag(image: &str, tag: &str) -> Option<String> {
    with_tag(image, "llm-trainer", tag)
}

fn with_tag(image: &str, repo_last: &str, tag: &str) -> Option<String> {
    let (name, _) = image
        .rsplit_once(':')
        .filter(|(n, t)| !t.contains('/') && !n.is_empty())?;
    let last = name.rsplit('/').next().unwrap_or(name);
    (last == repo_last).then(|| format!("{name}:{tag}"))
}

/// The llm-trainer image `aml-image-builder-config` in `namespace` references, if any.
pub fn llm_trainer_image(h: &Handle, namespace: &str) -> Option<String> {
    let cm: Value = h.get(
        "v1",
        "ConfigMap",
        Some(namespace),
        "aml-image-builder-config",
    )?;
    cm["data"]
        .as_object()?
        .values()
        .filter_map(Value::as_str)
        .find(|s| retag(s, "x").is_some())
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_llm_trainer_references_are_retagged() {
        assert_eq!(
            retag(
                "192.168.171.123:11443/mlops/llm-trainer:v1.3.2-rc.4.g7c1d2e9a",
                "v1.4.2"
            ),
            Some("192.168.171.123:11443/mlops/llm-trainer:v1.4.2".into())
        );
        assert_eq!(retag("reg:5000/mlops/buildkit:v0.15.2-aml", "v1"), None);
        assert_eq!(retag("reg:5000/mlops/llm-trainer", "v1"), None);
    }
}
