# Seeds an MLflow 2.6 database through MLflow's own store (tables, alembic stamp, Default
# experiment, then 2 experiments x 3 runs x 50 metric points), without starting a server.
#   python seed_store.py mysql+pymysql://root@127.0.0.1:3306/DB ARTIFACT_ROOT
import sys, time
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.entities import Metric, Param, RunTag
uri, art = sys.argv[1], sys.argv[2]
s = SqlAlchemyStore(uri, art)
for e in range(2):
    eid = s.create_experiment(f"finetune-{e}", f"{art}/{e}")
    for r in range(3):
        run = s.create_run(eid, "alice", int(time.time()*1000), [RunTag("mlflow.runName", f"run-{e}-{r}")], f"run-{e}-{r}")
        rid = run.info.run_id
        s.log_batch(rid, [Metric("loss", 1.0/(i+1), 1700000000000+i, i) for i in range(50)], [Param("lr", "0.001")], [])
