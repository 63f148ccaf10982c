//! `amlmigrate profile create`

use clap::{Args, Subcommand};
use serde_json::json;

use amlmigrate::kube::{Cluster, Role};
use amlmigrate::upgrade::profile::{self, ProfileOptions};

use super::{GlobalArgs, KubeArgs, print_json};

/// Kubeflow user namespaces (Profiles).
#[derive(Args)]
#[command(after_long_help = "Examples:\n  \
amlmigrate profile create --user admin@cpaas.io\n  \
amlmigrate profile create --user alice@example.com --namespace team-a \\\n      \
--dry-run")]
pub struct ProfileArgs {
    #[command(subcommand)]
    command: ProfileCommand,
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// Create the Profile, RoleBinding (ClusterRole kubeflow-admin) and Istio
    /// AuthorizationPolicy the article gives for a user, so the user can pick the namespace in
    /// Kubeflow. A re-run changes nothing.
    Create(CreateArgs),
}

#[derive(Args)]
struct CreateArgs {
    #[command(flatten)]
    kube: KubeArgs,
    /// The ACP user (email), e.g. admin@cpaas.io.
    #[arg(long, value_name = "EMAIL")]
    user: String,
    /// The namespace. Default: kubeflow-<user with non-alphanumerics as dashes>.
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Service account principal of the Istio ingress gateway.
    #[arg(
        long,
        value_name = "PRINCIPAL",
        default_value = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
    )]
    gateway_principal: String,
    /// Service account principal of the Kubeflow Pipelines UI.
    #[arg(
        long,
        value_name = "PRINCIPAL",
        default_value = "cluster.local/ns/kubeflow/sa/ml-pipeline-ui"
    )]
    pipeline_ui_principal: String,
    /// The server dry-runs each write; nothing changes.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(
    args: ProfileArgs,
    g: &GlobalArgs,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let ProfileCommand::Create(a) = args.command;
    let c = Cluster::connect(&a.kube.options(), Role::Workload).await?;
    let applied = profile::create(
        &c,
        &ProfileOptions {
            user: a.user,
            namespace: a.namespace,
            gateway_principal: a.gateway_principal,
            pipeline_ui_principal: a.pipeline_ui_principal,
            dry_run: a.dry_run,
        },
        &cancel,
    )
    .await?;
    if g.json {
        print_json(&json!({"ok": true, "dry_run": a.dry_run, "objects": applied}));
        return Ok(());
    }
    for o in &applied {
        println!("{:<18} {}", o.action, o.object);
    }
    Ok(())
}
