//! `export`: a snapshot as plain files, `DIR/parts/<part>.tar.zst` and `DIR/manifest.json` (a
//! format 1 manifest), whatever the repository's format. The parts unpack with `tar -I zstd`
//! and check with `sha256sum` against the manifest, so a snapshot can be restored with tar,
//! zstd and the mysql client alone.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive::PartWriter;
use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::repo::manifest::Manifest;

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

/// The file a part goes to: `parts/<name>.tar.zst` and nothing else (the manifest is not
/// trusted to name a path).
fn part_file(dir: &Path, rel: &str) -> Result<PathBuf> {
    let name = rel.strip_prefix("parts/").unwrap_or_default();
    let ok = name.ends_with(".tar.zst")
        && !name.contains('/')
        && !name.contains('\\')
        && !name.starts_with('.');
    if !ok {
        return Err(Error::damaged(
            rel,
            "(manifest)",
            "the manifest names a part file outside parts/; refusing to write it",
        ));
    }
    Ok(dir.join("parts").join(name))
}

/// Writes snapshot `id` to `dir`, which must not exist or be empty. On failure what was
/// written is removed.
pub async fn export(repo: &Repository, id: &str, dir: &Path) -> Result<ExportReport> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?
            .next()
            .is_some()
    {
        return Err(Error::Refused(format!(
            "{} is not empty; export writes into a new or empty folder (nothing was written)",
            dir.display()
        )));
    }
    let m = repo.manifest(id).await?;
    let made = !dir.exists();
    std::fs::create_dir_all(dir.join("parts"))
        .map_err(|e| Error::io(format!("creating {}/parts", dir.display()), e))?;
    match write_all(repo, &m, dir).await {
        Ok(r) => Ok(r),
        Err(e) => {
            let _ = std::fs::remove_dir_all(dir.join("parts"));
            let _ = std::fs::remove_file(dir.join("manifest.json"));
            if made {
                let _ = std::fs::remove_dir(dir);
            }
            Err(e)
        }
    }
}

async fn write_all(repo: &Repository, m: &Manifest, dir: &Path) -> Result<ExportReport> {
    let mtime = m.started.timestamp().max(0) as u64;
    let mut out = m.clone();
    out.format = 1;
    let mut parts = Vec::new();
    for (i, part) in m.parts.iter().enumerate() {
        let file = part_file(dir, &part.path)?;
        let f = File::create(&file)
            .map_err(|e| Error::io(format!("creating {}", file.display()), e))?;
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
    let path = dir.join("manifest.json");
    std::fs::write(&path, body).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(ExportReport {
        snapshot: m.id.clone(),
        dir: dir.to_path_buf(),
        parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_path_cannot_leave_the_parts_folder() {
        let d = Path::new("/x");
        assert_eq!(
            part_file(d, "parts/mysql-aml.tar.zst").unwrap(),
            Path::new("/x/parts/mysql-aml.tar.zst")
        );
        for bad in [
            "../etc.tar.zst",
            "parts/../../a.tar.zst",
            "parts/a/b.tar.zst",
            "parts/x",
            "parts/..tar.zst",
        ] {
            assert!(part_file(d, bad).is_err(), "{bad}");
        }
    }
}
