//! Asks the MLflow 3.1.1 server itself (REST API 2.0) how many experiments and runs it serves:
//! through its Service, by the API server's service proxy, or at `mlflow.server_url`.

use serde_json::{Value, json};

use super::Env;
use crate::error::{Error, Result};

enum Via<'a> {
    Proxy(&'a crate::kube::Cluster, String),
    Url(reqwest::Client, String),
}

impl Via<'_> {
    fn describe(&self) -> String {
        match self {
            Via::Proxy(_, p) => format!("the Service proxy {p}"),
            Via::Url(_, u) => u.clone(),
        }
    }

    async fn post(&self, api: &str, body: &Value) -> Result<Value> {
        let bytes = serde_json::to_vec(body).expect("a request serializes");
        let text = match self {
            Via::Proxy(c, prefix) => {
                let req = http::Request::post(format!("{prefix}{api}"))
                    .header("content-type", "application/json")
                    .body(bytes)
                    .map_err(|e| Error::other(format!("building a request: {e}")))?;
                c.client.request_text(req).await.map_err(|e| {
                    Error::Connection(format!(
                        "the MLflow server did not answer through {}: {e}",
                        self.describe()
                    ))
                })?
            }
            Via::Url(http, base) => {
                let resp = http
                    .post(format!("{base}{api}"))
                    .header("content-type", "application/json")
                    .body(bytes)
                    .send()
                    .await
                    .map_err(|e| {
                        Error::Connection(format!("the MLflow server {base} did not answer: {e}"))
                    })?;
                if !resp.status().is_success() {
                    return Err(Error::Other(format!(
                        "the MLflow server {base} answered {} to {api}",
                        resp.status()
                    )));
                }
                resp.text().await.map_err(|e| {
                    Error::Connection(format!("reading the MLflow server's answer: {e}"))
                })?
            }
        };
        serde_json::from_str(&text).map_err(|e| {
            Error::other(format!(
                "the MLflow server at {} answered {api} with something that is not JSON ({e})",
                self.describe()
            ))
        })
    }
}

/// (experiments, runs) the server lists, deleted ones included, and how it was asked.
pub(super) async fn counts(env: &Env) -> Result<(u64, u64, String)> {
    let m = &env.cfg.mlflow;
    let via = match &m.server_url {
        Some(u) => Via::Url(
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .map_err(|e| Error::other(format!("cannot build an HTTP client: {e}")))?,
            u.trim_end_matches('/').to_string(),
        ),
        None => Via::Proxy(
            &env.workload,
            format!(
                "/api/v1/namespaces/{}/services/{}:{}/proxy",
                m.service_namespace, m.service_name, m.service_port
            ),
        ),
    };
    let mut experiments = Vec::new();
    paged(
        &via,
        "/api/2.0/mlflow/experiments/search",
        json!({"max_results": 1000, "view_type": "ALL"}),
        |page| {
            for e in page["experiments"].as_array().into_iter().flatten() {
                if let Some(id) = e["experiment_id"].as_str() {
                    experiments.push(id.to_string());
                }
            }
        },
    )
    .await?;
    let mut runs = 0u64;
    for ids in experiments.chunks(100) {
        paged(
            &via,
            "/api/2.0/mlflow/runs/search",
            json!({"experiment_ids": ids, "run_view_type": "ALL", "max_results": 1000}),
            |page| runs += page["runs"].as_array().map(|a| a.len()).unwrap_or(0) as u64,
        )
        .await?;
    }
    Ok((experiments.len() as u64, runs, via.describe()))
}

/// Posts `body` to a search API page after page (`page_token` / `next_page_token`).
async fn paged(via: &Via<'_>, api: &str, body: Value, mut each: impl FnMut(&Value)) -> Result<()> {
    let mut token: Option<String> = None;
    loop {
        let mut body = body.clone();
        if let Some(t) = &token {
            body["page_token"] = json!(t);
        }
        let page = via.post(api, &body).await?;
        each(&page);
        token = page["next_page_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(String::from);
        if token.is_none() {
            return Ok(());
        }
    }
}
