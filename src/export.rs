//! `export`: a snapshot as plain files, `DIR/parts/<part>.tar.zst` and `DIR/manifest.json` (a
//! format 1 manifest), whatever the repository's format. The parts unpack with `tar -I zstd`
//! and check with `sha256sum` against the manifest, so a snapshot can be restored with tar,
//! zstd and the mysql client alone.

mod folder;

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive::PartWriter;
use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::repo::manifest::Manifest;
use folder::Folder;

#[derive(Debug, Clone, Serialize)]
pub struct ExportedPart {
    pub name: String,
    pub file: PathBuf,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub snapshot: String,
    pub dir: PathBuf,
    pub parts: Vec<ExportedPart>,
}

/// The file name a part gets in `parts/`: `<name>.tar.zst`, where the name is what backups
/// write (letters, digits, `-`, `_`) and nothing else. The manifest is not trusted to name a
/// path, nor to put a control character into a file name.
fn part_file(rel: &str) -> Result<&str> {
    let name = rel.strip_prefix("parts/").unwrap_or_default();
    let stem = name.strip_suffix(".tar.zst").unwrap_or_default();
    let ok = !stem.is_empty()
        && !stem.starts_with('-')
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if !ok {
        return Err(Error::damaged(
            rel,
            "(manifest)",
            "the manifest names a part file that is not parts/<name>.tar.zst; refusing to write it",
        ));
    }
    Ok(name)
}

/// Writes snapshot `id` to `dir`: made 0700 when missing, else a folder of this user's that no
/// one else can write and that is empty (see [`folder`]). On failure what was written is
/// removed, and nothing else.
pub async fn export(repo: &Repository, id: &str, dir: &Path) -> Result<ExportReport> {
    // The repository's reader lock, when readers take one, is held from here to the end, as
    // restore and verify hold theirs (issue 22, item 6).
    let m = repo.manifest(id).await?;
    for part in &m.parts {
        part_file(&part.path)?;
    }
    let mut folder = Folder::open(dir)?;
    match write_all(repo, &m, &mut folder).await {
        Ok(parts) => Ok(ExportReport {
            snapshot: m.id.clone(),
            dir: dir.to_path_buf(),
            parts,
        }),
        Err(e) => {
            folder.remove();
            Err(e)
        }
    }
}

async fn write_all(
    repo: &Repository,
    m: &Manifest,
    folder: &mut Folder,
) -> Result<Vec<ExportedPart>> {
    let mtime = m.started.timestamp().max(0) as u64;
    let mut out = m.clone();
    out.format = 1;
    let mut parts = Vec::new();
    for (i, part) in m.parts.iter().enumerate() {
        let name = part_file(&part.path)?;
        let file = folder.file_path(true, name);
        let f = folder.create(true, name)?;
        let writer = PartWriter::new(BufWriter::new(f), 3, mtime)
            .map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
        let shown = file.display().to_string();
        let writer = repo
            .read_part(&m.id, part, writer, move |w, entry| {
                let e = entry.entry().clone();
                w.append_reader(&e.path, e.size, entry)
                    .map(|_| ())
                    .map_err(|err| Error::io(format!("writing {} to {shown}", e.path), err))
            })
            .await?;
        let (mut sink, info) = writer
            .finish()
            .map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
        std::io::Write::flush(&mut sink)
            .and_then(|()| sink.get_ref().sync_all())
            .map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
        let p = &mut out.parts[i];
        p.chunked = false;
        p.size = info.size;
        p.sha256 = info.sha256.clone();
        p.entries = info.entries;
        parts.push(ExportedPart {
            name: part.name.clone(),
            file,
            size: info.size,
            sha256: info.sha256,
        });
    }
    let body = serde_json::to_vec_pretty(&out).expect("manifest serializes");
    let path = folder.file_path(false, "manifest.json");
    let mut f = folder.create(false, "manifest.json")?;
    std::io::Write::write_all(&mut f, &body)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_path_cannot_leave_the_parts_folder() {
        assert_eq!(
            part_file("parts/mysql-aml.tar.zst").unwrap(),
            "mysql-aml.tar.zst"
        );
        for bad in [
            "../etc.tar.zst",
            "parts/../../a.tar.zst",
            "parts/a/b.tar.zst",
            "parts/x",
            "parts/..tar.zst",
            "parts/.tar.zst",
            "parts/a\x1b[2J.tar.zst",
            "parts/a b.tar.zst",
            "parts/-rf.tar.zst",
        ] {
            assert!(part_file(bad).is_err(), "{bad}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_link_planted_while_writing_is_never_written_through() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let dir = tmp.path().join("out");
        let mut folder = Folder::open(&dir).unwrap();
        let _part = folder.create(true, "a.tar.zst").unwrap();
        // Planted after the folder was checked, as a racing writer would.
        std::os::unix::fs::symlink(&victim, dir.join("manifest.json")).unwrap();
        let e = folder.create(false, "manifest.json").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Refused, "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("parts")), 0o700);
        assert_eq!(mode(&dir.join("parts/a.tar.zst")), 0o600);
        folder.remove();
        // What export made is gone; the planted link (not its own) and the victim stay.
        assert!(std::fs::symlink_metadata(dir.join("parts")).is_err());
        assert!(std::fs::symlink_metadata(dir.join("manifest.json")).is_ok());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }
}
