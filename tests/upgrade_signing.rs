//! The guided upgrade's own snapshot under the repository's trust rules: its snapshot step
//! signs with `snapshot.sign_key`, with `snapshot.verify_keys` a run refuses to go on from a
//! snapshot that key did not sign, and `snapshot.encrypt_to` is checked against the
//! repository's encryption marker as `backup --encrypt-to` is (the strict world of
//! tests/common/upgrade.rs).

mod common;

use common::upgrade::*;
use common::*;

fn keypair(dir: &std::path::Path, name: &str) -> (String, String) {
    let key = dir.join(name);
    ok(&["key", "generate", "--out", key.to_str().unwrap(), "--quiet"]);
    let public = format!("{}.pub", key.display());
    (key.display().to_string(), public)
}

#[test]
fn the_upgrade_signs_its_snapshot_keeps_its_journal_owner_only_and_stops_at_a_snapshot_its_key_did_not_sign()
 {
    let lab = Lab::new(LabOptions::default());
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = keypair(keys.path(), "upgrade.key");
    let (_, other) = keypair(keys.path(), "other.key");
    let with_keys = |verify: &str| {
        let (key, verify) = (key.clone(), verify.to_string());
        move |text: String| {
            let start = text.find("[snapshot]\n").unwrap() + "[snapshot]\n".len();
            let end = start
                + text[start..]
                    .find("\n[")
                    .map_or(text.len() - start, |i| i + 1);
            let kept: String = text[start..end]
                .lines()
                .filter(|l| !l.starts_with("sign_key") && !l.starts_with("verify_keys"))
                .map(|l| format!("{l}\n"))
                .collect();
            format!(
                "{}sign_key = {key:?}\nverify_keys = [{verify:?}]\n{kept}{}",
                &text[..start],
                &text[end..]
            )
        }
    };
    lab.edit_config(with_keys(&public));
    let r = lab.upgrade(&["run", "--yes", "--until", "snapshot"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(lab.events("snapshot"), ["started", "done"]);
    let snapshots = lab.dir.path().join("repo/snapshots");
    let signed: Vec<_> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("manifest.json.sig").exists())
        .collect();
    assert_eq!(signed.len(), 1, "the run's snapshot is not signed");
    // The journal, like the snapshot, is the owner's only.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let files = lab.run_files();
    assert!(!files.is_empty());
    for f in files {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
        assert_eq!(mode(f.parent().unwrap()), 0o700, "{}", f.display());
    }

    // Someone swaps the trusted key (or the snapshot): the run stops before the next step.
    lab.edit_config(with_keys(&other));
    let before = lab.writes();
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("not a trusted key"), "{r:?}");
    assert!(lab.events("protect-pvcs").is_empty(), "a later step ran");
    assert_eq!(lab.writes(), before, "the refused run wrote to the cluster");
}

#[test]
fn the_upgrade_told_to_encrypt_refuses_a_plain_marker_writing_no_snapshot_until_the_config_says_plain_on_purpose()
 {
    // The lab's repository was made plain (`repo init` without recipients), as a marker
    // rewritten by whoever can write the bucket would say.
    let lab = Lab::new(LabOptions::default());
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    lab.edit_config(|t| {
        t.replace(
            "[snapshot]\n",
            &format!("[snapshot]\nencrypt_to = [{recipient:?}]\n"),
        )
    });
    let snapshots = lab.dir.path().join("repo/snapshots");
    let count = || std::fs::read_dir(&snapshots).map_or(0, |d| d.count());

    let plan = lab.upgrade(&["plan"]);
    let line = plan
        .stdout
        .lines()
        .find(|l| {
            l.split_whitespace()
                .skip(1)
                .take(2)
                .eq(["snapshot", "BLOCKED"])
        })
        .unwrap_or_else(|| panic!("the plan does not show the snapshot blocked: {plan:?}"));
    assert!(line.contains("amlmigrate-repo.json"), "{line}");

    let r = lab.upgrade(&["run", "--yes", "--until", "snapshot"]);
    assert_eq!(r.code, 4, "{r:?}");
    for said in [
        "amlmigrate-repo.json",
        "not encrypted",
        recipient.as_str(),
        "snapshot.unencrypted_repo = true",
    ] {
        assert!(r.stderr.contains(said), "{said:?} not in {r:?}");
    }
    assert_eq!(lab.events("snapshot"), ["blocked"]);
    assert_eq!(count(), 0, "a snapshot was written into the repository");

    // Said on purpose: the repository stays plain and only the Secrets are encrypted.
    lab.edit_config(|t| t.replace("[snapshot]\n", "[snapshot]\nunencrypted_repo = true\n"));
    let r = lab.upgrade(&["run", "--yes", "--until", "snapshot"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(lab.events("snapshot"), ["blocked", "started", "done"]);
    assert_eq!(count(), 1);
}
