//! Export and import: the log as JSON lines, for backups, restores and
//! migrations from other stores. `dcbstore export` and `dcbstore import` are
//! thin layers over [`export`] and [`import`].
//!
//! **Export** writes one JSON object per line, the shape `dcbstore read`
//! prints (`position`, `id`, `type`, `data`, `tags`, `metadata`,
//! `recorded_at`), streaming the log in pages: memory stays bounded whatever
//! its size. The export is a snapshot: the head when it starts; events
//! committed meanwhile are left out.
//!
//! **Import** reads such lines (or lines written for another store) and
//! appends them, keeping their ids:
//!
//! - `type` and `id` are required; `data`, `tags` and `metadata` are
//!   optional; `position` and `recorded_at` are accepted and ignored, since
//!   the target store assigns positions and records the import time. Importing
//!   a full export into an empty store (with no other writers meanwhile)
//!   reproduces its positions.
//! - Lines go in batches ([`ImportOptions::batch_size`]). Each line of a batch
//!   is validated before anything of the batch is sent; then the ids already
//!   stored are looked up (one query): an id stored with identical content is
//!   skipped, an id stored with other content is an error naming the id and
//!   the line, and the rest of the batch is appended as one atomic,
//!   unconditional append, in file order.
//! - So running an import again imports nothing new (idempotent), and an
//!   import that stopped (an error, a crash, Ctrl-C) picks up where it stopped
//!   when run again (resumable). Batches before a failing line stay imported.
//!
//! ```no_run
//! use dcbstore::transfer::{export, import, ExportOptions, ImportOptions};
//! use dcbstore::Store;
//!
//! # async fn f() -> dcbstore::Result<()> {
//! let source = Store::connect("postgres://app@old-host/app").await?;
//! let target = Store::connect("postgres://app@new-host/app").await?;
//! let mut file = Vec::new();
//! let exported = export(&source, &ExportOptions::new(), &mut file, |_| {}).await?;
//! let imported = import(&target, &file[..], &ImportOptions::new(), |_| {}).await?;
//! assert_eq!(exported.exported, imported.imported + imported.already_present);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::append::{check_json, check_object, check_text};
use crate::limits::{json_bytes, MAX_EVENT_BYTES, MAX_TAGS_PER_EVENT};
use crate::{Error, Event, EventStore, Query, ReadOptions, Result, SequencePosition, Store};

// ---- Export ----

/// What [`export`] writes: the events of a query (all by default) after a
/// position (from the start by default).
#[derive(Debug, Clone)]
#[must_use]
pub struct ExportOptions {
    query: Query,
    after: Option<SequencePosition>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            query: Query::all(),
            after: None,
        }
    }
}

impl ExportOptions {
    /// Every event of the log.
    pub fn new() -> Self {
        ExportOptions::default()
    }

    /// Only events with a position greater than `position`: a tail, for
    /// example everything since the last backup.
    pub fn after(mut self, position: SequencePosition) -> Self {
        self.after = Some(position);
        self
    }

    /// Only the events matching `query`. An export of part of the log
    /// imported elsewhere does not reproduce its positions.
    pub fn query(mut self, query: Query) -> Self {
        self.query = query;
        self
    }
}

/// How far an [`export`] got; its result, and what its progress callback sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// Events written so far.
    pub exported: u64,
    /// The head when the export started: the snapshot it writes (`None`: the
    /// store was empty).
    pub head: Option<SequencePosition>,
    /// The `after` position of the options.
    pub after: Option<SequencePosition>,
    /// Position of the last event written.
    pub last_position: Option<SequencePosition>,
}

/// Writes the events selected by `options` to `out`, one JSON line each, in
/// position order, as of the head when the export starts.
///
/// The log is streamed with the store's paging read (bounded memory) and
/// `out` is buffered here. `progress` is called once when the head is known
/// (nothing exported yet) and after each event. Fails on the first error,
/// having written a prefix of the export.
pub async fn export<S, W>(
    store: &S,
    options: &ExportOptions,
    out: W,
    mut progress: impl FnMut(&ExportSummary),
) -> Result<ExportSummary>
where
    S: EventStore,
    W: Write,
{
    let head = store.head().await?;
    let mut summary = ExportSummary {
        exported: 0,
        head,
        after: options.after,
        last_position: None,
    };
    progress(&summary);
    let mut out = BufWriter::with_capacity(1 << 16, out);
    if let Some(head) = head {
        if options.after.is_none_or(|a| a < head) {
            let read = ReadOptions::new().after_opt(options.after).to(head);
            let mut events = store.read(&options.query, read);
            while let Some(e) = events.try_next().await? {
                serde_json::to_writer(&mut out, &e).map_err(|e| write_error(&e))?;
                out.write_all(b"\n").map_err(|e| write_error(&e))?;
                summary.exported += 1;
                summary.last_position = Some(e.position);
                progress(&summary);
            }
        }
    }
    out.flush().map_err(|e| write_error(&e))?;
    Ok(summary)
}

fn write_error(e: &dyn std::fmt::Display) -> Error {
    Error::Io(format!("cannot write the export: {e}"))
}

// ---- Import ----

/// Events per batch of an import, by default.
pub const DEFAULT_BATCH_SIZE: usize = 1000;

/// How [`import`] works through its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct ImportOptions {
    batch_size: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

impl ImportOptions {
    /// Batches of [`DEFAULT_BATCH_SIZE`] events.
    pub fn new() -> Self {
        ImportOptions::default()
    }

    /// Events per batch, from 1 to
    /// [`MAX_EVENTS_PER_APPEND`](crate::limits::MAX_EVENTS_PER_APPEND): each
    /// batch is validated whole, then appended as one atomic append. A batch
    /// also ends early before it would exceed
    /// [`MAX_APPEND_BYTES`](crate::limits::MAX_APPEND_BYTES).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.clamp(1, crate::limits::MAX_EVENTS_PER_APPEND);
        self
    }
}

/// How far an [`import`] got; its result, and what its progress callback sees
/// after each batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Event lines read, in completed batches (blank lines are skipped and
    /// not counted).
    pub lines_read: u64,
    /// Events appended.
    pub imported: u64,
    /// Events skipped because their id was already stored with the same
    /// content (or appeared earlier in the input with the same content).
    pub already_present: u64,
    /// Line number (1-based, blank lines counted) of the last line of the
    /// last completed batch: every event up to it is stored.
    pub last_line: u64,
    /// Bytes of input consumed by completed batches.
    pub bytes_read: u64,
}

/// Imports JSON lines from `input` into `store`, keeping each event's id: see
/// the [module documentation](self) for the accepted lines and how batches
/// are checked against what is stored.
///
/// `input` is read synchronously, one batch at a time. `progress` is called
/// after each completed batch. On an error, the batches before it stay
/// imported (the last progress report says how far) and nothing of the
/// failing batch is written, so the import can be fixed and run again. The
/// error names the input line when a line is at fault.
pub async fn import<R: BufRead>(
    store: &Store,
    input: R,
    options: &ImportOptions,
    mut progress: impl FnMut(&ImportSummary),
) -> Result<ImportSummary> {
    let mut lines = Lines {
        input,
        buf: Vec::new(),
        line: 0,
        bytes: 0,
    };
    let mut summary = ImportSummary::default();
    // A line read but left for the next batch (it would have made this one
    // too large for one append).
    let mut carried: Option<(u64, Event, usize)> = None;
    loop {
        let mut batch = Batch::default();
        let mut bytes = 0usize;
        let mut eof = false;
        while batch.events.len() < options.batch_size {
            let (n, event, size) = match carried.take() {
                Some(c) => c,
                None => {
                    let Some((n, text)) = lines.next()? else {
                        eof = true;
                        break;
                    };
                    let event = parse_line(n, text)?;
                    let size = crate::limits::json_bytes(&event.data)
                        + crate::limits::json_bytes(&event.metadata);
                    (n, event, size)
                }
            };
            if !batch.events.is_empty() && bytes + size > crate::limits::MAX_APPEND_BYTES {
                carried = Some((n, event, size));
                break;
            }
            bytes += size;
            batch.push(n, event)?;
        }
        if batch.read == 0 {
            break;
        }
        let read = batch.read;
        let (imported, present) = store_batch(store, batch).await?;
        summary.lines_read += read;
        summary.imported += imported;
        summary.already_present += present;
        summary.last_line = carried.as_ref().map_or(lines.line, |(n, _, _)| n - 1);
        summary.bytes_read = lines.bytes;
        progress(&summary);
        if eof && carried.is_none() {
            break;
        }
    }
    Ok(summary)
}

/// The input, line by line, with line numbers and bytes consumed.
struct Lines<R> {
    input: R,
    buf: Vec<u8>,
    line: u64,
    bytes: u64,
}

impl<R: BufRead> Lines<R> {
    /// The next non-blank line and its number, `None` at the end (JSON
    /// whitespace only counts as blank).
    fn next(&mut self) -> Result<Option<(u64, &str)>> {
        loop {
            self.buf.clear();
            let read = self.input.read_until(b'\n', &mut self.buf).map_err(|e| {
                Error::Io(format!(
                    "cannot read the input after line {}: {e}",
                    self.line
                ))
            })?;
            if read == 0 {
                return Ok(None);
            }
            self.line += 1;
            self.bytes += read as u64;
            if !self.buf.trim_ascii().is_empty() {
                break;
            }
        }
        let text = std::str::from_utf8(&self.buf)
            .map_err(|_| Error::invalid(format!("line {}: not valid UTF-8", self.line)))?;
        Ok(Some((self.line, text)))
    }
}

/// The fields an import line may have.
const FIELDS: &str = "id, type, data, tags, metadata, position, recorded_at";

/// Parses and fully validates line `n`, as an append would, with errors
/// that name the line and the field.
fn parse_line(n: u64, text: &str) -> Result<Event> {
    let text = text.trim_end_matches(['\n', '\r']);
    let mut line = match serde_json::from_str(text) {
        Ok(LineJson::Object(m)) => m,
        Ok(LineJson::Other) => {
            return Err(Error::invalid(format!(
                "line {n}: an event must be a JSON object"
            )))
        }
        Err(e) => {
            let message = e.to_string();
            let location = format!(" at line {} column {}", e.line(), e.column());
            let message = message.strip_suffix(&location).unwrap_or(&message);
            return Err(Error::invalid(format!(
                "line {n}: invalid JSON at column {}: {message}",
                e.column()
            )));
        }
    };
    let id: Option<Uuid> = field(n, &mut line, "id", "a UUID string")?;
    let event_type: Option<String> = field(n, &mut line, "type", "a string")?;
    let data: Option<Value> = field(n, &mut line, "data", "JSON")?;
    let tags: Option<Vec<String>> = field(n, &mut line, "tags", "an array of strings")?;
    let metadata: Option<Map<String, Value>> = field(n, &mut line, "metadata", "a JSON object")?;
    // Accepted and ignored: the target store assigns positions and records
    // the import time.
    let _: Option<u64> = field(n, &mut line, "position", "a non-negative integer")?;
    let _: Option<String> = field(n, &mut line, "recorded_at", "a string")?;
    if let Some(unknown) = line.keys().next() {
        return Err(Error::invalid(format!(
            "line {n}: unknown field {unknown:?} (an event has {FIELDS})"
        )));
    }
    let Some(id) = id else {
        return Err(Error::invalid(format!(
            "line {n}: the event has no \"id\": an import needs every event's id, so that running it again skips what is already stored instead of appending duplicates; give each line a stable UUID (from another store, derive it from that store's event id)"
        )));
    };
    let Some(event_type) = event_type else {
        return Err(Error::invalid(format!(
            "line {n}: the event has no \"type\""
        )));
    };
    let data = data.unwrap_or(Value::Null);
    let mut tags = tags.unwrap_or_default();
    let metadata = metadata.unwrap_or_default();
    check_text(&format!("line {n}: event type"), &event_type)?;
    // The limits an append checks, here so that the error names the line.
    if tags.len() > MAX_TAGS_PER_EVENT {
        return Err(Error::invalid(format!(
            "line {n}: the event has {} tags; the limit is {MAX_TAGS_PER_EVENT}",
            tags.len()
        )));
    }
    let bytes = json_bytes(&data) + json_bytes(&metadata);
    if bytes > MAX_EVENT_BYTES {
        return Err(Error::invalid(format!(
            "line {n}: the event is {bytes} bytes of JSON (data and metadata); the limit is {MAX_EVENT_BYTES}"
        )));
    }
    for t in &tags {
        check_text(&format!("line {n}: tag"), t)?;
    }
    check_json(&format!("line {n}: event data"), &data, 0)?;
    check_object(&format!("line {n}: event metadata"), &metadata, 1)?;
    tags.sort_unstable();
    tags.dedup();
    Ok(Event {
        id,
        event_type,
        data,
        tags,
        metadata,
    })
}

/// A line's JSON: an object, its keys unique (a key given twice is an error,
/// as in an `append` line, rather than the last one silently winning), or
/// anything else.
enum LineJson {
    Object(Map<String, Value>),
    Other,
}

impl<'de> serde::Deserialize<'de> for LineJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::{Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct LineVisitor;
        impl<'de> Visitor<'de> for LineVisitor {
            type Value = LineJson;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<LineJson, A::Error> {
                let mut line = Map::new();
                while let Some(key) = m.next_key::<String>()? {
                    if line.contains_key(&key) {
                        return Err(A::Error::custom(format_args!("duplicate field {key:?}")));
                    }
                    let value = m.next_value()?;
                    line.insert(key, value);
                }
                Ok(LineJson::Object(line))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> std::result::Result<LineJson, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LineJson::Other)
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<LineJson, E> {
                Ok(LineJson::Other)
            }
            fn visit_i64<E>(self, _: i64) -> std::result::Result<LineJson, E> {
                Ok(LineJson::Other)
            }
            fn visit_u64<E>(self, _: u64) -> std::result::Result<LineJson, E> {
                Ok(LineJson::Other)
            }
            fn visit_f64<E>(self, _: f64) -> std::result::Result<LineJson, E> {
                Ok(LineJson::Other)
            }
            fn visit_str<E>(self, _: &str) -> std::result::Result<LineJson, E> {
                Ok(LineJson::Other)
            }
            fn visit_unit<E>(self) -> std::result::Result<LineJson, E> {
                Ok(LineJson::Other)
            }
        }
        d.deserialize_any(LineVisitor)
    }
}

/// Takes field `key` out of `line`: `None` when absent (or null, except for
/// `data`, where null is a value).
fn field<T: serde::de::DeserializeOwned>(
    n: u64,
    line: &mut Map<String, Value>,
    key: &str,
    expected: &str,
) -> Result<Option<T>> {
    match line.remove(key) {
        None => Ok(None),
        Some(Value::Null) if key != "data" => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| Error::invalid(format!("line {n}: \"{key}\" must be {expected} ({e})"))),
    }
}

/// The validated events of one batch, in file order, without repeated ids.
#[derive(Default)]
struct Batch {
    /// (line number, event).
    events: Vec<(u64, Event)>,
    /// Index in `events` of each id.
    ids: HashMap<Uuid, usize>,
    /// Lines repeating an event earlier in the batch, identically.
    repeated: u64,
    /// Event lines read into this batch.
    read: u64,
}

impl Batch {
    fn push(&mut self, n: u64, event: Event) -> Result<()> {
        self.read += 1;
        let earlier = self.ids.get(&event.id).and_then(|&i| self.events.get(i));
        if let Some((first, earlier)) = earlier {
            let differ = differences(earlier, &event);
            if differ.is_empty() {
                self.repeated += 1;
                return Ok(());
            }
            return Err(Error::IdConflict {
                id: event.id,
                message: format!(
                    "line {n}: event id {} is also on line {first}, with different content ({})",
                    event.id,
                    describe(&differ)
                ),
            });
        }
        self.ids.insert(event.id, self.events.len());
        self.events.push((n, event));
        Ok(())
    }
}

/// Looks the batch's ids up, then appends what is not stored yet. Returns
/// (imported, already present).
async fn store_batch(store: &Store, batch: Batch) -> Result<(u64, u64)> {
    let ids: Vec<Uuid> = batch.events.iter().map(|(_, e)| e.id).collect();
    let events = batch.events;
    // A concurrent import of the same input may store some of these ids
    // between the lookup and the append: then look again.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let stored = lookup(store, &ids).await?;
        let mut new = Vec::with_capacity(events.len());
        let mut present = batch.repeated;
        for (n, e) in &events {
            match stored.get(&e.id) {
                None => new.push(e.clone()),
                Some(s) => {
                    let differ = differences(e, s);
                    if !differ.is_empty() {
                        return Err(Error::IdConflict {
                            id: e.id,
                            message: format!(
                                "line {n}: event id {} is already stored with different content ({}); an import never changes a stored event",
                                e.id,
                                describe(&differ)
                            ),
                        });
                    }
                    present += 1;
                }
            }
        }
        if new.is_empty() {
            return Ok((0, present));
        }
        let count = new.len() as u64;
        match store.append(new, None).await {
            Ok(a) if a.already_stored => return Ok((0, present + count)),
            Ok(_) => return Ok((count, present)),
            Err(Error::IdConflict { .. }) if attempts < 3 => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The events stored with any of `ids`.
async fn lookup(store: &Store, ids: &[Uuid]) -> Result<HashMap<Uuid, Event>> {
    let client = store.pool().get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT id, type, data, tags, metadata FROM dcbstore.events WHERE id = ANY($1)",
        )
        .await?;
    let rows = client.query(&stmt, &[&ids]).await?;
    let mut stored = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.try_get(0)?;
        let metadata = match row.try_get(4)? {
            Value::Object(m) => m,
            _ => {
                return Err(Error::Decode(format!(
                    "the stored metadata of event {id} is not a JSON object"
                )))
            }
        };
        stored.insert(
            id,
            Event {
                id,
                event_type: row.try_get(1)?,
                data: row.try_get(2)?,
                tags: row.try_get(3)?,
                metadata,
            },
        );
    }
    Ok(stored)
}

/// Which parts of two events with one id differ (their tags sorted and
/// deduplicated, as stored).
fn differences(a: &Event, b: &Event) -> Vec<&'static str> {
    let mut differ = Vec::new();
    if a.event_type != b.event_type {
        differ.push("type");
    }
    if !json_eq(&a.data, &b.data) {
        differ.push("data");
    }
    if a.tags != b.tags {
        differ.push("tags");
    }
    if !object_eq(&a.metadata, &b.metadata) {
        differ.push("metadata");
    }
    differ
}

/// "data differs", "type, tags differ".
fn describe(differ: &[&str]) -> String {
    let verb = if differ.len() == 1 {
        "differs"
    } else {
        "differ"
    };
    format!("{} {verb}", differ.join(", "))
}

/// JSON equality as PostgreSQL's `jsonb` has it: numbers by value (`1e2`
/// equals `100`), objects regardless of key order.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y
                || ((x.is_f64() || y.is_f64())
                    && matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => object_eq(x, y),
        _ => a == b,
    }
}

fn object_eq(x: &Map<String, Value>, y: &Map<String, Value>) -> bool {
    x.len() == y.len()
        && x.iter()
            .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
}

// ---- The commands ----

/// A progress bar on stderr, or a hidden one when stderr is not a terminal.
fn progress_bar(len: Option<u64>, template: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// `dcbstore export [--after N] [--output FILE]`: JSON lines on `stdout` or
/// in FILE (written as FILE.partial, renamed when complete), a progress bar
/// and a summary line on stderr.
pub(crate) async fn run_export(
    store: &Store,
    after: Option<u64>,
    output: Option<&Path>,
    stdout: &mut impl Write,
) -> Result<()> {
    let mut options = ExportOptions::new();
    if let Some(a) = after {
        options = options.after(SequencePosition::new(a));
    }
    let bar = progress_bar(
        Some(0),
        "exporting [{bar:40}] {pos}/{len} events, {per_sec}, eta {eta}",
    );
    let report = |s: &ExportSummary| {
        if s.exported == 0 {
            let head = s.head.map_or(0, SequencePosition::get);
            let after = s.after.map_or(0, SequencePosition::get);
            bar.set_length(head.saturating_sub(after));
        }
        bar.set_position(s.exported);
    };
    let summary = match output {
        None => export(store, &options, stdout, report).await,
        Some(path) => export_to_file(store, &options, path, report).await,
    };
    bar.finish_and_clear();
    let s = summary?;
    let to = output.map_or("stdout".to_string(), |p| p.display().to_string());
    match (s.exported, s.head) {
        (0, None) => eprintln!("exported 0 events to {to}: the store is empty"),
        (0, Some(head)) => eprintln!("exported 0 events to {to}: none after position {} (head {head})", s.after.map_or(0, SequencePosition::get)),
        (n, Some(head)) => eprintln!(
            "exported {n} events to {to}, up to position {} (the head when the export started: {head})",
            s.last_position.map_or(0, SequencePosition::get)
        ),
        (n, None) => eprintln!("exported {n} events to {to}"),
    }
    Ok(())
}

async fn export_to_file(
    store: &Store,
    options: &ExportOptions,
    path: &Path,
    progress: impl FnMut(&ExportSummary),
) -> Result<ExportSummary> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut file = std::fs::File::create(&partial)
        .map_err(|e| Error::Io(format!("cannot create {}: {e}", partial.display())))?;
    let result = async {
        let summary = export(store, options, &mut file, progress).await?;
        file.sync_all()
            .map_err(|e| Error::Io(format!("cannot write {}: {e}", partial.display())))?;
        std::fs::rename(&partial, path).map_err(|e| {
            Error::Io(format!(
                "cannot rename {} to {}: {e}",
                partial.display(),
                path.display()
            ))
        })?;
        Ok(summary)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// `dcbstore import [--input FILE] [--batch-size N] [--json]`: a progress bar
/// and a summary line on stderr; with `--json` the summary on `stdout` too.
pub(crate) async fn run_import(
    store: &Store,
    input: Option<&Path>,
    batch_size: u64,
    json: bool,
    stdout: &mut impl Write,
) -> Result<()> {
    let batch_size = usize::try_from(batch_size).unwrap_or(usize::MAX);
    let options = ImportOptions::new().batch_size(batch_size);
    let mut done = ImportSummary::default();
    let result = match input {
        None => {
            let bar = progress_bar(None, "{spinner} importing: {msg}");
            let result = import(store, std::io::stdin().lock(), &options, |s| {
                done = *s;
                bar.set_message(import_message(s));
                bar.tick();
            })
            .await;
            bar.finish_and_clear();
            result
        }
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| Error::Io(format!("cannot open {}: {e}", path.display())))?;
            let len = file.metadata().map(|m| m.len()).ok();
            let bar = progress_bar(
                len,
                "importing [{bar:40}] {bytes}/{total_bytes}, {msg}, eta {eta}",
            );
            let input = std::io::BufReader::with_capacity(1 << 16, file);
            let result = import(store, input, &options, |s| {
                done = *s;
                bar.set_message(import_message(s));
                bar.set_position(s.bytes_read);
            })
            .await;
            bar.finish_and_clear();
            result
        }
    };
    let s = result.map_err(|e| with_progress(e, &done))?;
    eprintln!(
        "import complete: {} lines read, {} imported, {} already present",
        s.lines_read, s.imported, s.already_present
    );
    if json {
        let line = serde_json::to_string(&s).map_err(|e| Error::Io(e.to_string()))?;
        writeln!(stdout, "{line}").map_err(|e| Error::Io(format!("cannot write output: {e}")))?;
    }
    Ok(())
}

fn import_message(s: &ImportSummary) -> String {
    format!(
        "{} imported, {} already present",
        s.imported, s.already_present
    )
}

/// The error of a failed import, with how far it got (one line, like every
/// error of the tool).
fn with_progress(e: Error, done: &ImportSummary) -> Error {
    let context = if done.last_line == 0 {
        "nothing was imported: fix the input and run the import again".to_string()
    } else {
        format!(
            "lines 1 to {} are imported ({} events new, {} already present) and nothing after them: fix the input and run the import again, it skips what is stored",
            done.last_line, done.imported, done.already_present
        )
    };
    match e {
        Error::Invalid(m) => Error::Invalid(format!("{m}; {context}")),
        Error::IdConflict { id, message } => Error::IdConflict {
            id,
            message: format!("{message}; {context}"),
        },
        Error::Io(m) => Error::Io(format!("{m}; {context}")),
        // Only printed: a message-carrying variant with the original text.
        other => Error::Invalid(format!("{other}; {context}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_parse_with_defaults_and_ignore_position_and_recorded_at() {
        let id = Uuid::now_v7();
        let e = parse_line(
            3,
            &json!({"position": 7, "id": id, "type": "A", "tags": ["b", "a", "b"],
                    "recorded_at": "2024-01-01T00:00:00Z"})
            .to_string(),
        )
        .expect("parse");
        assert_eq!(e.id, id);
        assert_eq!(e.data, Value::Null);
        assert_eq!(e.tags, ["a", "b"]);
        assert!(e.metadata.is_empty());
    }

    #[test]
    fn bad_lines_name_the_line_and_the_reason() {
        let id = Uuid::now_v7();
        let cases = [
            (json!({"type": "A"}).to_string(), "no \"id\""),
            (json!({"id": id}).to_string(), "no \"type\""),
            (
                json!({"id": id, "type": "A", "tag": []}).to_string(),
                "unknown field \"tag\"",
            ),
            (
                json!({"id": id, "type": "A", "metadata": []}).to_string(),
                "\"metadata\" must be a JSON object",
            ),
            (
                json!({"id": id, "type": "A", "position": "x"}).to_string(),
                "\"position\" must be",
            ),
            (
                json!({"id": "nope", "type": "A"}).to_string(),
                "\"id\" must be a UUID",
            ),
            (
                json!({"id": id, "type": "A", "tags": [1]}).to_string(),
                "\"tags\" must be an array of strings",
            ),
            (
                json!({"id": id, "type": ""}).to_string(),
                "must not be empty",
            ),
            (
                json!({"id": id, "type": "A", "data": "a\u{0}"}).to_string(),
                "NUL",
            ),
            ("[1]".to_string(), "must be a JSON object"),
            ("{\"id\":\n".to_string(), "invalid JSON at column 6: EOF"),
        ];
        for (text, needle) in cases {
            let err = parse_line(42, &text).expect_err(&text).to_string();
            assert!(err.starts_with("line 42: "), "{err}");
            assert!(err.contains(needle), "{text}: {err}");
            assert!(!err.contains("at line 1"), "{err}");
        }
    }

    #[test]
    fn json_equality_is_jsonb_equality() {
        assert!(json_eq(
            &json!({"a": 100, "b": [1.5]}),
            &json!({"b": [1.5], "a": 1e2})
        ));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!json_eq(&json!(u64::MAX), &json!(u64::MAX - 1)));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": null})));
    }

    #[test]
    fn repeated_ids_in_a_batch_are_skipped_or_rejected() {
        let id = Uuid::now_v7();
        let mut batch = Batch::default();
        let e = Event::new("A", json!({"n": 1})).with_id(id);
        batch.push(1, e.clone()).expect("first");
        batch.push(2, e.clone()).expect("identical repeat");
        assert_eq!((batch.events.len(), batch.repeated, batch.read), (1, 1, 2));
        let err = batch
            .push(3, Event::new("A", json!({"n": 2})).with_id(id))
            .expect_err("different content");
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}

#[cfg(test)]
mod proptests;
