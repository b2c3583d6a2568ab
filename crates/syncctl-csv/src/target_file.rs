//! Writing a CSV file that syncctl does not own: never replace what is not ours to replace.
//!
//! A plain temp-file-and-rename swaps the directory entry: a symlink becomes a regular file
//! (the linked file is left stale), a read-only file is replaced anyway (the directory was
//! writable), and a file of another owner becomes ours. So:
//!
//! * a symlink is resolved and its target is written (the link stays);
//! * only a regular file is written; a read-only one is refused, and [`check_writable`] lets
//!   the connector refuse it before the run writes anything;
//! * the new content goes to a temp file that is renamed over the target only when that
//!   rename keeps the file as it was (same owner and group, one link); otherwise the target is
//!   rewritten in place (same inode, owner, mode and links), which a reader could see half
//!   done, but which never changes who owns the data.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file a write to `path` lands in: the target of a symlink, else `path` itself.
///
/// # Errors
/// A dangling symlink or a path that cannot be resolved.
pub(crate) fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path),
        _ => Ok(path.to_path_buf()),
    }
}

/// Why `path` (resolved) cannot be written as a CSV target, if it cannot.
#[must_use]
pub(crate) fn check_writable(path: &Path) -> Option<String> {
    let resolved = match resolve(path) {
        Ok(p) => p,
        Err(e) => return Some(format!("{} cannot be resolved: {e}", path.display())),
    };
    let shown = if resolved == path {
        path.display().to_string()
    } else {
        format!("{} (the link to {})", path.display(), resolved.display())
    };
    let meta = match fs::metadata(&resolved) {
        Ok(m) => m,
        Err(e) => return Some(format!("{shown}: {e}")),
    };
    if !meta.is_file() {
        return Some(format!("{shown} is not a regular file"));
    }
    if meta.permissions().readonly() {
        return Some(format!(
            "{shown} is read-only (no write permission bit); it is never replaced"
        ));
    }
    // The mode bits alone do not say whether we may write it (another owner, ACLs).
    if let Err(e) = fs::OpenOptions::new().write(true).open(&resolved) {
        return Some(format!("{shown} cannot be opened for writing: {e}"));
    }
    None
}

/// Replaces the content of the file at `path` (resolved through symlinks) with `bytes`.
///
/// # Errors
/// The file is not writable ([`check_writable`], as `PermissionDenied`), or an I/O error.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(why) = check_writable(path) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            why,
        ));
    }
    let target = resolve(path)?;
    let meta = fs::metadata(&target)?;
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map_or_else(|| "data.csv".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.syncctl-{}.tmp", std::process::id()));
    let renamed = match write_temp(&tmp, bytes, &meta) {
        Ok(true) => match fs::rename(&tmp, &target) {
            Ok(()) => true,
            Err(_) => {
                let _ = fs::remove_file(&tmp);
                false
            }
        },
        Ok(false) | Err(_) => {
            // The rename would change the file (owner, links) or is impossible here (a
            // directory we may not write): write in place instead.
            let _ = fs::remove_file(&tmp);
            false
        }
    };
    if renamed {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        return Ok(());
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&target)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Writes the temp file; `Ok(true)` when renaming it over a file with `meta` keeps that
/// file's owner, group, mode and links.
fn write_temp(tmp: &Path, bytes: &[u8], meta: &fs::Metadata) -> std::io::Result<bool> {
    let mut f = fs::File::create(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::set_permissions(tmp, meta.permissions())?;
    Ok(same_owner_single_link(tmp, meta))
}

#[cfg(unix)]
fn same_owner_single_link(tmp: &Path, meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(tmp)
        .is_ok_and(|t| t.uid() == meta.uid() && t.gid() == meta.gid() && meta.nlink() == 1)
}

#[cfg(not(unix))]
fn same_owner_single_link(_tmp: &Path, _meta: &fs::Metadata) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_replaced_and_leave_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        fs::write(&p, "old\n").unwrap();
        write(&p, b"new\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_written_through_and_read_only_files_refused() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.csv");
        let link = dir.path().join("link.csv");
        fs::write(&real, "old\n").unwrap();
        symlink(&real, &link).unwrap();
        write(&link, b"new\n").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&real).unwrap(), "new\n");

        fs::set_permissions(&real, fs::Permissions::from_mode(0o444)).unwrap();
        let why = check_writable(&link).unwrap();
        assert!(
            why.contains("read-only") && why.contains("link to"),
            "{why}"
        );
        let e = write(&link, b"newer\n").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert_eq!(fs::read_to_string(&real).unwrap(), "new\n");

        assert!(
            check_writable(dir.path())
                .unwrap()
                .contains("not a regular file")
        );
    }

    #[cfg(unix)]
    #[test]
    fn hard_linked_files_are_rewritten_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.csv");
        fs::write(&a, "old\n").unwrap();
        fs::hard_link(&a, &b).unwrap();
        let ino = fs::metadata(&a).unwrap().ino();
        write(&a, b"new\n").unwrap();
        assert_eq!(fs::metadata(&a).unwrap().ino(), ino, "same inode");
        assert_eq!(
            fs::read_to_string(&b).unwrap(),
            "new\n",
            "the other link sees it"
        );
    }
}
