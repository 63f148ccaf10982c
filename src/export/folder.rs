//! The folder an export writes: decrypted snapshots in plain files, so written as carefully as
//! the repository itself. The folder is opened once, without following a link, and checked
//! (ours, writable by nobody else, empty); every file is then created through that handle with
//! `O_CREAT | O_EXCL | O_NOFOLLOW`, so a link planted in the folder is never written through,
//! and modes are set on the open handles: folders 0700, files 0600, whatever the umask. On
//! failure, exactly what was created is removed, and nothing else.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
const PARTS: &str = "parts";

/// The export folder, open.
pub(super) struct Folder {
    path: PathBuf,
    parent: OwnedFd,
    name: String,
    dir: OwnedFd,
    parts: Option<OwnedFd>,
    /// Whether the folder itself was made here (then removed on failure).
    made: bool,
    /// The files made here: (in `parts/`, name).
    files: Vec<(bool, String)>,
}

fn io(context: impl std::fmt::Display, e: Errno) -> Error {
    Error::io(context, std::io::Error::from(e))
}

fn open_dir_at(dir: impl rustix::fd::AsFd, name: &str) -> std::result::Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Makes folder `name` in `dir` (0700 whatever the umask); `Ok(false)` when it exists.
fn make_dir_at(dir: impl rustix::fd::AsFd, name: &str) -> std::result::Result<bool, Errno> {
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(DIR_MODE)) {
        Ok(()) => Ok(true),
        Err(Errno::EXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

impl Folder {
    /// Opens `path` for an export: made 0700 when missing; when it exists, it must be a folder
    /// (not a link to one), owned by this user, writable by no one else, and empty.
    pub(super) fn open(path: &Path) -> Result<Folder> {
        let name = match path.file_name().and_then(|n| n.to_str()) {
            Some(n) => n.to_string(),
            None => {
                return Err(Error::input(format!(
                    "--to {}: name the export's own folder (a path ending in a folder name)",
                    path.display()
                )));
            }
        };
        // The path up to the folder is the operator's choice and may pass through links.
        let parent_path = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let parent = rustix::fs::openat(
            CWD,
            parent_path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(format!("opening {}", parent_path.display()), e))?;
        let made = make_dir_at(&parent, &name)
            .map_err(|e| io(format!("creating {}", path.display()), e))?;
        let dir = open_dir_at(&parent, &name).map_err(|e| match e {
            Errno::LOOP | Errno::NOTDIR => Error::Refused(format!(
                "--to {} is a symbolic link or not a folder; export never writes through a link: \
                 give the folder itself (nothing was written)",
                path.display()
            )),
            e => io(format!("opening {}", path.display()), e),
        })?;
        let mut folder = Folder {
            path: path.to_path_buf(),
            parent,
            name,
            dir,
            parts: None,
            made,
            files: Vec::new(),
        };
        if made {
            rustix::fs::fchmod(&folder.dir, Mode::from_raw_mode(DIR_MODE))
                .map_err(|e| io(format!("setting the mode of {}", path.display()), e))?;
        } else {
            folder.check_existing()?;
        }
        folder.make_parts()?;
        Ok(folder)
    }

    fn check_existing(&self) -> Result<()> {
        let shown = self.path.display();
        let st = rustix::fs::fstat(&self.dir).map_err(|e| io(format!("reading {shown}"), e))?;
        let me = rustix::process::geteuid().as_raw();
        if st.st_uid != me {
            return Err(Error::Refused(format!(
                "{shown} belongs to user {}, not to this user ({me}): its owner could replace \
                 what export writes; export into a folder of your own (nothing was written)",
                st.st_uid
            )));
        }
        let mode = st.st_mode & 0o7777;
        if mode & 0o022 != 0 {
            return Err(Error::Refused(format!(
                "{shown} can be written by other users (mode {mode:04o}): they could plant links \
                 or swap files while the decrypted snapshot is written; restrict it (chmod 700 \
                 {shown}) or export into a new folder (nothing was written)"
            )));
        }
        let entries =
            rustix::fs::Dir::read_from(&self.dir).map_err(|e| io(format!("reading {shown}"), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io(format!("reading {shown}"), e))?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                return Err(Error::Refused(format!(
                    "{shown} is not empty; export writes into a new or empty folder (nothing was \
                     written)"
                )));
            }
        }
        Ok(())
    }

    fn make_parts(&mut self) -> Result<()> {
        let shown = format!("{}/{PARTS}", self.path.display());
        if !make_dir_at(&self.dir, PARTS).map_err(|e| io(format!("creating {shown}"), e))? {
            return Err(self.appeared(PARTS));
        }
        self.files.push((false, PARTS.to_string()));
        let parts = open_dir_at(&self.dir, PARTS).map_err(|e| io(format!("opening {shown}"), e))?;
        rustix::fs::fchmod(&parts, Mode::from_raw_mode(DIR_MODE))
            .map_err(|e| io(format!("setting the mode of {shown}"), e))?;
        self.parts = Some(parts);
        Ok(())
    }

    fn appeared(&self, name: &str) -> Error {
        Error::Refused(format!(
            "{}/{name} appeared in the export folder while it was being written (a planted \
             link?); nothing was written through it",
            self.path.display()
        ))
    }

    /// Creates file `name` (in `parts/` when `in_parts`), new, 0600, never through a link.
    pub(super) fn create(&mut self, in_parts: bool, name: &str) -> Result<File> {
        let dir = match (&self.parts, in_parts) {
            (Some(p), true) => p,
            _ => &self.dir,
        };
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        );
        let fd = match fd {
            Ok(fd) => fd,
            Err(Errno::EXIST) | Err(Errno::LOOP) => return Err(self.appeared(name)),
            Err(e) => {
                return Err(io(
                    format!("creating {}", self.file_path(in_parts, name).display()),
                    e,
                ));
            }
        };
        self.files.push((in_parts, name.to_string()));
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(FILE_MODE)).map_err(|e| {
            io(
                format!(
                    "setting the mode of {}",
                    self.file_path(in_parts, name).display()
                ),
                e,
            )
        })?;
        Ok(File::from(fd))
    }

    /// Where file `name` is, for messages and the report.
    pub(super) fn file_path(&self, in_parts: bool, name: &str) -> PathBuf {
        if in_parts {
            self.path.join(PARTS).join(name)
        } else {
            self.path.join(name)
        }
    }

    /// Removes what was made here, newest first; never anything else.
    pub(super) fn remove(self) {
        for (in_parts, name) in self.files.iter().rev() {
            let (dir, flags) = match (in_parts, &self.parts) {
                (true, Some(p)) => (p, AtFlags::empty()),
                (false, _) if name == PARTS => (&self.dir, AtFlags::REMOVEDIR),
                _ => (&self.dir, AtFlags::empty()),
            };
            let _ = rustix::fs::unlinkat(dir, name.as_str(), flags);
        }
        if self.made {
            let _ = rustix::fs::unlinkat(&self.parent, self.name.as_str(), AtFlags::REMOVEDIR);
        }
    }
}
