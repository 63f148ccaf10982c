//! Runs and metric points per experiment, in a snapshot's MLflow 2.6 database and in a live
//! 3.1.1 PostgreSQL database, so a report can show each experiment before and after.

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::Client;

use super::snapshot::{OpenSnapshot, SnapshotSource, parse_line};
use crate::error::{Error, Result};

/// One experiment's size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExperimentCounts {
    pub name: String,
    pub runs: u64,
    pub metric_points: u64,
}

/// By experiment id.
pub type ByExperiment = BTreeMap<i64, ExperimentCounts>;

/// Counts per experiment of a snapshot's MLflow database, in one pass over its part. Metric
/// points are tallied per run first, so nothing depends on the order tables come in; memory is
/// one entry per run, never per metric point.
pub async fn in_snapshot(src: &SnapshotSource) -> Result<ByExperiment> {
    let snap = OpenSnapshot::open(src).await?;
    let col = |table: &str, name: &str| -> Result<usize> {
        snap.columns(table)?
            .iter()
            .position(|(c, _)| c == name)
            .ok_or_else(|| {
                Error::input(format!(
                    "{}: table {table} has no column {name}; it is not an MLflow 2.6 database",
                    snap.display
                ))
            })
    };
    let (e_id, e_name) = (
        col("experiments", "experiment_id")?,
        col("experiments", "name")?,
    );
    let (r_uuid, r_exp) = (col("runs", "run_uuid")?, col("runs", "experiment_id")?);
    let m_uuid = col("metrics", "run_uuid")?;
    let mut out = ByExperiment::new();
    let mut run_experiment: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut points_per_run: HashMap<Vec<u8>, u64> = HashMap::new();
    snap.for_each_line(&["experiments", "runs", "metrics"], |table, line| {
        match table {
            "experiments" => {
                let v = parse_line(line);
                let id = text(&v[e_id]).parse::<i64>().unwrap_or(-1);
                out.entry(id).or_default().name = text(&v[e_name]);
            }
            "runs" => {
                if let (Some(uuid), Some(exp)) = (field(line, r_uuid), field(line, r_exp)) {
                    let exp = String::from_utf8_lossy(exp).parse::<i64>().unwrap_or(-1);
                    run_experiment.insert(uuid.to_vec(), exp);
                }
            }
            _ => {
                if let Some(uuid) = field(line, m_uuid) {
                    match points_per_run.get_mut(uuid) {
                        Some(n) => *n += 1,
                        None => {
                            points_per_run.insert(uuid.to_vec(), 1);
                        }
                    }
                }
            }
        }
        Ok(())
    })
    .await?;
    for (uuid, exp) in &run_experiment {
        let e = out.entry(*exp).or_default();
        e.runs += 1;
        e.metric_points += points_per_run.get(uuid).copied().unwrap_or(0);
    }
    Ok(out)
}

/// Counts per experiment of a live MLflow database (3.1.1 on PostgreSQL).
pub async fn in_postgres(client: &Client) -> Result<ByExperiment> {
    let pg = |what: &str, e: tokio_postgres::Error| {
        Error::Other(format!(
            "counting {what} per experiment in the MLflow 3.1.1 database: {}",
            crate::postgres::describe(&e)
        ))
    };
    let mut out = ByExperiment::new();
    for row in client
        .query("SELECT experiment_id::bigint, name FROM experiments", &[])
        .await
        .map_err(|e| pg("experiments", e))?
    {
        out.entry(row.get(0)).or_default().name = row.get(1);
    }
    for row in client
        .query(
            "SELECT experiment_id::bigint, count(*) FROM runs GROUP BY experiment_id",
            &[],
        )
        .await
        .map_err(|e| pg("runs", e))?
    {
        out.entry(row.get(0)).or_default().runs = row.get::<_, i64>(1) as u64;
    }
    for row in client
        .query(
            "SELECT r.experiment_id::bigint, count(*) FROM metrics m JOIN runs r ON r.run_uuid = m.run_uuid GROUP BY r.experiment_id",
            &[],
        )
        .await
        .map_err(|e| pg("metric points", e))?
    {
        out.entry(row.get(0)).or_default().metric_points = row.get::<_, i64>(1) as u64;
    }
    Ok(out)
}

fn text(v: &mysql_async::Value) -> String {
    match v {
        mysql_async::Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        mysql_async::Value::NULL => String::new(),
        other => format!("{other:?}"),
    }
}

/// Field `n` of a chunk line, raw (ids and uuids hold no escapes).
fn field(line: &[u8], n: usize) -> Option<&[u8]> {
    line.split(|b| *b == b'\t').nth(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_taken_by_position_without_parsing_the_rest() {
        assert_eq!(field(b"a\tbb\tc", 1), Some(&b"bb"[..]));
        assert_eq!(field(b"a\tbb\tc", 3), None);
        assert_eq!(text(&parse_line(b"caf\\\\e")[0]), "caf\\e");
    }
}
