//! An artifact folder on this machine, read and written without ever following a symbolic link
//! below its root: every path is walked one component at a time with `openat(O_NOFOLLOW)`, and
//! every opened handle is checked to be what it should be (a folder, a regular file).
//!
//! Written artifacts get safe modes: folders 0750, files 0640 (group-readable, so that an
//! MLflow pod sharing the volume's group through `fsGroup` can serve them; nothing for others,
//! no execute or set-id bits, whatever the source's modes were). A file is written under a
//! temporary name, flushed, read back and compared, and only then takes its name, without
//! replacing anything that appeared there meanwhile (`RENAME_NOREPLACE`).

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::archive::HashingWriter;
use crate::error::{Error, Result};
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

const DIR_MODE: u32 = 0o750;
const FILE_MODE: u32 = 0o640;
const PARTIAL: &str = ".amlmigrate-partial";

/// The files of a tree (relative path, size; sorted) and the entries left out (links, and
/// anything neither file nor folder).
#[derive(Debug, Default)]
pub struct Listing {
    pub files: Vec<(String, u64)>,
    pub skipped: Vec<String>,
}

/// The root folder of an artifact tree. The root itself is the operator's choice and may be
/// reached through a link; nothing below it is.
#[derive(Debug, Clone)]
pub struct LocalTree {
    pub root: PathBuf,
}

fn errno(context: impl std::fmt::Display, e: Errno) -> Error {
    Error::io(context, std::io::Error::from(e))
}

fn link_refused(root: &Path, rel: &str) -> Error {
    Error::Refused(format!(
        "artifact path {rel} under {} is a symbolic link (or passes through one); links are never \
         followed: remove it, or copy what it points to in its place",
        root.display()
    ))
}

fn open_dir_at(dir: impl AsFd, name: &str) -> std::result::Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Splits a relative artifact path into its folders and file name, refusing anything that is
/// not a plain relative path (`..`, `.`, empty components, absolute paths).
pub fn split(rel: &str) -> Result<(Vec<&str>, &str)> {
    let parts: Vec<&str> = rel.split('/').collect();
    if parts
        .iter()
        .any(|c| c.is_empty() || *c == "." || *c == ".." || c.contains('\0'))
    {
        return Err(Error::input(format!(
            "artifact path {rel:?} is not a plain relative path"
        )));
    }
    let (name, dirs) = parts.split_last().expect("split yields one part at least");
    Ok((dirs.to_vec(), name))
}

impl LocalTree {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalTree { root: root.into() }
    }

    fn open_root(&self) -> Result<OwnedFd> {
        rustix::fs::openat(
            CWD,
            self.root.as_path(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOENT => Error::input(format!(
                "artifact folder {} does not exist",
                self.root.display()
            )),
            e => errno(
                format!("opening the artifact folder {}", self.root.display()),
                e,
            ),
        })
    }

    /// Creates the root (and its parents) when missing.
    pub fn create_root(&self) -> Result<()> {
        std::fs::create_dir_all(&self.root)
            .map_err(|e| Error::io(format!("creating {}", self.root.display()), e))
    }

    /// Every regular file below the root as (relative path, size), sorted; symbolic links (and
    /// anything else that is neither a folder nor a regular file) are left out and returned
    /// apart, never followed.
    pub fn list(&self) -> Result<Listing> {
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        let mut stack = vec![(String::new(), self.open_root()?)];
        while let Some((rel, fd)) = stack.pop() {
            let at = |name: &str| {
                if rel.is_empty() {
                    name.to_string()
                } else {
                    format!("{rel}/{name}")
                }
            };
            let dir = rustix::fs::Dir::read_from(&fd)
                .map_err(|e| errno(format!("listing {}", self.root.join(&rel).display()), e))?;
            for entry in dir {
                let entry = entry
                    .map_err(|e| errno(format!("listing {}", self.root.join(&rel).display()), e))?;
                let name = OsStr::from_bytes(entry.file_name().to_bytes());
                if name == "." || name == ".." {
                    continue;
                }
                let Some(name) = name.to_str() else {
                    skipped.push(at(&name.to_string_lossy()));
                    continue;
                };
                let stat = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| errno(format!("reading {}", at(name)), e))?;
                match FileType::from_raw_mode(stat.st_mode) {
                    FileType::Directory => {
                        let child = open_dir_at(&fd, name).map_err(|e| match e {
                            Errno::LOOP | Errno::NOTDIR => link_refused(&self.root, &at(name)),
                            e => errno(format!("opening {}", at(name)), e),
                        })?;
                        stack.push((at(name), child));
                    }
                    FileType::RegularFile => files.push((at(name), stat.st_size as u64)),
                    _ => skipped.push(at(name)),
                }
            }
        }
        files.sort();
        skipped.sort();
        Ok(Listing { files, skipped })
    }

    /// The folder holding `rel`, opened component by component without following links;
    /// created (0750) when `create` and missing.
    fn parent_of(&self, dirs: &[&str], rel: &str, create: bool) -> Result<OwnedFd> {
        let mut fd = self.open_root()?;
        for d in dirs {
            let next = match open_dir_at(&fd, d) {
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&fd, *d, Mode::from_raw_mode(DIR_MODE)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(errno(format!("creating the folder of {rel}"), e)),
                    }
                    open_dir_at(&fd, d)
                }
                other => other,
            };
            fd = next.map_err(|e| match e {
                Errno::LOOP | Errno::NOTDIR => link_refused(&self.root, rel),
                Errno::NOENT => Error::input(format!(
                    "artifact {rel} does not exist under {}",
                    self.root.display()
                )),
                e => errno(format!("opening the folder of {rel}"), e),
            })?;
        }
        Ok(fd)
    }

    /// Opens a regular file for reading; `None` when it does not exist. A link is refused.
    pub fn open(&self, rel: &str) -> Result<Option<(File, u64)>> {
        let (dirs, name) = split(rel)?;
        let dir = match self.parent_of(&dirs, rel, false) {
            Err(Error::Input(_)) => return Ok(None),
            other => other?,
        };
        let fd = match rustix::fs::openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err(link_refused(&self.root, rel)),
            Err(e) => return Err(errno(format!("opening artifact {rel}"), e)),
        };
        // The handle itself must be a regular file: not a folder, fifo or device.
        let stat = rustix::fs::fstat(&fd).map_err(|e| errno(format!("reading {rel}"), e))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(Error::Refused(format!(
                "artifact path {rel} under {} is not a regular file; left as it is",
                self.root.display()
            )));
        }
        Ok(Some((File::from(fd), stat.st_size as u64)))
    }

    /// Size and sha256 of an existing file; `None` when there is none.
    pub fn hash(&self, rel: &str) -> Result<Option<(u64, String)>> {
        let Some((mut f, _)) = self.open(rel)? else {
            return Ok(None);
        };
        hash_read(&mut f)
            .map(Some)
            .map_err(|e| Error::io(format!("reading {rel} in {}", self.root.display()), e))
    }

    /// Writes a new file from `src`: under a temporary name first (0640, create-only, no link
    /// followed), flushed, read back and compared, then renamed without replacing anything.
    /// Returns its size and sha256. Refuses when the name exists.
    pub fn write(&self, rel: &str, src: &mut dyn Read) -> Result<(u64, String)> {
        let (dirs, name) = split(rel)?;
        let dir = self.parent_of(&dirs, rel, true)?;
        let tmp = format!(".{name}{PARTIAL}");
        let create = || {
            rustix::fs::openat(
                &dir,
                tmp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(FILE_MODE),
            )
        };
        let fd = match create() {
            // A leftover of an interrupted run (never a real artifact name): start over.
            Err(Errno::EXIST) => {
                rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty())
                    .map_err(|e| errno(format!("removing a partial copy of {rel}"), e))?;
                create()
            }
            other => other,
        }
        .map_err(|e| errno(format!("creating {rel} in {}", self.root.display()), e))?;
        let written = (|| -> std::io::Result<(u64, String)> {
            let mut out = HashingWriter::new(File::from(fd));
            std::io::copy(src, &mut out)?;
            let (file, n, sum) = out.into_parts();
            file.sync_all()?;
            Ok((n, sum))
        })();
        let result = written
            .map_err(|e| Error::io(format!("writing {rel} into {}", self.root.display()), e))
            .and_then(|(n, sum)| {
                let back = rustix::fs::openat(
                    &dir,
                    tmp.as_str(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| errno(format!("reading back {rel}"), e))?;
                let (m, got) = hash_read(&mut File::from(back))
                    .map_err(|e| Error::io(format!("reading back {rel}"), e))?;
                if (m, &got) != (n, &sum) {
                    return Err(Error::damaged(
                        "artifacts",
                        rel,
                        format!(
                            "the copy in {} reads back as {got} ({m} bytes), the source is {sum} ({n} bytes)",
                            self.root.display()
                        ),
                    ));
                }
                match rustix::fs::renameat_with(
                    &dir,
                    tmp.as_str(),
                    &dir,
                    name,
                    RenameFlags::NOREPLACE,
                ) {
                    Ok(()) => Ok((n, sum)),
                    Err(Errno::EXIST) => Err(Error::Refused(format!(
                        "artifact {rel} appeared in {} while it was copied; nothing there was overwritten",
                        self.root.display()
                    ))),
                    Err(e) => Err(errno(format!("placing {rel}"), e)),
                }
            });
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        }
        result
    }
}

fn hash_read(r: &mut dyn Read) -> std::io::Result<(u64, String)> {
    let mut h = HashingWriter::new(std::io::sink());
    std::io::copy(r, &mut h)?;
    let (_, n, sum) = h.into_parts();
    Ok((n, sum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn links_below_the_root_are_listed_apart_and_never_opened() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, outside) = (tmp.path().join("root"), tmp.path().join("outside"));
        std::fs::create_dir_all(root.join("1/run/artifacts")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"not an artifact").unwrap();
        std::fs::write(root.join("1/run/artifacts/model.bin"), b"weights").unwrap();
        symlink(outside.join("secret"), root.join("1/run/artifacts/link")).unwrap();
        symlink(&outside, root.join("1/run/dir-link")).unwrap();
        let tree = LocalTree::new(&root);
        let Listing { files, skipped } = tree.list().unwrap();
        assert_eq!(files, vec![("1/run/artifacts/model.bin".to_string(), 7)]);
        assert_eq!(skipped, vec!["1/run/artifacts/link", "1/run/dir-link"]);
        let e = tree.open("1/run/artifacts/link").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Refused, "{e}");
        let e = tree.open("1/run/dir-link/secret").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Refused, "{e}");
    }

    #[test]
    fn writes_get_safe_modes_and_never_go_through_a_link_or_replace_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, outside) = (tmp.path().join("root"), tmp.path().join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let tree = LocalTree::new(&root);
        let (n, _) = tree
            .write("1/run/artifacts/a.txt", &mut &b"abc"[..])
            .unwrap();
        assert_eq!(n, 3);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&root.join("1/run/artifacts/a.txt")), 0o640);
        assert_eq!(mode(&root.join("1/run/artifacts")), 0o750);
        // A planted link in the destination: nothing is written through it.
        symlink(&outside, root.join("1/evil")).unwrap();
        let e = tree.write("1/evil/x.txt", &mut &b"x"[..]).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Refused, "{e}");
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
        symlink(outside.join("target"), root.join("1/run/artifacts/b.txt")).unwrap();
        assert!(tree.write("1/run/artifacts/b.txt", &mut &b"x"[..]).is_err());
        assert!(!outside.join("target").exists());
        // An existing file is never replaced.
        let e = tree
            .write("1/run/artifacts/a.txt", &mut &b"new"[..])
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Refused, "{e}");
        assert_eq!(
            std::fs::read(root.join("1/run/artifacts/a.txt")).unwrap(),
            b"abc"
        );
        assert!(split("a/../b").is_err() && split("/a").is_err() && split("a//b").is_err());
    }
}
