//! WebSocket framing (RFC 6455 section 5) for the data phase, written directly on the byte
//! stream: one frame per local read, headers written in front of the payload without a copy.
//!
//! tokio-tungstenite would work too, but its message-level API copies every payload into a
//! `Message` and buffers writes; the tunnel only ever needs binary frames and a few control
//! frames, so the hot path is done here.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame payload accepted (upstream refuses 64 MiB and more).
pub const MAX_FRAME_PAYLOAD: usize = 64 * 1024 * 1024 - 1;

/// Room kept in front of a payload for the largest frame header (2 + 8 length + 4 mask).
pub const HEADER_ROOM: usize = 14;

/// Frame opcodes the tunnel distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

fn invalid(reason: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("WebSocket protocol error: {reason}"),
    )
}

/// Reads frames from a byte stream. Masked frames are unmasked (RFC behaviour; upstream's
/// server only does that with --websocket-mask-frame), unmasked frames are accepted.
pub struct FrameReader<R> {
    inner: R,
    buffer: Vec<u8>,
    /// Start of unconsumed bytes in `buffer`.
    start: usize,
    /// End of valid bytes in `buffer`.
    end: usize,
    /// Length of what the last call returned, consumed by the next call.
    pending: usize,
    /// Payload bytes of the current data frame not returned yet (`next_chunk`).
    remaining: usize,
    /// Mask of the current data frame and how many of its payload bytes were unmasked.
    mask: Option<[u8; 4]>,
    mask_offset: usize,
}

/// A piece of the stream returned by `FrameReader::next_chunk`.
pub enum Chunk<'a> {
    /// Part (or all) of a data frame's payload (Text, Binary or Continuation).
    Data(&'a mut [u8]),
    /// A whole control frame.
    Control(OpCode, &'a mut [u8]),
}

/// Largest read buffer of a `FrameReader` in chunk mode; it starts small (idle tunnels stay
/// cheap) and doubles whenever a read fills it.
const MAX_CHUNK_BUFFER: usize = 256 * 1024;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// `prefix` holds bytes already read past the HTTP headers.
    pub fn new(inner: R, prefix: &[u8]) -> FrameReader<R> {
        let mut buffer = vec![0; prefix.len().max(4096)];
        buffer[..prefix.len()].copy_from_slice(prefix);
        FrameReader {
            inner,
            buffer,
            start: 0,
            end: prefix.len(),
            pending: 0,
            remaining: 0,
            mask: None,
            mask_offset: 0,
        }
    }

    /// Reads the next piece of the stream: data frames are returned in chunks as they arrive
    /// (no whole-frame buffering, so no copy to make room for big frames), control frames
    /// whole. `None` at a clean EOF between frames.
    ///
    /// # Errors
    /// As `next_frame`.
    pub async fn next_chunk(&mut self) -> io::Result<Option<Chunk<'_>>> {
        self.start += self.pending;
        self.pending = 0;
        loop {
            if self.remaining > 0 {
                if self.start == self.end {
                    self.start = 0;
                    self.end = 0;
                    let free = self.buffer.len();
                    let read = self.inner.read(&mut self.buffer).await?;
                    if read == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "connection closed inside a frame",
                        ));
                    }
                    self.end = read;
                    if read == free && free < MAX_CHUNK_BUFFER {
                        // Grows behind the bytes just read: nothing is copied.
                        let grown = (free * 2).min(MAX_CHUNK_BUFFER);
                        self.buffer.resize(grown, 0);
                    }
                }
                let length = (self.end - self.start).min(self.remaining);
                let chunk = &mut self.buffer[self.start..self.start + length];
                if let Some(mask) = self.mask {
                    apply_mask(chunk, rotate_mask(mask, self.mask_offset));
                }
                self.mask_offset += length;
                self.remaining -= length;
                self.pending = length;
                return Ok(Some(Chunk::Data(chunk)));
            }
            let Some(header) = self.read_header().await? else {
                return Ok(None);
            };
            if header.opcode.is_control() {
                self.require(header.length + header.payload_length).await?;
                let payload_start = self.start + header.length;
                self.start = payload_start;
                self.pending = header.payload_length;
                let payload =
                    &mut self.buffer[payload_start..payload_start + header.payload_length];
                if let Some(mask) = header.mask {
                    apply_mask(payload, mask);
                }
                return Ok(Some(Chunk::Control(header.opcode, payload)));
            }
            self.start += header.length;
            self.remaining = header.payload_length;
            self.mask = header.mask;
            self.mask_offset = 0;
        }
    }

    /// Parses a frame header once enough bytes are there; `None` at a clean EOF.
    async fn read_header(&mut self) -> io::Result<Option<Header>> {
        if !self.fill_to(2).await? {
            return Ok(None);
        }
        let first = self.buffer[self.start];
        let second = self.buffer[self.start + 1];
        if first & 0x70 != 0 {
            return Err(invalid("reserved bits set (no extension was negotiated)"));
        }
        let fin = first & 0x80 != 0;
        let opcode = OpCode::from_bits(first & 0x0F).ok_or_else(|| invalid("unknown opcode"))?;
        let masked = second & 0x80 != 0;
        let (length_bytes, short_length) = match second & 0x7F {
            126 => (2, 0),
            127 => (8, 0),
            length => (0, length as usize),
        };
        let length = 2 + length_bytes + if masked { 4 } else { 0 };
        self.require(length).await?;
        let header = &self.buffer[self.start..self.start + length];
        let payload_length = match length_bytes {
            2 => u16::from_be_bytes([header[2], header[3]]) as usize,
            8 => {
                let mut bytes = [0; 8];
                bytes.copy_from_slice(&header[2..10]);
                usize::try_from(u64::from_be_bytes(bytes)).unwrap_or(usize::MAX)
            }
            _ => short_length,
        };
        if payload_length > MAX_FRAME_PAYLOAD {
            return Err(invalid("frame larger than 64 MiB"));
        }
        if opcode.is_control() && (payload_length > 125 || !fin) {
            return Err(invalid("control frame fragmented or longer than 125 bytes"));
        }
        let mask = masked.then(|| {
            let at = length - 4;
            [header[at], header[at + 1], header[at + 2], header[at + 3]]
        });
        Ok(Some(Header {
            opcode,
            length,
            payload_length,
            mask,
        }))
    }

    /// Reads the next frame; returns its opcode and payload, or `None` at a clean EOF between
    /// frames. The payload borrows the reader until the next call.
    ///
    /// # Errors
    /// On I/O errors, EOF inside a frame, reserved bits or opcodes, oversized or fragmented
    /// control frames and payloads of 64 MiB or more.
    pub async fn next_frame(&mut self) -> io::Result<Option<(OpCode, &mut [u8])>> {
        self.start += self.pending;
        self.pending = 0;

        let Some(header) = self.read_header().await? else {
            return Ok(None);
        };
        self.require(header.length + header.payload_length).await?;
        let payload_start = self.start + header.length;
        self.start = payload_start;
        self.pending = header.payload_length;
        let payload = &mut self.buffer[payload_start..payload_start + header.payload_length];
        if let Some(mask) = header.mask {
            apply_mask(payload, mask);
        }
        Ok(Some((header.opcode, payload)))
    }

    /// Like `fill_to` but EOF is an error (we are inside a frame).
    async fn require(&mut self, length: usize) -> io::Result<()> {
        if self.fill_to(length).await? {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a frame",
            ))
        }
    }

    /// Makes at least `length` unconsumed bytes available. Returns false on EOF with no
    /// unconsumed bytes at all, errors on EOF after a partial frame.
    async fn fill_to(&mut self, length: usize) -> io::Result<bool> {
        while self.end - self.start < length {
            if self.start + length > self.buffer.len() {
                self.compact(length);
            }
            let read = self.inner.read(&mut self.buffer[self.end..]).await?;
            if read == 0 {
                if self.end == self.start {
                    return Ok(false);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a frame",
                ));
            }
            self.end += read;
        }
        Ok(true)
    }

    /// Moves unconsumed bytes to the front and grows the buffer to hold `length` bytes.
    fn compact(&mut self, length: usize) {
        self.buffer.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.buffer.len() < length {
            let grown = length
                .max(self.buffer.len() * 2)
                .min(MAX_FRAME_PAYLOAD + HEADER_ROOM);
            self.buffer.resize(grown.max(length), 0);
        }
    }
}

/// A parsed frame header.
struct Header {
    opcode: OpCode,
    /// Header length in bytes.
    length: usize,
    payload_length: usize,
    mask: Option<[u8; 4]>,
}

/// The mask to apply to a payload piece that starts `offset` bytes into the payload.
fn rotate_mask(mask: [u8; 4], offset: usize) -> [u8; 4] {
    let mut rotated = mask;
    rotated.rotate_left(offset % 4);
    rotated
}

/// XORs `payload` with the 4-byte `mask`, word at a time.
pub fn apply_mask(payload: &mut [u8], mask: [u8; 4]) {
    let mask_word = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let value = u64::from_ne_bytes(word) ^ mask_word;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    for (index, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[index % 4];
    }
}

/// Whether this side masks the frames it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Masking {
    /// Upstream's default on both sides, and what an upstream server without
    /// --websocket-mask-frame expects.
    Unmasked,
    /// RFC 6455 client behaviour (`--websocket-mask-frame`).
    Masked,
}

/// Writes frames to a byte stream.
pub struct FrameWriter<W> {
    inner: W,
    masking: Masking,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(inner: W, masking: Masking) -> FrameWriter<W> {
        FrameWriter { inner, masking }
    }

    /// Sends one final frame whose payload is `buffer[HEADER_ROOM..]`; the header is written
    /// into the room in front of it so that frame goes out in one write.
    pub async fn send_in_place(&mut self, opcode: OpCode, buffer: &mut [u8]) -> io::Result<()> {
        let frame_start = frame_in_place(opcode, buffer, self.masking);
        self.inner.write_all(&buffer[frame_start..]).await?;
        self.inner.flush().await
    }

    /// Sends a small frame (control frames, datagrams) by copying it behind a header.
    pub async fn send(&mut self, opcode: OpCode, payload: &[u8]) -> io::Result<()> {
        let mut buffer = Vec::with_capacity(HEADER_ROOM + payload.len());
        buffer.resize(HEADER_ROOM, 0);
        buffer.extend_from_slice(payload);
        self.send_in_place(opcode, &mut buffer).await
    }

    /// Sends a Close frame with status 1000 and no reason.
    pub async fn send_close(&mut self) -> io::Result<()> {
        self.send(OpCode::Close, &1000u16.to_be_bytes()).await
    }

    /// Sends a Close frame with status 1008 (policy violation): the server ended the tunnel
    /// for a policy reason such as a revoked certificate.
    pub async fn send_close_policy(&mut self) -> io::Result<()> {
        self.send(OpCode::Close, &1008u16.to_be_bytes()).await
    }

    /// Ends the transport's write side (TLS close_notify, then TCP FIN).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.inner.shutdown().await
    }
}

/// One whole final frame, for a caller that sends it in one write with other bytes.
pub fn encode_frame(opcode: OpCode, payload: &[u8], masking: Masking) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(HEADER_ROOM + payload.len());
    buffer.resize(HEADER_ROOM, 0);
    buffer.extend_from_slice(payload);
    let frame_start = frame_in_place(opcode, &mut buffer, masking);
    buffer.drain(..frame_start);
    buffer
}

/// Turns `buffer[HEADER_ROOM..]` into a final frame: writes the header in front of the
/// payload and masks the payload if asked. Returns where the frame starts in `buffer`.
fn frame_in_place(opcode: OpCode, buffer: &mut [u8], masking: Masking) -> usize {
    let payload_length = buffer.len() - HEADER_ROOM;
    let mask = match masking {
        Masking::Unmasked => None,
        Masking::Masked => Some(rand_mask()),
    };
    let mut header = [0u8; HEADER_ROOM];
    let header_length = encode_header(&mut header, opcode, payload_length, mask);
    let frame_start = HEADER_ROOM - header_length;
    buffer[frame_start..HEADER_ROOM].copy_from_slice(&header[..header_length]);
    if let Some(mask) = mask {
        apply_mask(&mut buffer[HEADER_ROOM..], mask);
    }
    frame_start
}

/// Writes a final-frame header; returns its length.
fn encode_header(
    header: &mut [u8; HEADER_ROOM],
    opcode: OpCode,
    length: usize,
    mask: Option<[u8; 4]>,
) -> usize {
    header[0] = 0x80 | opcode.bits();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut at = if length < 126 {
        header[1] = mask_bit | length as u8;
        2
    } else if let Ok(short) = u16::try_from(length) {
        header[1] = mask_bit | 126;
        header[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        header[1] = mask_bit | 127;
        header[2..10].copy_from_slice(&(length as u64).to_be_bytes());
        10
    };
    if let Some(mask) = mask {
        header[at..at + 4].copy_from_slice(&mask);
        at += 4;
    }
    at
}

/// A fresh masking key. Masking only defeats proxy cache poisoning, so a fast generator seeded
/// from the clock is enough.
fn rand_mask() -> [u8; 4] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut state = STATE.load(Ordering::Relaxed);
    if state == 0 {
        state = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15)
            | 1;
    }
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    STATE.store(state, Ordering::Relaxed);
    (state as u32).to_ne_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn round_trip(masking: Masking, payload: &[u8]) -> (OpCode, Vec<u8>) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut writer = FrameWriter::new(client, masking);
        writer.send(OpCode::Binary, payload).await.unwrap();
        let mut reader = FrameReader::new(server, &[]);
        let (opcode, received) = reader.next_frame().await.unwrap().unwrap();
        (opcode, received.to_vec())
    }

    #[tokio::test]
    async fn frames_of_every_length_class_round_trip_masked_and_unmasked() {
        for length in [0, 125, 126, 65535, 65536, 300_000] {
            let payload: Vec<u8> = (0..length).map(|i| (i % 251) as u8).collect();
            for masking in [Masking::Unmasked, Masking::Masked] {
                let (opcode, received) = round_trip(masking, &payload).await;
                assert_eq!(opcode, OpCode::Binary);
                assert_eq!(received, payload, "length {length} {masking:?}");
            }
        }
    }

    #[tokio::test]
    async fn chunks_rebuild_masked_frames_that_arrive_in_pieces() {
        let payload: Vec<u8> = (0..200_000).map(|i| (i % 253) as u8).collect();
        let (client, server) = tokio::io::duplex(4096);
        let sent = payload.clone();
        let writer = tokio::spawn(async move {
            let mut writer = FrameWriter::new(client, Masking::Masked);
            writer.send(OpCode::Binary, &sent[..70_001]).await.unwrap();
            writer.send(OpCode::Ping, b"p").await.unwrap();
            writer.send(OpCode::Binary, &sent[70_001..]).await.unwrap();
        });
        let mut reader = FrameReader::new(server, &[]);

        let mut received = Vec::new();
        let mut pings = 0;
        while received.len() < payload.len() {
            match reader.next_chunk().await.unwrap().unwrap() {
                Chunk::Data(data) => received.extend_from_slice(data),
                Chunk::Control(OpCode::Ping, data) => {
                    assert_eq!(data, b"p");
                    pings += 1;
                }
                Chunk::Control(other, _) => panic!("unexpected {other:?}"),
            }
        }
        writer.await.unwrap();

        assert_eq!(received, payload);
        assert_eq!(pings, 1);
    }

    #[tokio::test]
    async fn reserved_bits_are_a_protocol_error() {
        let mut reader = FrameReader::new(tokio::io::empty(), &[0xC2, 0x00]);
        assert!(reader.next_frame().await.is_err());
    }

    #[tokio::test]
    async fn oversized_ping_is_a_protocol_error() {
        let mut reader = FrameReader::new(tokio::io::empty(), &[0x89, 126, 0, 200]);
        assert!(reader.next_frame().await.is_err());
    }

    #[tokio::test]
    async fn eof_inside_a_frame_is_an_error_and_between_frames_is_none() {
        let mut truncated = FrameReader::new(tokio::io::empty(), &[0x82, 5, 1, 2]);
        let mut empty = FrameReader::new(tokio::io::empty(), &[]);
        assert!(truncated.next_frame().await.is_err());
        assert!(empty.next_frame().await.unwrap().is_none());
    }
}
