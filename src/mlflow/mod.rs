//! MLflow 2.6 (MySQL) → 3.1.1 (PostgreSQL): rows are copied as they are, keeping every id,
//! time and metric point. The ten alembic revisions between the two heads only change DDL, so
//! the target schema is MLflow 3.1.1's own (`migrations/mlflow-3.1.1-postgres.sql`) and the rows
//! of the fifteen shared tables move unchanged but for types (tinyint → boolean).

pub mod artifacts;
mod copier;
pub mod experiments;
pub mod migrate;
pub mod rows;
pub mod snapshot;

/// MLflow 2.6.0's alembic head: the only source revision this version migrates from.
pub const SOURCE_REVISIONS: &[(&str, &str)] = &[("7f2a7d5fae7d", "MLflow 2.6.0")];
/// MLflow 3.1.1's alembic head, which the created schema is stamped with.
pub const TARGET_REVISION: &str = "bda7b8c39065";

/// The exact PostgreSQL schema MLflow 3.1.1 creates, stamped with [`TARGET_REVISION`].
pub const SCHEMA_SQL: &str = include_str!("../../migrations/mlflow-3.1.1-postgres.sql");

/// The line of [`SCHEMA_SQL`] after which come the keys, indexes and foreign keys.
const POST_DATA_MARKER: &str =
    "-- amlmigrate: keys, indexes and foreign keys below are created after the rows are copied.";

/// [`SCHEMA_SQL`] cut in two: tables and sequences, then keys, indexes and foreign keys. Into an
/// empty target the rows are copied between the two: building an index once and checking a
/// foreign key in one pass is much faster than doing both for every row.
pub fn schema_parts() -> (&'static str, &'static str) {
    SCHEMA_SQL
        .split_once(POST_DATA_MARKER)
        .expect("the schema file has the post-data marker")
}

/// Tables both versions have, parents before children (the copy order).
pub const SHARED_TABLES: &[&str] = &[
    "experiments",
    "experiment_tags",
    "runs",
    "tags",
    "params",
    "metrics",
    "latest_metrics",
    "datasets",
    "inputs",
    "input_tags",
    "registered_models",
    "registered_model_tags",
    "model_versions",
    "model_version_tags",
    "registered_model_aliases",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_splits_into_tables_then_constraints() {
        let (pre, post) = schema_parts();
        assert!(pre.contains("CREATE TABLE public.metrics"));
        assert!(!pre.contains("ADD CONSTRAINT") && !pre.contains("CREATE INDEX"));
        assert!(post.contains("FOREIGN KEY") && post.contains("PRIMARY KEY"));
        assert!(post.contains(TARGET_REVISION));
    }
}
