//! A typed client for the Sheets v4 calls syncctl makes: `values.get`, `values.batchGet`,
//! `values.batchUpdate`, `spreadsheets.get` (tab properties and merges) and
//! `spreadsheets.batchUpdate` (only `appendDimension`, to grow the grid before writing rows
//! past its end). Never `values.append`: a retried append duplicates rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use syncctl_http::{HttpClient, Request};

use crate::SheetsError;

/// How many calls of each kind a client made (reads count against Google's read quota,
/// writes against the write quota).
#[derive(Debug, Default)]
pub struct CallCounts {
    reads: AtomicU64,
    writes: AtomicU64,
    cells_read: AtomicU64,
    cells_written: AtomicU64,
}

impl CallCounts {
    /// Read calls (`values.get`, `values.batchGet`, `spreadsheets.get`).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
    /// Write calls (`values.batchUpdate`, `spreadsheets.batchUpdate`).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
    /// Cells returned by reads.
    pub fn cells_read(&self) -> u64 {
        self.cells_read.load(Ordering::Relaxed)
    }
    /// Cells sent by writes.
    pub fn cells_written(&self) -> u64 {
        self.cells_written.load(Ordering::Relaxed)
    }
}

/// A range of values (`ValueRange`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueRange {
    /// The range in A1 notation.
    #[serde(default)]
    pub range: String,
    /// `ROWS` (what syncctl always asks for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major_dimension: Option<String>,
    /// Rows of cells; trailing empty rows and cells are left out by Sheets.
    #[serde(default)]
    pub values: Vec<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchGetValuesResponse {
    #[serde(default)]
    value_ranges: Vec<ValueRange>,
}

/// What `values.batchUpdate` reports.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchUpdateValuesResponse {
    /// Cells written.
    #[serde(default)]
    pub total_updated_cells: u64,
    /// Rows touched.
    #[serde(default)]
    pub total_updated_rows: u64,
    /// One per range sent, in the order sent.
    #[serde(default)]
    pub responses: Vec<UpdateValuesResponse>,
}

/// What one range of a `values.batchUpdate` reports.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateValuesResponse {
    /// The range written.
    #[serde(default)]
    pub updated_range: String,
    /// The range's cells after the write (asked for with `includeValuesInResponse`).
    #[serde(default)]
    pub updated_data: Option<ValueRange>,
}

/// One tab's properties and merged ranges (from `spreadsheets.get`).
#[derive(Debug, Clone, PartialEq)]
pub struct TabInfo {
    /// `sheetId`.
    pub sheet_id: i64,
    /// The tab's name.
    pub title: String,
    /// Rows in the grid (writing past them fails with "exceeds grid limits").
    pub row_count: u64,
    /// Columns in the grid.
    pub column_count: u64,
    /// Merged ranges: `(startRow, endRow, startCol, endCol)`, 0-based, end exclusive.
    pub merges: Vec<(u64, u64, u64, u64)>,
}

/// The spreadsheet's time zone and tabs.
#[derive(Debug, Clone, PartialEq)]
pub struct SpreadsheetInfo {
    /// `properties.timeZone` (`Etc/GMT`, `America/New_York`).
    pub time_zone: Option<String>,
    /// Every tab (with a header asked for: the tab it was read from).
    pub tabs: Vec<TabInfo>,
    /// Row 1 of the tab asked for by [`SheetsClient::spreadsheet_with_header`], as
    /// `values.get` would return it (unformatted).
    pub header_row: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpreadsheetBody {
    #[serde(default)]
    properties: Option<SpreadsheetProps>,
    #[serde(default)]
    sheets: Vec<SheetBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpreadsheetProps {
    #[serde(default)]
    time_zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SheetBody {
    properties: SheetProps,
    #[serde(default)]
    merges: Vec<GridRange>,
    /// Cells of the ranges asked for (`GridData`), only when asked.
    #[serde(default)]
    data: Vec<GridData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GridData {
    #[serde(default)]
    row_data: Vec<RowData>,
}

#[derive(Deserialize)]
struct RowData {
    #[serde(default)]
    values: Vec<CellData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CellData {
    #[serde(default)]
    effective_value: Option<ExtendedValue>,
}

/// A cell's value (`ExtendedValue`): one of these is set, none for an empty cell.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExtendedValue {
    #[serde(default)]
    string_value: Option<String>,
    #[serde(default)]
    number_value: Option<serde_json::Number>,
    #[serde(default)]
    bool_value: Option<bool>,
    #[serde(default)]
    error_value: Option<ErrorValue>,
}

#[derive(Deserialize)]
struct ErrorValue {
    #[serde(default, rename = "type")]
    kind: String,
}

impl ExtendedValue {
    /// The cell as `values.get` with `UNFORMATTED_VALUE` would give it.
    fn into_value(self) -> Value {
        if let Some(s) = self.string_value {
            Value::String(s)
        } else if let Some(n) = self.number_value {
            Value::Number(n)
        } else if let Some(b) = self.bool_value {
            Value::Bool(b)
        } else if let Some(e) = self.error_value {
            // Sheets renders errors as their code (#REF!, #N/A); the type names it.
            Value::String(format!("#{}", e.kind))
        } else {
            Value::Null
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SheetProps {
    #[serde(default)]
    sheet_id: i64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    grid_properties: Option<GridProps>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GridProps {
    #[serde(default)]
    row_count: u64,
    #[serde(default)]
    column_count: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GridRange {
    #[serde(default)]
    start_row_index: u64,
    #[serde(default)]
    end_row_index: u64,
    #[serde(default)]
    start_column_index: u64,
    #[serde(default)]
    end_column_index: u64,
}

/// The Sheets values client for one spreadsheet.
#[derive(Debug, Clone)]
pub struct SheetsClient {
    http: HttpClient,
    spreadsheet_id: String,
    counts: Arc<CallCounts>,
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn cells_in(ranges: &[ValueRange]) -> u64 {
    ranges
        .iter()
        .flat_map(|r| r.values.iter())
        .map(|row| row.iter().filter(|c| !c.is_null()).count() as u64)
        .sum()
}

impl SheetsClient {
    /// A client for `spreadsheet_id` over `http` (which carries the auth and retry policy).
    #[must_use]
    pub fn new(http: HttpClient, spreadsheet_id: impl Into<String>) -> Self {
        Self {
            http,
            spreadsheet_id: spreadsheet_id.into(),
            counts: Arc::new(CallCounts::default()),
        }
    }

    /// The calls made so far.
    #[must_use]
    pub fn counts(&self) -> &CallCounts {
        &self.counts
    }

    /// The spreadsheet id.
    #[must_use]
    pub fn spreadsheet_id(&self) -> &str {
        &self.spreadsheet_id
    }

    fn base(&self) -> String {
        format!("/v4/spreadsheets/{}", encode_segment(&self.spreadsheet_id))
    }

    /// `values.get` of one range, unformatted (dates as serial numbers), by rows.
    ///
    /// # Errors
    /// Classified HTTP errors ([`SheetsError::Api`] carries Google's message).
    pub async fn values_get(&self, range: &str) -> Result<ValueRange, SheetsError> {
        let req = Request::get(format!("{}/values/{}", self.base(), encode_segment(range)))
            .query("valueRenderOption", "UNFORMATTED_VALUE")
            .query("dateTimeRenderOption", "SERIAL_NUMBER")
            .query("majorDimension", "ROWS");
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
        let vr: ValueRange = self.http.send_json(req).await?;
        self.counts
            .cells_read
            .fetch_add(cells_in(std::slice::from_ref(&vr)), Ordering::Relaxed);
        Ok(vr)
    }

    /// `values.batchGet` of several ranges in one call, in the order asked.
    ///
    /// # Errors
    /// As [`Self::values_get`], and a decode error when the answer has fewer ranges.
    pub async fn values_batch_get(
        &self,
        ranges: &[String],
    ) -> Result<Vec<ValueRange>, SheetsError> {
        let mut req = Request::get(format!("{}/values:batchGet", self.base()))
            .query("valueRenderOption", "UNFORMATTED_VALUE")
            .query("dateTimeRenderOption", "SERIAL_NUMBER")
            .query("majorDimension", "ROWS");
        for r in ranges {
            req = req.query("ranges", r.as_str());
        }
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
        let body: BatchGetValuesResponse = self.http.send_json(req).await?;
        if body.value_ranges.len() != ranges.len() {
            return Err(SheetsError::Api {
                status: 200,
                google_status: None,
                message: format!(
                    "values.batchGet returned {} ranges for {} asked",
                    body.value_ranges.len(),
                    ranges.len()
                ),
                class: syncctl_core::ErrorClass::RemoteFailed,
            });
        }
        self.counts
            .cells_read
            .fetch_add(cells_in(&body.value_ranges), Ordering::Relaxed);
        Ok(body.value_ranges)
    }

    /// `values.batchUpdate` with `valueInputOption=RAW`: every range explicit, nothing appended.
    /// The answer carries each range's cells as stored after the write (unformatted, dates as
    /// serial numbers), which is the write's read-back without a second call.
    ///
    /// Writing the same values to the same explicit cells twice leaves the sheet as once, so
    /// the call is retried like a read (unlike `values.append`).
    ///
    /// # Errors
    /// As [`Self::values_get`].
    pub async fn values_batch_update(
        &self,
        data: &[ValueRange],
    ) -> Result<BatchUpdateValuesResponse, SheetsError> {
        let req = Request::post(format!("{}/values:batchUpdate", self.base()))
            .json(serde_json::json!({
                "valueInputOption": "RAW",
                "includeValuesInResponse": true,
                "responseValueRenderOption": "UNFORMATTED_VALUE",
                "responseDateTimeRenderOption": "SERIAL_NUMBER",
                "data": data,
            }))
            .retry_safe();
        self.counts.writes.fetch_add(1, Ordering::Relaxed);
        self.counts
            .cells_written
            .fetch_add(cells_in(data), Ordering::Relaxed);
        Ok(self.http.send_json(req).await?)
    }

    /// `spreadsheets.get` of the time zone, every tab's properties and merged ranges.
    ///
    /// # Errors
    /// As [`Self::values_get`].
    pub async fn spreadsheet(&self) -> Result<SpreadsheetInfo, SheetsError> {
        self.get_spreadsheet(None).await
    }

    /// `spreadsheets.get` of the time zone, `tab`'s properties and merged ranges, and its row 1
    /// (the header) in the same call: `ranges` limits the answer to that tab.
    ///
    /// # Errors
    /// As [`Self::values_get`]; a tab that does not exist is Google's 400 "Unable to parse
    /// range".
    pub async fn spreadsheet_with_header(&self, tab: &str) -> Result<SpreadsheetInfo, SheetsError> {
        self.get_spreadsheet(Some(&crate::a1::row(tab, 1))).await
    }

    async fn get_spreadsheet(&self, range: Option<&str>) -> Result<SpreadsheetInfo, SheetsError> {
        let mut req = Request::get(self.base());
        req = match range {
            None => req.query(
                "fields",
                "properties(timeZone),sheets(properties(sheetId,title,gridProperties(rowCount,columnCount)),merges)",
            ),
            Some(r) => req.query("ranges", r).query(
                "fields",
                "properties(timeZone),sheets(properties(sheetId,title,gridProperties(rowCount,columnCount)),merges,data(rowData(values(effectiveValue))))",
            ),
        };
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
        let mut body: SpreadsheetBody = self.http.send_json(req).await?;
        let header_row: Vec<Value> = body
            .sheets
            .iter_mut()
            .find_map(|s| s.data.pop())
            .and_then(|mut g| (!g.row_data.is_empty()).then(|| g.row_data.swap_remove(0)))
            .map(|r| {
                r.values
                    .into_iter()
                    .map(|c| {
                        c.effective_value
                            .map_or(Value::Null, ExtendedValue::into_value)
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.counts
            .cells_read
            .fetch_add(header_row.len() as u64, Ordering::Relaxed);
        Ok(SpreadsheetInfo {
            header_row,
            time_zone: body.properties.and_then(|p| p.time_zone),
            tabs: body
                .sheets
                .into_iter()
                .map(|s| {
                    let g = s.properties.grid_properties.unwrap_or(GridProps {
                        row_count: 0,
                        column_count: 0,
                    });
                    TabInfo {
                        sheet_id: s.properties.sheet_id,
                        title: s.properties.title,
                        row_count: g.row_count,
                        column_count: g.column_count,
                        merges: s
                            .merges
                            .iter()
                            .map(|m| {
                                (
                                    m.start_row_index,
                                    m.end_row_index,
                                    m.start_column_index,
                                    m.end_column_index,
                                )
                            })
                            .collect(),
                    }
                })
                .collect(),
        })
    }

    /// The JSON size of `data` as a `values.batchUpdate` body carries it (for keeping requests
    /// under Google's recommended 2 MB).
    #[must_use]
    pub fn payload_bytes(data: &[ValueRange]) -> usize {
        data.iter()
            .map(|d| serde_json::to_vec(d).map_or(0, |v| v.len() + 1))
            .sum()
    }

    /// `spreadsheets.batchUpdate` with one `appendDimension`: adds `rows` empty rows at the end
    /// of the tab. Only answers the server refused (429) or that never left are retried: a
    /// resent append would add rows twice (harmless blanks, but not asked for).
    ///
    /// # Errors
    /// As [`Self::values_get`].
    pub async fn append_rows(&self, sheet_id: i64, rows: u64) -> Result<(), SheetsError> {
        let req = Request::post(format!("{}:batchUpdate", self.base())).json(serde_json::json!({
            "requests": [{"appendDimension": {"sheetId": sheet_id, "dimension": "ROWS", "length": rows}}],
            "includeSpreadsheetInResponse": false,
        }));
        self.counts.writes.fetch_add(1, Ordering::Relaxed);
        self.http.send(req).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_encoded_as_one_path_segment() {
        assert_eq!(encode_segment("'My tab'!A1:B2"), "%27My%20tab%27%21A1%3AB2");
        assert_eq!(encode_segment("abc-_.~"), "abc-_.~");
    }
}
