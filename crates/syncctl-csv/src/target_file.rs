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
//!
//! A batch that only adds rows is appended instead ([`append`]): rewriting the whole file per
//! batch made a load quadratic in the file's size. The length before the append is first made
//! durable in a journal next to the file (`.NAME.syncctl-append`), so that an append cut short
//! (kill -9, a full disk, a power cut) is undone by the next [`settle`]: the file is truncated
//! back to that length and no half line is ever read as a record or continued by the next
//! append. While an append is under way (its writer holds a lock on the journal), readers stop
//! at the recorded length; a spreadsheet opening the file meanwhile may see part of the batch.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
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
    let dir = dir_of(&target);
    let tmp = dir.join(format!(
        ".{}.syncctl-{}.tmp",
        name_of(&target),
        std::process::id()
    ));
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

fn dir_of(target: &Path) -> &Path {
    target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn name_of(target: &Path) -> String {
    target
        .file_name()
        .map_or_else(|| "data.csv".into(), |n| n.to_string_lossy().into_owned())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// The journal of an append to `target` (resolved), next to it.
fn journal_path(target: &Path) -> PathBuf {
    dir_of(target).join(format!(".{}.syncctl-append", name_of(target)))
}

/// How many bytes before the recorded length the journal keeps, to tell the file it was
/// written for from one replaced or edited since.
const TAIL: u64 = 32;

/// What a journal records: the file's length before the append, its inode and the bytes
/// just before that length.
#[derive(Debug, PartialEq, Eq)]
struct Journal {
    len: u64,
    inode: u64,
    tail: Vec<u8>,
}

impl Journal {
    fn of(file: &mut fs::File, len: u64) -> std::io::Result<Self> {
        Ok(Self {
            len,
            inode: inode(&file.metadata()?),
            tail: tail_before(file, len)?,
        })
    }

    fn to_line(&self) -> String {
        let hex: String = self.tail.iter().map(|b| format!("{b:02x}")).collect();
        format!("syncctl-append 1 {} {} {hex}\n", self.len, self.inode)
    }

    /// `None` for an empty or unfinished journal: its append never began.
    fn parse(text: &str) -> Option<Self> {
        let line = text.strip_suffix('\n')?;
        let mut parts = line.split(' ');
        if parts.next()? != "syncctl-append" || parts.next()? != "1" {
            return None;
        }
        let len = parts.next()?.parse().ok()?;
        let inode = parts.next()?.parse().ok()?;
        let hex = parts.next()?;
        if parts.next().is_some() || hex.len() % 2 != 0 {
            return None;
        }
        let tail = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(Self { len, inode, tail })
    }

    /// Whether `file` is still the file this journal was written for, grown or not.
    fn fits(&self, file: &mut fs::File) -> std::io::Result<bool> {
        let meta = file.metadata()?;
        Ok(inode(&meta) == self.inode
            && meta.len() >= self.len
            && tail_before(file, self.len)? == self.tail)
    }
}

fn tail_before(file: &mut fs::File, len: u64) -> std::io::Result<Vec<u8>> {
    let from = len.saturating_sub(TAIL);
    file.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::new();
    Read::take(&mut *file, len - from).read_to_end(&mut tail)?;
    Ok(tail)
}

#[cfg(unix)]
fn inode(meta: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.ino()
}

#[cfg(not(unix))]
fn inode(_meta: &fs::Metadata) -> u64 {
    0
}

/// Opens and locks the journal at `path`, making sure the lock is on the file that is there
/// now (another process may have removed the one we opened while we waited for its lock).
/// `wait: false` gives `Ok(None)` when its writer holds it; `create: false` gives `Ok(None)`
/// when there is none.
fn lock_journal(path: &Path, create: bool, wait: bool) -> std::io::Result<Option<fs::File>> {
    loop {
        let f = match fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if wait {
            f.lock()?;
        } else {
            match f.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => return Ok(None),
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
        }
        match fs::metadata(path) {
            Ok(now) if inode(&now) == inode(&f.metadata()?) => return Ok(Some(f)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
}

/// Appends `bytes` to the file at `path` (resolved), which must hold `expected_len` bytes:
/// `Ok(false)` without writing anything when it does not or when no journal can be written
/// next to it (the caller then rewrites the file whole).
///
/// # Errors
/// The file is not writable ([`check_writable`], as `PermissionDenied`), or an I/O error;
/// the file is then back at `expected_len` bytes, or the journal still says it must be.
pub(crate) fn append(path: &Path, expected_len: u64, bytes: &[u8]) -> std::io::Result<bool> {
    if let Some(why) = check_writable(path) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            why,
        ));
    }
    let target = resolve(path)?;
    let journal_at = journal_path(&target);
    let Ok(Some(mut journal)) = lock_journal(&journal_at, true, true) else {
        return Ok(false);
    };
    let mut f = fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(&target)?;
    if f.metadata()?.len() != expected_len {
        let _ = fs::remove_file(&journal_at);
        return Ok(false);
    }
    let line = Journal::of(&mut f, expected_len)?.to_line();
    let recorded = journal
        .set_len(0)
        .and_then(|()| journal.write_all(line.as_bytes()))
        .and_then(|()| journal.sync_all())
        .and_then(|()| sync_dir(dir_of(&target)));
    if recorded.is_err() {
        let _ = fs::remove_file(&journal_at);
        return Ok(false);
    }
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
        if f.set_len(expected_len).and_then(|()| f.sync_all()).is_ok() {
            let _ = fs::remove_file(&journal_at);
        }
        return Err(e);
    }
    // Durably emptied before it goes: a reader that opened it before, or a power cut that
    // brings it back, finds no append in it to undo.
    journal.set_len(0).and_then(|()| journal.sync_all())?;
    let _ = fs::remove_file(&journal_at);
    Ok(true)
}

/// Undoes an append to the file at `path` that was cut short, if there is one. Returns the
/// length to read the file up to when its tail must be left unread: an append is under way
/// in another process, or the torn tail could not be removed (a file we may only read).
///
/// # Errors
/// An I/O error reading the journal or the file.
pub(crate) fn settle(path: &Path) -> std::io::Result<Option<u64>> {
    let Ok(target) = resolve(path) else {
        return Ok(None);
    };
    let journal_at = journal_path(&target);
    if fs::symlink_metadata(&journal_at).is_err() {
        return Ok(None);
    }
    let Some(mut journal) = lock_journal(&journal_at, false, false)? else {
        // Under way: read what was there before it, as if it had not begun.
        let mut text = String::new();
        let _ = fs::File::open(&journal_at).and_then(|mut j| j.read_to_string(&mut text));
        return Ok(Journal::parse(&text).map(|j| j.len));
    };
    let mut text = String::new();
    journal.read_to_string(&mut text)?;
    let Some(recorded) = Journal::parse(&text) else {
        // Empty, or cut short before its append began.
        let _ = fs::remove_file(&journal_at);
        return Ok(None);
    };
    let mut f = match fs::OpenOptions::new().read(true).write(true).open(&target) {
        Ok(f) => f,
        Err(_) => {
            let mut f = fs::File::open(&target)?;
            return Ok(recorded.fits(&mut f)?.then_some(recorded.len));
        }
    };
    if recorded.fits(&mut f)? {
        tracing::warn!(
            file = %target.display(),
            kept = recorded.len,
            removed = f.metadata()?.len() - recorded.len,
            "Removed the tail of a CSV append that was cut short (the batch it held was not reported written)."
        );
        f.set_len(recorded.len)?;
        f.sync_all()?;
    }
    // Not the file it was written for any more (replaced or edited since): nothing to undo.
    fs::remove_file(&journal_at)?;
    sync_dir(dir_of(&target))?;
    Ok(None)
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

    /// The state a kill -9 leaves in the middle of an append: the journal written, part of
    /// the new bytes in the file.
    fn torn_append(path: &Path, torn: &[u8]) -> u64 {
        let mut f = fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .unwrap();
        let len = f.metadata().unwrap().len();
        let line = Journal::of(&mut f, len).unwrap().to_line();
        fs::write(journal_path(path), line).unwrap();
        f.write_all(torn).unwrap();
        len
    }

    #[test]
    fn appends_leave_no_journal_and_refuse_a_file_that_changed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        fs::write(&p, "id,v\n1,a\n").unwrap();
        assert!(append(&p, 9, b"2,b\n").unwrap());
        assert_eq!(fs::read_to_string(&p).unwrap(), "id,v\n1,a\n2,b\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no journal");
        assert!(!append(&p, 9, b"3,c\n").unwrap(), "the file is not 9 bytes");
        assert_eq!(fs::read_to_string(&p).unwrap(), "id,v\n1,a\n2,b\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_torn_append_is_truncated_away_and_the_next_append_follows_the_last_whole_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        fs::write(&p, "id,v\n1,a\n").unwrap();
        let len = torn_append(&p, b"2,b\n3,\"half a quo");
        assert_eq!(settle(&p).unwrap(), None);
        assert_eq!(fs::read_to_string(&p).unwrap(), "id,v\n1,a\n");
        assert!(!journal_path(&p).exists());
        assert!(append(&p, len, b"2,b\n").unwrap());
        assert_eq!(fs::read_to_string(&p).unwrap(), "id,v\n1,a\n2,b\n");
        // Torn after whole lines: they go too, the batch is all or nothing.
        torn_append(&p, b"3,c\n");
        assert_eq!(settle(&p).unwrap(), None);
        assert_eq!(fs::read_to_string(&p).unwrap(), "id,v\n1,a\n2,b\n");
    }

    #[test]
    fn an_append_under_way_is_left_unread_and_a_stale_journal_undoes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        fs::write(&p, "id,v\n1,a\n").unwrap();
        let len = torn_append(&p, b"2,");
        // Its writer is alive (holds the lock): read up to the length before, touch nothing.
        let held = lock_journal(&journal_path(&p), false, true)
            .unwrap()
            .unwrap();
        assert_eq!(settle(&p).unwrap(), Some(len));
        assert_eq!(fs::read_to_string(&p).unwrap(), "id,v\n1,a\n2,");
        drop(held);
        assert_eq!(settle(&p).unwrap(), None);
        assert_eq!(fs::read_to_string(&p).unwrap(), "id,v\n1,a\n");

        // Edited since (the bytes before the recorded length differ): the file is not ours to cut.
        torn_append(&p, b"2,b\n");
        fs::write(&p, "id,v\n9,z\n2,b\n").unwrap();
        assert_eq!(settle(&p).unwrap(), None);
        assert_eq!(fs::read_to_string(&p).unwrap(), "id,v\n9,z\n2,b\n");
        assert!(!journal_path(&p).exists());

        // A journal cut short before its append began names no length.
        fs::write(journal_path(&p), "syncctl-append 1 10").unwrap();
        assert_eq!(settle(&p).unwrap(), None);
        assert!(!journal_path(&p).exists());
        assert_eq!(fs::read_to_string(&p).unwrap(), "id,v\n9,z\n2,b\n");
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
