//! MLflow 2.6 (MySQL) → 3.1.1 (PostgreSQL): rows are copied as they are, keeping every id,
//! time and metric point. The ten alembic revisions between the two heads only change DDL, so
//! the target schema is MLflow 3.1.1's own (`migrations/mlflow-3.1.1-postgres.sql`) and the rows
//! of the fifteen shared tables move unchanged but for types (tinyint → boolean).

pub mod migrate;
pub mod rows;

/// MLflow 2.6.0's alembic head: the only source revision this version migrates from.
pub const SOURCE_REVISIONS: &[(&str, &str)] = &[("7f2a7d5fae7d", "MLflow 2.6.0")];
/// MLflow 3.1.1's alembic head, which the created schema is stamped with.
pub const TARGET_REVISION: &str = "bda7b8c39065";

/// The exact PostgreSQL schema MLflow 3.1.1 creates, stamped with [`TARGET_REVISION`].
pub const SCHEMA_SQL: &str = include_str!("../../migrations/mlflow-3.1.1-postgres.sql");

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
