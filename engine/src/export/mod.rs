//! Scheduled exports (DI-4): a job's file made from the records its filter selects, or from an
//! aggregate of them, as its owner may see them, and delivered whole to a folder below the
//! export root or to an SFTP server. Each run is in the history with its row count, size and
//! checksum, or with why it failed; a failed run leaves no partial file where the partner looks.
//!
//! The file is built in an unnamed temporary file (memory stays flat whatever its size), then
//! copied under a hidden partial name next to its destination and renamed, so a partner
//! polling the folder never reads half a file. A local folder is opened once and checked as
//! opened; the file is written and renamed through that handle (`openat`, `renameat`).

pub mod cells;

use std::path::Path;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tabiji_connectors::sftp::{self, SftpFolder};
use tabiji_model::clock::Clock;
use tabiji_model::export::{Destination, ExportEncoding, ExportJob, HeaderNames};
use tabiji_model::filter::system_field;
use tabiji_storage::StorageError;
use tabiji_storage::aggregate::{AggregateRequest, MAX_GROUPS};
use tabiji_storage::auth::Principal;
use tabiji_storage::export::ExportRequest;
use tabiji_storage::export_jobs::{self, ExportRun, Made};
use tabiji_storage::records::Store;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::transfer::{Transfers, credential};
use cells::{cell, header_names, shift_jis};

/// An unnamed file in `dir` (`O_TMPFILE`): it disappears with its last handle, whatever
/// happens to the process.
pub fn unnamed_temp_file(dir: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir)
}

/// Makes and delivers `job`'s file for the run due at `due`, as `who`; the run as recorded.
/// Rights and the job itself are checked first (an error, nothing recorded); what fails after
/// that (the data, the destination) is a failed run in the history.
pub async fn run_job(
    store: &Store,
    who: &Principal,
    key: &str,
    job: &ExportJob,
    due: DateTime<Utc>,
    transfers: &Transfers,
    clock: &dyn Clock,
) -> Result<ExportRun, StorageError> {
    store.require_export_job(who, job).await?;
    export_jobs::check(store, job).await?;
    let file_name = job.file_name(due);
    let id = export_jobs::start(store, who, key, job, &file_name, due, clock.now()).await?;
    let outcome = make_and_deliver(store, who, job, &file_name, id, due, transfers).await;
    if let Err(error) = &outcome {
        tracing::error!(job = %key, run = id, %error, "an export failed");
    }
    export_jobs::finish(store, who, id, outcome, clock.now()).await
}

async fn make_and_deliver(
    store: &Store,
    who: &Principal,
    job: &ExportJob,
    file_name: &str,
    run: i64,
    due: DateTime<Utc>,
    transfers: &Transfers,
) -> Result<Made, String> {
    let temp = unnamed_temp_file(&std::env::temp_dir())
        .map_err(|e| format!("no temporary file could be made: {e}"))?;
    let mut sink = Sink {
        file: tokio::fs::File::from_std(temp),
        encoding: job.file.encoding,
        hasher: Sha256::new(),
        bytes: 0,
    };
    let rows = write_file(store, who, job, due, &mut sink).await?;
    let Sink {
        mut file,
        hasher,
        bytes,
        ..
    } = sink;
    file.flush().await.map_err(|e| e.to_string())?;
    file.rewind().await.map_err(|e| e.to_string())?;
    deliver(job, file_name, run, file, transfers).await?;
    Ok(Made {
        rows,
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// The file as it is written: encoded, counted and hashed on the way.
struct Sink {
    file: tokio::fs::File,
    encoding: ExportEncoding,
    hasher: Sha256,
    bytes: i64,
}

impl Sink {
    async fn write(&mut self, utf8: Vec<u8>) -> Result<(), String> {
        let out = match self.encoding {
            ExportEncoding::Utf8 => utf8,
            ExportEncoding::ShiftJis => shift_jis(&utf8),
        };
        self.hasher.update(&out);
        self.bytes += out.len() as i64;
        self.file
            .write_all(&out)
            .await
            .map_err(|e| format!("the temporary file could not be written: {e}"))
    }

    async fn write_csv(&mut self, out: csv::Writer<Vec<u8>>) -> Result<(), String> {
        let utf8 = out.into_inner().map_err(|e| e.to_string())?;
        self.write(utf8).await
    }
}

fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(1 << 16))
}

/// Writes the header line and the rows; returns how many rows.
async fn write_file(
    store: &Store,
    who: &Principal,
    job: &ExportJob,
    due: DateTime<Utc>,
    sink: &mut Sink,
) -> Result<i64, String> {
    let zone = job
        .zone()
        .ok_or_else(|| format!("zone: {:?} is not a time zone", job.zone))?;
    if job.file.encoding == ExportEncoding::Utf8 {
        // Excel reads a CSV file as UTF-8 only when it begins with a byte-order mark.
        sink.write(b"\xEF\xBB\xBF".to_vec()).await?;
    }
    let text = |e: StorageError| e.to_string();
    let csv_error = |e: csv::Error| e.to_string();
    let guard = job.file.guard_formulas;
    let heading = |name: &str| -> String {
        if guard {
            cell(None, &serde_json::Value::from(name), &zone).into_owned()
        } else {
            name.to_string()
        }
    };
    let Some(summary) = &job.summary else {
        let request = ExportRequest {
            filter: job.filter.clone(),
            fields: (!job.fields.is_empty()).then(|| job.fields.clone()),
            zone: Some(job.zone.clone()),
        };
        let mut export = store
            .export(who, &job.entity, &request, due)
            .await
            .map_err(text)?;
        let mut out = csv_writer();
        out.write_record(
            header_names(export.fields(), job.file.header)
                .iter()
                .map(|name| heading(name)),
        )
        .map_err(csv_error)?;
        sink.write_csv(out).await?;
        let mut rows = 0;
        while let Some(page) = export.next_page(store).await.map_err(text)? {
            let fields = export.fields();
            let mut out = csv_writer();
            for row in &page {
                for (i, value) in row.iter().enumerate() {
                    let field = i.checked_sub(1).and_then(|f| fields.get(f));
                    out.write_field(shown(guard, field, value, &zone).as_bytes())
                        .map_err(csv_error)?;
                }
                out.write_record(None::<&[u8]>).map_err(csv_error)?;
            }
            sink.write_csv(out).await?;
            rows += page.len() as i64;
        }
        export.finish(store, true).await.map_err(text)?;
        return Ok(rows);
    };
    let request = AggregateRequest {
        filter: job.filter.clone(),
        group_by: summary.group_by.clone(),
        measures: summary.measures.clone(),
        zone: Some(job.zone.clone()),
        limit: Some(MAX_GROUPS),
    };
    let result = store
        .aggregate(who, &job.entity, &request, due)
        .await
        .map_err(text)?;
    if result.truncated {
        return Err(format!(
            "the summary has more than {MAX_GROUPS} groups: group by fewer or coarser fields"
        ));
    }
    let schema = store.entity_schema(&job.entity).await.map_err(text)?;
    let field = |key: &str| schema.field(key).cloned().or_else(|| system_field(key));
    let mut columns = Vec::new();
    for grouping in &summary.group_by {
        let def = field(&grouping.field);
        let label = def.as_ref().map_or(grouping.field.clone(), |f| {
            label_of(f.label.ja.as_str(), f.label.en.as_str(), job.file.header)
        });
        let header = match (job.file.header, grouping.bucket) {
            (HeaderNames::Keys, _) | (_, None) => {
                if job.file.header == HeaderNames::Keys {
                    grouping.name()
                } else {
                    label
                }
            }
            (HeaderNames::Ja, Some(bucket)) => format!("{label} ({})", bucket.label_ja()),
            (HeaderNames::En, Some(bucket)) => format!("{label} ({})", bucket.name()),
        };
        // A bucket is already text; a plain field is shown as its type reads.
        let shown = if grouping.bucket.is_some() { None } else { def };
        columns.push((grouping.name(), header, shown));
    }
    let measures = if summary.measures.is_empty() {
        vec![tabiji_storage::aggregate::AggregateMeasure::Count]
    } else {
        summary.measures.clone()
    };
    for measure in &measures {
        let header = match (job.file.header, measure.field()) {
            (HeaderNames::Keys, _) => measure.name(),
            (names, None) => label_of("件数", "count", names).to_string(),
            (names, Some(key)) => {
                let label = field(key).map_or(key.to_string(), |f| {
                    label_of(&f.label.ja, &f.label.en, names).to_string()
                });
                match names {
                    HeaderNames::Ja => format!("{label} {}", measure.verb_ja()),
                    _ => format!("{label} {}", measure.verb_en()),
                }
            }
        };
        columns.push((measure.name(), header, None));
    }
    let mut out = csv_writer();
    out.write_record(columns.iter().map(|(_, header, _)| heading(header)))
        .map_err(csv_error)?;
    for group in &result.groups {
        for (key, _, def) in &columns {
            let value = group.get(key).unwrap_or(&serde_json::Value::Null);
            out.write_field(shown(guard, def.as_ref(), value, &zone).as_bytes())
                .map_err(csv_error)?;
        }
        out.write_record(None::<&[u8]>).map_err(csv_error)?;
    }
    sink.write_csv(out).await?;
    Ok(result.groups.len() as i64)
}

/// A cell's text, guarded against formulas when the job asks.
fn shown<'a>(
    guard: bool,
    field: Option<&tabiji_model::FieldDef>,
    value: &'a serde_json::Value,
    zone: &tabiji_model::zone::Zone,
) -> std::borrow::Cow<'a, str> {
    if guard {
        cell(field, value, zone)
    } else {
        cells::text(field, value, zone)
    }
}

fn label_of(ja: &str, en: &str, names: HeaderNames) -> String {
    match names {
        HeaderNames::Ja => ja.to_string(),
        _ => en.to_string(),
    }
}

/// Puts the finished file where the job sends it, under a partial name of its own run until
/// complete (two runs of one job at once never write into each other's file).
async fn deliver(
    job: &ExportJob,
    file_name: &str,
    run: i64,
    mut file: tokio::fs::File,
    transfers: &Transfers,
) -> Result<(), String> {
    let partial_name = format!(".{file_name}.{run}.partial");
    match &job.destination {
        Destination::Directory { path } => {
            let path = path.clone();
            let name = file_name.to_string();
            let transfers = transfers.clone();
            let source = file.into_std().await;
            tokio::task::spawn_blocking(move || {
                let folder = export_folder(&path, &transfers)?;
                write_into(&folder, &partial_name, &name, source)
                    .map_err(|e| format!("{path}/{name}: {e}"))
            })
            .await
            .map_err(|e| e.to_string())?
        }
        Destination::Sftp(target) => {
            let login = target.login();
            let credential =
                credential(&login, transfers).map_err(|e| format!("destination.{e}"))?;
            let remote = SftpFolder::open(&sftp::Server::of(&login), &credential, login.path)
                .await
                .map_err(|e| e.to_string())?;
            let uploaded = remote.upload(file_name, &partial_name, &mut file).await;
            remote.close().await;
            uploaded.map_err(|e| e.to_string())
        }
    }
}

/// The destination folder, opened, once the folder actually opened is known to lie inside the
/// export root and outside the import root (an exported file must not be taken for a
/// partner's). Later writes go through this handle, so swapping a folder on the way for a link
/// after the check cannot send the file elsewhere.
fn export_folder(path: &str, transfers: &Transfers) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let root = transfers.export_root.as_deref().ok_or(
        "directory destinations are off: start tabiji with --export-root (TABIJI_EXPORT_ROOT) naming the folder exports may write below",
    )?;
    let root = std::fs::canonicalize(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let folder = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    let opened = std::fs::read_link(format!("/proc/self/fd/{}", folder.as_raw_fd()))
        .map_err(|e| format!("{path}: {e}"))?;
    if !opened.starts_with(&root) {
        return Err(format!(
            "{} is not inside the export root {}",
            opened.display(),
            root.display()
        ));
    }
    if let Some(imports) = &transfers.import_root
        && let Ok(imports) = std::fs::canonicalize(imports)
        && opened.starts_with(&imports)
    {
        return Err(format!(
            "{} is inside the import root {}: exported files would be read as partners' files",
            opened.display(),
            imports.display()
        ));
    }
    Ok(folder)
}

/// Copies `source` into `folder` as `partial` (a new file; a link planted under that name is
/// not followed), then renames it to `name`, replacing a file of that name; the partial file
/// is removed when anything fails.
fn write_into(
    folder: &std::fs::File,
    partial: &str,
    name: &str,
    mut source: std::fs::File,
) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, FromRawFd};
    let invalid = |_| std::io::Error::from(std::io::ErrorKind::InvalidInput);
    let partial = CString::new(partial).map_err(invalid)?;
    let name = CString::new(name).map_err(invalid)?;
    let dir = folder.as_raw_fd();
    // SAFETY: `dir` is an open directory for the whole call and both names are NUL-terminated
    // C strings; the descriptor `openat` returns is owned by the `File` made from it at once.
    let fd = unsafe {
        libc::openat(
            dir,
            partial.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o640,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by `openat`, is valid and owned by nothing else.
    let mut out = unsafe { std::fs::File::from_raw_fd(fd) };
    let written = std::io::copy(&mut source, &mut out)
        .and_then(|_| out.sync_all())
        .and_then(|()| {
            // SAFETY: as above; renameat reads the two names and the directory only.
            let renamed = unsafe { libc::renameat(dir, partial.as_ptr(), dir, name.as_ptr()) };
            if renamed == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    if written.is_err() {
        // SAFETY: as above.
        unsafe { libc::unlinkat(dir, partial.as_ptr(), 0) };
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_land_only_in_the_folder_actually_opened_inside_the_root() {
        let base = std::env::temp_dir().join(format!("tabiji-export-dir-{}", std::process::id()));
        let root = base.join("root");
        let inside = root.join("points");
        let outside = base.join("elsewhere");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let transfers = Transfers {
            export_root: Some(root.clone()),
            ..Transfers::default()
        };
        let source = |text: &str| {
            let path = base.join("source");
            std::fs::write(&path, text).unwrap();
            std::fs::File::open(&path).unwrap()
        };

        let folder = export_folder(inside.to_str().unwrap(), &transfers).unwrap();
        write_into(&folder, ".a.csv.1.partial", "a.csv", source("one")).unwrap();
        assert_eq!(
            std::fs::read_to_string(inside.join("a.csv")).unwrap(),
            "one"
        );
        write_into(&folder, ".a.csv.2.partial", "a.csv", source("two")).unwrap();
        assert_eq!(
            std::fs::read_to_string(inside.join("a.csv")).unwrap(),
            "two",
            "a file of that name is replaced"
        );

        // A link planted under the partial name is not followed; nothing is left behind.
        std::os::unix::fs::symlink(outside.join("victim"), inside.join(".b.csv.3.partial"))
            .unwrap();
        assert!(write_into(&folder, ".b.csv.3.partial", "b.csv", source("x")).is_err());
        assert!(!outside.join("victim").exists());
        assert!(!inside.join("b.csv").exists());

        // A folder inside the root that is a link out of it is refused.
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        let refused = export_folder(root.join("escape").to_str().unwrap(), &transfers);
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("is not inside the export root")),
            "{:?}",
            refused.map(|_| ())
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
