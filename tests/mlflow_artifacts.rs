//! The artifact tree copy: checksummed, resumable, never overwriting different content, never
//! following a symbolic link (in a source tree, a destination tree, or on the way into and out
//! of a snapshot), and writing safe modes (folders 0750, files 0640).

mod common;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use amlmigrate::mlflow::artifacts::{ArtifactLocation, PART_NAME, copy_tree, extract_part};
use amlmigrate::repo::Repository;
use tokio_util::sync::CancellationToken;

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn loc(p: &Path) -> ArtifactLocation {
    ArtifactLocation::parse(p.to_str().unwrap()).unwrap()
}

/// `copy_tree` between two folders, with no progress and no cancellation.
async fn copy(
    from: &Path,
    to: &Path,
) -> amlmigrate::Result<amlmigrate::mlflow::artifacts::ArtifactReport> {
    copy_tree(
        &loc(from),
        &loc(to),
        &amlmigrate::progress::none(),
        &CancellationToken::new(),
    )
    .await
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A source tree with an outside file and folder linked into it.
fn tree_with_planted_links(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (src, outside) = (tmp.join("src"), tmp.join("outside"));
    write(&src, "1/run-a/artifacts/model.bin", b"weights");
    write(&outside, "id_rsa", b"PRIVATE KEY of someone else");
    symlink(outside.join("id_rsa"), src.join("1/run-a/artifacts/key")).unwrap();
    symlink(&outside, src.join("1/run-a/artifacts/home")).unwrap();
    (src, outside)
}

#[tokio::test]
async fn copies_every_file_skips_identical_ones_and_refuses_to_overwrite_different_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    write(
        &src,
        "1/run-a/artifacts/model/weights.bin",
        &vec![7u8; 9 * 1024 * 1024],
    );
    write(&src, "1/run-a/artifacts/notes 说明.txt", "微调".as_bytes());
    write(&src, "2/run-b/artifacts/empty", b"");

    let first = copy(&src, &dst).await.unwrap();
    assert_eq!((first.files, first.already_there), (3, 0));
    assert_eq!(first.bytes, 9 * 1024 * 1024 + "微调".len() as u64);
    for rel in [
        "1/run-a/artifacts/model/weights.bin",
        "1/run-a/artifacts/notes 说明.txt",
        "2/run-b/artifacts/empty",
    ] {
        assert_eq!(
            std::fs::read(src.join(rel)).unwrap(),
            std::fs::read(dst.join(rel)).unwrap(),
            "{rel}"
        );
    }

    // A re-run (after an interruption, say) finds everything there and copies nothing.
    let again = copy(&src, &dst).await.unwrap();
    assert_eq!((again.files, again.already_there), (3, 3));

    // A destination file with other content is never overwritten.
    write(&dst, "2/run-b/artifacts/empty", b"someone else's");
    let err = copy(&src, &dst).await.unwrap_err();
    assert_eq!(err.kind(), amlmigrate::ErrorKind::Refused, "{err}");
    assert!(err.to_string().contains("2/run-b/artifacts/empty"), "{err}");
    assert_eq!(
        std::fs::read(dst.join("2/run-b/artifacts/empty")).unwrap(),
        b"someone else's"
    );
}

#[tokio::test]
async fn a_missing_source_folder_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let err = copy(&tmp.path().join("nope"), &tmp.path().join("dst"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn links_in_the_source_are_left_out_and_reported_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, _outside) = tree_with_planted_links(tmp.path());
    let dst = tmp.path().join("dst");
    let r = copy(&src, &dst).await.unwrap();
    assert_eq!(r.files, 1, "{r:?}");
    assert_eq!(
        r.skipped,
        vec!["1/run-a/artifacts/home", "1/run-a/artifacts/key"]
    );
    assert!(!dst.join("1/run-a/artifacts/key").exists());
    assert!(!dst.join("1/run-a/artifacts/home").exists());
    assert_eq!(
        std::fs::read(dst.join("1/run-a/artifacts/model.bin")).unwrap(),
        b"weights"
    );
}

#[tokio::test]
async fn copies_get_safe_modes_whatever_the_source_had() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    write(&src, "1/r/artifacts/run.sh", b"#!/bin/sh\n");
    std::fs::set_permissions(
        src.join("1/r/artifacts/run.sh"),
        std::fs::Permissions::from_mode(0o4777),
    )
    .unwrap();
    std::fs::set_permissions(src.join("1/r"), std::fs::Permissions::from_mode(0o777)).unwrap();
    copy(&src, &dst).await.unwrap();
    assert_eq!(mode(&dst.join("1/r/artifacts/run.sh")), 0o640);
    assert_eq!(mode(&dst.join("1/r/artifacts")), 0o750);
    assert_eq!(mode(&dst.join("1/r")), 0o750);
}

#[tokio::test]
async fn a_link_planted_in_the_destination_is_never_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst, outside) = (
        tmp.path().join("src"),
        tmp.path().join("dst"),
        tmp.path().join("outside"),
    );
    write(&src, "1/run-a/artifacts/model.bin", b"weights");
    std::fs::create_dir_all(dst.join("1")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    symlink(&outside, dst.join("1/run-a")).unwrap();
    let err = copy(&src, &dst).await.unwrap_err();
    assert_eq!(err.kind(), amlmigrate::ErrorKind::Refused, "{err}");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

/// Into a snapshot (`backup --mlflow-artifacts`, the real binary) a planted link's target never
/// goes; out of it, files take safe modes and a link planted in the destination is refused.
#[tokio::test]
async fn snapshots_never_take_in_or_write_through_a_link() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, _outside) = tree_with_planted_links(tmp.path());
    let repo = tmp.path().join("repo");
    let r = common::amlmigrate(&[
        "backup",
        "--init",
        "--repo",
        repo.to_str().unwrap(),
        "--mlflow-artifacts",
        src.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("symbolic links are never followed")
            && r.stderr.contains("1/run-a/artifacts/key"),
        "the left-out links are named: {r:?}"
    );
    let repository = Repository::open(repo.to_str().unwrap()).await.unwrap();
    let id = repository.resolve("latest").await.unwrap();
    let manifest = repository.manifest(&id).await.unwrap();
    let part = manifest.part(PART_NAME).unwrap().clone();
    let entries: Vec<&str> = part.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        entries,
        vec!["mlflow-artifacts/1/run-a/artifacts/model.bin"]
    );

    let extract = |to: &Path| {
        let (repository, id, part) = (&repository, id.clone(), part.clone());
        let to = loc(to);
        async move {
            extract_part(
                repository,
                &id,
                &part,
                "test".into(),
                &to,
                &amlmigrate::progress::none(),
                &CancellationToken::new(),
            )
            .await
        }
    };
    let out = tmp.path().join("out");
    let report = extract(&out).await.unwrap();
    assert_eq!(report.files, 1);
    assert_eq!(mode(&out.join("1/run-a/artifacts/model.bin")), 0o640);
    assert_eq!(mode(&out.join("1/run-a/artifacts")), 0o750);

    let (planted, elsewhere) = (tmp.path().join("planted"), tmp.path().join("elsewhere"));
    std::fs::create_dir_all(planted.join("1")).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    symlink(&elsewhere, planted.join("1/run-a")).unwrap();
    let err = extract(&planted).await.unwrap_err();
    assert_eq!(err.kind(), amlmigrate::ErrorKind::Refused, "{err}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}
