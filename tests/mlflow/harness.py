"""Seeds a real MLflow tracking server through the real client, and dumps what a server serves
through its REST API as normalised JSON, so that an MLflow 2.6 server before the migration and an
MLflow 3.1.1 server after it can be compared.

    python harness.py seed URL          # run with MLflow 2.6.0's venv
    python harness.py seed-artifacts URL # a few runs whose artifacts are the point (any venv)
    python harness.py dump URL OUT.json # plain REST: works against 2.6 and 3.1.1
"""
import hashlib
import json
import math
import sys
import time
import urllib.parse
import urllib.request


def seed(uri):
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    base = int(time.time() * 1000) - 86_400_000
    exp_ids = []
    for i, name in enumerate(["llm-finetune-qwen", "llm-finetune-llama 微调", "scratch-to-delete"]):
        exp_ids.append(client.create_experiment(name, tags={"team": "平台", "idx": str(i)}))
    runs = []
    statuses = ["FINISHED", "FAILED", "KILLED"]
    for e, exp in enumerate(exp_ids):
        for r in range(3):
            run = client.create_run(exp, start_time=base + e * 10_000 + r * 1000, run_name=f"ft-{e}-{r}",
                                    tags={"stage": "微调", "base_model": "qwen2-7b"})
            rid = run.info.run_id
            client.log_param(rid, "learning_rate", str(1e-4 * (r + 1)))
            client.log_param(rid, "模型", "通义千问")
            client.log_param(rid, "epochs", "3")
            for step in range(50):
                client.log_metric(rid, "loss", 2.0 / (step + 1) + r, timestamp=base + step * 100, step=step)
                client.log_metric(rid, "accuracy", step / 50.0, timestamp=base + step * 100 + 1, step=step)
            # repeated step, NaN and infinities
            client.log_metric(rid, "loss", 0.5, timestamp=base + 99_999, step=49)
            client.log_metric(rid, "grad_norm", float("nan"), timestamp=base + 5, step=0)
            client.log_metric(rid, "grad_norm", float("inf"), timestamp=base + 6, step=1)
            client.log_metric(rid, "grad_norm", float("-inf"), timestamp=base + 7, step=2)
            client.log_text(rid, f"checkpoint of run {r}\n", "outputs/notes.txt")
            df = pd.DataFrame({"prompt": ["你好", "hello"], "answer": ["世界", "world"]})
            ds = mlflow.data.from_pandas(df, source=f"s3://datasets/sft-{e}.parquet", name=f"sft-{e}")
            with mlflow.start_run(run_id=rid):
                mlflow.log_input(ds, context="training")
            client.set_terminated(rid, status=statuses[r], end_time=base + e * 10_000 + r * 1000 + 500)
            runs.append(rid)
    # a nested child run, and a deleted run
    child = client.create_run(exp_ids[0], run_name="child", tags={"mlflow.parentRunId": runs[0]},
                              start_time=base + 77)
    client.log_metric(child.info.run_id, "loss", 1.25, timestamp=base + 78, step=0)
    client.set_terminated(child.info.run_id, end_time=base + 79)
    client.delete_run(runs[4])
    client.delete_experiment(exp_ids[2])
    # registered models, versions, tags, aliases and stages
    client.create_registered_model("qwen-sft", tags={"owner": "张三"}, description="LoRA 微调")
    for i, rid in enumerate(runs[:3]):
        mv = client.create_model_version("qwen-sft", source=f"runs:/{rid}/model", run_id=rid,
                                         tags={"v": str(i)}, description=f"version {i}")
    client.set_registered_model_alias("qwen-sft", "champion", "2")
    client.transition_model_version_stage("qwen-sft", "1", "Production")
    client.set_model_version_tag("qwen-sft", "3", "quality", "好")
    client.create_registered_model("empty-model")


def seed_artifacts(uri):
    """Runs whose artifacts go through the server (--serve-artifacts) into its store: text, a
    nested folder, a CJK file name, an empty file and a 7 MiB binary (a multipart upload)."""
    import os
    import tempfile
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)  # artifact uploads resolve mlflow-artifacts:/ against it
    client = MlflowClient(uri)
    exp = client.create_experiment("artifacts-in-s3")
    for r in range(3):
        run = client.create_run(exp, start_time=1_700_000_000_000 + r, run_name=f"run-{r}")
        rid = run.info.run_id
        client.log_metric(rid, "loss", 1.0 / (r + 1), timestamp=1_700_000_000_000, step=0)
        client.log_text(rid, f"notes of run {r}\n", "outputs/notes.txt")
        client.log_dict(rid, {"lr": 1e-4 * (r + 1), "模型": "qwen"}, "config/训练.json")
        client.log_text(rid, "", "outputs/deep/er/empty.txt")
        if r == 1:
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "weights.bin")
                with open(path, "wb") as f:
                    f.write(os.urandom(7 * 1024 * 1024 + 123))
                client.log_artifact(rid, path, "model")
        client.set_terminated(rid, end_time=1_700_000_001_000 + r)


def get(base, endpoint, **params):
    url = f"{base}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(params, doseq=True)}"
    with urllib.request.urlopen(url) as r:
        return json.loads(r.read().decode())


def post(base, endpoint, body):
    req = urllib.request.Request(f"{base}/api/2.0/mlflow/{endpoint}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read().decode())


def artifacts(base, run_id, path=""):
    """Every artifact file of a run, as path -> sha256 of the bytes the server returns."""
    out = {}
    params = {"run_id": run_id}
    if path:
        params["path"] = path
    for f in get(base, "artifacts/list", **params).get("files", []):
        if f.get("is_dir"):
            out.update(artifacts(base, run_id, f["path"]))
        else:
            q = urllib.parse.urlencode({"path": f["path"], "run_uuid": run_id})
            with urllib.request.urlopen(f"{base}/get-artifact?{q}") as r:
                out[f["path"]] = hashlib.sha256(r.read()).hexdigest()
    return out


def norm_value(v):
    if isinstance(v, str):
        return v  # NaN / Infinity arrive as strings in some versions
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    return v


def dump(base, out):
    exps = post(base, "experiments/search", {"max_results": 1000, "view_type": "ALL"}).get("experiments", [])
    result = {"experiments": [], "runs": [], "models": []}
    for e in sorted(exps, key=lambda e: int(e["experiment_id"])):
        result["experiments"].append({
            "id": e["experiment_id"], "name": e["name"], "stage": e.get("lifecycle_stage"),
            "artifact_location": e.get("artifact_location"),
            "creation_time": e.get("creation_time"), "last_update_time": e.get("last_update_time"),
            "tags": sorted((t["key"], t["value"]) for t in e.get("tags", [])),
        })
    ids = [e["experiment_id"] for e in exps]
    runs = post(base, "runs/search", {"experiment_ids": ids, "run_view_type": "ALL",
                                      "max_results": 1000}).get("runs", [])
    for run in sorted(runs, key=lambda r: r["info"]["run_id"]):
        info, data = run["info"], run.get("data", {})
        metrics = {}
        for m in data.get("metrics", []):
            hist = get(base, "metrics/get-history", run_id=info["run_id"], metric_key=m["key"],
                       max_results=25000).get("metrics", [])
            metrics[m["key"]] = sorted((h["step"], h["timestamp"], norm_value(h["value"])) for h in hist)
        inputs = []
        for d in run.get("inputs", {}).get("dataset_inputs", []):
            ds = d["dataset"]
            inputs.append({"tags": sorted((t["key"], t["value"]) for t in d.get("tags", [])),
                           "name": ds["name"], "digest": ds["digest"], "source": ds["source"],
                           "source_type": ds["source_type"], "schema": ds.get("schema"),
                           "profile": ds.get("profile")})
        result["runs"].append({
            "id": info["run_id"], "name": info.get("run_name"), "experiment": info["experiment_id"],
            "status": info["status"], "start": info.get("start_time"), "end": info.get("end_time"),
            "stage": info["lifecycle_stage"], "artifact_uri": info.get("artifact_uri"),
            "user": info.get("user_id"),
            "params": sorted((p["key"], p["value"]) for p in data.get("params", [])),
            "tags": sorted((t["key"], t["value"]) for t in data.get("tags", [])),
            "latest": sorted((m["key"], m["step"], m["timestamp"], norm_value(m["value"]))
                             for m in data.get("metrics", [])),
            "metrics": metrics,
            "inputs": sorted(inputs, key=lambda i: json.dumps(i, sort_keys=True)),
            "artifacts": artifacts(base, info["run_id"]),
        })
    models = get(base, "registered-models/search", max_results=1000).get("registered_models", [])
    for m in sorted(models, key=lambda m: m["name"]):
        full = get(base, "registered-models/get", name=m["name"])["registered_model"]
        versions = get(base, "model-versions/search", filter=f"name='{m['name']}'",
                       max_results=1000).get("model_versions", [])
        result["models"].append({
            "name": full["name"], "description": full.get("description"),
            "created": full.get("creation_timestamp"), "updated": full.get("last_updated_timestamp"),
            "tags": sorted((t["key"], t["value"]) for t in full.get("tags", [])),
            "aliases": sorted((a["alias"], a["version"]) for a in full.get("aliases", [])),
            "versions": sorted(({
                "version": v["version"], "stage": v.get("current_stage"), "source": v.get("source"),
                "run_id": v.get("run_id"), "status": v.get("status"), "description": v.get("description"),
                "created": v.get("creation_timestamp"),
                "tags": sorted((t["key"], t["value"]) for t in v.get("tags", [])),
            } for v in versions), key=lambda v: int(v["version"])),
        })
    with open(out, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True, ensure_ascii=False)


if __name__ == "__main__":
    if sys.argv[1] == "seed":
        seed(sys.argv[2])
    elif sys.argv[1] == "seed-artifacts":
        seed_artifacts(sys.argv[2])
    elif sys.argv[1] == "dump":
        dump(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
