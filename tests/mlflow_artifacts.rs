//! The artifact tree copy: checksummed, resumable, never overwriting different content.

use amlmigrate::mlflow::artifacts::copy_tree;
use tokio_util::sync::CancellationToken;

fn write(root: &std::path::Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
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
    let progress = amlmigrate::progress::none();
    let cancel = CancellationToken::new();
    let (s, d) = (src.to_str().unwrap(), dst.to_str().unwrap());

    let first = copy_tree(s, d, &progress, &cancel).await.unwrap();
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
    let again = copy_tree(s, d, &progress, &cancel).await.unwrap();
    assert_eq!((again.files, again.already_there), (3, 3));

    // A destination file with other content is never overwritten.
    write(&dst, "2/run-b/artifacts/empty", b"someone else's");
    let err = copy_tree(s, d, &progress, &cancel).await.unwrap_err();
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
    let missing = tmp.path().join("nope");
    let err = copy_tree(
        missing.to_str().unwrap(),
        tmp.path().join("dst").to_str().unwrap(),
        &amlmigrate::progress::none(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}
