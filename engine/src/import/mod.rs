//! Import pipelines: a partner's file read by its flow, mapped row by row, and written in
//! batches, each batch committed with its history counts, so a run that stops half-way (a
//! broken line, the database gone) leaves what it committed and says where it stopped.

pub mod fetch;
pub mod read;

use sha2::{Digest, Sha256};
use tabiji_model::clock::Clock;
use tabiji_model::import::{EmptyCells, ImportFlow, column_name, convert_cell};
use tabiji_model::normalize::nfkc_cow;
use tabiji_storage::StorageError;
use tabiji_storage::auth::Principal;
use tabiji_storage::calculated;
use tabiji_storage::imports::{self, File, Run};
use tabiji_storage::records::{ImportRow, Rejected, Store, Tally};

use read::{CsvFile, ReadError, Row, XlsxFile};
use tabiji_model::import::FileKind;

/// The rows of a file, whatever its kind.
enum Rows<'a> {
    Csv(CsvFile<'a>),
    Xlsx(XlsxFile),
}

impl Rows<'_> {
    fn header(&self) -> &[String] {
        match self {
            Rows::Csv(file) => &file.header,
            Rows::Xlsx(file) => &file.header,
        }
    }

    fn next_row(&mut self) -> Result<Option<Row>, ReadError> {
        match self {
            Rows::Csv(file) => file.next_row(),
            Rows::Xlsx(file) => Ok(file.next_row()),
        }
    }

    fn bytes_read(&self) -> u64 {
        match self {
            Rows::Csv(file) => file.bytes_read(),
            Rows::Xlsx(file) => file.bytes_read(),
        }
    }
}

/// Rows written per transaction.
pub const BATCH_ROWS: usize = 5_000;

/// Where each part of the flow finds its cell in a row.
struct Plan {
    columns: Vec<usize>,
    delete: Option<usize>,
    link: Option<usize>,
}

impl Plan {
    /// Fails, naming what is missing, when the file is not what the flow expects.
    fn new(flow: &ImportFlow, header: &[String]) -> Result<Plan, String> {
        let find = |name: &str| -> Result<usize, String> {
            let wanted = if flow.file.header {
                column_name(name)
            } else {
                name.trim().to_string()
            };
            header.iter().position(|h| *h == wanted).ok_or_else(|| {
                if flow.file.header {
                    format!(
                        "the file has no column {wanted:?}; its header has: {}",
                        header.join(", ")
                    )
                } else {
                    format!("the file has {} columns, not {wanted}", header.len())
                }
            })
        };
        Ok(Plan {
            columns: flow
                .columns
                .iter()
                .map(|c| find(&c.column))
                .collect::<Result<_, _>>()?,
            delete: flow
                .delete_when
                .as_ref()
                .map(|d| find(&d.column))
                .transpose()?,
            link: flow.link.as_ref().map(|l| find(&l.column)).transpose()?,
        })
    }

    /// The row's values for the flow, or why it is rejected.
    fn map(&self, flow: &ImportFlow, row: Row) -> Result<ImportRow, Rejected> {
        let reject = |field: Option<String>, reason: String, raw: &str| Rejected {
            line: row.line,
            field,
            reason,
            raw: raw.to_string(),
        };
        let cells = match row.cells {
            Ok(cells) => cells,
            Err(reason) => return Err(reject(None, reason, &row.raw)),
        };
        let mut values = serde_json::Map::with_capacity(self.columns.len());
        for (column, &at) in flow.columns.iter().zip(&self.columns) {
            let text = convert_cell(column, &cells[at]).map_err(|reason| {
                reject(
                    Some(column.field.clone()),
                    format!("{} (column {}): {reason}", column.field, column.column),
                    &row.raw,
                )
            })?;
            if !text.is_empty() {
                values.insert(column.field.clone(), serde_json::Value::String(text));
            } else if flow.empty_cells == EmptyCells::Clear {
                values.insert(column.field.clone(), serde_json::Value::Null);
            }
        }
        let delete = match (&flow.delete_when, self.delete) {
            (Some(rule), Some(at)) => {
                let cell = nfkc_cow(cells[at].trim());
                rule.values.iter().any(|v| nfkc_cow(v.trim()) == cell)
            }
            _ => false,
        };
        Ok(ImportRow {
            line: row.line,
            values,
            delete,
            link: self.link.map(|at| cells[at].clone()),
            raw: row.raw,
        })
    }
}

/// Runs `flow` (saved as `key`) over one file as `who`, recording the run in the import
/// history; returns the run as recorded. Problems with the file fail the run, not the call.
pub async fn run_file(
    store: &Store,
    who: &Principal,
    key: &str,
    flow: &ImportFlow,
    file_name: &str,
    bytes: &[u8],
    clock: &dyn Clock,
) -> Result<Run, StorageError> {
    let id = start_file(store, who, key, flow, file_name, bytes, clock).await?;
    read_file(store, who, id, flow, bytes, clock).await
}

/// The first half of [`run_file`]: checks the caller's rights and the flow, and records the
/// run as `running` with no row read; answers its id. [`read_file`] reads the file into it,
/// which a caller that answers at once (an upload screen drawing progress) does afterwards.
pub async fn start_file(
    store: &Store,
    who: &Principal,
    key: &str,
    flow: &ImportFlow,
    file_name: &str,
    bytes: &[u8],
    clock: &dyn Clock,
) -> Result<i64, StorageError> {
    store.require_import(who, flow).await?;
    imports::check(store, flow).await?;
    let file = File {
        name: file_name,
        sha256: hex::encode(Sha256::digest(bytes)),
        bytes: bytes.len() as i64,
    };
    imports::start(store, who, key, flow, &file, clock.now()).await
}

/// The second half of [`run_file`]: reads `bytes` into run `id` that [`start_file`] recorded,
/// committing each batch with its counts, and finishes the run.
pub async fn read_file(
    store: &Store,
    who: &Principal,
    id: i64,
    flow: &ImportFlow,
    bytes: &[u8],
    clock: &dyn Clock,
) -> Result<Run, StorageError> {
    let failure = match read_into(store, who, id, flow, bytes).await {
        Ok(()) => None,
        Err(Stop::File(reason)) => Some(reason),
        Err(Stop::Storage(e)) => {
            let reason = e.to_string();
            // The history row may be unreachable too; the caller hears of the first failure.
            let _ = imports::finish(store, who, id, Some(&reason), clock.now()).await;
            return Err(e);
        }
    };
    imports::finish(store, who, id, failure.as_deref(), clock.now()).await?;
    let run = imports::get_run(store, who, id).await?;
    if run.created + run.updated + run.deleted > 0 {
        // What is calculated from the rows follows them now (CF-9); a failure here leaves the
        // import as it is and the worker's next look catches up.
        if let Err(e) = calculated::refresh_from(store, &flow.entity, clock.now()).await {
            tracing::error!(import = id, error = %e, "calculated attributes not refreshed after an import");
        }
    }
    Ok(run)
}

enum Stop {
    /// The file cannot be read on; what was committed stays.
    File(String),
    Storage(StorageError),
}

impl From<StorageError> for Stop {
    fn from(e: StorageError) -> Self {
        Stop::Storage(e)
    }
}

async fn read_into(
    store: &Store,
    who: &Principal,
    id: i64,
    flow: &ImportFlow,
    bytes: &[u8],
) -> Result<(), Stop> {
    let (mut file, encoding) = match flow.file.kind {
        FileKind::Csv => {
            let file = CsvFile::open(
                bytes,
                flow.file.encoding,
                flow.delimiter(),
                flow.file.header,
            )
            .map_err(|e| Stop::File(e.to_string()))?;
            let encoding = file.encoding.name();
            (Rows::Csv(file), encoding)
        }
        FileKind::Xlsx => {
            let file = XlsxFile::open(bytes, flow.file.sheet.as_deref(), flow.file.header)
                .map_err(|e| Stop::File(e.to_string()))?;
            (Rows::Xlsx(file), "xlsx")
        }
    };
    let plan = Plan::new(flow, file.header()).map_err(Stop::File)?;
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let mut early = Tally::default();
    let mut read = 0u64;
    loop {
        // `Some(None)`: the end of the file; `Some(Some(reason))`: it cannot be read on.
        let (row, stop) = match file.next_row() {
            Ok(Some(row)) => (Some(row), None),
            Ok(None) => (None, Some(None)),
            Err(e) => (None, Some(Some(e.to_string()))),
        };
        if let Some(row) = row {
            read += 1;
            match plan.map(flow, row) {
                Ok(mapped) => batch.push(mapped),
                Err(rejected) => early.rejected.push(rejected),
            }
        }
        // Rows rejected before the database count too, so a file of bad rows is not held.
        if batch.len() + early.rejected.len() >= BATCH_ROWS || (stop.is_some() && read > 0) {
            let mut tally = std::mem::take(&mut early);
            if !batch.is_empty() {
                tally.add(
                    store
                        .import_rows(who, flow, std::mem::take(&mut batch))
                        .await?,
                );
            }
            tally.rejected.sort_by_key(|r| r.line);
            let reached = match stop {
                Some(None) => bytes.len() as u64,
                _ => file.bytes_read(),
            };
            imports::progress(store, id, read, reached, &tally, encoding).await?;
            read = 0;
        }
        match stop {
            None => {}
            Some(None) => return Ok(()),
            Some(Some(reason)) => return Err(Stop::File(reason)),
        }
    }
}
