//! Atomic file writes and the directory lock.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

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
    PreparedFile::write(path, contents, mode)?.commit()
}

/// A new version of a file, written and synced under a temporary name beside it and put in
/// place by [`PreparedFile::commit`]. Dropping it uncommitted removes the temporary file, so a
/// command can prepare every file it changes first and fail before changing any of them.
pub struct PreparedFile {
    temp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl PreparedFile {
    /// Writes the temporary file for `path`.
    ///
    /// # Errors
    /// Fails, naming the directory and what to check, if it is not writable or the disk is
    /// full; nothing visible changes then.
    pub fn write(path: &Path, contents: &[u8], mode: FileMode) -> anyhow::Result<PreparedFile> {
        let mut temp = create_temp(path, mode)?;
        temp.write_all(contents)
            .and_then(|()| temp.as_file().sync_all())
            .with_context(|| format!("cannot write {} (is the disk full?)", path.display()))?;
        Ok(PreparedFile {
            temp,
            path: path.to_path_buf(),
        })
    }

    /// Renames the temporary file over the final path.
    ///
    /// # Errors
    /// Fails naming the file if the rename fails; the old file is then unchanged.
    pub fn commit(self) -> anyhow::Result<()> {
        let PreparedFile { temp, path } = self;
        temp.persist(&path)
            .map_err(|error| error.error)
            .with_context(|| format!("cannot rename a temporary file to {}", path.display()))?;
        Ok(())
    }
}

/// A temporary file beside `path`, with an error that says what to check when the directory
/// refuses it (permissions, owner, or the immutable flag that `chattr +i` sets).
fn create_temp(path: &Path, mode: FileMode) -> anyhow::Result<tempfile::NamedTempFile> {
    let parent = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .permissions(fs::Permissions::from_mode(mode.bits()))
        .tempfile_in(parent)
        .with_context(|| {
            format!(
                "cannot create a file in {dir}; check that you may write there (`ls -ld {dir}` \
                 for the owner and mode, `lsattr -d {dir}` for the immutable flag, which \
                 `chattr -i {dir}` clears)",
                dir = parent.display()
            )
        })
}

/// Like [`write_atomic`] but refuses to replace an existing file.
///
/// # Errors
/// Fails if `path` exists (naming it) or cannot be written.
pub fn write_new(path: &Path, contents: &[u8], mode: FileMode) -> anyhow::Result<()> {
    let mut temp = create_temp(path, mode)?;
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
                let dir = path.parent().unwrap_or(Path::new("."));
                format!(
                    "cannot open the lock file {}; check that you may write to {dir} (`ls -ld \
                     {dir}` for the owner and mode, `lsattr -d {dir}` for the immutable flag)",
                    path.display(),
                    dir = dir.display()
                )
            })?;
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(DirLock { _file: file })
    }
}

/// Prefix of the temporary files of [`write_atomic`] and [`write_new`]; files with it are
/// never a certificate, key or request of their own.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Whether `path` is a temporary file of an atomic write (possibly left by a killed run).
pub fn is_temp_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(TEMP_PREFIX))
}

/// Removes temporary files left by killed runs from `dirs` (not recursively): only files
/// named `.tmp-*` last modified before `before`, the moment the caller took the directory
/// lock, since every writer of these directories writes under that lock. Returns how many
/// were removed; a file that cannot be removed is left and logged.
pub fn remove_stale_temp_files(dirs: &[PathBuf], before: SystemTime) -> usize {
    let mut removed = 0;
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let stale = is_temp_file(&path)
                && entry.file_type().is_ok_and(|t| t.is_file())
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|modified| modified < before);
            if !stale {
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => {
                    tracing::debug!(path = %path.display(), "removed a stale temporary file");
                    removed += 1;
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot remove a stale temporary file")
                }
            }
        }
    }
    removed
}

/// Renames `from` to `to` without ever replacing `to` (a hard link, then removing `from`).
///
/// # Errors
/// Fails naming both files if `to` exists or the directory is not writable; `from` is then
/// where it was.
pub fn rename_new(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::hard_link(from, to)
        .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
    if let Err(error) = fs::remove_file(from) {
        // Keep the state as it was: one name, the old one.
        let _ = fs::remove_file(to);
        return Err(error)
            .with_context(|| format!("cannot move {} to {}", from.display(), to.display()));
    }
    Ok(())
}

/// PEM text with `\n` line endings, like every file OpenSSL writes.
pub fn pem_text(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Files written by one command, removed again when it is dropped before [`Rollback::keep`],
/// so a command that fails part-way leaves the directory as it found it. It only ever holds
/// files the command created itself.
#[derive(Default)]
pub struct Rollback {
    created: Vec<PathBuf>,
    kept: bool,
}

impl Rollback {
    /// Records a file this command created.
    pub fn created(&mut self, path: PathBuf) {
        self.created.push(path);
    }

    /// The command succeeded: keep every file.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        for path in self.created.iter().rev() {
            if let Err(error) = fs::remove_file(path) {
                tracing::warn!(path = %path.display(), %error, "cannot remove a file of a failed run");
            }
        }
    }
}
