//! Building a directory beside its final place and renaming it there in one step, so that an
//! interrupted `pki init` or `pki fixtures` leaves either nothing or the finished directory.
//!
//! The directory is built in a hidden sibling, `.NAME.wstunnel-staging-XXXXXX`, in the same
//! parent (so the final rename is atomic). A failure removes the sibling; a killed process
//! cannot, so the next run removes siblings of the same NAME that no live process holds.
//!
//! Two runs for the same target at the same moment do not mix their files: one wins and the
//! other fails, usually because its rename finds the target no longer empty. Known limit: a run
//! that has created its sibling but not yet locked it (a window of a few system calls) can
//! have the sibling removed by the other run's clean-up, and then fails with an error naming it.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// A directory being built for `target`; removed when dropped unless committed.
pub struct Staging {
    target: PathBuf,
    /// Dropped (and so removed) before `created_ancestors`, which must be empty by then.
    temp: tempfile::TempDir,
    /// An exclusive lock on the staging directory itself: it tells a later run that this
    /// staging directory is still in use and must not be cleaned up.
    _liveness: File,
    created_ancestors: CreatedAncestors,
}

/// Ancestors of the target we created, outermost first; removed again when dropped.
struct CreatedAncestors(Vec<PathBuf>);

impl Drop for CreatedAncestors {
    fn drop(&mut self) {
        for ancestor in self.0.iter().rev() {
            // Only empty directories go; anything another program put there stays.
            let _ = fs::remove_dir(ancestor);
        }
    }
}

impl Staging {
    /// Starts building `target`, which must be missing or an empty directory. Missing parent
    /// directories are created (and removed again on failure).
    ///
    /// # Errors
    /// Refuses a `target` that is a file or a non-empty directory, and fails, naming the
    /// directory, if the parent cannot be created or written.
    pub fn begin(target: &Path) -> anyhow::Result<Staging> {
        let existing_mode = match fs::metadata(target) {
            Ok(meta) if !meta.is_dir() => bail!(
                "{} exists and is not a directory; pick a directory",
                target.display()
            ),
            Ok(meta) => {
                let mut entries = fs::read_dir(target)
                    .with_context(|| format!("cannot read the directory {}", target.display()))?;
                if let Some(entry) = entries.next() {
                    let entry = entry.with_context(|| {
                        format!("cannot read the directory {}", target.display())
                    })?;
                    bail!(
                        "{} is not empty (it holds {:?}) and holds no CA; give a new or empty \
                         directory",
                        target.display(),
                        entry.file_name()
                    );
                }
                Some(meta.permissions().mode() & 0o7777)
            }
            Err(error) if error.kind() == ErrorKind::NotFound => None,
            Err(error) => {
                return Err(error).with_context(|| format!("cannot inspect {}", target.display()));
            }
        };
        let (parent, name) = split_target(target)?;
        let created_ancestors = create_ancestors(&parent)?;
        let parent = parent
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", parent.display()))?;
        let prefix = format!(".{}.wstunnel-staging-", name.to_string_lossy());
        remove_stale_siblings(&parent, &prefix);

        let temp = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(&parent)
            .with_context(|| {
                format!(
                    "cannot create a directory in {} (is it writable?)",
                    parent.display()
                )
            })?;
        let liveness = File::open(temp.path())
            .with_context(|| format!("cannot open {}", temp.path().display()))?;
        liveness
            .lock()
            .with_context(|| format!("cannot lock {}", temp.path().display()))?;
        let mode = existing_mode.unwrap_or(0o755);
        fs::set_permissions(temp.path(), fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of {}", temp.path().display()))?;
        Ok(Staging {
            target: parent.join(&name),
            temp,
            _liveness: liveness,
            created_ancestors,
        })
    }

    /// Where to build: the hidden sibling.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// The absolute final path, for files that must name it (openssl.cnf).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Renames the built directory to the target (replacing it if it is an empty directory)
    /// and returns the target.
    ///
    /// # Errors
    /// Fails if something created files in the target meanwhile, or the target is a mount
    /// point (which cannot be replaced: use a directory inside it); the built directory is
    /// then removed and the target is unchanged.
    pub fn commit(self) -> anyhow::Result<PathBuf> {
        fs::rename(self.temp.path(), &self.target).with_context(|| {
            format!(
                "cannot move the finished directory into place at {} (did another program \
                 write there meanwhile, or is it a mount point? then use a directory inside it)",
                self.target.display()
            )
        })?;
        let Staging {
            target,
            temp,
            created_ancestors: mut ancestors,
            ..
        } = self;
        // Renamed: nothing is left under the temporary name to remove.
        let _ = temp.keep();
        ancestors.0.clear();
        if let Some(parent) = target.parent() {
            // Makes the rename durable; a failure here loses nothing already visible.
            if let Err(error) = File::open(parent).and_then(|dir| dir.sync_all()) {
                tracing::warn!(dir = %parent.display(), %error, "cannot sync the directory");
            }
        }
        Ok(target)
    }
}

/// The parent directory (relative paths resolved against the current directory) and the
/// final component of `target`.
fn split_target(target: &Path) -> anyhow::Result<(PathBuf, std::ffi::OsString)> {
    let absolute = if target.exists() {
        target
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", target.display()))?
    } else {
        std::path::absolute(target)
            .with_context(|| format!("cannot resolve {}", target.display()))?
    };
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => Ok((parent.to_path_buf(), name.to_owned())),
        _ => bail!(
            "cannot tell the directory name of {}; give a path such as ./ca",
            target.display()
        ),
    }
}

/// Creates the missing ancestors of `parent` (itself included), returning those it created,
/// outermost first.
fn create_ancestors(parent: &Path) -> anyhow::Result<CreatedAncestors> {
    let mut missing: Vec<PathBuf> = parent
        .ancestors()
        .take_while(|ancestor| !ancestor.exists())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    let mut created = CreatedAncestors(Vec::new());
    for dir in missing {
        fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        created.0.push(dir);
    }
    Ok(created)
}

/// Removes staging siblings left by a killed run: those whose lock nobody holds.
fn remove_stale_siblings(parent: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let path = entry.path();
        let Ok(dir) = File::open(&path) else {
            continue;
        };
        // Held by a live run: leave it alone.
        if dir.try_lock().is_err() {
            continue;
        }
        match fs::remove_dir_all(&path) {
            Ok(()) => tracing::debug!(dir = %path.display(), "removed a stale staging directory"),
            Err(error) => {
                tracing::warn!(dir = %path.display(), %error, "cannot remove a stale staging directory")
            }
        }
    }
}
