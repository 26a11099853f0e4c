//! `GET /admin/export`'s body: the store streamed as JSON Lines from a blocking thread.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use warp::http::header::{self, HeaderValue};
use warp::reply::{Reply, Response};

use crate::counting::blocking;
use crate::endpoints::count::App;
use crate::http::error::Error;
use crate::transfer;

/// Bytes an export sends at a time.
const CHUNK: usize = 64 * 1024;

/// Checkpoints pending hits into the counts tree, then streams the store from a blocking thread through a small channel:
/// the export never holds more than a few chunks in memory.
pub(super) async fn stream(app: &App) -> Result<Response, Error> {
    let counter = Arc::clone(&app.counter);
    blocking(move || counter.checkpoint().map(|_| ())).await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = app.counter.store()?;
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx,
            buffer: Vec::with_capacity(CHUNK),
        };
        let exported = transfer::export(&store, &mut out, || {}).and_then(|n| {
            out.flush()?;
            Ok(n)
        });
        match exported {
            Ok(keys) => tracing::info!(keys, "admin export done"),
            Err(err) => {
                tracing::warn!(cause = %err, "admin export stopped");
                let _ = out
                    .tx
                    .blocking_send(Err(std::io::Error::other(err.to_string())));
            }
        }
    });
    let mut response = warp::reply::stream(ReceiverStream::new(rx)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// Sends what is written to the export's channel, a chunk at a time; fails once the client has
/// gone, which stops the export.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buffer: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}
