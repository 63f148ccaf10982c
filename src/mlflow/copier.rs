//! One table's rows on their way into PostgreSQL: artifact URIs rewritten, values written in
//! COPY text format in 1 MiB pieces, the source checksum summed, progress reported. The same
//! code serves rows read live from MySQL and rows read from a snapshot's chunks.

use std::pin::Pin;
use std::time::Instant;

use bytes::Bytes;
use futures::SinkExt;
use mysql_async::Value;
use tokio_postgres::{Client, CopyInSink};
use tokio_util::sync::CancellationToken;

use super::rows::{
    PgType, TableSpec, TableSum, ValueProblem, norm_mysql, rewrite_prefix, write_copy_value,
};
use crate::error::{Error, Result};
use crate::postgres::describe;
use crate::progress::{Event, ProgressRef};

const PIECE: usize = 1 << 20;

pub(super) fn pg_cols(spec: &TableSpec) -> String {
    spec.columns
        .iter()
        .map(|c| format!("\"{}\"", c.name.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) struct TableCopier<'a> {
    spec: &'a TableSpec,
    rules: &'a [(String, String)],
    /// `None` when only the checksum is wanted.
    sink: Option<Pin<Box<CopyInSink<Bytes>>>>,
    buf: Vec<u8>,
    sum: TableSum,
    bytes: u64,
    started: Instant,
    last: Instant,
    progress: &'a ProgressRef,
    cancel: &'a CancellationToken,
}

impl<'a> TableCopier<'a> {
    pub async fn start(
        pg: Option<&Client>,
        spec: &'a TableSpec,
        rules: &'a [(String, String)],
        progress: &'a ProgressRef,
        cancel: &'a CancellationToken,
    ) -> Result<Self> {
        let sink = match pg {
            Some(pg) => {
                progress.event(Event::TableStarted {
                    db: "mlflow".into(),
                    table: spec.name.clone(),
                    est_rows: 0,
                });
                let sql = format!("COPY public.{} ({}) FROM STDIN", spec.name, pg_cols(spec));
                let sink = pg.copy_in::<_, Bytes>(&sql).await.map_err(|e| {
                    Error::other(format!(
                        "PostgreSQL error while starting COPY into {}: {}",
                        spec.name,
                        describe(&e)
                    ))
                })?;
                Some(Box::pin(sink))
            }
            None => None,
        };
        Ok(TableCopier {
            spec,
            rules,
            sink,
            buf: Vec::with_capacity(if pg.is_some() { PIECE } else { 0 }),
            sum: TableSum::default(),
            bytes: 0,
            started: Instant::now(),
            last: Instant::now(),
            progress,
            cancel,
        })
    }

    pub async fn row(&mut self, mut values: Vec<Value>) -> Result<()> {
        // A snapshot's row is untrusted: its shape is checked before any field is looked at.
        self.check_shape(&values)?;
        if !self.rules.is_empty() {
            for (i, col) in self.spec.columns.iter().enumerate() {
                if col.artifact_uri
                    && let Some(v) = rewrite_prefix(&values[i], self.rules)
                {
                    values[i] = v;
                }
            }
        }
        if self.sink.is_some() {
            for (i, col) in self.spec.columns.iter().enumerate() {
                if i > 0 {
                    self.buf.push(b'\t');
                }
                write_copy_value(&mut self.buf, &values[i], col.pg)
                    .map_err(|p| self.refuse(p, &values, i))?;
            }
            self.buf.push(b'\n');
        }
        self.sum.add(
            self.spec
                .columns
                .iter()
                .zip(&values)
                .map(|(col, v)| norm_mysql(v, col.pg)),
        );
        if self.buf.len() >= PIECE {
            self.flush().await?;
        }
        if self.sum.rows.is_multiple_of(4096) {
            if self.cancel.is_cancelled() {
                return Err(Error::Interrupted(
                    "migration stopped; the target transaction was rolled back, nothing was written".into(),
                ));
            }
            if self.sink.is_some() && self.last.elapsed().as_millis() >= 200 {
                self.last = Instant::now();
                self.progress.event(Event::TableProgress {
                    db: "mlflow".into(),
                    table: self.spec.name.clone(),
                    rows: self.sum.rows,
                    bytes: self.bytes,
                });
            }
        }
        Ok(())
    }

    /// The row has one field per column, a text field of a number or boolean column reads as
    /// one (a snapshot's fields arrive as text), and a text fits its target column's length.
    fn check_shape(&self, values: &[Value]) -> Result<()> {
        let columns = &self.spec.columns;
        let shape = || {
            columns
                .iter()
                .map(|c| format!("{} {:?}", c.name, c.pg))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if values.len() != columns.len() {
            return Err(Error::Refused(format!(
                "{} row {} has {} field(s), but the table has {} column(s) ({}); the source was \
                 altered or is not MLflow 2.6's (nothing was written to the target)",
                self.spec.name,
                self.sum.rows + 1,
                values.len(),
                columns.len(),
                shape()
            )));
        }
        for (c, v) in columns.iter().zip(values) {
            let Value::Bytes(b) = v else { continue };
            let text = std::str::from_utf8(b).unwrap_or("");
            let ok = match c.pg {
                PgType::Text => true,
                PgType::Bool => matches!(text, "0" | "1"),
                PgType::Int4 => text.parse::<i32>().is_ok(),
                PgType::Int8 => text.parse::<i64>().is_ok(),
                PgType::Float8 => text.parse::<f64>().is_ok(),
            };
            if let (PgType::Text, Some(limit)) = (c.pg, c.max_chars) {
                // PostgreSQL counts characters; a value that is not UTF-8 is refused later,
                // naming that.
                let chars = text.chars().count();
                if chars > limit as usize {
                    return Err(Error::Refused(format!(
                        "{} row {} column {} is {chars} characters long, over the target \
                         column's limit of {limit} (character varying({limit})); shorten it in \
                         the source, or check that the snapshot was not altered, and run again \
                         (nothing was written to the target)",
                        self.spec.name,
                        self.sum.rows + 1,
                        c.name,
                    )));
                }
            }
            if !ok {
                return Err(Error::Refused(format!(
                    "{} row {} column {} is {:?}, not a {:?} value; the table's columns are \
                     ({}) (nothing was written to the target)",
                    self.spec.name,
                    self.sum.rows + 1,
                    c.name,
                    String::from_utf8_lossy(&b[..b.len().min(64)]),
                    c.pg,
                    shape()
                )));
            }
        }
        Ok(())
    }

    fn refuse(&self, p: ValueProblem, values: &[Value], column: usize) -> Error {
        let what = match p {
            ValueProblem::NulByte => {
                "holds a NUL byte, which PostgreSQL text cannot store".to_string()
            }
            ValueProblem::NotUtf8 => "is not valid UTF-8".to_string(),
            ValueProblem::NotFinite => "is not a finite number".to_string(),
            ValueProblem::Unexpected(v) => format!("has an unexpected value {v}"),
        };
        let key: Vec<String> = self
            .spec
            .key
            .iter()
            .map(|&i| {
                let v = match &values[i] {
                    Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                    v => format!("{v:?}"),
                };
                format!("{}={v}", self.spec.columns[i].name)
            })
            .collect();
        let key = if key.is_empty() {
            format!("number {}", self.sum.rows + 1)
        } else {
            format!("({})", key.join(", "))
        };
        Error::Refused(format!(
            "{} row {key} column {} {what}; fix it in the source and run again (nothing was written to the target)",
            self.spec.name, self.spec.columns[column].name
        ))
    }

    async fn flush(&mut self) -> Result<()> {
        let Some(sink) = self.sink.as_mut() else {
            return Ok(());
        };
        if self.buf.is_empty() {
            return Ok(());
        }
        self.bytes += self.buf.len() as u64;
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        sink.send(piece).await.map_err(|e| {
            Error::other(format!(
                "PostgreSQL error while copying into {}: {}",
                self.spec.name,
                describe(&e)
            ))
        })
    }

    /// Ends the COPY (checking the stored row count) and returns the source checksum.
    pub async fn finish(mut self) -> Result<TableSum> {
        self.flush().await?;
        let Some(mut sink) = self.sink.take() else {
            // Only read and summed (`mlflow verify`): the time is the source's.
            self.finished();
            return Ok(self.sum);
        };
        let copied = sink.as_mut().finish().await.map_err(|e| {
            Error::other(format!(
                "PostgreSQL error while finishing COPY into {}: {}",
                self.spec.name,
                describe(&e)
            ))
        })?;
        if copied != self.sum.rows {
            return Err(Error::other(format!(
                "COPY into {} stored {copied} rows, the source has {}",
                self.spec.name, self.sum.rows
            )));
        }
        self.finished();
        Ok(self.sum)
    }

    fn finished(&self) {
        self.progress.event(Event::TableFinished {
            db: "mlflow".into(),
            table: self.spec.name.clone(),
            rows: self.sum.rows,
            bytes: self.bytes,
            elapsed: self.started.elapsed(),
        });
    }
}
