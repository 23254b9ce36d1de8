//! Fetching a directory flow's files: the matching files in its folder, oldest first, each
//! imported and then moved to the folder's `done/` subfolder, so the next fetch does not see it
//! again. A file whose run could not be recorded stays where it was and is tried again next
//! time (imports are idempotent).
//!
//! Folders are confined: a flow may only read below the import root the operator configured
//! (`TABIJI_IMPORT_ROOT`), so the import right is not a way to read the server's files.

use std::path::{Path, PathBuf};

use tabiji_model::clock::Clock;
use tabiji_model::import::{ImportFlow, Source, matches_pattern};
use tabiji_storage::StorageError;
use tabiji_storage::auth::Principal;
use tabiji_storage::imports::Run;
use tabiji_storage::records::Store;

use super::run_file;

/// Where processed files go, inside the flow's folder.
pub const DONE: &str = "done";

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0} does not fetch files itself: its source is an upload")]
    NotADirectory(String),
    #[error(
        "directory sources are off: start tabiji with --import-root (TABIJI_IMPORT_ROOT) naming the folder partner files arrive under"
    )]
    NoRoot,
    #[error("{folder} is not inside the import root {root}")]
    OutsideRoot { folder: String, root: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn io(path: &Path, e: std::io::Error) -> FetchError {
    FetchError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The flow's folder, once it is known to lie inside `root` (symbolic links resolved).
async fn folder(flow: &ImportFlow, root: Option<&Path>) -> Result<(PathBuf, String), FetchError> {
    let Source::Directory { path, pattern } = &flow.source else {
        return Err(FetchError::NotADirectory(flow.name.clone()));
    };
    let root = root.ok_or(FetchError::NoRoot)?;
    let root = tokio::fs::canonicalize(root)
        .await
        .map_err(|e| io(root, e))?;
    let wanted = Path::new(path);
    let folder = tokio::fs::canonicalize(wanted)
        .await
        .map_err(|e| io(wanted, e))?;
    if !folder.starts_with(&root) {
        return Err(FetchError::OutsideRoot {
            folder: folder.display().to_string(),
            root: root.display().to_string(),
        });
    }
    Ok((folder, pattern.clone()))
}

/// Imports every file of `flow`'s folder that matches its pattern, oldest first, as `who`;
/// returns the runs.
pub async fn fetch_directory(
    store: &Store,
    who: &Principal,
    key: &str,
    flow: &ImportFlow,
    root: Option<&Path>,
    clock: &dyn Clock,
) -> Result<Vec<Run>, FetchError> {
    store.require_import(who, flow).await?;
    let (folder, pattern) = folder(flow, root).await?;
    let mut files = Vec::new();
    let mut entries = tokio::fs::read_dir(&folder)
        .await
        .map_err(|e| io(&folder, e))?;
    while let Some(entry) = entries.next_entry().await.map_err(|e| io(&folder, e))? {
        let meta = entry.metadata().await.map_err(|e| io(&entry.path(), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if meta.is_file() && matches_pattern(&pattern, &name) {
            let modified = meta.modified().map_err(|e| io(&entry.path(), e))?;
            files.push((modified, name));
        }
    }
    files.sort();
    let done = folder.join(DONE);
    if !files.is_empty() {
        tokio::fs::create_dir_all(&done)
            .await
            .map_err(|e| io(&done, e))?;
    }
    let mut runs = Vec::with_capacity(files.len());
    for (_, name) in files {
        let path = folder.join(&name);
        let bytes = tokio::fs::read(&path).await.map_err(|e| io(&path, e))?;
        let run = run_file(store, who, key, flow, &name, &bytes, clock).await?;
        // A file of that name done before is kept beside it, stamped with the run.
        let mut target = done.join(&name);
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            target = done.join(format!("{}.{name}", run.id));
        }
        tokio::fs::rename(&path, &target)
            .await
            .map_err(|e| io(&path, e))?;
        runs.push(run);
    }
    Ok(runs)
}
