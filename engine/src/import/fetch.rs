//! Fetching a flow's files from where its partner leaves them: a folder on this server, a
//! folder on an SFTP server, or an HTTP(S) address (downloaded unless it serves the file this
//! flow imported last). The matching files are imported oldest first, each then moved to
//! the folder's `done/` subfolder, so the next fetch does not see it again. A file that cannot
//! be read becomes a failed run in the history and stays where it was; the others are imported
//! (imports are idempotent, so a file tried again changes nothing twice).
//!
//! Folders on this server are confined: a flow may only read below the import root the
//! operator configured (`TABIJI_IMPORT_ROOT`), so the import right is not a way to read the
//! server's files. SFTP keys are files the operator put in the SFTP key folder
//! (`TABIJI_SFTP_KEYS`) and passwords are environment variables named `TABIJI_SFTP_…`: a flow
//! names them but never holds them.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use tabiji_connectors::http_pull::{self, HttpPullError};
use tabiji_connectors::sftp::{self, SftpError, SftpFolder};
use tabiji_model::clock::Clock;
use tabiji_model::import::{ImportFlow, Source, matches_pattern};
use tabiji_storage::StorageError;
use tabiji_storage::auth::Principal;
use tabiji_storage::imports::{self, File, Run};
use tabiji_storage::records::Store;

use super::run_file;
use crate::transfer::{CredentialError, Transfers, credential, header_values};

/// Where processed files go, inside the flow's folder.
pub const DONE: &str = sftp::DONE;

/// Largest file a fetch reads.
const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0} does not fetch files itself: its source is an upload")]
    NotFetched(String),
    #[error(
        "directory sources are off: start tabiji with --import-root (TABIJI_IMPORT_ROOT) naming the folder partner files arrive under"
    )]
    NoRoot,
    #[error("source.{0}")]
    Credential(#[from] CredentialError),
    #[error(transparent)]
    Sftp(#[from] SftpError),
    #[error(transparent)]
    Http(#[from] HttpPullError),
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

/// The flow's folder, once it is known to lie inside `root` (symbolic links resolved), and the
/// root itself, resolved.
async fn folder(
    flow: &ImportFlow,
    root: Option<&Path>,
) -> Result<(PathBuf, String, PathBuf), FetchError> {
    let Source::Directory { path, pattern } = &flow.source else {
        return Err(FetchError::NotFetched(flow.name.clone()));
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
    Ok((folder, pattern.clone(), root))
}

/// The `done` folder, created if need be; a symbolic link there (which could carry files out
/// of the root) is refused.
async fn done_folder(folder: &Path, root: &Path) -> Result<PathBuf, FetchError> {
    let done = folder.join(DONE);
    match tokio::fs::symlink_metadata(&done).await {
        Ok(meta) if meta.file_type().is_dir() => {}
        Ok(_) => {
            return Err(FetchError::Io {
                path: done.display().to_string(),
                message: "is not a folder (a link or a file): processed files are not moved there"
                    .into(),
            });
        }
        Err(_) => tokio::fs::create_dir(&done)
            .await
            .map_err(|e| io(&done, e))?,
    }
    let resolved = tokio::fs::canonicalize(&done)
        .await
        .map_err(|e| io(&done, e))?;
    if !resolved.starts_with(root) {
        return Err(FetchError::OutsideRoot {
            folder: resolved.display().to_string(),
            root: root.display().to_string(),
        });
    }
    Ok(resolved)
}

/// A file's bytes, refusing a path that is (or became, since the folder was listed) a symbolic
/// link, anything but a regular file, a file with other names (a hard link) and files over the
/// size limit.
fn read_regular(path: &Path) -> Result<Vec<u8>, FetchError> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io(path, e))?;
    let meta = file.metadata().map_err(|e| io(path, e))?;
    let refuse = |message: &str| FetchError::Io {
        path: path.display().to_string(),
        message: message.into(),
    };
    if !meta.file_type().is_file() {
        return Err(refuse("is not a regular file"));
    }
    if meta.nlink() != 1 {
        return Err(refuse("has other names (a hard link): it is not read"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(refuse("is larger than 256 MiB"));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).map_err(|e| io(path, e))?;
    Ok(bytes)
}

/// Imports every file of `flow`'s folder (here or on an SFTP server) that matches its
/// pattern, oldest first, as `who`; returns the runs.
pub async fn fetch(
    store: &Store,
    who: &Principal,
    key: &str,
    flow: &ImportFlow,
    settings: &Transfers,
    clock: &dyn Clock,
) -> Result<Vec<Run>, FetchError> {
    store.require_import(who, flow).await?;
    match &flow.source {
        Source::Upload => Err(FetchError::NotFetched(flow.name.clone())),
        Source::Directory { .. } => {
            let (folder, pattern, root) = folder(flow, settings.import_root.as_deref()).await?;
            let mut files = local_files(&folder, &pattern).await?;
            if files.is_empty() {
                return Ok(Vec::new());
            }
            files.sort();
            let local = LocalFolder {
                done: done_folder(&folder, &root).await?,
                folder,
            };
            let names = files.into_iter().map(|(_, name)| name).collect();
            import_each(store, who, key, flow, &local, names, clock).await
        }
        Source::Sftp(source) => {
            let login = source.login();
            let credential = credential(&login, settings)?;
            let remote =
                SftpFolder::open(&sftp::Server::of(&login), &credential, login.path).await?;
            let result = async {
                let mut files: Vec<_> = remote
                    .list()
                    .await?
                    .into_iter()
                    .filter(|file| matches_pattern(&source.pattern, &file.name))
                    .map(|file| (file.modified, file.name))
                    .collect();
                files.sort();
                let names = files.into_iter().map(|(_, name)| name).collect();
                import_each(store, who, key, flow, &remote, names, clock).await
            }
            .await;
            remote.close().await;
            result
        }
        Source::Http(source) => {
            let headers = header_values(source)?;
            let download =
                http_pull::download(&source.url, &headers, &settings.http_hosts, MAX_FILE_BYTES)
                    .await?;
            let sha256 = hex::encode(Sha256::digest(&download.bytes));
            // A partner's address often serves the same file until the next one is ready.
            if imports::already_imported(store, key, &sha256).await? {
                return Ok(Vec::new());
            }
            let run = run_file(
                store,
                who,
                key,
                flow,
                &download.file_name,
                &download.bytes,
                clock,
            )
            .await?;
            Ok(vec![run])
        }
    }
}

/// The regular files of a local folder whose names match `pattern`, with their times.
async fn local_files(
    folder: &Path,
    pattern: &str,
) -> Result<Vec<(std::time::SystemTime, String)>, FetchError> {
    let mut files = Vec::new();
    let mut entries = tokio::fs::read_dir(folder)
        .await
        .map_err(|e| io(folder, e))?;
    while let Some(entry) = entries.next_entry().await.map_err(|e| io(folder, e))? {
        let meta = entry.metadata().await.map_err(|e| io(&entry.path(), e))?;
        let os_name = entry.file_name();
        // Names that are not UTF-8 cannot match a pattern; they are left alone.
        let Some(name) = os_name.to_str() else {
            continue;
        };
        if meta.is_file() && matches_pattern(pattern, name) {
            let modified = meta.modified().map_err(|e| io(&entry.path(), e))?;
            files.push((modified, name.to_string()));
        }
    }
    Ok(files)
}

/// A folder files are fetched from.
trait Folder {
    /// A file's bytes; an error fails that file's run only.
    async fn read(&self, name: &str) -> Result<Vec<u8>, FetchError>;
    /// Moves an imported file to `done/`, under another name when `done/` has one like it.
    async fn done(&self, name: &str, run: i64) -> Result<(), FetchError>;
}

struct LocalFolder {
    folder: PathBuf,
    done: PathBuf,
}

impl Folder for LocalFolder {
    async fn read(&self, name: &str) -> Result<Vec<u8>, FetchError> {
        let path = self.folder.join(name);
        let reading = path.clone();
        tokio::task::spawn_blocking(move || read_regular(&reading))
            .await
            .map_err(|e| FetchError::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            })?
    }

    async fn done(&self, name: &str, run: i64) -> Result<(), FetchError> {
        let path = self.folder.join(name);
        let mut target = self.done.join(name);
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            target = self.done.join(format!("{run}.{name}"));
        }
        tokio::fs::rename(&path, &target)
            .await
            .map_err(|e| io(&path, e))
    }
}

impl Folder for SftpFolder {
    async fn read(&self, name: &str) -> Result<Vec<u8>, FetchError> {
        Ok(SftpFolder::read(self, name, MAX_FILE_BYTES).await?)
    }

    async fn done(&self, name: &str, run: i64) -> Result<(), FetchError> {
        let target = if self.done_has(name).await? {
            format!("{run}.{name}")
        } else {
            name.to_string()
        };
        Ok(self.move_to_done(name, &target).await?)
    }
}

/// Imports the named files of `folder` in the order given.
async fn import_each(
    store: &Store,
    who: &Principal,
    key: &str,
    flow: &ImportFlow,
    folder: &impl Folder,
    names: Vec<String>,
    clock: &dyn Clock,
) -> Result<Vec<Run>, FetchError> {
    let mut runs = Vec::with_capacity(names.len());
    for name in names {
        let bytes = match folder.read(&name).await {
            Ok(bytes) => bytes,
            Err(e) => {
                // That file stays where it is, a failed run in the history says why, and the
                // folder's other files are imported.
                let file = File {
                    name: &name,
                    sha256: String::new(),
                    bytes: 0,
                };
                let id = imports::start(store, who, key, flow, &file, clock.now()).await?;
                imports::finish(store, who, id, Some(&e.to_string()), clock.now()).await?;
                runs.push(imports::get_run(store, who, id).await?);
                continue;
            }
        };
        let run = run_file(store, who, key, flow, &name, &bytes, clock).await?;
        folder.done(&name, run.id).await?;
        runs.push(run);
    }
    Ok(runs)
}
