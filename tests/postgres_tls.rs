//! PostgreSQL over TLS against a real TLS-only cluster (127.0.0.1:5433, private CA, `hostssl`
//! lines only; `scripts/postgres-tls.sh` starts it): `sslmode` and `sslrootcert` with libpq's
//! meaning, and connection failures that name the server and the fix.

mod common;

use common::mlflow::small_mlflow_26_db;
use common::pg::*;
use common::*;

fn with_password(args: &[&str]) -> Run {
    amlmigrate_env(args, &[("PGPASSWORD", PG_TLS_PASSWORD)])
}

/// Enough of an MLflow 2.6 database for the source to be accepted, so that the run goes on to
/// connect to the target.
fn source_at_the_2_6_head() -> TestDb {
    let db = TestDb::create("pgtls_head");
    sql(
        Some(&db.name),
        "CREATE TABLE alembic_version (version_num VARCHAR(32)); INSERT INTO alembic_version VALUES ('7f2a7d5fae7d')",
    );
    db
}

fn verify_against(to: &str, env: &[(&str, &str)]) -> Run {
    let src = source_at_the_2_6_head();
    let from = format!("{MYSQL}/{}", src.name);
    amlmigrate_env(&["mlflow", "verify", "--from", &from, "--to", to], env)
}

#[test]
fn migrate_and_verify_over_verify_full() {
    let src = small_mlflow_26_db("pgtls_src");
    let target = TlsPgDb::new("pgtls");
    let from = format!("{MYSQL}/{}", src.name);
    let to = target.verified_url();

    let r = with_password(&["mlflow", "migrate", "--from", &from, "--to", &to, "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["migrate"]["outcome"], "migrated");
    assert_eq!(j["migrate"]["metric_points"], 5);
    assert_eq!(
        j["migrate"]["target"],
        target.url(),
        "the target is named without parameters or password"
    );
    assert_eq!(
        target
            .psql(&target.name, "SELECT count(*) FROM metrics")
            .trim(),
        "5"
    );

    let v = with_password(&["mlflow", "verify", "--from", &from, "--to", &to]);
    assert_eq!(v.code, 0, "{v:?}");
    assert!(
        v.stdout.contains("metrics") && v.stdout.contains("equal"),
        "{v:?}"
    );

    // verify-ca checks the issuer only: a name the certificate does not hold still connects.
    let by_other_name = format!(
        "postgres://{PG_TLS_USER}@pg.example.invalid:{PG_TLS_PORT}/{}?hostaddr=127.0.0.1&sslmode=verify-ca&sslrootcert={}",
        target.name, target.ca
    );
    let v = with_password(&["mlflow", "verify", "--from", &from, "--to", &by_other_name]);
    assert_eq!(v.code, 0, "{v:?}");
}

#[test]
fn a_wrong_ca_exits_5_naming_the_server_and_the_fix() {
    let target = TlsPgDb::new("pgtls_ca");
    let (_, other_ca) = pg_tls();
    let to = format!(
        "{}?sslmode=verify-full&sslrootcert={other_ca}",
        target.url()
    );
    let r = verify_against(&to, &[("PGPASSWORD", PG_TLS_PASSWORD)]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains(&target.url()), "names the server: {r:?}");
    assert!(
        r.stderr.contains("not signed by sslrootcert=") && r.stderr.contains(&other_ca),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("give sslrootcert=FILE holding the CA that signed"),
        "{r:?}"
    );
}

#[test]
fn a_wrong_host_name_exits_5_naming_the_server_and_the_fix() {
    let target = TlsPgDb::new("pgtls_name");
    // Reaches 127.0.0.1, but checks the certificate against a name it does not hold.
    let to = format!(
        "postgres://{PG_TLS_USER}@pg.example.invalid:{PG_TLS_PORT}/{}?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
        target.name, target.ca
    );
    let r = verify_against(&to, &[("PGPASSWORD", PG_TLS_PASSWORD)]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "postgres://{PG_TLS_USER}@pg.example.invalid:{PG_TLS_PORT}/{}",
            target.name
        )),
        "names the server: {r:?}"
    );
    assert!(
        r.stderr
            .contains("not valid for the host name pg.example.invalid")
            && r.stderr.contains("sslmode=verify-ca"),
        "{r:?}"
    );
}

#[test]
fn a_plain_connection_to_the_tls_only_server_is_refused_with_a_clear_message() {
    let target = TlsPgDb::new("pgtls_plain");
    let to = format!("{}?sslmode=disable", target.url());
    let r = verify_against(&to, &[("PGPASSWORD", PG_TLS_PASSWORD)]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains(&target.url()), "{r:?}");
    assert!(
        r.stderr.contains("accepts only TLS connections")
            && r.stderr.contains("sslmode=verify-full&sslrootcert=FILE"),
        "{r:?}"
    );
    // Without a CA, verify-full is refused before connecting, saying what to add.
    let to = format!("{}?sslmode=verify-full", target.url());
    let r = verify_against(
        &to,
        &[("PGPASSWORD", PG_TLS_PASSWORD), ("HOME", "/nonexistent")],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("add sslrootcert=FILE"), "{r:?}");
}
