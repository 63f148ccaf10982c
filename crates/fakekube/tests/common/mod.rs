//! A tiny blocking HTTP/1.1 client (no dependencies) for talking to the fake.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;

use fakekube::FakeKube;
use serde_json::Value;

pub const CRDS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: notebooks.kubeflow.org}
spec:
  group: kubeflow.org
  names: {kind: Notebook, plural: notebooks, singular: notebook, listKind: NotebookList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Image, type: string, jsonPath: .spec.image}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: profiles.kubeflow.org}
spec:
  group: kubeflow.org
  names: {kind: Profile, plural: profiles, singular: profile}
  scope: Cluster
  versions:
  - {name: v1, served: true, storage: true, subresources: {status: {}}, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: moduleinfoes.cluster.alauda.io}
spec:
  group: cluster.alauda.io
  names: {kind: ModuleInfo, plural: moduleinfoes, singular: moduleinfo}
  scope: Cluster
  versions:
  - {name: v1alpha1, served: true, storage: true, subresources: {status: {}}, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: jobs.batch.volcano.sh}
spec:
  group: batch.volcano.sh
  names: {kind: Job, plural: jobs, singular: job, shortNames: [vcjob, vj]}
  scope: Namespaced
  versions:
  - {name: v1alpha1, served: true, storage: true, subresources: {status: {}}, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: pytorchjobs.kubeflow.org}
spec:
  group: kubeflow.org
  names: {kind: PyTorchJob, plural: pytorchjobs, singular: pytorchjob}
  scope: Namespaced
  versions:
  - {name: v1, served: true, storage: true, subresources: {status: {}}, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
"#;

/// A started fake with the test CRDs and namespace `team-a`.
pub fn fake() -> FakeKube {
    let fk = FakeKube::start();
    fk.load_yaml(CRDS);
    fk.load_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n");
    fk
}

pub struct Resp {
    pub code: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let Some(i) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n =
            usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap().trim(), 16).unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
}

/// Sends one request; `token` None sends no Authorization header.
pub fn request(
    fk: &FakeKube,
    method: &str,
    path: &str,
    token: Option<&str>,
    ctype: &str,
    accept: &str,
    body: &str,
) -> Resp {
    let addr = fk.url().trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: fakekube-test/1.0\r\n"
    );
    if let Some(t) = token {
        req += &format!("Authorization: Bearer {t}\r\n");
    }
    if !accept.is_empty() {
        req += &format!("Accept: {accept}\r\n");
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        req += &format!(
            "Content-Type: {ctype}\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    req += "\r\n";
    req += body;
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = vec![];
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
    let code = headers.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Resp {
        code,
        headers,
        body,
    }
}

pub fn get(fk: &FakeKube, path: &str) -> Resp {
    request(
        fk,
        "GET",
        path,
        Some(FakeKube::ADMIN_TOKEN),
        "",
        "application/json",
        "",
    )
}
pub fn post(fk: &FakeKube, path: &str, body: &Value) -> Resp {
    request(
        fk,
        "POST",
        path,
        Some(FakeKube::ADMIN_TOKEN),
        "application/json",
        "application/json",
        &body.to_string(),
    )
}
pub fn put(fk: &FakeKube, path: &str, body: &Value) -> Resp {
    request(
        fk,
        "PUT",
        path,
        Some(FakeKube::ADMIN_TOKEN),
        "application/json",
        "application/json",
        &body.to_string(),
    )
}
pub fn patch(fk: &FakeKube, path: &str, ctype: &str, body: &str) -> Resp {
    request(
        fk,
        "PATCH",
        path,
        Some(FakeKube::ADMIN_TOKEN),
        ctype,
        "application/json",
        body,
    )
}
pub fn delete(fk: &FakeKube, path: &str) -> Resp {
    request(
        fk,
        "DELETE",
        path,
        Some(FakeKube::ADMIN_TOKEN),
        "",
        "application/json",
        "",
    )
}
