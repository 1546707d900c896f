//! Framing benchmark: our `frame.rs` against tokio-tungstenite's `WebSocketStream`, one
//! direction (server to client, unmasked frames as upstream sends them) over a loopback TCP
//! pair, both ends on one current-thread runtime so the figure is the CPU cost of framing and
//! parsing. For each payload size: the median MiB/s of `BENCH_RUNS` runs (5) of
//! `BENCH_MIB` MiB (256) each, and the ratio ours / tokio-tungstenite.
//!
//! Run: `cargo bench --bench tunnel_framing` (a release build).

#[allow(dead_code)]
#[path = "../src/tunnel/frame.rs"]
mod frame;

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use frame::{Chunk, FrameReader, FrameWriter, HEADER_ROOM, Masking, OpCode};

const SIZES: [usize; 4] = [1024, 16 * 1024, 64 * 1024, 256 * 1024];

fn main() {
    let runs: usize = env_or("BENCH_RUNS", 5);
    let total = env_or::<usize>("BENCH_MIB", 256) * 1024 * 1024;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "WebSocket framing, {total_mib} MiB per run, median of {runs} runs, loopback TCP",
        total_mib = total / (1024 * 1024)
    );
    println!(
        "{:>10}  {:>12}  {:>18}  {:>6}",
        "payload", "ours MiB/s", "tungstenite MiB/s", "ratio"
    );
    for size in SIZES {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        // Interleaved so that machine noise hits both alike.
        for _ in 0..runs {
            ours.push(runtime.block_on(ours_once(size, total)));
            theirs.push(runtime.block_on(tungstenite_once(size, total)));
        }
        let (ours, theirs) = (median(ours), median(theirs));
        println!(
            "{:>10}  {:>12.0}  {:>18.0}  {:>6.2}",
            format!("{} KiB", size / 1024),
            ours,
            theirs,
            ours / theirs
        );
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (connected, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
    let (sender, receiver) = (accepted.unwrap().0, connected.unwrap());
    sender.set_nodelay(true).unwrap();
    receiver.set_nodelay(true).unwrap();
    (sender, receiver)
}

/// MiB/s of `total` bytes sent as `size`-byte frames with our writer and read with our reader
/// in chunk mode (as the tunnel's pump does).
async fn ours_once(size: usize, total: usize) -> f64 {
    let (sender, receiver) = tcp_pair().await;
    let started = Instant::now();
    let writing = async move {
        let mut writer = FrameWriter::new(sender, Masking::Unmasked);
        let mut buffer = vec![7u8; HEADER_ROOM + size];
        for _ in 0..total / size {
            writer
                .send_in_place(OpCode::Binary, &mut buffer)
                .await
                .unwrap();
        }
        writer.shutdown().await.unwrap();
    };
    let reading = async move {
        let mut reader = FrameReader::new(receiver, &[]);
        let mut received = 0;
        while received < total {
            match reader.next_chunk().await.unwrap() {
                Some(Chunk::Data(data)) => received += data.len(),
                Some(Chunk::Control(..)) => {}
                None => break,
            }
        }
        received
    };
    let ((), received) = tokio::join!(writing, reading);
    assert_eq!(received, total);
    mib_per_second(total, started)
}

/// The same transfer through tokio-tungstenite: a server-role stream sends unmasked binary
/// messages, a client-role stream receives them.
async fn tungstenite_once(size: usize, total: usize) -> f64 {
    let (sender, receiver) = tcp_pair().await;
    let started = Instant::now();
    let writing = async move {
        let mut sink = WebSocketStream::from_raw_socket(sender, Role::Server, None).await;
        let payload = bytes_of(size);
        for _ in 0..total / size {
            sink.send(Message::Binary(payload.clone())).await.unwrap();
        }
        sink.close(None).await.unwrap();
    };
    let reading = async move {
        let mut stream = WebSocketStream::from_raw_socket(receiver, Role::Client, None).await;
        let mut received = 0;
        while received < total {
            match stream.next().await {
                Some(Ok(Message::Binary(data))) => received += data.len(),
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("{error}"),
                None => break,
            }
        }
        received
    };
    let ((), received) = tokio::join!(writing, reading);
    assert_eq!(received, total);
    mib_per_second(total, started)
}

fn bytes_of(size: usize) -> tokio_tungstenite::tungstenite::Bytes {
    tokio_tungstenite::tungstenite::Bytes::from(vec![7u8; size])
}

fn mib_per_second(bytes: usize, started: Instant) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / started.elapsed().as_secs_f64()
}
