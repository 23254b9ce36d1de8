//! `POST /api/data/{entity}/export`: the records a filter matches (a search, a segment, a
//! list, an output table used as a list) as a file people open in Excel (CF-6, MA-11): CSV in
//! UTF-8 with a byte-order mark, CSV in Shift_JIS for older Excel, or XLSX. CSV is streamed a
//! page at a time; XLSX is written row by row to a temporary file (constant memory) and then
//! streamed from it.

use axum::Router;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::stream;
use serde::Deserialize;
use serde_json::Value as Json;
use tabiji_engine::export::cells::{cell, header_names, shift_jis, text};
use tabiji_model::export::HeaderNames;
use tabiji_model::zone::Zone;
use tabiji_storage::Store;
use tabiji_storage::export::{Export, ExportRequest};
use tabiji_storage::search::parse_zone;

use super::{Caller, JsonBody, Path, Query};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/data/{entity}/export", post(export))
}

/// Excel's last row, less the header.
const XLSX_MAX_ROWS: u64 = 1_048_575;
/// The most characters Excel holds in one cell.
const XLSX_MAX_CELL_CHARS: usize = 32_767;

#[derive(Deserialize)]
struct ExportQuery {
    /// `csv` (default), `csv_sjis` or `xlsx`.
    format: Option<String>,
    /// The header line: field keys (`keys`, default) or labels (`ja`, `en`).
    header: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Csv,
    CsvShiftJis,
    Xlsx,
}

async fn export(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(entity): Path<String>,
    Query(query): Query<ExportQuery>,
    JsonBody(body): JsonBody<ExportRequest>,
) -> ApiResult<Response> {
    let format = match query.format.as_deref().unwrap_or("csv") {
        "csv" => Format::Csv,
        "csv_sjis" => Format::CsvShiftJis,
        "xlsx" => Format::Xlsx,
        other => {
            return Err(ApiError::BadRequest(format!(
                "format: {other:?} is not csv, csv_sjis or xlsx"
            )));
        }
    };
    let header = match query.header.as_deref().unwrap_or("keys") {
        "keys" => HeaderNames::Keys,
        "ja" => HeaderNames::Ja,
        "en" => HeaderNames::En,
        other => {
            return Err(ApiError::BadRequest(format!(
                "header: {other:?} is not keys, ja or en"
            )));
        }
    };
    let zone = parse_zone(body.zone.as_deref())?;
    let now = state.clock.now();
    if format == Format::Xlsx {
        let filter = body
            .filter
            .clone()
            .unwrap_or(tabiji_model::filter::Filter::All(vec![]));
        let count = state
            .store
            .count_matching(&who, &entity, &filter, zone, now)
            .await?;
        if count > XLSX_MAX_ROWS {
            return Err(ApiError::BadRequest(format!(
                "{count} records are more than Excel's {XLSX_MAX_ROWS} rows: export them as CSV"
            )));
        }
    }
    let export = state.store.export(&who, &entity, &body, now).await?;
    let stamp = zone.local(now).format("%Y%m%d-%H%M");
    let (content_type, extension) = match format {
        Format::Csv | Format::CsvShiftJis => ("text/csv", "csv"),
        Format::Xlsx => (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
        ),
    };
    let disposition = format!("attachment; filename=\"{entity}-{stamp}.{extension}\"");
    let names = header_names(export.fields(), header);
    let body = match format {
        Format::Xlsx => xlsx(state.store.clone(), export, names, zone).await?,
        _ => csv_stream(state.store.clone(), export, names, zone, format),
    };
    Ok((
        [
            (CONTENT_TYPE, content_type.to_string()),
            (CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// Logs a cancelled export when the reader goes away before the end.
struct Guard {
    store: Store,
    export: Option<Export>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(export) = self.export.take() {
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(e) = export.finish(&store, false).await {
                    tracing::error!(error = %e, "a cancelled export could not be logged");
                }
            });
        }
    }
}

fn csv_stream(
    store: Store,
    export: Export,
    names: Vec<String>,
    zone: Zone,
    format: Format,
) -> Body {
    let guard = Guard {
        store,
        export: Some(export),
    };
    let start = (guard, Some(names), zone, format);
    let chunks = stream::unfold(Some(start), |state| async move {
        let (mut guard, names, zone, format) = state?;
        let mut start = Vec::with_capacity(1 << 20);
        if names.is_some() && format == Format::Csv {
            // Excel reads a CSV file as UTF-8 only when it begins with a byte-order mark.
            start.extend_from_slice(b"\xEF\xBB\xBF");
        }
        let mut out = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(start);
        if let Some(names) = &names
            && let Err(e) = out.write_record(names)
        {
            return Some((Err(std::io::Error::other(e)), None));
        }
        let export = guard.export.as_mut()?;
        let page = match export.next_page(&guard.store).await {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "an export stopped");
                return Some((Err(std::io::Error::other(e.to_string())), None));
            }
        };
        let Some(page) = page else {
            let export = guard.export.take()?;
            if let Err(e) = export.finish(&guard.store, true).await {
                tracing::error!(error = %e, "a finished export could not be logged");
            }
            // An export of nothing is still a file with its header line.
            return names.map(|_| (Ok(encode(out, format)), None));
        };
        let fields = export.fields();
        for row in &page {
            let written = row
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| {
                    let field = i.checked_sub(1).and_then(|f| fields.get(f));
                    out.write_field(cell(field, v, &zone).as_bytes())
                })
                .and_then(|()| out.write_record(None::<&[u8]>));
            if let Err(e) = written {
                return Some((Err(std::io::Error::other(e)), None));
            }
        }
        Some((Ok(encode(out, format)), Some((guard, None, zone, format))))
    });
    Body::from_stream(chunks)
}

/// The written chunk, in Shift_JIS when asked.
fn encode(out: csv::Writer<Vec<u8>>, format: Format) -> Bytes {
    let utf8 = out.into_inner().unwrap_or_default();
    if format != Format::CsvShiftJis {
        return Bytes::from(utf8);
    }
    Bytes::from(shift_jis(&utf8))
}

async fn xlsx(store: Store, export: Export, names: Vec<String>, zone: Zone) -> ApiResult<Body> {
    use rust_xlsxwriter::Workbook;
    let bad = |e: rust_xlsxwriter::XlsxError| {
        ApiError::BadRequest(format!("the XLSX file could not be written: {e}"))
    };
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet_with_constant_memory().map_err(bad)?;
    for (c, name) in names.iter().enumerate() {
        sheet.write_string(0, c as u16, name).map_err(bad)?;
    }
    let fields = export.fields().to_vec();
    // A request dropped while the workbook is built (the user gave up) is logged cancelled.
    let mut guard = Guard {
        store: store.clone(),
        export: Some(export),
    };
    let mut r: u32 = 1;
    while let Some(page) = match guard.export.as_mut() {
        Some(export) => export.next_page(&store).await?,
        None => None,
    } {
        for row in &page {
            for (c, value) in row.iter().enumerate() {
                let field = c.checked_sub(1).and_then(|f| fields.get(f));
                let c = c as u16;
                match value {
                    Json::Null => {}
                    Json::Number(n) => {
                        sheet
                            .write_number(r, c, n.as_f64().unwrap_or(0.0))
                            .map_err(bad)?;
                    }
                    Json::Bool(b) => {
                        sheet.write_boolean(r, c, *b).map_err(bad)?;
                    }
                    // Typed string cells are never formulas; Excel holds at most 32,767
                    // characters in one.
                    other => {
                        let text = text(field, other, &zone);
                        let end = text
                            .char_indices()
                            .nth(XLSX_MAX_CELL_CHARS)
                            .map_or(text.len(), |(at, _)| at);
                        sheet.write_string(r, c, &text[..end]).map_err(bad)?;
                    }
                }
            }
            r += 1;
        }
    }
    if let Some(export) = guard.export.take() {
        export.finish(&store, true).await?;
    }
    // An unnamed temporary file: nothing to clean up, nothing another user could plant.
    let written = tokio::task::spawn_blocking(move || {
        let mut file = tabiji_engine::export::unnamed_temp_file(&std::env::temp_dir())?;
        workbook
            .save_to_writer(&mut file)
            .map_err(std::io::Error::other)?;
        std::io::Seek::rewind(&mut file)?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| ApiError::BadRequest(format!("the XLSX file could not be written: {e}")))?
    .map_err(|e| ApiError::BadRequest(format!("the XLSX file could not be written: {e}")))?;
    let file = tokio::fs::File::from_std(written);
    let chunks = stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 64 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buffer)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    Ok(Body::from_stream(chunks))
}
