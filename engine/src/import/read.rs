//! Reading a partner's CSV file: its encoding, its header, and its rows with their line numbers.
//!
//! Rows are split on bytes and each cell is decoded on its own. That is safe for Shift_JIS,
//! whose second bytes never take the values of a comma, tab, quote or line break, and it
//! means one undecodable cell rejects its row rather than the file.

use std::borrow::Cow;

use tabiji_model::import::{Encoding, column_name};

/// The encoding a file was read with, after `auto` chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Used {
    Utf8,
    ShiftJis,
}

impl Used {
    pub fn name(self) -> &'static str {
        match self {
            Used::Utf8 => "utf-8",
            Used::ShiftJis => "shift_jis",
        }
    }

    fn decode(self, bytes: &[u8]) -> Option<Cow<'_, str>> {
        match self {
            Used::Utf8 => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
            Used::ShiftJis => {
                encoding_rs::SHIFT_JIS.decode_without_bom_handling_and_without_replacement(bytes)
            }
        }
    }

    fn decode_lossy(self, bytes: &[u8]) -> Cow<'_, str> {
        match self {
            Used::Utf8 => String::from_utf8_lossy(bytes),
            Used::ShiftJis => encoding_rs::SHIFT_JIS.decode_without_bom_handling(bytes).0,
        }
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// How many bytes `auto` looks at when the file is not UTF-8 throughout.
const SNIFF_BYTES: usize = 1 << 20;

/// The encoding to read `bytes` with, and the bytes without a UTF-8 byte-order mark.
pub fn detect(bytes: &[u8], wanted: Encoding) -> (Used, &[u8]) {
    let (has_bom, body) = match bytes.strip_prefix(UTF8_BOM) {
        Some(rest) => (true, rest),
        None => (false, bytes),
    };
    let used = match wanted {
        Encoding::Utf8 => Used::Utf8,
        Encoding::ShiftJis => Used::ShiftJis,
        Encoding::Auto if has_bom || std::str::from_utf8(body).is_ok() => Used::Utf8,
        Encoding::Auto => {
            // Neither may read everything (a damaged line): the one that fails on fewer lines.
            let sample = &body[..body.len().min(SNIFF_BYTES)];
            let failing = |used: Used| {
                sample
                    .split(|b| *b == b'\n')
                    .filter(|line| used.decode(line).is_none())
                    .count()
            };
            if failing(Used::ShiftJis) < failing(Used::Utf8) {
                Used::ShiftJis
            } else {
                Used::Utf8
            }
        }
    };
    (used, body)
}

/// One data row: decoded cells, or why it cannot be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The file's line the row starts on, from 1.
    pub line: u64,
    pub cells: Result<Vec<String>, String>,
    /// The row as it was, re-written as one CSV line, for the rejected-rows file.
    pub raw: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReadError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not an XLSX workbook Excel can open: {0}")]
    Workbook(String),
    #[error("the workbook has no sheet called {wanted:?}; its sheets are: {found}")]
    NoSheet { wanted: String, found: String },
    #[error("line {line}: the header cannot be read as {encoding}")]
    HeaderEncoding { line: u64, encoding: &'static str },
    #[error("line {line}: {message}")]
    Syntax { line: u64, message: String },
}

pub struct CsvFile<'a> {
    pub encoding: Used,
    /// Column names from the header line (folded as [`column_name`] does), or `1`, `2`, …
    pub header: Vec<String>,
    /// The first data line, to read the header's width from when there is none.
    rows: csv::Reader<&'a [u8]>,
    record: csv::ByteRecord,
    pending: Option<csv::ByteRecord>,
    delimiter: u8,
    body: &'a [u8],
    /// Bytes before `body` (a byte-order mark).
    skipped: u64,
    /// Line breaks counted so far, up to this byte: line numbers are found in one pass.
    lines_before: (usize, u64),
}

impl<'a> CsvFile<'a> {
    pub fn open(
        bytes: &'a [u8],
        wanted: Encoding,
        delimiter: u8,
        has_header: bool,
    ) -> Result<CsvFile<'a>, ReadError> {
        let (encoding, body) = detect(bytes, wanted);
        let mut rows = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(body);
        let mut first = csv::ByteRecord::new();
        let line = 1;
        let read = rows
            .read_byte_record(&mut first)
            .map_err(|e| syntax(&e, line))?;
        if !read {
            return Err(ReadError::Empty);
        }
        let (header, pending) = if has_header {
            let mut names = Vec::with_capacity(first.len());
            for cell in first.iter() {
                let text = encoding.decode(cell).ok_or(ReadError::HeaderEncoding {
                    line,
                    encoding: encoding.name(),
                })?;
                names.push(column_name(&text));
            }
            (names, None)
        } else {
            (
                (1..=first.len()).map(|n| n.to_string()).collect(),
                Some(first),
            )
        };
        Ok(CsvFile {
            encoding,
            header,
            rows,
            record: csv::ByteRecord::new(),
            pending,
            delimiter,
            body,
            skipped: (bytes.len() - body.len()) as u64,
            lines_before: (0, 0),
        })
    }

    /// How far into the file the rows read so far reach, in bytes.
    pub fn bytes_read(&self) -> u64 {
        self.skipped + self.rows.position().byte()
    }

    /// The line (from 1) of the record starting at `byte`. The reader records a record's
    /// start before it has consumed the `\n` of a CRLF ending the line before, so line breaks
    /// at the start are skipped here. A lone `\r` (old Mac files) ends a line too.
    fn line_at(&mut self, byte: u64) -> u64 {
        let mut start = (byte as usize).min(self.body.len());
        while start < self.body.len() && matches!(self.body[start], b'\r' | b'\n') {
            start += 1;
        }
        let (from, counted) = self.lines_before;
        let start = start.max(from);
        let span = &self.body[from..start];
        let more = span
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && span.get(i + 1) != Some(&b'\n')))
            .count() as u64;
        self.lines_before = (start, counted + more);
        counted + more + 1
    }

    /// The next row, or `None` at the end; an error only when the file cannot be read on.
    pub fn next_row(&mut self) -> Result<Option<Row>, ReadError> {
        loop {
            let record = match self.pending.take() {
                Some(record) => record,
                None => {
                    if !self
                        .rows
                        .read_byte_record(&mut self.record)
                        .map_err(|e| syntax(&e, self.rows.position().line()))?
                    {
                        return Ok(None);
                    }
                    std::mem::take(&mut self.record)
                }
            };
            let start = record.position().map_or(0, |p| p.byte());
            let line = self.line_at(start);
            // Blank lines carry nothing; partners' files often end with some.
            if record.len() == 1 && record[0].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let end = self.rows.position().byte();
            let span = &self.body
                [(start as usize).min(self.body.len())..(end as usize).min(self.body.len())];
            let quotes = span.iter().filter(|b| **b == b'"').count();
            let at_end = end as usize >= self.body.len();
            if at_end && quotes % 2 == 1 && span.contains(&b'\n') {
                // A quote opened and never closed took in the rest of the file.
                return Err(ReadError::Syntax {
                    line,
                    message: "a quoted cell starting on this line is never closed".into(),
                });
            }
            let raw = self.raw(&record);
            let cells = if record.len() != self.header.len() {
                let mut reason = format!(
                    "has {} columns where the header has {}",
                    record.len(),
                    self.header.len()
                );
                if span.iter().filter(|b| **b == b'\n').count() > 1 {
                    reason.push_str(&format!(
                        " (it runs on to line {}: is a quote not closed?)",
                        self.line_at(end).saturating_sub(1)
                    ));
                }
                Err(reason)
            } else {
                self.decode(&record)
            };
            return Ok(Some(Row { line, cells, raw }));
        }
    }

    fn decode(&self, record: &csv::ByteRecord) -> Result<Vec<String>, String> {
        let mut cells = Vec::with_capacity(record.len());
        for (n, cell) in record.iter().enumerate() {
            match self.encoding.decode(cell) {
                Some(text) => cells.push(text.into_owned()),
                None => {
                    return Err(format!(
                        "column {} ({}) is not valid {}",
                        n + 1,
                        self.header[n],
                        self.encoding.name()
                    ));
                }
            }
        }
        Ok(cells)
    }

    fn raw(&self, record: &csv::ByteRecord) -> String {
        let mut out = csv::WriterBuilder::new()
            .delimiter(self.delimiter)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        let decoded: Vec<Cow<str>> = record
            .iter()
            .map(|cell| self.encoding.decode_lossy(cell))
            .collect();
        let _ = out.write_record(decoded.iter().map(|c| c.as_bytes()));
        let bytes = out.into_inner().unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .trim_end_matches('\n')
            .to_string()
    }
}

/// Columns an XLSX sheet may use (a partner file has tens).
const MAX_XLSX_COLUMNS: u32 = 1_000;

/// An Excel workbook's sheet: the header and rows, line numbers being Excel's row numbers.
pub struct XlsxFile {
    pub header: Vec<String>,
    rows: std::vec::IntoIter<(u64, Vec<calamine::Data>)>,
    total_rows: usize,
    file_bytes: u64,
}

impl XlsxFile {
    /// Reads the sheet's cells. calamine can panic on some damaged workbooks (an arithmetic
    /// overflow on a cell reference with many letters, found by the property tests below): a
    /// partner's file must fail its run, not the worker, so a panic there is a refused file.
    pub fn open(
        bytes: &[u8],
        sheet: Option<&str>,
        has_header: bool,
    ) -> Result<XlsxFile, ReadError> {
        std::panic::catch_unwind(|| Self::read(bytes, sheet, has_header)).unwrap_or_else(|_| {
            Err(ReadError::Workbook(
                "the workbook is damaged (its cells could not be read)".into(),
            ))
        })
    }

    fn read(bytes: &[u8], sheet: Option<&str>, has_header: bool) -> Result<XlsxFile, ReadError> {
        use calamine::{Reader, Xlsx, open_workbook_from_rs};
        let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes))
            .map_err(|e: calamine::XlsxError| ReadError::Workbook(e.to_string()))?;
        let names = book.sheet_names();
        let name = match sheet {
            Some(name) if names.iter().any(|n| n == name) => name.to_string(),
            Some(name) => {
                return Err(ReadError::NoSheet {
                    wanted: name.to_string(),
                    found: names.join(", "),
                });
            }
            None => names.first().cloned().ok_or(ReadError::Empty)?,
        };
        // Cells are read one by one and kept only where they hold something: a sheet is never
        // laid out as a rectangle, which a few bytes naming a far corner (XFD1048576) would make
        // billions of cells.
        let mut reader = book
            .worksheet_cells_reader(&name)
            .map_err(|e| ReadError::Workbook(e.to_string()))?;
        let mut by_row: std::collections::BTreeMap<u32, Vec<(u32, calamine::Data)>> =
            std::collections::BTreeMap::new();
        let mut width = 0u32;
        while let Some(cell) = reader
            .next_cell()
            .map_err(|e| ReadError::Workbook(e.to_string()))?
        {
            let (row, column) = cell.get_position();
            let value = calamine::Data::from(cell.get_value().clone());
            if value == calamine::Data::Empty {
                continue;
            }
            if column >= MAX_XLSX_COLUMNS {
                return Err(ReadError::Workbook(format!(
                    "row {} has a cell in column {}; at most {MAX_XLSX_COLUMNS} columns are read",
                    row + 1,
                    column + 1
                )));
            }
            width = width.max(column + 1);
            by_row.entry(row).or_default().push((column, value));
        }
        let mut rows: Vec<(u64, Vec<calamine::Data>)> = by_row
            .into_iter()
            .map(|(row, cells)| {
                let mut dense = vec![calamine::Data::Empty; width as usize];
                for (column, value) in cells {
                    dense[column as usize] = value;
                }
                (u64::from(row) + 1, dense)
            })
            .collect();
        if rows.is_empty() {
            return Err(ReadError::Empty);
        }
        let header = if has_header {
            let (_, names) = rows.remove(0);
            names
                .iter()
                .map(|c| column_name(&xlsx_text(c).unwrap_or_default()))
                .collect()
        } else {
            (1..=width).map(|n| n.to_string()).collect()
        };
        Ok(XlsxFile {
            header,
            total_rows: rows.len(),
            file_bytes: bytes.len() as u64,
            rows: rows.into_iter(),
        })
    }

    /// The workbook is unpacked before any row is read, so its progress is its size times the
    /// share of its rows read.
    pub fn bytes_read(&self) -> u64 {
        let done = (self.total_rows - self.rows.len()) as u64;
        self.file_bytes * done / self.total_rows.max(1) as u64
    }

    pub fn next_row(&mut self) -> Option<Row> {
        let (line, cells) = self.rows.next()?;
        let texts: Vec<Result<String, String>> = cells.iter().map(xlsx_text).collect();
        let mut raw = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        let _ = raw.write_record(texts.iter().map(|t| match t {
            Ok(text) => text.as_str(),
            Err(_) => "#ERROR",
        }));
        let raw = String::from_utf8_lossy(&raw.into_inner().unwrap_or_default())
            .trim_end_matches('\n')
            .to_string();
        let cells = texts
            .into_iter()
            .enumerate()
            .map(|(n, text)| {
                text.map_err(|e| {
                    let name = self.header.get(n).map(String::as_str).unwrap_or("");
                    format!("column {} ({name}) holds the Excel error {e}", n + 1)
                })
            })
            .collect();
        Some(Row { line, cells, raw })
    }
}

/// A cell as the text a CSV file would hold: whole numbers without a decimal point, dates as
/// `YYYY-MM-DD` (with the time when there is one); an Excel error is an error.
fn xlsx_text(cell: &calamine::Data) -> Result<String, String> {
    use calamine::Data;
    Ok(match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(n) => n.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        // Calendar parts rather than the serial: a workbook on the 1904 date system (older
        // Excel for Mac) counts days from another epoch.
        Data::DateTime(d) if d.is_datetime() => {
            let (year, month, day, hour, minute, second, _) = d.to_ymd_hms_milli();
            if (hour, minute, second) == (0, 0, 0) {
                format!("{year:04}-{month:02}-{day:02}")
            } else {
                format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}")
            }
        }
        Data::DateTime(d) => d.as_f64().to_string(),
        Data::Error(e) => return Err(e.to_string()),
    })
}

fn syntax(error: &csv::Error, line: u64) -> ReadError {
    let line = error.position().map_or(line, |p| p.line());
    ReadError::Syntax {
        line,
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sjis(text: &str) -> Vec<u8> {
        let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(text);
        assert!(!unmappable, "{text} is all Shift_JIS");
        bytes.into_owned()
    }

    fn rows(file: &mut CsvFile) -> Vec<Row> {
        let mut out = Vec::new();
        while let Some(row) = file.next_row().unwrap() {
            out.push(row);
        }
        out
    }

    #[test]
    fn shift_jis_files_are_detected_and_read() {
        let bytes = sjis(
            "メール,氏名,備考\r\na@example.jp,山田,\"表示①\r\n改行あり\"\r\nb@example.jp,ソ十,能\r\n",
        );
        let mut file = CsvFile::open(&bytes, Encoding::Auto, b',', true).unwrap();
        assert_eq!(file.encoding, Used::ShiftJis);
        assert_eq!(file.header, vec!["メール", "氏名", "備考"]);
        let rows = rows(&mut file);
        assert_eq!(rows[0].line, 2);
        assert_eq!(
            rows[0].cells,
            Ok(vec![
                "a@example.jp".into(),
                "山田".into(),
                "表示①\r\n改行あり".into()
            ])
        );
        // ソ, 十 and 能 end in the byte of a backslash in Shift_JIS.
        assert_eq!(rows[1].line, 4);
        assert_eq!(
            rows[1].cells,
            Ok(vec!["b@example.jp".into(), "ソ十".into(), "能".into()])
        );
    }

    #[test]
    fn utf8_with_and_without_bom() {
        for bytes in [
            "\u{feff}メール,氏名\na@example.jp,山田\n"
                .as_bytes()
                .to_vec(),
            "メール,氏名\na@example.jp,山田\n".as_bytes().to_vec(),
        ] {
            let mut file = CsvFile::open(&bytes, Encoding::Auto, b',', true).unwrap();
            assert_eq!(file.encoding, Used::Utf8);
            assert_eq!(file.header, vec!["メール", "氏名"]);
            assert_eq!(
                rows(&mut file)[0].cells,
                Ok(vec!["a@example.jp".into(), "山田".into()])
            );
        }
    }

    #[test]
    fn bytes_read_follow_the_rows_past_a_byte_order_mark() {
        let bytes = "\u{feff}a,b\n1,2\n\"3\n3\",4\n".as_bytes();
        let mut file = CsvFile::open(bytes, Encoding::Auto, b',', true).unwrap();
        assert_eq!(file.bytes_read(), 3 + 4, "the mark and the header");
        file.next_row().unwrap().unwrap();
        assert_eq!(file.bytes_read(), 3 + 4 + 4);
        file.next_row().unwrap().unwrap();
        assert_eq!(file.bytes_read(), bytes.len() as u64, "a quoted line break");
        assert!(file.next_row().unwrap().is_none());
        assert_eq!(file.bytes_read(), bytes.len() as u64);
    }

    #[test]
    fn a_bad_cell_or_width_rejects_only_its_row() {
        let mut bytes = sjis("メール,氏名\na@example.jp,山田\nb@example.jp,");
        bytes.extend_from_slice(b"\x82\xff");
        bytes.extend_from_slice(&sjis("\nc@example.jp\n\n"));
        let mut file = CsvFile::open(&bytes, Encoding::Auto, b',', true).unwrap();
        assert_eq!(file.encoding, Used::ShiftJis);
        let rows = rows(&mut file);
        assert_eq!(rows.len(), 3);
        assert!(rows[0].cells.is_ok());
        assert_eq!(
            rows[1].cells,
            Err("column 2 (氏名) is not valid shift_jis".into())
        );
        assert_eq!(rows[1].line, 3);
        assert_eq!(
            rows[2].cells,
            Err("has 1 columns where the header has 2".into())
        );
        assert_eq!(rows[2].raw, "c@example.jp");
    }

    #[test]
    fn an_unclosed_quote_is_named_not_swallowed() {
        let bytes = "メール,氏名\na@example.jp,\"山田\nb@example.jp,鈴木\nc@example.jp,佐藤\n";
        let mut file = CsvFile::open(bytes.as_bytes(), Encoding::Auto, b',', true).unwrap();
        assert_eq!(
            file.next_row(),
            Err(ReadError::Syntax {
                line: 2,
                message: "a quoted cell starting on this line is never closed".into()
            })
        );
        let bytes = "a,b\n1,\"x\n2,y\n3,\"z,w\n4,5\n";
        let mut file = CsvFile::open(bytes.as_bytes(), Encoding::Utf8, b',', true).unwrap();
        let rows = rows(&mut file);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(
            rows[0].cells,
            Err("has 3 columns where the header has 2 (it runs on to line 4: is a quote not closed?)".into())
        );
        assert_eq!(
            (rows[1].line, rows[1].cells.clone()),
            (5, Ok(vec!["4".into(), "5".into()]))
        );
    }

    #[test]
    fn blank_lines_and_old_mac_line_ends() {
        let mut bytes = b"a,b\r1,2\r\r3,4\r".to_vec();
        bytes.extend(std::iter::repeat_n(b" \n".iter().copied(), 200_000).flatten());
        bytes.extend_from_slice(b"5,6\n");
        let mut file = CsvFile::open(&bytes, Encoding::Utf8, b',', true).unwrap();
        let rows = rows(&mut file);
        assert_eq!(
            rows.iter().map(|r| r.line).collect::<Vec<_>>(),
            vec![2, 4, 200_005]
        );
    }

    #[test]
    fn headerless_files_number_their_columns() {
        let bytes = b"a@example.jp\t1\nb@example.jp\t2\n";
        let mut file = CsvFile::open(bytes, Encoding::Utf8, b'\t', false).unwrap();
        assert_eq!(file.header, vec!["1", "2"]);
        let rows = rows(&mut file);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 1);
    }

    #[test]
    fn excel_dates_read_the_same_on_the_1900_and_the_1904_date_systems() {
        use calamine::{Data, ExcelDateTime, ExcelDateTimeType};
        let date = |serial: f64, is_1904: bool| {
            xlsx_text(&Data::DateTime(ExcelDateTime::new(
                serial,
                ExcelDateTimeType::DateTime,
                is_1904,
            )))
        };
        assert_eq!(date(32964.0, false), Ok("1990-04-01".into()));
        assert_eq!(date(32964.0 - 1462.0, true), Ok("1990-04-01".into()));
        assert_eq!(
            date(46354.5, false),
            Ok("2026-11-28T12:00:00".into()),
            "a time of day is kept"
        );
    }

    #[test]
    fn xlsx_sheets_read_as_text_rows_with_excel_row_numbers() {
        use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
        let mut book = Workbook::new();
        book.add_worksheet().set_name("Other").unwrap();
        let sheet = book.add_worksheet().set_name("会員").unwrap();
        let date = Format::new().set_num_format("yyyy/mm/dd");
        for (c, name) in ["メール", "氏名", "生年月日", "人数"].iter().enumerate() {
            sheet.write_string(0, c as u16, *name).unwrap();
        }
        sheet.write_string(1, 0, "a@example.jp").unwrap();
        sheet.write_string(1, 1, "山田").unwrap();
        sheet
            .write_date_with_format(1, 2, ExcelDateTime::from_ymd(1990, 4, 1).unwrap(), &date)
            .unwrap();
        sheet.write_number(1, 3, 3.0).unwrap();
        sheet.write_string(3, 0, "b@example.jp").unwrap();
        sheet.write_number(3, 3, 2.5).unwrap();
        let bytes = book.save_to_buffer().unwrap();

        let mut file = XlsxFile::open(&bytes, Some("会員"), true).unwrap();
        assert_eq!(file.header, vec!["メール", "氏名", "生年月日", "人数"]);
        assert_eq!(file.bytes_read(), 0);
        let first = file.next_row().unwrap();
        assert_eq!(
            file.bytes_read(),
            bytes.len() as u64 / 2,
            "one of two rows read: half the workbook"
        );
        assert_eq!(first.line, 2);
        assert_eq!(
            first.cells,
            Ok(vec![
                "a@example.jp".into(),
                "山田".into(),
                "1990-04-01".into(),
                "3".into()
            ])
        );
        let second = file.next_row().unwrap();
        assert_eq!(
            second.line, 4,
            "the blank row 3 is skipped, the numbers are Excel's"
        );
        assert_eq!(second.raw, "b@example.jp,,,2.5");
        assert_eq!(file.bytes_read(), bytes.len() as u64);
        assert!(file.next_row().is_none());
        assert!(matches!(
            XlsxFile::open(&bytes, Some("Missing"), true),
            Err(ReadError::NoSheet { .. })
        ));
        assert!(matches!(
            XlsxFile::open(b"not a workbook", None, true),
            Err(ReadError::Workbook(_))
        ));
    }

    #[test]
    fn far_corners_of_a_sheet_cost_nothing() {
        use rust_xlsxwriter::Workbook;
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 0, "mail").unwrap();
        sheet.write_string(1_048_575, 0, "last@example.jp").unwrap();
        let bytes = book.save_to_buffer().unwrap();
        let mut file = XlsxFile::open(&bytes, None, true).unwrap();
        assert_eq!(file.next_row().unwrap().line, 1_048_576);

        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 0, "mail").unwrap();
        sheet.write_string(1_048_575, 16_383, "corner").unwrap();
        let bytes = book.save_to_buffer().unwrap();
        let refused = XlsxFile::open(&bytes, None, true).err().unwrap();
        assert!(
            refused.to_string().contains("at most 1000 columns"),
            "{refused}"
        );
    }

    #[test]
    fn empty_files_say_so() {
        assert!(matches!(
            CsvFile::open(b"", Encoding::Auto, b',', true),
            Err(ReadError::Empty)
        ));
    }

    mod any_input {
        //! Partner files are untrusted: whatever the bytes, reading ends (with rows, rejected
        //! rows or an error naming the line) and never panics or loops.

        use proptest::prelude::*;

        use super::*;

        fn encodings() -> impl Strategy<Value = Encoding> {
            prop::sample::select(vec![Encoding::Auto, Encoding::Utf8, Encoding::ShiftJis])
        }

        fn delimiters() -> impl Strategy<Value = u8> {
            prop::sample::select(vec![b',', b'\t', b';', b'|'])
        }

        /// Reads the whole file; the rows' lines only grow and stay within the file.
        fn read_all(bytes: &[u8], encoding: Encoding, delimiter: u8, header: bool) {
            let Ok(mut file) = CsvFile::open(bytes, encoding, delimiter, header) else {
                return;
            };
            // Lines end with \n, \r\n or a lone \r (old Mac files), as the reader counts them.
            let lone_cr = bytes
                .windows(2)
                .filter(|pair| pair[0] == b'\r' && pair[1] != b'\n')
                .count()
                + usize::from(bytes.last() == Some(&b'\r'));
            let lines = (bytes.iter().filter(|b| **b == b'\n').count() + lone_cr) as u64 + 1;
            let mut last = 0;
            let mut rows = 0;
            while let Ok(Some(row)) = file.next_row() {
                assert!(
                    row.line >= last && row.line <= lines,
                    "{} of {lines}",
                    row.line
                );
                last = row.line;
                rows += 1;
                assert!(rows <= lines, "more rows than lines");
            }
        }

        /// A small workbook to damage.
        fn workbook() -> &'static [u8] {
            static BOOK: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            BOOK.get_or_init(|| {
                let mut book = rust_xlsxwriter::Workbook::new();
                let sheet = book.add_worksheet();
                for (r, row) in [["メール", "氏名"], ["a@example.jp", "山田"]]
                    .iter()
                    .enumerate()
                {
                    for (c, text) in row.iter().enumerate() {
                        sheet.write_string(r as u32, c as u16, *text).unwrap();
                    }
                }
                sheet.write_number(2, 1, 45292.0).unwrap();
                book.save_to_buffer().unwrap()
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn any_bytes(
                bytes in prop::collection::vec(any::<u8>(), 0..1500),
                encoding in encodings(),
                delimiter in delimiters(),
                header in any::<bool>(),
            ) {
                read_all(&bytes, encoding, delimiter, header);
            }

            #[test]
            fn csv_like_text(
                text in "[a-z0-9,;|\"\t\r\n 　山田ｱﾞ①～\u{FEFF}]{0,300}",
                encoding in encodings(),
                delimiter in delimiters(),
                header in any::<bool>(),
            ) {
                read_all(text.as_bytes(), encoding, delimiter, header);
                let (shift_jis, _, _) = encoding_rs::SHIFT_JIS.encode(&text);
                read_all(&shift_jis, encoding, delimiter, header);
            }

            #[test]
            fn damaged_workbooks(
                damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
                header in any::<bool>(),
            ) {
                let mut bytes = workbook().to_vec();
                for (at, byte) in damage {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                if let Ok(mut file) = XlsxFile::open(&bytes, None, header) {
                    while file.next_row().is_some() {}
                }
            }
        }
    }
}
