//! Atomic file writes and the directory lock.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// Who may read a file we write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileMode {
    /// 0644: certificates, requests, CRLs, database files.
    Public,
    /// 0600: private keys and PKCS#12 bundles.
    Private,
}

impl FileMode {
    fn bits(self) -> u32 {
        match self {
            FileMode::Public => 0o644,
            FileMode::Private => 0o600,
        }
    }
}

/// Writes `contents` to a temporary file in the same directory as `path`, syncs it, then
/// renames it over `path`, so readers see either the old or the new file, never a part.
///
/// # Errors
/// Fails, naming `path`, if the directory is not writable or the disk is full; `path` is then
/// unchanged.
pub fn write_atomic(path: &Path, contents: &[u8], mode: FileMode) -> anyhow::Result<()> {
    let parent = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(fs::Permissions::from_mode(mode.bits()))
        .tempfile_in(parent)
        .with_context(|| format!("cannot create a temporary file in {}", parent.display()))?;
    temp.write_all(contents)
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    temp.persist(path)
        .map_err(|error| error.error)
        .with_context(|| format!("cannot rename a temporary file to {}", path.display()))?;
    Ok(())
}

/// Like [`write_atomic`] but refuses to replace an existing file.
///
/// # Errors
/// Fails if `path` exists (naming it) or cannot be written.
pub fn write_new(path: &Path, contents: &[u8], mode: FileMode) -> anyhow::Result<()> {
    let parent = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(fs::Permissions::from_mode(mode.bits()))
        .tempfile_in(parent)
        .with_context(|| format!("cannot create a temporary file in {}", parent.display()))?;
    temp.write_all(contents)
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    temp.persist_noclobber(path)
        .map_err(|error| error.error)
        .with_context(|| format!("cannot create {} (does it already exist?)", path.display()))?;
    Ok(())
}

/// An exclusive lock on the CA directory, released when dropped.
///
/// It serialises our own commands; `openssl ca` does not take it, so do not run `openssl ca`
/// on the directory at the same time as a `wstunnel pki` command.
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Blocks until the lock file `path` is exclusively locked.
    ///
    /// # Errors
    /// Fails if the lock file cannot be created (for example a read-only directory).
    pub fn acquire(path: &Path) -> anyhow::Result<DirLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o644)
            .open(path)
            .with_context(|| {
                format!(
                    "cannot open the lock file {} (is the directory writable?)",
                    path.display()
                )
            })?;
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(DirLock { _file: file })
    }
}
